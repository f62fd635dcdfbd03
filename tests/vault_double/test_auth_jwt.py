"""The jwt auth method with static validation keys: config, role_type jwt roles, login, and
Vault's checks of signature, time claims (with leeway), audience, subject and bound claims."""

import json
import secrets
import time

import pytest

import vault_client as vc
from jwt_issuer import JwtIssuer


@pytest.fixture(scope="module")
def rsa_issuer():
    return JwtIssuer("RS256")


@pytest.fixture(scope="module")
def ec_issuer():
    return JwtIssuer("ES256", issuer="https://ec-issuer.pgbv.test")


class JwtEnv:
    def __init__(self, vault, issuer):
        suffix = secrets.token_hex(3)
        self.client = vault.client
        self.issuer = issuer
        self.mount = f"jwt-{suffix}"
        self.policy = f"pgbv-jwt-{suffix}"
        self.role = "pgbv"
        self.client.put_policy(self.policy, vc.controller_policy("database", "app"))

    def setup(self, pubkeys=None, **kw):
        kw.setdefault("bound_issuer", self.issuer.issuer)
        kw.setdefault("policies", [self.policy])
        return vc.setup_jwt_auth(self.client, pubkeys or [self.issuer.public_key_pem],
                                 mount=self.mount, role=self.role, **kw)

    def login(self, token, role=None, check=False):
        return vc.jwt_login(self.client, role or self.role, token, mount=self.mount,
                            check=check)

    def cleanup(self):
        for fn, arg in ((self.client.disable_auth, self.mount),
                        (self.client.delete_policy, self.policy)):
            try:
                fn(arg)
            except Exception:
                pass


@pytest.fixture
def jenv(vault, rsa_issuer):
    e = JwtEnv(vault, rsa_issuer)
    yield e
    e.cleanup()


def validating(msg):
    return ["error validating token: " + msg]


def test_login(jenv):
    jenv.setup(claim_mappings={"team": "team"}, token_ttl="15m", token_max_ttl="1h")
    r = jenv.login(jenv.issuer.mint(sub="pgbv-controller", extra={"team": "db"}), check=True)
    assert r.status == 200 and r.data is None
    a = r.auth
    assert a["policies"] == sorted(["default", jenv.policy])
    assert a["metadata"] == {"role": jenv.role, "team": "db"}
    assert a["lease_duration"] == 900 and a["renewable"] is True
    assert a["token_type"] == "service" and a["orphan"] is True
    me = jenv.client.with_token(a["client_token"]).lookup_self().data
    assert me["display_name"] == f"{jenv.mount}-pgbv-controller"
    assert me["path"] == f"auth/{jenv.mount}/login"
    rr = jenv.client.with_token(a["client_token"]).renew_self()
    assert rr.auth["lease_duration"] == 900


def test_es256_and_several_keys(vault, rsa_issuer, ec_issuer):
    e = JwtEnv(vault, ec_issuer)
    try:
        e.setup(pubkeys=[rsa_issuer.public_key_pem, ec_issuer.public_key_pem],
                bound_issuer=None)
        assert e.login(ec_issuer.mint()).status == 200
        assert e.login(rsa_issuer.mint()).status == 200
    finally:
        e.cleanup()


def test_batch_token(jenv):
    jenv.setup(token_type="batch")
    a = jenv.login(jenv.issuer.mint(), check=True).auth
    assert a["token_type"] == "batch" and a["renewable"] is False
    assert a["client_token"].startswith("hvb.")


def test_wrong_role(jenv):
    jenv.setup()
    r = jenv.login(jenv.issuer.mint(), role="nope")
    assert (r.status, r.errors) == (400, ['role "nope" could not be found'])
    r = jenv.client.request("POST", f"auth/{jenv.mount}/login", {"role": jenv.role},
                            token=None, check=False)
    assert (r.status, r.errors) == (400, ["missing token"])


