"""The demo path through the real controller: psql through PgBouncer runs as a role Vault made
for the controller, and nothing on the application's side holds a database password."""

import psycopg

from chain import (VAULT_ROLE_PREFIX, chain, controller_bins, pg_admin_password,  # noqa: F401
                   vault_target)
from pgbouncer_process import CLIENT_USER


def test_psql_as_vault_role_without_password(chain):  # noqa: F811
    chain.start()
    pg, bouncer = chain.pg, chain.bouncer
    offset = pg.log_size()

    # -w: psql fails rather than prompt; no PG* variable, PGPASSFILE points nowhere.
    out = bouncer.psql("SELECT current_user, session_user, current_database();").stdout.strip()
    user, session_user, db = out.split("|")
    assert user.startswith(VAULT_ROLE_PREFIX), f"not a Vault-made role: {out}"
    assert (session_user, db) == (user, "app")
    assert pg.authorized_users(offset)[user] >= 1
    assert pg.authorized_users(offset)[CLIENT_USER] == 0

    # The role is the one the controller reports, and Vault gave it an expiry.
    st = chain.set_status("app")
    assert st["username"] == user and st["generation"] >= 1 and st["state"] == "serving", st
    valid_until = pg.query(f"SELECT rolvaliduntil FROM pg_roles WHERE rolname = '{user}'",
                           db="postgres")
    assert valid_until and valid_until[0]["rolvaliduntil"], valid_until
    assert chain.current_user("app") == user

    with psycopg.connect(**bouncer.conninfo(), passfile=str(bouncer.no_pgpass),
                         connect_timeout=10, prepare_threshold=None) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == user
        assert not conn.pgconn.used_password

    # The application's configuration: PgBouncer's ini names a credential set, never a
    # user, password or auth file; the controller's file holds no secret either.
    ini = bouncer.ini_path.read_text()
    assert "credential=app" in ini
    for word in ("password", "auth_file", "user="):
        assert word not in ini, f"pgbouncer.ini mentions {word!r}:\n{ini}"
    config = chain.controller.config_path.read_text()
    assert chain.secret_id not in config and chain.role_id not in config
    assert "secret_id_file" in config

    # pgbvctl status in words: healthy, the set serving as that user.
    cp = chain.controller.pgbvctl_run("status")
    assert cp.returncode == 0, cp.stderr
    assert user in cp.stdout and "app" in cp.stdout
