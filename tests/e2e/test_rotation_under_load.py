"""pgbench through PgBouncer for 60 s while the credentials rotate every 5 s to a role that
did not exist before: not one transaction may fail."""

import time

from pgbench_run import Pgbench
from rig import SET_NAME

DURATION_S = 60
ROTATE_EVERY_S = 5
OLD_GONE_AFTER_S = 2


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def test_pgbench_with_rotation_every_5s(rig, pg_bindir, workdir):
    pg, server, bouncer = rig.pg, rig.credserver, rig.bouncer
    bench = Pgbench(pg_bindir, workdir / "pgbench.log", bouncer.conninfo(),
                    ["-c", "8", "-j", "2", "-T", str(DURATION_S), "-P", "5"])
    start = time.monotonic()
    leftovers: list[str] = []  # old roles still connected 2 s after a rotation
    missing_new: list[str] = []  # a rotation's role not connected 2 s after it
    dropped: set[str] = set()
    drain_times: list[float] = []  # seconds from each push until no old role was connected
    try:
        k = 1
        while start + k * ROTATE_EVERY_S + OLD_GONE_AFTER_S < start + DURATION_S - 1:
            _sleep_until(start + k * ROTATE_EVERY_S)
            assert bench.alive(), bench.wait(1).describe()
            gen = rig.rotate()
            old_roles = {g.role for g in rig.generations[:-1]}
            deadline = gen.pushed_at + OLD_GONE_AFTER_S
            while True:  # poll, to report how long the old servers took to go
                sessions = pg.sessions_by_user()
                stale = {r: n for r, n in sessions.items() if r in old_roles}
                if not stale:
                    drain_times.append(time.monotonic() - gen.pushed_at)
                    break
                if time.monotonic() >= deadline:
                    # PgBouncer's own count tells a server it still holds from a backend
                    # that PostgreSQL has not finished ending.
                    held = bouncer.admin("SHOW CREDENTIALS")[0]["old_servers"]
                    leftovers.append(f"{OLD_GONE_AFTER_S} s after rotation {k} to {gen.role}: "
                                     f"old roles still connected {stale}; PgBouncer reports "
                                     f"{held} old-generation servers")
                    break
                time.sleep(0.2)
            _sleep_until(deadline)
            sessions = pg.sessions_by_user()
            if sessions[gen.role] == 0:
                missing_new.append(f"rotation {k}: no session of {gen.role}, only {sessions}")
            # Revoke, as the controller does once PgBouncer reports a generation drained: a
            # login still attempted with a dropped role would fail pgbench's transactions.
            for g in rig.generations[:-1]:
                if g.role not in dropped and any(
                        d.generation == g.generation for d in server.drained):
                    rig.roles.drop(g.role)
                    dropped.add(g.role)
            k += 1
        result = bench.wait(timeout=DURATION_S + 60)
    finally:
        if bench.alive():
            bench.kill()

    print(f"pgbench: processed={result.processed} failed={result.failed} "
          f"tps={result.tps:.0f} rotations={len(rig.generations) - 1} "
          f"old roles gone after {', '.join(f'{t:.2f}' for t in drain_times)} s")
    assert result.returncode == 0, result.describe()
    assert result.failed == 0, result.describe()
    assert result.processed > 0 and not result.errors, result.describe()
    rotations = len(rig.generations) - 1
    assert rotations >= 10, f"only {rotations} rotations happened"
    assert not leftovers, "\n".join(leftovers)
    assert not missing_new, "\n".join(missing_new)

    # Every generation's role really logged in to PostgreSQL.
    logins = pg.authorized_users()
    never = [g.role for g in rig.generations if logins[g.role] == 0]
    assert not never, f"roles never seen in PostgreSQL's connection log: {never}"

    # Every generation but the current one was reported drained, with its own user name.
    for g in rig.generations[:-1]:
        ev = server.wait_drained(SET_NAME, g.generation, timeout=5)
        assert ev.username == g.role
    assert not any(d.generation == rig.current.generation for d in server.drained)
    assert len(dropped) >= rotations - 1

    rows = bouncer.admin("SHOW CREDENTIALS")
    assert len(rows) == 1 and rows[0]["user"] == rig.current.role
    assert rows[0]["old_servers"] == "0"
    assert server.login_failed == []
