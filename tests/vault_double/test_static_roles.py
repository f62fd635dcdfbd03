"""Database static roles against a real PostgreSQL: rotation at creation, on schedule, on demand."""

import re
import secrets
import time

import psycopg
import pytest

from testutil import wait_for
from vault_client import (enable_database, rotate_static_role, setup_static_role,
                          static_creds, static_role_policy, write_static_role)

RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"


def can_login(pg, user, password):
    try:
        with psycopg.connect(pg.dsn(user, password), connect_timeout=5) as conn:
            return conn.execute("SELECT current_user").fetchone()[0] == user
    except psycopg.OperationalError as e:
        assert "password authentication failed" in str(e), str(e)
        return False


@pytest.fixture
def pg_user(pg):
    """An existing PostgreSQL login role, as a static role needs (Vault never creates it)."""
    name = "static_" + secrets.token_hex(4)
    first = secrets.token_urlsafe(12)
    pg.psql(f"CREATE ROLE \"{name}\" WITH LOGIN PASSWORD '{first}'")
    yield name, first
    pg.psql(f"DROP ROLE IF EXISTS \"{name}\"")


def make_static_role(env, username, rotation_period="1h", tick_interval=1, **kw):
    return setup_static_role(env.client, env.pg_url(), env.pg.superuser, env.pg.password,
                             username, db_mount=env.db_mount, role="st",
                             rotation_period=rotation_period, tick_interval=tick_interval, **kw)


def test_creation_rotates_at_once_and_creds_have_no_lease(env, pg, pg_user):
    user, first = pg_user
    t0 = time.time()
    make_static_role(env, user, rotation_period="1h")
    r = static_creds(env.client, env.db_mount, "st")
    assert r.status == 200
    assert (r.json["lease_id"], r.json["renewable"], r.json["lease_duration"]) == ("", False, 0)
    assert r.json["mount_type"] == "database"
    d = r.data
    assert set(d) == {"username", "password", "ttl", "last_vault_rotation", "rotation_period"}
    assert d["username"] == user
    assert d["rotation_period"] == 3600
    assert 3590 <= d["ttl"] <= 3600
    assert re.fullmatch(RFC3339, d["last_vault_rotation"]), d["last_vault_rotation"]
    assert d["password"] != first and len(d["password"]) == 20
    assert not can_login(pg, user, first)
    assert can_login(pg, user, d["password"])
    # The password stays the same between rotations.
    assert static_creds(env.client, env.db_mount, "st").data["password"] == d["password"]
    assert time.time() - t0 < 60


def test_static_role_read_list_delete(env, pg, pg_user):
    user, _ = pg_user
    make_static_role(env, user, rotation_period="90s")
    r = env.client.read(f"{env.db_mount}/static-roles/st")
    d = r.data
    assert d["username"] == user and d["db_name"] == "pg"
    assert d["rotation_period"] == 90
    assert d["credential_type"] == "password"
    assert d["rotation_statements"] == []
    assert re.fullmatch(RFC3339, d["last_vault_rotation"])
    assert env.client.list(f"{env.db_mount}/static-roles").data["keys"] == ["st"]
    # A dynamic role may not take the name of a static one.
    r = env.client.write(f"{env.db_mount}/roles/st", {"db_name": "pg", "creation_statements":
                                                      ["SELECT 1"]}, check=False)
    assert (r.status, r.errors) == (400, ["Role and Static Role names must be unique"])
    env.client.delete(f"{env.db_mount}/static-roles/st")
    assert env.client.read(f"{env.db_mount}/static-roles/st", check=False).status == 404
    r = static_creds(env.client, env.db_mount, "st", check=False)
    assert (r.status, r.errors) == (400, ["unknown role: st"])
    # Deleting the role leaves the database user alone.
    assert pg.psql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{user}'").strip() == "1"


