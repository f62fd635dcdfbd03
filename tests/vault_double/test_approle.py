"""AppRole: role IDs, secret IDs (plain and response-wrapped), login, and its token's renewal."""

import time

from testutil import capped_warning, short


def test_login(env):
    env.setup()
    ctl, r = env.login()
    assert r.status == 200 and r.data is None
    a = r.auth
    assert a["policies"] == sorted(["default", env.policy])
    assert a["token_policies"] == sorted(["default", env.policy])
    assert a["metadata"] == {"role_name": env.approle}
    assert a["lease_duration"] == 3600 and a["renewable"] is True
    assert a["token_type"] == "service" and a["orphan"] is True
    assert a["entity_id"] and a["accessor"] and a["client_token"]
    me = ctl.lookup_self().data
    assert me["display_name"] == env.auth_mount
    assert me["path"] == f"auth/{env.auth_mount}/login"
    assert me["meta"] == {"role_name": env.approle}
    user = ctl.creds(env.db_mount, "app").data["username"]
    assert user.startswith(f"v-{env.auth_mount[:8]}-app-")


def test_bad_credentials(env):
    env.setup()
    c = env.client
    role_id = env.info["role_id"]
    bad = c.approle_login(env.auth_mount, role_id, "00000000-0000-0000-0000-000000000000",
                          check=False)
    assert (bad.status, bad.errors) == (400, ["invalid role or secret ID"])
    secret = c.approle_secret_id(env.auth_mount, env.approle)
    bad = c.approle_login(env.auth_mount, "not-a-role-id", secret, check=False)
    assert (bad.status, bad.errors) == (400, ["invalid role or secret ID"])


def test_wrapped_secret_id_unwraps_once(env):
    env.setup()
    c = env.client
    r = c.write(f"auth/{env.auth_mount}/role/{env.approle}/secret-id", {}, wrap_ttl="60s")
    assert r.data is None and r.auth is None
    w = r.wrap_info
    assert {"token", "accessor", "ttl", "creation_time", "creation_path"} <= set(w)
    assert w["ttl"] == 60
    assert w["creation_path"] == f"auth/{env.auth_mount}/role/{env.approle}/secret-id"
    assert w.get("wrapped_accessor")
    first = c.unwrap(w["token"])
    secret = first.data["secret_id"]
    assert first.data["secret_id_accessor"] == w["wrapped_accessor"]
    again = c.unwrap(w["token"], check=False)
    assert (again.status, again.errors) == \
        (400, ["wrapping token is not valid or does not exist"])
    login = c.approle_login(env.auth_mount, env.info["role_id"], secret)
    assert login.auth["client_token"]


def test_secret_id_num_uses(env):
    env.setup(secret_id_num_uses=1)
    c = env.client
    secret = c.approle_secret_id(env.auth_mount, env.approle)
    assert c.approle_login(env.auth_mount, env.info["role_id"], secret).status == 200
    again = c.approle_login(env.auth_mount, env.info["role_id"], secret, check=False)
    assert (again.status, again.errors) == (400, ["invalid role or secret ID"])


def test_login_token_renewal_capped_by_token_max_ttl(env):
    env.setup(token_ttl="5s", token_max_ttl="15s")
    ctl, r = env.login()
    assert r.auth["lease_duration"] == 5
    time.sleep(1.1)
    rr = ctl.renew_self(3600)
    ttl = rr.auth["lease_duration"]
    assert 1 <= ttl <= 14
    assert rr.warnings == [capped_warning("1h", short(ttl))]
    # Without an increment the role's token_ttl applies.
    assert ctl.renew_self().auth["lease_duration"] <= 5