def test_expired_and_not_yet_valid(jenv):
    jenv.setup()
    iss = jenv.issuer
    # exp 30 s ago is inside the default 60 s clock-skew leeway.
    assert jenv.login(iss.mint(ttl=60, iat_offset=-90)).status == 200
    r = jenv.login(iss.mint(ttl=60, iat_offset=-200))
    assert (r.status, r.errors) == (400, validating("invalid expiration time (exp) claim: "
                                                    "token is expired"))
    r = jenv.login(iss.mint(ttl=600, iat_offset=300))
    assert (r.status, r.errors) == (400, validating("invalid not before (nbf) claim: token "
                                                    "not yet valid"))
    r = jenv.login(iss.mint(include_times=False))
    assert (r.status, r.errors) == (400, validating(
        "no issued at (iat), not before (nbf), or expiration time (exp) claims in token"))
    # Without exp, a token is valid until iat + the 150 s expiration leeway.
    now = int(time.time())
    assert jenv.login(iss.mint(include_times=False, extra={"iat": now - 100})).status == 200
    r = jenv.login(iss.mint(include_times=False, extra={"iat": now - 300}))
    assert r.errors == validating("invalid expiration time (exp) claim: token is expired")


def test_role_leeway_settings(jenv):
    jenv.setup(clock_skew_leeway=-1)
    r = jenv.login(jenv.issuer.mint(ttl=60, iat_offset=-65))
    assert r.errors == validating("invalid expiration time (exp) claim: token is expired")


def test_audience(jenv):
    jenv.setup(bound_audiences=["pgbv", "other"])
    assert jenv.login(jenv.issuer.mint(aud=["other"])).status == 200
    r = jenv.login(jenv.issuer.mint(aud=["someone-else"]))
    assert (r.status, r.errors) == (400, validating(
        "invalid audience (aud) claim: audience claim does not match any expected audience"))
    r = jenv.login(jenv.issuer.mint(aud=None))
    assert r.status == 400 and "invalid audience (aud) claim" in r.errors[0]


def test_audience_claim_without_bound_audiences(jenv):
    jenv.setup(bound_audiences=None, bound_subject="pgbv")
    assert jenv.login(jenv.issuer.mint(aud=None)).status == 200
    r = jenv.login(jenv.issuer.mint(aud=["pgbv"]))
    assert (r.status, r.errors) == (400, ["audience claim found in JWT but no audiences bound "
                                          "to the role"])


def test_subject_issuer_and_signature(jenv):
    jenv.setup(bound_subject="pgbv")
    r = jenv.login(jenv.issuer.mint(sub="intruder"))
    assert (r.status, r.errors) == (400, validating("invalid subject (sub) claim"))
    r = jenv.login(jenv.issuer.mint(issuer="https://elsewhere.test"))
    assert (r.status, r.errors) == (400, validating("invalid issuer (iss) claim"))
    forged = JwtIssuer("RS256", issuer=jenv.issuer.issuer).mint()
    r = jenv.login(forged)
    assert (r.status, r.errors) == (400, validating(
        "error verifying token signature: no known key successfully validated the token "
        "signature"))
    r = jenv.login("a.b")
    assert r.status == 400
    assert r.errors[0].startswith("error validating token: error verifying token signature: ")


def test_bound_claims(jenv):
    jenv.setup(bound_claims={"env": ["prod", "staging"], "/org/team": "db"})
    ok = {"env": "staging", "org": {"team": "db"}}
    assert jenv.login(jenv.issuer.mint(extra=ok)).status == 200
    r = jenv.login(jenv.issuer.mint(extra={"env": "dev", "org": {"team": "db"}}))
    assert (r.status, r.errors) == (400, ['error validating claims: claim "env" does not '
                                          'match any associated bound claim values'])
    r = jenv.login(jenv.issuer.mint(extra={"org": {"team": "db"}}))
    assert (r.status, r.errors) == (400, ['error validating claims: claim "env" is missing'])