def test_scheduled_rotation_refuses_the_old_password_at_once(env, pg, pg_user):
    user, _ = pg_user
    make_static_role(env, user, rotation_period="5s", tick_interval=1)
    d1 = static_creds(env.client, env.db_mount, "st").data
    assert d1["ttl"] <= 5
    assert can_login(pg, user, d1["password"])
    # The ttl counts down to the rotation.
    time.sleep(1.1)
    assert static_creds(env.client, env.db_mount, "st").data["ttl"] < d1["ttl"] or d1["ttl"] == 0

    def rotated():
        return static_creds(env.client, env.db_mount, "st").data["password"] != d1["password"]

    assert wait_for(rotated, 20, 0.2)
    d2 = static_creds(env.client, env.db_mount, "st").data
    assert d2["username"] == user
    assert d2["last_vault_rotation"] > d1["last_vault_rotation"]
    assert not can_login(pg, user, d1["password"])
    assert can_login(pg, user, d2["password"])


def test_rotate_role_rotates_now_and_restarts_the_schedule(env, pg, pg_user):
    user, _ = pg_user
    make_static_role(env, user, rotation_period="1h")
    d1 = static_creds(env.client, env.db_mount, "st").data
    time.sleep(1.1)
    r = rotate_static_role(env.client, env.db_mount, "st")
    assert r.status == 204
    d2 = static_creds(env.client, env.db_mount, "st").data
    assert d2["password"] != d1["password"]
    assert d2["last_vault_rotation"] > d1["last_vault_rotation"]
    assert d2["ttl"] >= 3598
    assert not can_login(pg, user, d1["password"])
    assert can_login(pg, user, d2["password"])
    r = rotate_static_role(env.client, env.db_mount, "nope", check=False)
    assert (r.status, r.errors) == (400, ["no static role found for role name"])


def test_custom_rotation_statements(env, pg, pg_user):
    user, _ = pg_user
    marker = "rotated-" + secrets.token_hex(3)
    make_static_role(env, user, rotation_statements=[
        "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'; "
        "COMMENT ON ROLE \"{{name}}\" IS '" + marker + "';"])
    d = static_creds(env.client, env.db_mount, "st").data
    assert can_login(pg, user, d["password"])
    got = pg.psql(f"SELECT description FROM pg_shdescription d JOIN pg_roles r "
                  f"ON d.objoid = r.oid WHERE r.rolname = '{user}'").strip()
    assert got == marker


def test_creation_errors(env, pg):
    enable_database(env.client, env.db_mount, 1)
    env.client.configure_postgres(env.db_mount, "pg", env.pg_url(), pg.superuser, pg.password,
                                  ["*"])
    cases = [
        ({"db_name": "pg", "rotation_period": "1h"},
         "username is a required field to create a static account"),
        ({"db_name": "pg", "username": "x"},
         "one of rotation_schedule or rotation_period must be provided to create a static "
         "account"),
        ({"db_name": "pg", "username": "x", "rotation_period": 4},
         "rotation_period must be 5 seconds or more"),
        ({"username": "x", "rotation_period": "1h"}, "database name is a required field"),
    ]
    for body, message in cases:
        r = env.client.write(f"{env.db_mount}/static-roles/bad", body, check=False)
        assert (r.status, r.errors) == (400, [message]), body
    # A user that does not exist: the first rotation fails, so the role is not stored.
    r = write_static_role(env.client, env.db_mount, "bad", "pg", "no_such_user_x", "1h",
                          check=False)
    assert r.status == 500
    assert "error setting credentials" in r.errors[0]
    assert "no_such_user_x" in r.errors[0] and "does not exist" in r.errors[0]
    assert pg.password not in r.errors[0]
    assert env.client.read(f"{env.db_mount}/static-roles/bad", check=False).status == 404


