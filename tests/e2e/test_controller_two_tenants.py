"""Two databases, two credential sets backed by two Vault database mounts (two tenants): each
runs as its own Vault role, and rotating one leaves the other's role, generation, lease and
server connections alone."""

import secrets

from chain import (VAULT_ROLE_PREFIX, chain, controller_bins, make_database,  # noqa: F401
                   pg_admin_password, vault_target)
from postgres_cluster import APP_DB, APP_GROUP
from processes import wait_until


def _whoami(bouncer, db: str) -> tuple[str, str]:
    out = bouncer.psql("SELECT current_user, current_database();", db=db).stdout.strip()
    user, database = out.split("|")
    return user, database


def _snapshot(chain, name: str, pg_db: str) -> dict:
    """What must not change for a tenant when the other one rotates."""
    st = chain.set_status(name)
    row = chain.show(name)
    return {"user": row["user"], "bouncer_generation": row["generation"],
            "controller_generation": st["generation"], "lease_id": st["lease_id"],
            "backends": chain.pg.backend_pids(row["user"], db=pg_db)}


def test_two_tenants_rotate_independently(chain):  # noqa: F811
    suffix = secrets.token_hex(3)
    b_db, b_group = f"tenant_b_{suffix}", f"pgbv_tenant_b_{suffix}"
    make_database(chain.pg, b_db, b_group)
    chain.add_tenant("tenant_a", pg_db=APP_DB, group=APP_GROUP, bouncer_db="tenant_a")
    chain.add_tenant("tenant_b", pg_db=b_db, group=b_group, bouncer_db="tenant_b")
    chain.start()
    pg, bouncer = chain.pg, chain.bouncer
    dbs = {"tenant_a": APP_DB, "tenant_b": b_db}

    users = {}
    for name, pg_db in dbs.items():
        user, database = _whoami(bouncer, name)
        assert user.startswith(VAULT_ROLE_PREFIX) and database == pg_db, (name, user, database)
        assert user == chain.current_user(name) == chain.set_status(name)["username"]
        users[name] = user
    assert users["tenant_a"] != users["tenant_b"]
    # Each tenant's role belongs to its own group only.
    member = pg.query(f"SELECT pg_has_role('{users['tenant_a']}', '{b_group}', 'member') AS a, "
                      f"pg_has_role('{users['tenant_b']}', '{APP_GROUP}', 'member') AS b",
                      db="postgres")[0]
    assert member == {"a": "f", "b": "f"}, member
    w = bouncer.psql("INSERT INTO tenant_notes (note) VALUES ('b') RETURNING written_by;",
                     db="tenant_b").stdout.strip()
    assert w == users["tenant_b"]

    for rotating, other in (("tenant_a", "tenant_b"), ("tenant_b", "tenant_a")):
        _whoami(bouncer, other)  # the other tenant holds an idle server that must survive
        before = _snapshot(chain, other, dbs[other])
        assert before["backends"], f"{other} has no server connection to watch"
        gen = chain.set_status(rotating)["generation"]

        old, new = chain.rotate(rotating)
        assert chain.set_status(rotating)["generation"] == gen + 1
        assert _whoami(bouncer, rotating) == (new, dbs[rotating])
        wait_until(lambda: old not in chain.new_vault_roles(), 10,
                   f"{rotating}'s old role {old} to be revoked")

        after = _snapshot(chain, other, dbs[other])
        assert after == before, f"rotating {rotating} touched {other}: {before} -> {after}"
        assert _whoami(bouncer, other) == (before["user"], dbs[other])

    assert chain.new_vault_roles() == {chain.current_user("tenant_a"),
                                       chain.current_user("tenant_b")}
    assert chain.status()["health"] == "ok"
