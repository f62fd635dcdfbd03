"""psql through the patched PgBouncer logs in to PostgreSQL as the plugin's user, while the
application itself presents no password at all."""

import psycopg

from pgbouncer_process import CLIENT_USER
from rig import SET_NAME


def test_psql_runs_as_plugin_user_without_password(rig):
    role = rig.current.role
    offset = rig.pg.log_size()
    # -w: psql fails rather than prompt if anyone asks for a password; PGPASSFILE points
    # nowhere and no PG* variable is set, so none could be supplied.
    out = rig.bouncer.psql("SELECT current_user, session_user;").stdout
    assert out.strip() == f"{role}|{role}"
    assert rig.pg.authorized_users(offset)[role] >= 1
    assert rig.pg.authorized_users(offset)[CLIENT_USER] == 0

    # Whatever user name the application gives, the server login is the plugin's.
    out = rig.bouncer.psql("SELECT current_user;", user="somebody_else").stdout
    assert out.strip() == role

    # libpq confirms that PgBouncer never asked the client for a password.
    with psycopg.connect(**rig.bouncer.conninfo(), passfile=str(rig.bouncer.no_pgpass),
                         connect_timeout=10, prepare_threshold=None) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == role
        assert not conn.pgconn.used_password
        assert not conn.pgconn.needs_password

    # The plugin's set appears under its name; the password appears nowhere PgBouncer shows.
    rows = rig.bouncer.admin("SHOW CREDENTIALS")
    assert [(r["set"], r["user"]) for r in rows] == [(SET_NAME, role)]
    assert rig.credserver.current(SET_NAME).password not in rig.bouncer.log_text()
