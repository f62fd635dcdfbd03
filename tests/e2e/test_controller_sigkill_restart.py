"""pgbv-controller is killed with SIGKILL under pgbench load and started again: PgBouncer keeps
serving (and logging in) with the credentials it has while the controller is gone, the new
controller replaces the dead one's sockets, logs in, pushes fresh credentials, and not one
transaction fails."""

import re
import time

from chain import (VAULT_ROLE_PREFIX, chain, controller_bins, pg_admin_password,  # noqa: F401
                   vault_target)
from pgbench_run import Pgbench
from processes import wait_until

DURATION_S = 30
_PROGRESS_RE = re.compile(r"^progress: ([\d.]+) s, ([\d.]+) tps", re.M)


def test_controller_sigkill_and_restart_under_load(chain, pg_bindir, workdir):  # noqa: F811
    chain.start()  # leases of 5 minutes: nothing rotates by itself during the test
    pg, bouncer, ctl = chain.pg, chain.bouncer, chain.controller
    first_user = chain.current_user()
    bench = Pgbench(pg_bindir, workdir / "pgbench.log", bouncer.conninfo(),
                    ["-c", "8", "-j", "2", "-T", str(DURATION_S), "-P", "1"])
    t0 = time.monotonic()
    try:
        time.sleep(4)
        ctl.kill()
        dead_from = time.monotonic() - t0
        assert not ctl.alive() and ctl.plugin_socket.exists()  # a stale socket stays behind
        time.sleep(1)
        # Fresh server logins while it is gone use the last credentials PgBouncer got.
        offset = pg.log_size()
        bouncer.admin_raw("RECONNECT app")
        assert bouncer.psql("SELECT current_user;").stdout.strip() == first_user
        time.sleep(3)
        assert pg.authorized_users(offset)[first_user] >= 1, \
            "no new server login while the controller was dead"
        assert chain.current_user() == first_user

        ctl.start(keep_stale_socket=True)
        dead_until = time.monotonic() - t0
        # The new controller knows nothing of the old lease: it fetches and pushes new
        # credentials, which PgBouncer takes as a rotation.
        new_user = wait_until(lambda: (u := chain.current_user()) != first_user and u, 20,
                              "the restarted controller's credentials to reach PgBouncer",
                              interval=0.2)
        assert new_user.startswith(VAULT_ROLE_PREFIX)
        assert chain.set_status()["username"] == new_user
        wait_until(lambda: pg.sessions_by_user()[first_user] == 0, 10,
                   f"the killed controller's role {first_user} to leave PostgreSQL")
        result = bench.wait(timeout=DURATION_S + 60)
    finally:
        if bench.alive():
            bench.kill()

    print(f"pgbench: processed={result.processed} failed={result.failed} tps={result.tps:.0f}; "
          f"controller dead from {dead_from:.1f} s to {dead_until:.1f} s; "
          f"{first_user} -> {new_user}")
    assert result.returncode == 0, result.describe()
    assert result.failed == 0 and not result.errors, result.describe()
    assert result.processed > 0, result.describe()
    progress = [(float(t), float(tps)) for t, tps in _PROGRESS_RE.findall(result.output)]
    during = [tps for t, tps in progress if dead_from + 1 <= t <= dead_until]
    assert during and min(during) > 0, f"pgbench stalled while the controller was dead: {progress}"
    assert bouncer.psql("SELECT current_user;").stdout.strip() == new_user
    assert chain.status()["health"] == "ok"
    assert chain.status()["plugin_clients"] == 1
    assert "server refused login" not in bouncer.log_text()
