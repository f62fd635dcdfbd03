"""Token store behaviour: lookup-self, renew-self capping and its errors, revocation, expiry."""

import time
from datetime import datetime

from testutil import capped_warning, short

LOOKUP_FIELDS = {"accessor", "creation_time", "creation_ttl", "display_name", "entity_id",
                 "expire_time", "explicit_max_ttl", "id", "issue_time", "meta", "num_uses",
                 "orphan", "path", "policies", "renewable", "ttl", "type"}


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_lookup_self(env):
    env.setup()
    ctl, created = env.controller_token(ttl="30s", explicit_max_ttl="1m")
    auth = created.auth
    assert auth["policies"] == sorted(["default", env.policy])
    assert auth["lease_duration"] == 30 and auth["renewable"] is True
    assert auth["token_type"] == "service" and auth["orphan"] is False
    d = ctl.lookup_self().data
    assert LOOKUP_FIELDS <= set(d)
    assert d["id"] == auth["client_token"] and d["accessor"] == auth["accessor"]
    assert d["creation_ttl"] == 30 and d["explicit_max_ttl"] == 60
    assert d["display_name"] == "token" and d["path"] == "auth/token/create"
    assert d["policies"] == sorted(["default", env.policy])
    assert d["renewable"] is True and d["type"] == "service" and d["num_uses"] == 0
    assert d["orphan"] is False
    assert 20 <= d["ttl"] <= 30
    assert abs(parse_time(d["expire_time"]) - (time.time() + d["ttl"])) <= 2
    assert abs(d["creation_time"] - time.time()) <= 2
    time.sleep(1.5)
    assert ctl.lookup_self().data["ttl"] < d["ttl"]


def test_renew_self_caps_at_max_ttl(env):
    env.setup()
    ctl, _ = env.controller_token(ttl="5s", explicit_max_ttl="15s")
    time.sleep(1.1)
    r = ctl.renew_self(3600)
    ttl = r.auth["lease_duration"]
    assert 1 <= ttl <= 14
    assert r.warnings == [capped_warning("1h", short(ttl))]
    assert r.auth["client_token"] == ctl.token
    assert r.data is None and r.json["lease_id"] == ""
    assert abs(ctl.lookup_self().data["ttl"] - ttl) <= 1
    # Within the max TTL nothing is capped and there is no warning.
    ok = ctl.renew_self(2)
    assert ok.auth["lease_duration"] == 2 and ok.warnings is None


def test_renew_self_past_the_max_ttl(env):
    """Vault truncates times to the second: in the last fraction of a second before a token
    reaches its max TTL it is still valid, but renewing it is "past the max TTL"."""
    env.setup()
    while time.time() % 1 < 0.8:  # a token created late in a second has a long such window
        time.sleep(0.02)
    created = time.time()
    ctl, _ = env.controller_token(ttl="2s", explicit_max_ttl="2s")
    time.sleep(max(0.0, int(created) + 2 + 0.05 - time.time()))
    answers = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = ctl.renew_self(3600, check=False)
        answers.append((r.status, r.errors))
        if r.status >= 400:
            break
        time.sleep(0.05)
    status, errors = answers[-1]
    assert status in (400, 500), answers
    assert "past the max TTL, cannot renew" in errors[0], answers


def test_renew_errors_for_batch_and_non_renewable_tokens(env):
    env.setup()
    batch, created = env.controller_token(ttl="30s", type="batch")
    assert created.auth["token_type"] == "batch" and created.auth["renewable"] is False
    r = batch.renew_self(10, check=False)
    assert (r.status, r.errors) == (400, ["batch tokens cannot be renewed"])
    fixed, _ = env.controller_token(ttl="30s", renewable=False)
    r = fixed.renew_self(10, check=False)
    assert (r.status, r.errors) == (400, ["lease is not renewable"])


def test_revoked_and_expired_tokens_are_denied(env):
    env.setup()
    ctl, _ = env.controller_token(ttl="30s")
    assert ctl.revoke_self().status == 204
    r = ctl.lookup_self(check=False)
    assert r.status == 403 and "permission denied" in r.errors[0]
    short_lived, _ = env.controller_token(ttl="1s")
    time.sleep(1.5)
    r = short_lived.creds(env.db_mount, "app", check=False)
    assert r.status == 403 and "permission denied" in r.errors[0]
    none = env.client.with_token(None).lookup_self(check=False)
    assert none.status == 403 and none.errors[0].strip().endswith("permission denied")


def test_authorization_bearer_header(env):
    env.setup()
    ctl, _ = env.controller_token(ttl="30s")
    r = env.client.request("GET", "auth/token/lookup-self", token=None,
                           headers={"Authorization": f"Bearer {ctl.token}"})
    assert r.data["id"] == ctl.token


def test_limited_use_token(env):
    env.setup()
    ctl, _ = env.controller_token(ttl="30s", num_uses=2)
    assert ctl.lookup_self().data["num_uses"] == 1
    assert ctl.lookup_self().status == 200
    assert ctl.lookup_self(check=False).status == 403
