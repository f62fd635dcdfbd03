"""The controller's AppRole token reaches its max TTL every 40 s under pgbench load: the
controller logs in again in time and moves the credentials onto the new token before the old
token dies and takes its leases with it; not one transaction fails."""

import re

from chain import (RoleWatcher, VAULT_ROLE_PREFIX, chain, controller_bins,  # noqa: F401
                   pg_admin_password, rfc3339_epoch, vault_target)
from pgbench_run import Pgbench

DURATION_S = 55
TOKEN_TTL, TOKEN_MAX_TTL_S = "20s", 40
_LOGIN_RE = re.compile(r"vault: logged in \(([^)]*)\)")


def test_token_max_ttl_relogin_moves_credentials(chain, pg_bindir, workdir):  # noqa: F811
    # Leases far longer than the token: only the token's end forces new credentials.
    chain.add_tenant("app", default_ttl="2m", max_ttl="10m", rotation_margin="5s")
    log_offset = chain.pg.log_size()
    chain.start(token_ttl=TOKEN_TTL, token_max_ttl=f"{TOKEN_MAX_TTL_S}s")
    pg, bouncer = chain.pg, chain.bouncer
    first_user = chain.current_user()
    watcher = RoleWatcher(pg, ignore=chain.preexisting_roles).start()
    bench = Pgbench(pg_bindir, workdir / "pgbench.log", bouncer.conninfo(),
                    ["-c", "8", "-j", "2", "-T", str(DURATION_S), "-P", "5"])
    try:
        result = bench.wait(timeout=DURATION_S + 60)
    finally:
        if bench.alive():
            bench.kill()
        watcher.stop()
    first_seen, gone_at = watcher.snapshot()
    st = chain.status()
    logins = _LOGIN_RE.findall(chain.controller.log_text())
    used = {u for u, n in pg.authorized_users(log_offset).items()
            if u.startswith(VAULT_ROLE_PREFIX) and u not in chain.preexisting_roles}
    print(f"pgbench: processed={result.processed} failed={result.failed} tps={result.tps:.0f}; "
          f"token logins {st['token']['logins']} ({logins}); roles used {len(used)}; "
          f"revoked roles lived {sorted(round(gone_at[r] - first_seen[r], 1) for r in gone_at)}")

    assert result.returncode == 0, result.describe()
    assert result.failed == 0 and not result.errors, result.describe()
    assert result.processed > 0, result.describe()
    assert st["token"]["logins"] >= 2 and len(logins) >= 2, \
        f"the controller did not log in again: {st['token']}"
    assert len(used) >= 2 and first_user in used, used
    # The first token's credentials were moved off it and revoked before it ended.
    assert first_user in gone_at, f"{first_user} was never revoked: {sorted(gone_at)}"
    assert gone_at[first_user] - first_seen[first_user] < TOKEN_MAX_TTL_S, \
        f"{first_user} lived {gone_at[first_user] - first_seen[first_user]:.1f} s"
    assert "server refused login" not in bouncer.log_text()
    assert st["health"] == "ok", st

    if chain.vault.is_double:
        mount = chain.tenants["app"].db_mount
        ended = [e for e in chain.vault.stats()["revoked"] if e["mount"].startswith(mount)]
        reasons = {e["username"]: e["reason"] for e in ended}
        assert reasons and set(reasons.values()) == {"revoked"}, \
            f"leases must be revoked by the controller, not die with their token: {reasons}"
        # Each lease went before the token that created it could take it along.
        for e in ended:
            lived = rfc3339_epoch(e["revoked_at"]) - rfc3339_epoch(e["issue_time"])
            assert lived < TOKEN_MAX_TTL_S, (e["username"], lived)
