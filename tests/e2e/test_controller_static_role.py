"""A database static role (`kind = static`): one PostgreSQL user whose password Vault rotates
on its own schedule, the old password refused at once.

- Under pgbench, Vault rotates the password every 10 s; PgBouncer logs in to new servers
  all the time (server_lifetime = 1), so logins do meet the moment when Vault has rotated
  and the controller has not read the new password yet. Not one transaction fails: the
  controller reads the role again right after each rotation (from Vault's ttl), and a login
  refused meanwhile (28P01) keeps its clients waiting and makes the controller read at once.
  The test prints which of the two paths each new generation came from.
- Without new server logins, nothing reports 28P01: the controller follows each rotation
  from Vault's ttl alone, and a fresh login after it works.
- Self-heal: the password is rotated out of schedule (rotate-role) under load; the next
  server logins are refused with 28P01, the controller reads the role at once and PgBouncer
  goes on with the new password, again without a failed transaction.

Both run against a real Vault too (PGBV_TEST_USE_REAL_VAULT=1): everything is set up
through Vault's API."""

import re
import time

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from pgbench_run import Pgbench
from processes import wait_until
from vault_client import rotate_static_role, static_creds

ROTATION_PERIOD_S = 10
DURATION_S = 32
_NEW_GEN_RE = re.compile(r"set app: new generation (\d+): user (\S+) from \S+ because ([^;]+);")


def _generations(controller_log: str) -> list[tuple[int, str, str]]:
    """(generation, user, why) of each generation after the first, from the controller's log."""
    return [(int(m.group(1)), m.group(2), m.group(3)) for m in _NEW_GEN_RE.finditer(controller_log)]


def test_static_role_rotated_by_vault_under_pgbench(chain, pg_bindir, workdir):  # noqa: F811
    t = chain.add_tenant("app", kind="static", rotation_period=f"{ROTATION_PERIOD_S}s")
    log_offset = chain.pg.log_size()
    chain.start(bouncer_settings={"server_lifetime": 1})
    bouncer, ctl = chain.bouncer, chain.controller
    assert chain.current_user("app") == t.login_user
    st = chain.set_status("app")
    assert st["kind"] == "static" and st["source"] == f"{t.db_mount}/static-creds/app", st
    assert st["lease_id"] == "" and st["deadline"] > 0, st

    bench = Pgbench(pg_bindir, workdir / "pgbench.log", bouncer.conninfo(),
                    ["-c", "8", "-j", "2", "-T", str(DURATION_S), "-P", "5"])
    users = set()
    try:
        while bench.alive():
            row = chain.show("app")
            if row:
                users.add(row["user"])
            time.sleep(0.3)
        result = bench.wait(timeout=60)
    finally:
        if bench.alive():
            bench.kill()

    log = ctl.log_text()
    gens = _generations(log)
    refused = len(re.findall(r'server refused login as "' + re.escape(t.login_user),
                             bouncer.log_text()))
    by_schedule = [g for g, _, why in gens if why.startswith("Vault has rotated")]
    by_28p01 = [g for g, _, why in gens if why.startswith("PostgreSQL refused")]
    print(f"pgbench: processed={result.processed} failed={result.failed} "
          f"tps={result.tps:.0f}; {len(gens)} new generations in {DURATION_S} s: "
          f"{len(by_schedule)} read right after Vault's rotation (from its ttl) {by_schedule}, "
          f"{len(by_28p01)} after PgBouncer reported 28P01 {by_28p01}; PgBouncer logged "
          f"{refused} refused server logins (clients waited, none failed)")

    assert result.returncode == 0, result.describe()
    assert result.failed == 0 and not result.errors, result.describe()
    assert result.processed > 0, result.describe()
    # Vault rotated about every 10 s: at least two new passwords were pushed, always for
    # the same user.
    assert len(gens) >= DURATION_S // ROTATION_PERIOD_S - 1, log[-4000:]
    assert users == {t.login_user}, users
    assert {u for _, u, _ in gens} == {t.login_user}
    assert chain.pg.authorized_users(log_offset)[t.login_user] > 0
    # No lease: nothing renewed or revoked; old generations drained all the same.
    assert "revoked generation" not in log and "renewed generation" not in log
    assert re.search(r"generation \d+ \(user \S+\) drained \(no lease: nothing to revoke\)", log)
    # The pushed password is Vault's current one: a fresh login works.
    bouncer.admin_raw("RECONNECT app")
    assert bouncer.psql("SELECT current_user;").stdout.strip() == t.login_user
    cp = ctl.pgbvctl_run("status")
    assert cp.returncode == 0 and "static" in cp.stdout and \
        f"{t.db_mount}/static-creds/app" in cp.stdout, cp.stdout
    assert chain.status()["health"] == "ok"


def test_static_role_28p01_self_heal(chain, pg_bindir, workdir):  # noqa: F811
    t = chain.add_tenant("app", kind="static", rotation_period="1h")
    chain.start()
    bouncer, ctl = chain.bouncer, chain.controller
    gen_before = chain.set_status("app")["generation"]
    bench = Pgbench(pg_bindir, workdir / "pgbench.log", bouncer.conninfo(),
                    ["-c", "4", "-j", "2", "-T", "15", "-P", "5"])
    try:
        time.sleep(3)
        # Rotated behind the controller's back: its schedule says nothing is due for an hour.
        rotate_static_role(chain.vault.client, t.db_mount, t.role)
        assert static_creds(chain.vault.client, t.db_mount, t.role).data["ttl"] > 3000
        # Servers close once released; their replacements log in with the old password.
        bouncer.admin_raw("RECONNECT app")
        wait_until(lambda: chain.set_status("app")["generation"] > gen_before, 20,
                   "the controller to read the rotated password after a 28P01")
        result = bench.wait(timeout=60)
    finally:
        if bench.alive():
            bench.kill()
    log = ctl.log_text()
    print(f"pgbench: processed={result.processed} failed={result.failed}; controller: "
          + "; ".join(line for line in log.splitlines() if "refused" in line)[:2000])
    assert result.returncode == 0, result.describe()
    assert result.failed == 0 and not result.errors, result.describe()
    assert f'server refused login as "{t.login_user}"' in bouncer.log_text()
    assert f"PostgreSQL refused generation {gen_before} (user {t.login_user}, SQLSTATE 28P01)" \
        in log, log[-4000:]
    gens = _generations(log)
    assert gens and gens[0][2].startswith("PostgreSQL refused the current ones"), gens
    assert bouncer.psql("SELECT current_user;").stdout.strip() == t.login_user


def test_static_role_followed_from_ttl_without_logins(chain):  # noqa: F811
    t = chain.add_tenant("app", kind="static", rotation_period="5s")
    chain.start()
    bouncer, ctl = chain.bouncer, chain.controller
    gen = chain.set_status("app")["generation"]
    # No client, so no server login: only Vault's ttl tells the controller when to read.
    st = wait_until(lambda: (s := chain.set_status("app"))["generation"] >= gen + 2 and s, 30,
                    "two rotations to be followed (real Vault: up to 5 s late each)")
    gens = _generations(ctl.log_text())
    print(f"generations after the first: {gens}")
    assert len(gens) >= 2 and all(why.startswith("Vault has rotated the password")
                                  for _, _, why in gens), gens
    assert st["username"] == t.login_user and st["deadline"] > 0, st
    assert "server refused login" not in bouncer.log_text()
    assert bouncer.psql("SELECT current_user;").stdout.strip() == t.login_user
