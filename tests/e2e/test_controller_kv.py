"""A user and password kept in a KV version 2 secret (`kind = kv`).

- Under pgbench, the secret changes twice: a new version naming another PostgreSQL user,
  then (ALTER ROLE first, a new KV version right after) a new password for that same user.
  The controller re-reads the secret every 2 s and pushes each change as a new generation;
  not one transaction fails.
- Self-heal: the password is changed (ALTER ROLE + new KV version) with a refresh_interval
  of an hour; PgBouncer's next server logins are refused (28P01), the controller reads the
  secret at once and PgBouncer goes on, with no failed transaction.
- A secret without the configured field: the controller says which set, path and field,
  in its log and in `pgbvctl status`, and picks the secret up once it is fixed.

All run against a real Vault too (PGBV_TEST_USE_REAL_VAULT=1): KV v2 set up through
Vault's API."""

import re
import secrets
import time

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from pgbench_run import Pgbench
from postgres_cluster import quote_ident, quote_literal
from processes import wait_until
from vault_client import write_kv

_NEW_GEN_RE = re.compile(r"set app: new generation (\d+): user (\S+) from (\S+ v\d+) because "
                         r"([^;]+);")


def _generations(log: str) -> list[tuple[int, str, str, str]]:
    return [(int(m.group(1)), m.group(2), m.group(3), m.group(4))
            for m in _NEW_GEN_RE.finditer(log)]


def _wait_generation(chain, above: int, what: str) -> dict:  # noqa: F811
    return wait_until(lambda: (s := chain.set_status("app"))["generation"] > above and s,
                      20, what, interval=0.1)


def test_kv_changed_under_pgbench(chain, pg_bindir, workdir):  # noqa: F811
    t = chain.add_tenant("app", kind="kv", refresh_interval="2s")
    log_offset = chain.pg.log_size()
    chain.start()
    bouncer, ctl = chain.bouncer, chain.controller
    assert chain.current_user("app") == t.login_user
    st = chain.set_status("app")
    assert st["kind"] == "kv" and st["source"] == f"{t.db_mount}/data/{t.kv_path} v1", st

    second = f"{t.login_user}_b"
    bench = Pgbench(pg_bindir, workdir / "pgbench.log", bouncer.conninfo(),
                    ["-c", "8", "-j", "2", "-T", "24", "-P", "4"])
    try:
        time.sleep(5)
        # A new version naming another user, who exists in PostgreSQL.
        chain.create_login_user(t, second, secrets.token_urlsafe(18))
        pw_b = secrets.token_urlsafe(18)
        chain.pg.psql(f"ALTER ROLE {quote_ident(second)} PASSWORD {quote_literal(pw_b)};",
                      db="postgres")
        gen = st["generation"]
        assert chain.write_kv_login("app", second, pw_b) == 2
        st = _wait_generation(chain, gen, "the controller to push KV version 2")
        assert st["username"] == second and st["source"].endswith(" v2"), st
        wait_until(lambda: chain.current_user("app") == second, 10, "PgBouncer to use v2")
        time.sleep(5)
        # The same user's password changes: PostgreSQL first, then the secret.
        pw_b2 = secrets.token_urlsafe(18)
        chain.pg.psql(f"ALTER ROLE {quote_ident(second)} PASSWORD {quote_literal(pw_b2)};",
                      db="postgres")
        assert chain.write_kv_login("app", second, pw_b2) == 3
        st = _wait_generation(chain, st["generation"], "the controller to push KV version 3")
        assert st["username"] == second and st["source"].endswith(" v3"), st
        result = bench.wait(timeout=60)
    finally:
        if bench.alive():
            bench.kill()

    log = ctl.log_text()
    gens = _generations(log)
    print(f"pgbench: processed={result.processed} failed={result.failed} "
          f"tps={result.tps:.0f}; generations: {gens}; refused server logins in PgBouncer: "
          f"{bouncer.log_text().count('server refused login')}")
    assert result.returncode == 0, result.describe()
    assert result.failed == 0 and not result.errors, result.describe()
    assert result.processed > 0, result.describe()
    assert [(u, src.rsplit(" ", 1)[1]) for _, u, src, _ in gens] == \
        [(second, "v2"), (second, "v3")], gens
    used = chain.pg.authorized_users(log_offset)
    assert used[t.login_user] > 0 and used[second] > 0, used
    # The new password works for fresh logins.
    bouncer.admin_raw("RECONNECT app")
    assert bouncer.psql("SELECT current_user;").stdout.strip() == second
    assert "revoked generation" not in log
    assert chain.status()["health"] == "ok"


