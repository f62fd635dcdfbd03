"""The harness itself against PostgreSQL alone (no PgBouncer): if these fail, nothing else
in the suite means anything."""

import psycopg
import pytest

from pgbench_run import Pgbench, parse_output
from postgres_cluster import APP_DB


def test_postgres_requires_scram_over_tcp(pg, roles):
    role, password = roles.new("harness")
    assert pg.query("SHOW password_encryption")[0]["password_encryption"] == "scram-sha-256"
    verifier = pg.query(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'")
    assert verifier[0]["rolpassword"].startswith("SCRAM-SHA-256$")
    offset = pg.log_size()
    with psycopg.connect(**pg.tcp_conninfo(role, password), connect_timeout=10) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == role
        assert conn.pgconn.used_password
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**pg.tcp_conninfo(role, "wrong"), connect_timeout=10)
    assert pg.authorized_users(offset)[role] == 1


def test_role_lifecycle_and_session_count(pg, roles):
    role, password = roles.new("harness")
    with psycopg.connect(**pg.tcp_conninfo(role, password), connect_timeout=10):
        assert pg.sessions_by_user()[role] == 1
        assert len(pg.backend_pids(role)) == 1
    roles.drop(role)
    assert pg.query(f"SELECT count(*) AS n FROM pg_roles WHERE rolname = '{role}'")[0]["n"] \
        == "0"


def test_pgbench_as_a_fresh_role(pg, roles, pg_bindir, workdir):
    role, password = roles.new("harness")
    run = Pgbench(pg_bindir, workdir / "pgbench.log", pg.tcp_conninfo(role, password),
                  ["-c", "4", "-j", "2", "-T", "3"])
    result = run.wait(timeout=60)
    assert result.returncode == 0, result.describe()
    assert result.failed == 0 and result.processed > 0, result.describe()
    # The role writes through its membership of the group owning the tables.
    assert int(pg.query("SELECT count(*) AS n FROM pgbench_history")[0]["n"]) > 0
    assert pg.query("SELECT current_database() AS d")[0]["d"] == APP_DB


PGBENCH_OK = """pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: simple
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 3 s
number of transactions actually processed: 6038
number of failed transactions: 0 (0.000%)
latency average = 3.952 ms
initial connection time = 32.038 ms
tps = 2024.066886 (without initial connection time)
"""


def test_pgbench_output_parser():
    r = parse_output(0, PGBENCH_OK)
    assert (r.processed, r.failed, r.tps, r.errors) == (6038, 0, 2024.066886, [])
    aborted = ("pgbench: error: client 3 script 0 aborted in command 5 query 0: "
               "server closed the connection unexpectedly\n" +
               PGBENCH_OK.replace("6038", "5000").replace("failed transactions: 0 (0.000%)",
                                                          "failed transactions: 7 (0.140%)") +
               "pgbench: error: Run was aborted; the above results are incomplete.\n")
    r = parse_output(2, aborted)
    assert (r.processed, r.failed, len(r.errors)) == (5000, 7, 2)
    with pytest.raises(ValueError, match="actually processed"):
        parse_output(1, "pgbench: error: connection to server failed\n")
    with pytest.raises(ValueError, match="2 'tps' lines"):
        parse_output(0, PGBENCH_OK + PGBENCH_OK.splitlines()[-1] + "\n")
    r = parse_output(0, PGBENCH_OK.replace("actually processed: 6038",
                                           "actually processed: 800/800"))
    assert r.processed == 800
