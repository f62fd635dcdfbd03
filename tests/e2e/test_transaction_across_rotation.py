"""A transaction open across a rotation finishes on its old role; what follows runs as the new
role; the old server connection closes once released."""

from pathlib import Path

import psycopg

from processes import wait_until
from rig import SET_NAME, Rig, app_database, plugin_settings


def _connect(bouncer, **kw):
    return psycopg.connect(**bouncer.conninfo(), passfile=str(bouncer.no_pgpass),
                           connect_timeout=10, prepare_threshold=None, **kw)


def _current_user(bouncer) -> str:
    rows = bouncer.admin("SHOW CREDENTIALS")
    return rows[0]["user"] if rows else ""


def test_open_transaction_commits_on_old_role(rig):
    old = rig.current
    with _connect(rig.bouncer) as conn:
        cur = conn.cursor()
        cur.execute("SELECT current_user, pg_backend_pid()")
        user, old_pid = cur.fetchone()
        assert user == old.role
        cur.execute("INSERT INTO e2e_notes (note) VALUES ('before rotation')")

        new = rig.rotate()
        wait_until(lambda: _current_user(rig.bouncer) == new.role, 10,
                   "PgBouncer to make the new generation current")
        # The busy server stays, counted as an old-generation server.
        assert rig.bouncer.admin("SHOW CREDENTIALS")[0]["old_servers"] == "1"

        cur.execute("SELECT current_user, pg_backend_pid()")
        assert cur.fetchone() == (old.role, old_pid)
        cur.execute("INSERT INTO e2e_notes (note) VALUES ('after rotation')")
        conn.commit()

        cur.execute("SELECT current_user, pg_backend_pid()")
        user, pid = cur.fetchone()
        assert user == new.role and pid != old_pid
        conn.commit()

    notes = rig.pg.query("SELECT note, written_by FROM e2e_notes WHERE note LIKE '%rotation' "
                         "ORDER BY id")
    assert [(n["note"], n["written_by"]) for n in notes] == [
        ("before rotation", old.role), ("after rotation", old.role)]

    # Released after COMMIT, the old server closes and its generation is reported drained.
    wait_until(lambda: old_pid not in rig.pg.backend_pids(old.role), 2,
               "the old role's server connection to close")
    ev = rig.credserver.wait_drained(SET_NAME, old.generation, timeout=5)
    assert ev.username == old.role
    assert rig.bouncer.admin("SHOW CREDENTIALS")[0]["old_servers"] == "0"


def test_session_pooling_keeps_old_role_until_client_leaves(plugin_so, pg, credserver, roles,
                                                            bouncers):
    rig = Rig(pg, credserver, roles)
    old = rig.rotate()
    rig.bouncer = bouncers.start(
        {"app": app_database(pg) + " pool_mode=session"},
        plugin_settings(plugin_so, Path(credserver.socket_path)))
    credserver.wait_ready()
    with _connect(rig.bouncer, autocommit=True) as conn:
        user, old_pid = conn.execute("SELECT current_user, pg_backend_pid()").fetchone()
        assert user == old.role
        new = rig.rotate()
        wait_until(lambda: _current_user(rig.bouncer) == new.role, 10,
                   "PgBouncer to make the new generation current")
        # Between transactions, but the session still owns its server: it stays.
        assert conn.execute("SELECT current_user, pg_backend_pid()").fetchone() == \
            (old.role, old_pid)
        # A second client gets a server of the new generation.
        with _connect(rig.bouncer, autocommit=True) as other:
            assert other.execute("SELECT current_user").fetchone()[0] == new.role
    # The first client left: its server closes and the old generation drains.
    wait_until(lambda: not rig.pg.backend_pids(old.role), 2,
               "the old role's server connection to close")
    credserver.wait_drained("app_rw", old.generation, timeout=5)
