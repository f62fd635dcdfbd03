"""The credential server goes away and comes back under pgbench load: PgBouncer keeps serving
(and keeps logging in) with the last credentials it had; nothing fails; the reconnected
plugin takes the next rotation as usual."""

import re
import time

from pgbench_run import Pgbench
from processes import wait_until
from rig import SET_NAME

DURATION_S = 24
_PROGRESS_RE = re.compile(r"^progress: ([\d.]+) s, ([\d.]+) tps", re.M)


def _show(bouncer) -> dict[str, str]:
    rows = bouncer.admin("SHOW CREDENTIALS")
    assert len(rows) == 1, rows
    return rows[0]


def test_credserver_killed_and_restarted_under_load(rig, pg_bindir, workdir):
    pg, server, bouncer = rig.pg, rig.credserver, rig.bouncer
    first = rig.current
    bench = Pgbench(pg_bindir, workdir / "pgbench.log", bouncer.conninfo(),
                    ["-c", "8", "-j", "2", "-T", str(DURATION_S), "-P", "1"])
    t0 = time.monotonic()
    try:
        time.sleep(4)
        before = _show(bouncer)
        assert before["user"] == first.role

        server.stop()  # the controller dies: every plugin connection drops
        away_from = time.monotonic() - t0
        time.sleep(1)
        # Force fresh server logins while it is away: they must use the last good credentials.
        offset = pg.log_size()
        bouncer.admin_raw("RECONNECT app")
        out = bouncer.psql("SELECT current_user;").stdout.strip()
        assert out == first.role
        time.sleep(4)
        assert pg.authorized_users(offset)[first.role] >= 1, \
            "no new server login while the credential server was away"
        assert _show(bouncer)["generation"] == before["generation"]

        handshakes = server.handshakes
        server.start()
        server.wait_handshakes(handshakes + 1, timeout=10)
        away_until = time.monotonic() - t0
        # Its snapshot repeats what the plugin holds: not a new generation, no churn.
        time.sleep(1)
        after = _show(bouncer)
        assert (after["user"], after["generation"]) == (first.role, before["generation"])

        # The reconnected channel carries the next rotation.
        new = rig.rotate()
        wait_until(lambda: _show(bouncer)["user"] == new.role, 5,
                   "the rotation pushed after the restart to become current")
        time.sleep(2)
        assert pg.sessions_by_user()[first.role] == 0, pg.sessions_by_user()
        result = bench.wait(timeout=DURATION_S + 60)
    finally:
        if bench.alive():
            bench.kill()

    print(f"pgbench: processed={result.processed} failed={result.failed} "
          f"tps={result.tps:.0f} away from {away_from:.1f} s to {away_until:.1f} s")
    assert result.returncode == 0, result.describe()
    assert result.failed == 0 and not result.errors, result.describe()
    assert result.processed > 0, result.describe()
    # pgbench kept completing transactions through every second of the outage.
    progress = [(float(t), float(tps)) for t, tps in _PROGRESS_RE.findall(result.output)]
    during = [tps for t, tps in progress if away_from + 1 <= t <= away_until]
    assert during and min(during) > 0, f"stalled while away: {progress}"

    ev = server.wait_drained(SET_NAME, first.generation, timeout=5)
    assert ev.username == first.role
    assert server.login_failed == []
