"""SHOW CREDENTIALS on the admin console: one row per set with its login user, generation,
times and server counts; never a password anywhere in the console's output."""

import time

import psycopg

from processes import wait_until
from rig import SET_NAME

COLUMNS = ["set", "user", "generation", "received", "expires", "current_servers", "old_servers"]
SHOW_COMMANDS = ["CREDENTIALS", "DATABASES", "POOLS", "USERS", "SERVERS", "CLIENTS", "CONFIG",
                 "STATS", "LISTS", "STATE"]


def _row(bouncer) -> dict[str, str]:
    rows = bouncer.admin("SHOW CREDENTIALS")
    assert len(rows) == 1, rows
    return rows[0]


def test_show_credentials(rig):
    bouncer, pg = rig.bouncer, rig.pg
    header = bouncer.admin_raw("SHOW CREDENTIALS").splitlines()[0]
    assert header.split(",") == COLUMNS

    # A generation with a known expiry.
    expires_at = int(time.time()) + 3 * 3600 + 17 * 60
    role, password = rig.roles.new()
    first = rig.push(role, password, expires_at)
    wait_until(lambda: _row(bouncer)["user"] == role, 10, "the pushed generation")
    bouncer.psql("SELECT 1;")  # leaves one idle server in the pool
    row = _row(bouncer)
    assert row["set"] == SET_NAME
    generation = int(row["generation"])
    assert generation > 0
    assert row["received"], row
    expiry_texts = {time.strftime(f, t(expires_at)) for f in ("%Y-%m-%d %H:%M",)
                    for t in (time.gmtime, time.localtime)}
    assert any(e in row["expires"] for e in expiry_texts), (row, expiry_texts)
    assert (row["current_servers"], row["old_servers"]) == ("1", "0")

    # The pool is reported under the set's name.
    pools = [p for p in bouncer.admin("SHOW POOLS") if p["database"] == "app"]
    assert [p["user"] for p in pools] == [SET_NAME]

    # Pushing the same user and password again is not a new generation, and closes nothing.
    idle_pids = pg.backend_pids(role)
    rig.credserver.set_credentials(SET_NAME, role, password, expires_at)
    time.sleep(1)
    assert int(_row(bouncer)["generation"]) == generation
    assert pg.backend_pids(role) == idle_pids

    # A busy server across a rotation counts as old until released.
    with psycopg.connect(**bouncer.conninfo(), passfile=str(bouncer.no_pgpass),
                         connect_timeout=10, prepare_threshold=None) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == role
        second = rig.rotate()
        wait_until(lambda: _row(bouncer)["user"] == second.role, 10, "the rotation")
        row = _row(bouncer)
        assert int(row["generation"]) == generation + 1
        assert row["expires"] == ""  # this generation came with expires_at = 0
        assert (row["current_servers"], row["old_servers"]) == ("0", "1")
        conn.commit()
    wait_until(lambda: _row(bouncer)["old_servers"] == "0", 2, "the old server to close")
    bouncer.psql("SELECT 1;")
    assert _row(bouncer)["current_servers"] == "1"
    # The identical push renumbered the generation on the controller's side; the plugin may
    # report either number, but must name the role.
    drained = rig.credserver.wait_drained(SET_NAME, username=role, timeout=5)
    assert drained.generation in (first.generation, first.generation + 1)

    # The pool kept its identity and its statistics across the rotations.
    pools = [p for p in bouncer.admin("SHOW POOLS") if p["database"] == "app"]
    assert len(pools) == 1
    stats = [s for s in bouncer.admin("SHOW STATS") if s["database"] == "app"]
    assert len(stats) == 1 and int(stats[0]["total_xact_count"]) >= 3

    # No password of any generation in anything the admin console shows, nor in the log.
    secrets = [password, rig.credserver.current(SET_NAME).password]
    for command in SHOW_COMMANDS:
        out = bouncer.admin_raw(f"SHOW {command}")
        for s in secrets:
            assert s not in out, f"a password appears in SHOW {command}"
    log = bouncer.log_text()
    assert not any(s in log for s in secrets), "a password appears in PgBouncer's log"