def test_bound_claims_glob(jenv):
    jenv.setup(bound_claims={"env": "prod-*"}, bound_claims_type="glob")
    assert jenv.login(jenv.issuer.mint(extra={"env": "prod-eu"})).status == 200
    r = jenv.login(jenv.issuer.mint(extra={"env": "dev-eu"}))
    assert r.errors == ['error validating claims: claim "env" does not match any associated '
                        'bound claim values']


def test_user_claim(jenv):
    jenv.setup(user_claim="email")
    r = jenv.login(jenv.issuer.mint())
    assert (r.status, r.errors) == (400, ['claim "email" not found in token'])
    r = jenv.login(jenv.issuer.mint(extra={"email": 42}))
    assert (r.status, r.errors) == (400, ['claim "email" could not be converted to string'])
    ok = jenv.login(jenv.issuer.mint(extra={"email": "ctl@pgbv.test"}), check=True)
    me = jenv.client.with_token(ok.auth["client_token"]).lookup_self().data
    assert me["display_name"] == f"{jenv.mount}-ctl@pgbv.test"


def test_config_and_role_api(jenv):
    c = jenv.client
    c.enable_auth(jenv.mount, "jwt")
    r = c.write(f"auth/{jenv.mount}/config", {"bound_issuer": "x"}, check=False)
    assert (r.status, r.errors) == (400, ["exactly one of 'jwt_validation_pubkeys', "
                                          "'jwks_url', 'jwks_pairs' or 'oidc_discovery_url' "
                                          "must be set"])
    r = c.write(f"auth/{jenv.mount}/config", {"jwt_validation_pubkeys": ["junk"]}, check=False)
    assert r.status == 400 and r.errors[0].startswith("error parsing public key: ")
    r = c.write(f"auth/{jenv.mount}/login", {"role": "x", "jwt": "y"}, token=None, check=False)
    assert (r.status, r.errors) == (400, ["could not load configuration"])
    jenv.setup(enable=False, token_ttl="10m")
    cfg = c.read(f"auth/{jenv.mount}/config").data
    # TypeCommaStringSlice trims each element.
    assert cfg["jwt_validation_pubkeys"] == [jenv.issuer.public_key_pem.strip()]
    assert cfg["bound_issuer"] == jenv.issuer.issuer
    role = c.read(f"auth/{jenv.mount}/role/{jenv.role}").data
    assert role["role_type"] == "jwt" and role["user_claim"] == "sub"
    assert role["bound_audiences"] == ["pgbv"] and role["token_ttl"] == 600
    assert role["token_policies"] == [jenv.policy]
    r = c.write(f"auth/{jenv.mount}/role/loose", {"role_type": "jwt", "user_claim": "sub"},
                check=False)
    assert (r.status, r.errors) == (400, ["must have at least one bound constraint when "
                                          "creating/updating a role"])
    r = c.write(f"auth/{jenv.mount}/role/nouser", {"role_type": "jwt",
                                                   "bound_audiences": ["a"]}, check=False)
    assert (r.status, r.errors) == (400, ["a user claim must be defined on the role"])
    r = c.write(f"auth/{jenv.mount}/role/reserved",
                {"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["a"],
                 "claim_mappings": {"x": "role"}}, check=False)
    assert (r.status, r.errors) == (400, ['metadata key "role" is reserved and may not be a '
                                          'mapping destination'])
    assert json.dumps(c.list(f"auth/{jenv.mount}/role").data["keys"]) == json.dumps(["pgbv"])


@pytest.mark.double_only
def test_discovery_urls_are_refused_by_the_double(jenv):
    c = jenv.client
    c.enable_auth(jenv.mount, "jwt")
    r = c.write(f"auth/{jenv.mount}/config", {"jwks_url": "https://issuer.test/keys"},
                check=False)
    assert r.status == 400 and "not supported by the Vault double" in r.errors[0]
    r = c.write(f"auth/{jenv.mount}/config",
                {"oidc_discovery_url": "https://issuer.test"}, check=False)
    assert r.status == 400 and "jwt_validation_pubkeys" in r.errors[0]
