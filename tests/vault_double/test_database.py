"""Database secrets engine against a real PostgreSQL: creds, renew, revoke, automatic revocation."""

import re
import string
import threading
import time

import psycopg
import pytest

from testutil import capped_warning, role_exists, short, valid_until_epoch, wait_for

ENVELOPE_KEYS = {"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info",
                 "warnings", "auth", "mount_type"}


def test_creds_create_a_role_that_can_log_in(env, pg):
    env.setup(default_ttl="30s", max_ttl="2m")
    display = env.client.lookup_self().data["display_name"]
    t0 = time.time()
    r = env.client.creds(env.db_mount, "app")
    t1 = time.time()
    assert r.status == 200
    assert ENVELOPE_KEYS <= set(r.json)
    assert r.json["lease_id"].startswith(f"{env.db_mount}/creds/app/")
    assert re.fullmatch(r"[A-Za-z0-9]+", r.json["lease_id"].rsplit("/", 1)[1])
    assert r.json["renewable"] is True
    assert r.json["lease_duration"] == 30
    assert r.json["wrap_info"] is None and r.json["auth"] is None
    assert r.json["mount_type"] == "database"
    user, password = r.data["username"], r.data["password"]
    m = re.fullmatch(r"v-" + re.escape(display[:8]) + r"-app-([A-Za-z0-9]{20})-(\d+)", user)
    assert m, user
    assert len(user.encode()) <= 63
    assert abs(int(m.group(2)) - t0) <= 2
    assert len(password) == 20
    assert set(password) <= set(string.ascii_letters + string.digits + "-")
    for charset in (string.ascii_lowercase, string.ascii_uppercase, string.digits, "-"):
        assert any(c in charset for c in password), password
    with psycopg.connect(pg.dsn(user, password)) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == user
    # {{expiration}} = now + TTL + 5 s
    assert t0 + 35 - 1 <= valid_until_epoch(pg, user) <= t1 + 35 + 1


def test_creation_statements_run_in_one_transaction(env, pg):
    marker = "txtest-" + env.db_mount
    env.setup(creation_statements=[
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL "
        "'{{expiration}}'; COMMENT ON ROLE \"{{name}}\" IS '" + marker + "';",
        "GRANT \"no_such_role_at_all\" TO \"{{name}}\";"])
    r = env.client.creds(env.db_mount, "app", check=False)
    assert r.status == 500
    assert "no_such_role_at_all" in r.errors[0] and "does not exist" in r.errors[0]
    left = pg.psql("SELECT count(*) FROM pg_shdescription WHERE description = "
                   f"'{marker}'").strip()
    assert left == "0"


def test_renew_caps_at_max_ttl_with_warning(env, pg):
    env.setup(default_ttl="5s", max_ttl="12s")
    r = env.client.creds(env.db_mount, "app")
    lease, user = r.json["lease_id"], r.data["username"]
    time.sleep(1.2)
    now = time.time()
    rr = env.client.renew_lease(lease, 3600)
    assert rr.status == 200
    assert rr.json["lease_id"] == lease
    assert rr.json["renewable"] is True
    ttl = rr.json["lease_duration"]
    assert 1 <= ttl <= 11
    assert rr.json["warnings"] == [capped_warning("1h", short(ttl))]
    assert now + ttl + 5 - 1 <= valid_until_epoch(pg, user) <= time.time() + ttl + 5 + 1
    # A renewal without increment asks for the role's default_ttl (5 s), capped as well.
    rr2 = env.client.renew_lease(lease)
    assert rr2.json["lease_duration"] <= 5
    # The lease ends at issue time + max_ttl whatever the renewals did.
    assert wait_for(lambda: not role_exists(pg, user), 40)


