"""`pgbvctl rotate` while a transaction is open: the transaction commits on its old Vault role,
the next one runs as the new role, and the old role is revoked once its server is released."""

import secrets

import psycopg

from chain import (VAULT_ROLE_PREFIX, chain, controller_bins, pg_admin_password,  # noqa: F401
                   vault_target)
from processes import wait_until


def test_open_transaction_commits_on_old_vault_role(chain):  # noqa: F811
    chain.start()  # leases of 5 minutes: only pgbvctl rotates here
    pg, bouncer = chain.pg, chain.bouncer
    tag = secrets.token_hex(4)
    with psycopg.connect(**bouncer.conninfo(), passfile=str(bouncer.no_pgpass),
                         connect_timeout=10, prepare_threshold=None) as conn:
        cur = conn.cursor()
        cur.execute("SELECT current_user, pg_backend_pid()")
        old_user, old_pid = cur.fetchone()
        assert old_user.startswith(VAULT_ROLE_PREFIX) and old_user == chain.current_user()
        cur.execute("INSERT INTO e2e_notes (note) VALUES (%s)", (f"{tag} before rotation",))

        generation = chain.set_status()["generation"]
        old, new_user = chain.rotate("app")
        assert old == old_user and new_user.startswith(VAULT_ROLE_PREFIX)
        assert chain.set_status()["generation"] > generation
        row = chain.show("app")
        assert row["old_servers"] == "1", row  # the busy server stays, on the old generation

        cur.execute("SELECT current_user, pg_backend_pid()")
        assert cur.fetchone() == (old_user, old_pid)
        cur.execute("INSERT INTO e2e_notes (note) VALUES (%s)", (f"{tag} after rotation",))
        # Still held by the open transaction: the old role must not be revoked yet.
        assert old_user in chain.new_vault_roles()
        conn.commit()

        cur.execute("SELECT current_user, pg_backend_pid()")
        user, pid = cur.fetchone()
        assert user == new_user and pid != old_pid
        conn.commit()

    notes = pg.query(f"SELECT note, written_by FROM e2e_notes WHERE note LIKE '{tag} %' "
                     "ORDER BY id")
    assert [(n["note"], n["written_by"]) for n in notes] == [
        (f"{tag} before rotation", old_user), (f"{tag} after rotation", old_user)]

    # Released after COMMIT, the old server closes, PgBouncer reports the generation
    # drained and the controller revokes its lease: the role leaves PostgreSQL.
    wait_until(lambda: old_user not in chain.new_vault_roles(), 10,
               f"the old role {old_user} to be revoked")
    assert chain.new_vault_roles() == {new_user}
    assert chain.show("app")["old_servers"] == "0"
    assert chain.set_status()["draining"] == 0
    if chain.vault.is_double:
        revoked = {e["username"]: e["reason"] for e in chain.vault.stats()["revoked"]}
        assert revoked.get(old_user) == "revoked", revoked
