"""pgbench through PgBouncer for over a minute while the controller rotates Vault credentials
on its own every few seconds: not one transaction fails, every rotation's role really logs
in, and each old role is revoked (dropped from PostgreSQL) once drained, long before its
lease would have expired."""

from chain import (RoleWatcher, VAULT_ROLE_PREFIX, chain, controller_bins,  # noqa: F401
                   pg_admin_password, rfc3339_epoch, vault_target)
from pgbench_run import Pgbench
from processes import wait_until

DURATION_S = 65
# Leases of 7 s with a max TTL of 8 s and a 3.5 s margin (half the TTL, the most CONFIG.md
# allows): the first renewal, 40 % into the lease, is already capped, and the controller
# fetches new credentials about 4.5 s into each lease: some 14 rotations in 65 s. An old role
# revoked once drained lives about 4.5 s; one left until its deadline or its expiry, 8 s.
DEFAULT_TTL, MAX_TTL_S, MARGIN = "7s", 8, "3.5s"
REVOKED_WITHIN_S = MAX_TTL_S - 1.5
MIN_ROTATIONS = 10


def test_rotation_every_few_seconds_under_pgbench(chain, pg_bindir, workdir):  # noqa: F811
    chain.add_tenant("app", default_ttl=DEFAULT_TTL, max_ttl=f"{MAX_TTL_S}s",
                     rotation_margin=MARGIN)
    log_offset = chain.pg.log_size()
    chain.start()
    pg, bouncer = chain.pg, chain.bouncer
    watcher = RoleWatcher(pg, ignore=chain.preexisting_roles).start()
    bench = Pgbench(pg_bindir, workdir / "pgbench.log", bouncer.conninfo(),
                    ["-c", "8", "-j", "2", "-T", str(DURATION_S), "-P", "5"])
    try:
        result = bench.wait(timeout=DURATION_S + 60)
    finally:
        if bench.alive():
            bench.kill()

    # Rotation goes on after pgbench: wait for a moment when PostgreSQL holds exactly the
    # current role (read before and after, so a rotation in between does not fool us).
    def only_current():
        before = chain.current_user("app")
        roles = chain.new_vault_roles()
        return before if roles == {before} == {chain.current_user("app")} else None

    try:
        wait_until(only_current, 15, "every Vault role but the current one to be dropped",
                   interval=0.2)
    finally:
        watcher.stop()
    first_seen, gone_at = watcher.snapshot()

    used = {u for u, n in pg.authorized_users(log_offset).items()
            if u.startswith(VAULT_ROLE_PREFIX) and u not in chain.preexisting_roles}
    lifetimes = sorted(gone_at[r] - first_seen[r] for r in gone_at)
    st = chain.set_status("app")
    print(f"pgbench: processed={result.processed} failed={result.failed} tps={result.tps:.0f}; "
          f"{len(used)} Vault roles logged in, controller generation {st['generation']}; "
          f"revoked roles lived {', '.join(f'{t:.1f}' for t in lifetimes)} s "
          f"(max TTL {MAX_TTL_S} s)")

    assert result.returncode == 0, result.describe()
    assert result.failed == 0 and not result.errors, result.describe()
    assert result.processed > 0, result.describe()
    assert len(used) >= MIN_ROTATIONS, \
        f"only {len(used)} Vault roles logged in to PostgreSQL: {sorted(used)}"
    assert "server refused login" not in bouncer.log_text()

    # Revoked once drained, not left to expire: every old role vanished well before its
    # lease's max TTL would have ended it.
    late = {r: round(t, 1) for r in gone_at
            if (t := gone_at[r] - first_seen[r]) > REVOKED_WITHIN_S}
    assert not late, f"roles that lived (nearly) until their lease's max TTL: {late}"
    assert len(gone_at) >= MIN_ROTATIONS - 1, (first_seen, gone_at)

    if chain.vault.is_double:
        mount = chain.tenants["app"].db_mount
        history = [e for e in chain.vault.stats()["revoked"] if e["mount"].startswith(mount)]
        by_user = {e["username"]: e for e in history}
        not_revoked = {u: e["reason"] for u, e in by_user.items() if e["reason"] != "revoked"}
        assert not not_revoked, f"leases that ended otherwise than by revocation: {not_revoked}"
        missing = set(gone_at) - set(by_user)
        assert not missing, f"roles dropped without their lease being revoked: {missing}"
        early = {u: round(rfc3339_epoch(e["revoked_at"]) - rfc3339_epoch(e["issue_time"]), 1)
                 for u, e in by_user.items()}
        assert max(early.values()) < REVOKED_WITHIN_S, early
        assert all(not e["error"] for e in history), history

    st = chain.status()
    assert st["health"] == "ok", st