def test_revoke_drops_the_role_but_not_live_sessions(env, pg):
    env.setup()
    r = env.client.creds(env.db_mount, "app")
    lease, user, password = r.json["lease_id"], r.data["username"], r.data["password"]
    with psycopg.connect(pg.dsn(user, password), autocommit=True) as session:
        rv = env.client.revoke_lease(lease)
        assert rv.status == 204 and rv.raw == b""
        assert not role_exists(pg, user)
        # Vault's postgres plugin does not terminate sessions already logged in.
        assert session.execute("SELECT 1").fetchone()[0] == 1
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.dsn(user, password)).close()
    assert env.client.renew_lease(lease, check=False).errors == ["lease not found"]
    assert env.client.lookup_lease(lease, check=False).errors == ["invalid lease"]
    assert env.client.revoke_lease(lease).status == 204


def test_lease_expiry_revokes_automatically(env, pg, vault):
    env.setup(default_ttl="2s", max_ttl="2s")
    r = env.client.creds(env.db_mount, "app")
    lease, user = r.json["lease_id"], r.data["username"]
    assert role_exists(pg, user)
    assert wait_for(lambda: not role_exists(pg, user), 30)
    nf = env.client.renew_lease(lease, check=False)
    assert nf.status == 400 and nf.errors == ["lease not found"]
    assert env.client.lookup_lease(lease, check=False).errors == ["invalid lease"]
    if vault.is_double:
        revoked = [x for x in vault.control().stats()["revoked"] if x["lease_id"] == lease]
        assert revoked and revoked[0]["reason"] == "expired"


def test_token_expiry_revokes_its_leases(env, pg, vault):
    env.setup(default_ttl="1m", max_ttl="2m")
    ctl, _ = env.controller_token(ttl="5s")
    r = ctl.creds(env.db_mount, "app")
    lease, user = r.json["lease_id"], r.data["username"]
    assert user.startswith("v-token-app-")
    assert r.json["lease_duration"] == 60  # the lease itself is longer than the token
    assert wait_for(lambda: not role_exists(pg, user), 30)
    assert env.client.lookup_lease(lease, check=False).errors == ["invalid lease"]
    dead = ctl.lookup_self(check=False)
    assert dead.status == 403 and "permission denied" in dead.errors[0]
    if vault.is_double:
        revoked = [x for x in vault.control().stats()["revoked"] if x["lease_id"] == lease]
        assert revoked and revoked[0]["reason"] == "token expired"


def test_token_revocation_revokes_its_leases(env, pg):
    env.setup(default_ttl="1m", max_ttl="2m")
    ctl, _ = env.login()
    r = ctl.creds(env.db_mount, "app")
    user = r.data["username"]
    assert ctl.revoke_self().status == 204
    assert wait_for(lambda: not role_exists(pg, user), 30)
    gone = ctl.lookup_self(check=False)
    assert gone.status == 403 and "permission denied" in gone.errors[0]