def test_kv_28p01_self_heal(chain, pg_bindir, workdir):  # noqa: F811
    t = chain.add_tenant("app", kind="kv", refresh_interval="1h")
    chain.start()
    bouncer, ctl = chain.bouncer, chain.controller
    gen = chain.set_status("app")["generation"]
    bench = Pgbench(pg_bindir, workdir / "pgbench.log", bouncer.conninfo(),
                    ["-c", "4", "-j", "2", "-T", "15", "-P", "5"])
    try:
        time.sleep(3)
        password = secrets.token_urlsafe(18)
        chain.pg.psql(f"ALTER ROLE {quote_ident(t.login_user)} PASSWORD "
                      f"{quote_literal(password)};", db="postgres")
        chain.write_kv_login("app", t.login_user, password)
        # Nothing is due for an hour; the refused logins of the replacement servers are.
        bouncer.admin_raw("RECONNECT app")
        st = _wait_generation(chain, gen, "the controller to re-read the secret after a 28P01")
        result = bench.wait(timeout=60)
    finally:
        if bench.alive():
            bench.kill()
    log = ctl.log_text()
    print(f"pgbench: processed={result.processed} failed={result.failed}; "
          f"status after: {st}")
    assert result.returncode == 0, result.describe()
    assert result.failed == 0 and not result.errors, result.describe()
    assert f'server refused login as "{t.login_user}"' in bouncer.log_text()
    assert f"PostgreSQL refused generation {gen} (user {t.login_user}, SQLSTATE 28P01)" in log
    gens = _generations(log)
    assert gens and gens[0][3].startswith("PostgreSQL refused the current ones"), gens
    assert st["source"].endswith(" v2"), st


def test_kv_missing_field_is_reported(chain):  # noqa: F811
    t = chain.add_tenant("app", kind="kv", refresh_interval="1s", username_field="login")
    chain.configure_vault(token_ttl="1h", token_max_ttl="24h")
    chain.preexisting_roles = set()
    chain.controller = chain.make_controller()
    chain.controller.start()

    def reported():
        st = chain.set_status("app")
        return st["error"] and st

    st = wait_until(reported, 20, "pgbvctl status to report the missing field")
    where = f"{t.db_mount}/data/{t.kv_path}"
    assert st["generation"] == 0 and st["kind"] == "kv", st
    assert where in st["error"] and 'no field "login" (username_field)' in st["error"], st
    log = chain.controller.log_text()
    assert f'set app: KV read (GET /v1/{where}): the secret (version 1) has no field ' \
           f'"login"' in log, log[-3000:]
    cp = chain.controller.pgbvctl_run("status")
    assert 'no field "login"' in cp.stdout, cp.stdout
    # Fixed in Vault: picked up without a restart.
    password = secrets.token_urlsafe(18)
    write_kv(chain.vault.client, t.db_mount, t.kv_path,
             {"login": t.login_user, "password": password})
    chain.pg.psql(f"ALTER ROLE {quote_ident(t.login_user)} PASSWORD {quote_literal(password)};",
                  db="postgres")
    st = wait_until(lambda: (s := chain.set_status("app"))["generation"] > 0 and s, 30,
                    "the controller to read the fixed secret")
    assert st["username"] == t.login_user and st["error"] == "", st
