"""A database without credential= in the same PgBouncer is untouched by the plugin: its
forced user logs in as configured, its servers survive rotations and credential server
outages, and SHOW CREDENTIALS does not list it."""

import secrets
import time
from pathlib import Path

import psycopg

from pgbench_run import Pgbench
from processes import wait_until
from rig import SET_NAME, Rig, app_database, plugin_settings


def _backend(bouncer, db):
    with psycopg.connect(**bouncer.conninfo(db), passfile=str(bouncer.no_pgpass),
                         connect_timeout=10, prepare_threshold=None, autocommit=True) as conn:
        return conn.execute("SELECT current_user, pg_backend_pid()").fetchone()


def test_database_without_credential_unaffected(plugin_so, pg, credserver, roles, bouncers,
                                                 pg_bindir, workdir):
    rig = Rig(pg, credserver, roles)
    first = rig.rotate()
    # A plain password: in pgbouncer.ini it is an ordinary connection-string value.
    plain_role, plain_password = roles.new("plain", password=secrets.token_hex(16))
    plain = (f"host=127.0.0.1 port={pg.port} dbname=app user={plain_role} "
             f"password={plain_password}")
    bouncer = bouncers.start({"app": app_database(pg), "plain": plain},
                             plugin_settings(plugin_so, Path(credserver.socket_path)))
    credserver.wait_ready()

    assert _backend(bouncer, "app")[0] == first.role
    user, plain_pid = _backend(bouncer, "plain")
    assert user == plain_role

    # Rotations close the credential database's old servers, never the plain one's.
    second = rig.rotate()
    wait_until(lambda: not pg.backend_pids(first.role), 2, "the old app server to close")
    assert _backend(bouncer, "app")[0] == second.role
    assert _backend(bouncer, "plain") == (plain_role, plain_pid)

    # Nor does the credential server going away.
    credserver.stop()
    time.sleep(0.5)
    assert _backend(bouncer, "plain") == (plain_role, plain_pid)
    credserver.start()
    credserver.wait_ready()

    # Load on the plain database across a rotation of the other one.
    bench = Pgbench(pg_bindir, workdir / "pgbench.log", bouncer.conninfo("plain"),
                    ["-c", "4", "-j", "2", "-T", "4"])
    time.sleep(1.5)
    rig.rotate()
    result = bench.wait(timeout=60)
    assert result.returncode == 0 and result.failed == 0, result.describe()

    assert [r["set"] for r in bouncer.admin("SHOW CREDENTIALS")] == [SET_NAME]
    databases = {d["name"]: d for d in bouncer.admin("SHOW DATABASES")}
    assert databases["plain"]["force_user"] == plain_role
    assert pg.backend_pids(plain_role)  # its pool is still there
    assert not any(d.username == plain_role for d in credserver.drained)