def test_lease_lookup(env):
    env.setup(default_ttl="30s", max_ttl="2m")
    r = env.client.creds(env.db_mount, "app")
    lk = env.client.lookup_lease(r.json["lease_id"])
    d = lk.data
    assert {"id", "issue_time", "expire_time", "last_renewal", "ttl", "renewable"} <= set(d)
    assert d["id"] == r.json["lease_id"]
    assert d["last_renewal"] is None
    assert d["renewable"] is True
    assert 20 <= d["ttl"] <= 30
    for key in ("issue_time", "expire_time"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", d[key])
    env.client.renew_lease(r.json["lease_id"])
    assert env.client.lookup_lease(r.json["lease_id"]).data["last_renewal"] is not None


def test_custom_revocation_and_renew_statements(env, pg):
    env.setup(default_ttl="30s", max_ttl="2m",
              renew_statements=["ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}'; "
                                "COMMENT ON ROLE \"{{name}}\" IS 'renewed';"],
              revocation_statements=["REVOKE ALL PRIVILEGES ON DATABASE postgres FROM "
                                     "\"{{name}}\"; DROP ROLE IF EXISTS \"{{name}}\";"])
    r = env.client.creds(env.db_mount, "app")
    user = r.data["username"]
    env.client.renew_lease(r.json["lease_id"], 20)
    comment = pg.psql("SELECT description FROM pg_shdescription d JOIN pg_roles r "
                      f"ON d.objoid = r.oid WHERE r.rolname = '{user}'").strip()
    assert comment == "renewed"
    env.client.revoke_lease(r.json["lease_id"])
    assert not role_exists(pg, user)


def test_error_answers(env):
    env.setup()
    c = env.client
    unknown = c.creds(env.db_mount, "nope", check=False)
    assert (unknown.status, unknown.errors) == (400, ["unknown role: nope"])
    missing = c.read(f"{env.db_mount}/roles/nope", check=False)
    assert (missing.status, missing.json) == (404, {"errors": []})
    assert c.renew_lease(f"{env.db_mount}/creds/app/nope", check=False).errors == \
        ["lease not found"]
    assert c.lookup_lease(f"{env.db_mount}/creds/app/nope", check=False).errors == \
        ["invalid lease"]
    assert c.revoke_lease(f"{env.db_mount}/creds/app/nope").status == 204
    # A valid token whose policies do not cover the path.
    other = c.create_token(policies=["default"], ttl="1m").auth["client_token"]
    denied = c.with_token(other).creds(env.db_mount, "app", check=False)
    assert denied.status == 403
    assert denied.errors == ["1 error occurred:\n\t* permission denied\n\n"]
    # The controller policy does not allow reading another role.
    ctl, _ = env.controller_token(ttl="1m")
    assert ctl.read(f"{env.db_mount}/roles/app", check=False).status == 403


def test_concurrent_clients(env, pg, vault):
    """Parallel creds/renew/revoke; every role is gone once its lease ended, none failed."""
    env.setup(default_ttl="2s", max_ttl="30s")
    users, errors = [], []

    def worker():
        try:
            for i in range(4):
                r = env.client.creds(env.db_mount, "app")
                users.append(r.data["username"])
                env.client.renew_lease(r.json["lease_id"], 3)
                if i % 2:
                    env.client.revoke_lease(r.json["lease_id"])
        except Exception as e:  # collected, asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(users) == 24
    assert wait_for(lambda: not any(role_exists(pg, u) for u in users), 40)
    if vault.is_double:
        revoked = {x["username"]: x for x in vault.control().stats()["revoked"]}
        assert all(revoked[u]["error"] == "" and revoked[u]["revoke_error"] == ""
                   for u in users)


def test_password_policy_and_username_template(env, pg):
    """Operators may change both templates; odd passwords and 63-byte names must still work."""
    c = env.client
    charset = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!#%^*()_+=.,:?~[]{}<>|@$"
    policy_name = "pw-" + env.db_mount
    c.write(f"sys/policies/password/{policy_name}",
            {"policy": f'length = 32\nrule "charset" {{\n  charset = "{charset}"\n}}\n'
                       'rule "charset" {\n  charset = "!#%^*()_+=.,:?~[]{}<>|@$"\n'
                       '  min-chars = 4\n}\n'})
    try:
        env.setup(password_policy=policy_name,
                  username_template='{{ printf "pgbv_%s_%s_%s" (.RoleName) (random 50) '
                                    '(unix_time) | truncate 63 }}')
        r = c.creds(env.db_mount, "app")
        user, password = r.data["username"], r.data["password"]
        assert len(password) == 32 and set(password) <= set(charset)
        assert sum(ch in "!#%^*()_+=.,:?~[]{}<>|@$" for ch in password) >= 4
        assert user.startswith("pgbv_app_") and len(user.encode()) == 63
        with psycopg.connect(host="127.0.0.1", port=pg.port, dbname="postgres", user=user,
                             password=password, sslmode="disable") as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == user
    finally:
        c.delete(f"sys/policies/password/{policy_name}")


def test_bad_connection_config_is_refused_without_leaking_the_password(env, pg):
    c = env.client
    c.enable_secrets_engine(env.db_mount, "database")
    wrong = "Wr0ng-" + env.db_mount
    r = c.configure_postgres(env.db_mount, "pg", env.pg_url(), pg.superuser, wrong, ["app"],
                             check=False)
    assert r.status == 400
    assert "error verifying connection" in r.errors[0]
    assert wrong not in r.errors[0]
