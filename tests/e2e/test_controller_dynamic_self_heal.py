"""A dynamic role's lease revoked behind the controller's back: an operator runs
`vault lease revoke <lease_id>` (PUT sys/leases/revoke with an admin token), and Vault drops
the role in PostgreSQL at once. The controller is not told; it finds out by itself and
fetches a new generation.

- Under load (transaction pooling, server_lifetime = 1, so PgBouncer logs in to new servers
  all the time): the next server login is refused with 28P01, PgBouncer reports
  LOGIN_FAILED and keeps its clients waiting, and the controller fetches new credentials at
  once, long before any renewal is due.
  Two loads run through PgBouncer, because Vault's revocation hurts in two different ways:
  * pgbench -c 8 -j 2 with transactions that need no table privilege: what the pooling
    layer shows clients. A refused server login must never reach one: 0 failed
    transactions, asserted.
  * two application-like writers (UPDATE pgbench_accounts + INSERT pgbench_history) that,
    unlike pgbench, go on after an error. Vault's default revocation does not terminate
    sessions already logged in, but it revokes the role's privileges and drops it, which
    ends its membership of the group owning the tables: from that moment until PgBouncer
    has the new generation and closes the old servers, every transaction that touches a
    table on a server logged in as the dropped role fails with 42501 "permission denied".
    No pooler can prevent that (the role's sessions have lost their rights in PostgreSQL
    itself). The test prints how many failed and asserts that they all are that error and
    stop once the new generation is in. (pgbench aborts a client at its first such error,
    which would end the load that has to log in for the self-heal, hence not pgbench.)
  A login that races the revocation (authenticated just before DROP ROLE) is refused with
  28000 "role ... does not exist" instead of 28P01; it must heal the same way.
- Idle pool (no server logins, hence no 28P01): the controller notices at its next
  renewal, which Vault refuses (400 lease not found), and fetches new credentials.

Both run against a real Vault too (PGBV_TEST_USE_REAL_VAULT=1): they use only Vault's
public API."""

import random
import re
import threading
import time
from pathlib import Path

import psycopg

from chain import (chain, controller_bins, pg_admin_password, vault_roles,  # noqa: F401
                   vault_target)
from pgbench_run import Pgbench
from processes import wait_until

DURATION_S = 20
# The new generation must arrive within this long of the revocation: one server login
# (server_lifetime = 1) plus one Vault read. Generous for a loaded 2-core machine.
HEAL_WITHIN_S = 8
# Once PgBouncer has the new generation, old servers close as their transaction ends: a
# write failing later than this after it ran on a server that should have been closed.
SETTLE_S = 2
# Transactions that use no table: a session of a dropped role can still run them.
PGBENCH_SCRIPT = """\\set aid random(1, 100000)
BEGIN;
SELECT :aid + 1;
SELECT now();
END;
"""
_ROTATED_RE = re.compile(r"set app: rotated to generation (\d+): user (\S+) \(lease \d+s\) "
                         r"because ([^;]+);")


def _rotations(controller_log: str) -> list[tuple[int, str, str]]:
    """(generation, user, why) of each rotation, from the controller's log."""
    return [(int(m.group(1)), m.group(2), m.group(3))
            for m in _ROTATED_RE.finditer(controller_log)]


def _read_from(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="backslashreplace")


def _revoke_behind_the_controllers_back(chain, lease_id: str) -> float:  # noqa: F811
    """`vault lease revoke` as an operator does it; returns when it was done (monotonic).
    Vault's sys/leases/revoke is synchronous by default: the role is gone on return."""
    resp = chain.vault.client.revoke_lease(lease_id)
    assert resp.status in (200, 204), f"PUT sys/leases/revoke answered {resp.status}"
    return time.monotonic()


class Writers:
    """Write transactions through PgBouncer in threads that go on after errors; every
    transaction's outcome is kept: (monotonic end time, None or (sqlstate, message))."""

    def __init__(self, conninfo: dict[str, str], passfile: Path, threads: int = 2):
        self.conninfo = dict(conninfo, passfile=str(passfile), connect_timeout="30",
                             application_name="pgbv-e2e-writer")
        self.outcomes: list[tuple[float, tuple[str, str] | None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, name=f"writer-{i}", daemon=True)
                         for i in range(threads)]

    def start(self) -> "Writers":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            error = None
            try:
                if conn is None:
                    conn = psycopg.connect(**self.conninfo, autocommit=True,
                                           prepare_threshold=None)
                aid = random.randint(1, 100000)
                with conn.transaction():
                    conn.execute("UPDATE pgbench_accounts SET abalance = abalance + 1 "
                                 "WHERE aid = %s", (aid,))
                    conn.execute("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
                                 "VALUES (1, 1, %s, 1, now())", (aid,))
            except psycopg.Error as e:
                error = (e.sqlstate or "", str(e).splitlines()[0] if str(e) else repr(e))
                if conn is not None and (conn.closed or conn.broken):
                    conn = None
            with self._lock:
                self.outcomes.append((time.monotonic(), error))
            self._stop.wait(0.005)
        if conn is not None:
            conn.close()

    def failures(self) -> list[tuple[float, tuple[str, str]]]:
        with self._lock:
            return [(t, e) for t, e in self.outcomes if e is not None]

    def succeeded_after(self, when: float) -> int:
        with self._lock:
            return sum(1 for t, e in self.outcomes if e is None and t > when)