def test_username_cannot_change(env, pg, pg_user):
    user, _ = pg_user
    make_static_role(env, user)
    r = env.client.write(f"{env.db_mount}/static-roles/st", {"username": "other"}, check=False)
    assert (r.status, r.errors) == (400, ["cannot update static account username"])
    # Updating the period keeps the password and reschedules from the last rotation.
    d1 = static_creds(env.client, env.db_mount, "st").data
    env.client.write(f"{env.db_mount}/static-roles/st", {"rotation_period": "2h"})
    d2 = static_creds(env.client, env.db_mount, "st").data
    assert d2["password"] == d1["password"] and d2["rotation_period"] == 7200
    assert 7190 <= d2["ttl"] <= 7200


def test_policy_limits_a_token_to_its_static_role(env, pg, pg_user):
    user, _ = pg_user
    make_static_role(env, user, policy=env.policy)
    assert static_role_policy(env.db_mount, "st") in \
        env.client.read(f"sys/policies/acl/{env.policy}").data["policy"]
    tok = env.client.create_token(policies=[env.policy]).auth["client_token"]
    c = env.client.with_token(tok)
    assert static_creds(c, env.db_mount, "st").data["username"] == user
    for method, path in (("POST", f"{env.db_mount}/rotate-role/st"),
                         ("GET", f"{env.db_mount}/static-roles/st"),
                         ("GET", f"{env.db_mount}/creds/st")):
        r = c.request(method, path, {} if method == "POST" else None, check=False)
        assert r.status == 403, (method, path)


def test_failed_rotation_keeps_the_password_and_is_retried(env, pg, pg_user):
    user, _ = pg_user
    gate = "gate_" + user
    pg.psql(f"CREATE TABLE {gate} (n int)")
    try:
        make_static_role(env, user, rotation_period="5s", tick_interval=1, rotation_statements=[
            "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'; INSERT INTO " + gate +
            " VALUES (1);"])
        d1 = static_creds(env.client, env.db_mount, "st").data
        # Without the table every rotation fails, in one transaction: the password stays.
        pg.psql(f"DROP TABLE {gate}")
        time.sleep(d1["ttl"] + 3)
        d2 = static_creds(env.client, env.db_mount, "st").data
        assert d2["password"] == d1["password"]
        assert d2["last_vault_rotation"] == d1["last_vault_rotation"]
        assert d2["ttl"] == 0
        assert can_login(pg, user, d1["password"])
        r = rotate_static_role(env.client, env.db_mount, "st", check=False)
        assert r.status == 500
        assert r.errors[0].startswith("1 error occurred:\n\t* unable to finish rotating "
                                      "credentials; retries will continue in the background")
        assert gate in r.errors[0]
        # Vault retries in the background (10 s later): once the table is back, it rotates.
        pg.psql(f"CREATE TABLE {gate} (n int)")
        assert wait_for(lambda: static_creds(env.client, env.db_mount, "st").data["password"]
                        != d1["password"], 25, 0.3)
        d3 = static_creds(env.client, env.db_mount, "st").data
        assert can_login(pg, user, d3["password"]) and not can_login(pg, user, d1["password"])
    finally:
        pg.psql(f"DROP TABLE IF EXISTS {gate}")


def test_skip_import_rotation_serves_the_given_password_until_the_first_rotation(env, pg,
                                                                                 pg_user):
    user, first = pg_user
    make_static_role(env, user, rotation_period="5s", tick_interval=1, skip_import_rotation=True,
          password=first)
    d = static_creds(env.client, env.db_mount, "st").data
    assert d["password"] == first
    assert can_login(pg, user, first)
    assert wait_for(lambda: static_creds(env.client, env.db_mount, "st").data["password"]
                    != first, 20, 0.3)
    assert not can_login(pg, user, first)


@pytest.mark.double_only
def test_stats_show_static_roles_and_rotations(env, pg, pg_user, vault):
    user, _ = pg_user
    make_static_role(env, user)
    rotate_static_role(env.client, env.db_mount, "st")
    st = vault.control().stats()["static_roles"][env.db_mount + "/"]
    assert [r["username"] for r in st["roles"]] == [user]
    assert st["roles"][0]["failures"] == 0 and st["roles"][0]["ttl"] > 3500
    assert [r["role"] for r in st["rotations"]] == ["st", "st"]