def test_lease_revoked_under_pgbench_heals_through_28p01(chain, pg_bindir, workdir):  # noqa: F811
    # Leases of 5 min: no renewal or rotation is due during the test, so only the refused
    # login can tell the controller.
    chain.add_tenant("app", default_ttl="5m", max_ttl="10m")
    log_offset = chain.pg.log_size()
    chain.start(bouncer_settings={"server_lifetime": 1})
    pg, bouncer, ctl = chain.pg, chain.bouncer, chain.controller
    script = workdir / "no-tables.sql"
    script.write_text(PGBENCH_SCRIPT)
    script.chmod(0o644)
    bench = Pgbench(pg_bindir, workdir / "pgbench.log", bouncer.conninfo(),
                    ["-c", "8", "-j", "2", "-T", str(DURATION_S), "-P", "5", "-f", str(script)])
    writers = Writers(bouncer.conninfo(), workdir / "no-such-pgpass").start()
    try:
        time.sleep(5)
        st = chain.set_status("app")
        gen_before, user_before, lease = st["generation"], st["username"], st["lease_id"]
        assert lease and user_before == chain.current_user("app"), st
        assert pg.authorized_users(log_offset)[user_before] > 0, \
            f"{user_before} never logged in before the revocation"
        assert writers.succeeded_after(0) > 0 and not writers.failures(), writers.failures()
        pg_offset, blog_offset = pg.log_size(), bouncer.log_size()
        revoked_at = _revoke_behind_the_controllers_back(chain, lease)
        assert user_before not in vault_roles(pg), \
            f"Vault revoked the lease of {user_before} but PostgreSQL still has the role"

        def healed():
            row = chain.show("app")
            return row if row and row["user"] != user_before else None

        row = wait_until(healed, 20, "PgBouncer to receive a new generation after the lease "
                         "was revoked", interval=0.05)
        healed_at = time.monotonic()
        heal_s = healed_at - revoked_at
        user_after = row["user"]
        result = bench.wait(timeout=DURATION_S + 60)
    finally:
        if bench.alive():
            bench.kill()
        writers.stop()

    log = ctl.log_text()
    blog = bouncer.log_text()
    st_after = chain.set_status("app")
    refused = len(re.findall(r'server refused login as "' + re.escape(user_before) + '"', blog))
    failures = writers.failures()
    kinds: dict[tuple[str, str], int] = {}
    for _, e in failures:
        kinds[e] = kinds.get(e, 0) + 1
    late = [(round(t - healed_at, 2), e) for t, e in failures if t > healed_at + SETTLE_S]
    heal_lines = [line for line in log.splitlines()
                  if "PostgreSQL refused" in line or "rotated to generation" in line]
    # How logins as the dropped role ended, in PgBouncer's and PostgreSQL's words (a login
    # racing the revocation may end otherwise than with 28P01).
    login_lines = [line for line in bouncer.log_since(blog_offset).splitlines()
                   if user_before in line and "pooler error" not in line
                   and "closing because: server login has been failing" not in line][:6]
    login_lines += [line for line in _read_from(pg.log_path, pg_offset).splitlines()
                    if "FATAL" in line][:6]
    print(f"revoked the lease of generation {gen_before} ({user_before}); generation "
          f"{st_after['generation']} ({user_after}) in PgBouncer {heal_s:.2f} s later; "
          f"PgBouncer logged {refused} refused server logins as the dropped role\n"
          f"pgbench (no tables): processed={result.processed} failed={result.failed} "
          f"tps={result.tps:.0f}\n"
          f"writers: {len(writers.outcomes)} transactions, {len(failures)} failed: "
          f"{kinds} (the last {max((t - revoked_at for t, _ in failures), default=0):.2f} s "
          f"after the revocation)\n"
          "controller:\n  " + "\n  ".join(heal_lines) + "\n"
          "logins as the dropped role:\n  " + "\n  ".join(login_lines))

    # Clients saw nothing but what Vault's revocation itself causes: a login refused with
    # another error than class 28 would reach them (and make PgBouncer pause server_login_retry).
    others = {k: n for k, n in kinds.items() if k[0] != "42501"}
    assert not others, f"writers failed otherwise than with 42501: {others}; logins as the " \
                       f"dropped role: {login_lines}"
    # Detected through the refused login, not a schedule: a class 28 refusal for the current
    # generation (28P01 once the role is gone; 28000 "role does not exist" when the login
    # raced the DROP ROLE), reported and acted on at once.
    assert refused > 0, blog[-4000:]
    assert any(f"PostgreSQL refused generation {gen_before} (user {user_before}, SQLSTATE "
               f"{code})" in log for code in ("28P01", "28000")), log[-4000:]
    rotations = _rotations(log)
    assert rotations and rotations[0][1] == user_after \
        and rotations[0][2] == "PostgreSQL refused the current ones", rotations
    assert heal_s < HEAL_WITHIN_S, f"the new generation took {heal_s:.1f} s after the revocation"
    # A new Vault role, and it really is used.
    assert user_after == st_after["username"] != user_before
    assert user_after in vault_roles(pg)
    assert pg.authorized_users(pg_offset)[user_after] > 0, \
        f"{user_after} never logged in to PostgreSQL"
    assert bouncer.psql("SELECT current_user;").stdout.strip() == user_after

    # What clients saw. No refused login reached a client: 0 failed pgbench transactions.
    assert result.processed > 0, result.describe()
    assert result.failed == 0 and not result.errors and result.returncode == 0, \
        result.describe()
    # Writers on sessions of the dropped role failed only until the new generation was in.
    assert not late, f"writes failed more than {SETTLE_S} s after the new generation: {late}"
    assert writers.succeeded_after(healed_at + SETTLE_S) > 0, "no write succeeded after healing"
    assert chain.status()["health"] == "ok"


def test_lease_revoked_with_idle_pool_heals_at_next_renewal(chain):  # noqa: F811
    # Leases of 6 s renewed about every 4 s up to a max TTL of 1 h: the next renewal after
    # the revocation comes within seconds.
    chain.add_tenant("app", default_ttl="6s", max_ttl="1h", rotation_margin="2s")
    chain.start()
    pg, bouncer, ctl = chain.pg, chain.bouncer, chain.controller
    st = chain.set_status("app")
    gen_before, user_before, lease = st["generation"], st["username"], st["lease_id"]
    # One server logged in as the role, then left idle in the pool.
    assert bouncer.psql("SELECT current_user;").stdout.strip() == user_before
    # Renewal works before the revocation.
    wait_until(lambda: f"set app: renewed generation {gen_before} for " in ctl.log_text(), 15,
               "the controller's first renewal")
    blog_offset = bouncer.log_size()
    revoked_at = _revoke_behind_the_controllers_back(chain, lease)
    assert user_before not in vault_roles(pg)

    st_after = wait_until(lambda: (s := chain.set_status("app"))["generation"] > gen_before
                          and s, 15, "the controller to fetch a new generation at its next "
                          "renewal", interval=0.1)
    heal_s = time.monotonic() - revoked_at
    log = ctl.log_text()
    refusal = [line for line in log.splitlines()
               if f"Vault refused to renew generation {gen_before}" in line]
    print(f"revoked lease of generation {gen_before} ({user_before}); generation "
          f"{st_after['generation']} ({st_after['username']}) {heal_s:.2f} s later\n"
          f"controller: {refusal}")

    assert refusal, log[-4000:]
    assert "fetching new credentials" in refusal[0], refusal
    rotations = _rotations(log)
    assert rotations and rotations[0][:2] == (st_after["generation"], st_after["username"]) \
        and rotations[0][2] == "Vault no longer knows their lease", rotations
    # Nothing logged in meanwhile: no 28P01 was needed.
    assert "server refused login" not in bouncer.log_since(blog_offset)
    assert f"PostgreSQL refused generation {gen_before}" not in log
    # Vault already forgot the lease: the controller does not try to revoke it.
    assert f"revoked generation {gen_before}" not in log
    assert f"revoking generation {gen_before} failed" not in log

    # pgbvctl status (--json above) shows the new user and lease, serving, healthy; the
    # table form exits 0 (healthy).
    user_after = st_after["username"]
    assert user_after != user_before and st_after["lease_id"] != lease, st_after
    assert st_after["state"] == "serving", st_after
    cp = ctl.pgbvctl_run("status")
    assert cp.returncode == 0, f"pgbvctl status exited {cp.returncode}: {cp.stderr}"
    assert chain.status()["health"] == "ok"
    # PgBouncer has it; its idle server of the dropped role was closed, and a new login
    # works.
    wait_until(lambda: chain.current_user("app") == user_after, 5,
               "PgBouncer to receive the new generation")
    assert bouncer.psql("SELECT current_user;").stdout.strip() == user_after
