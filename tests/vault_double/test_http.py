"""The HTTP surface: health, seal, envelopes and error bodies, headers, TLS, and the request log."""

import json
import os
import ssl

import pytest

from double_process import VaultDouble
from testutil import make_tls_files


def test_health(vault):
    r = vault.client.health()
    assert r.status == 200
    for key in ("initialized", "sealed", "standby", "performance_standby", "version",
                "server_time_utc", "cluster_name"):
        assert key in r.json
    assert r.json["initialized"] is True and r.json["sealed"] is False
    assert r.json["standby"] is False


def test_empty_success_and_read_of_nothing(vault):
    c = vault.client
    w = c.put_policy("vd-http-test", 'path "secret/x" { capabilities = ["read"] }')
    assert w.status == 204 and w.raw == b""
    got = c.read("sys/policies/acl/vd-http-test")
    assert got.data["policy"].startswith('path "secret/x"')
    c.delete_policy("vd-http-test")
    missing = c.read("sys/policies/acl/vd-http-test", check=False)
    assert (missing.status, missing.json) == (404, {"errors": []})


def test_unknown_path_and_bad_json(vault):
    c = vault.client
    r = c.read("no-such-mount/thing", check=False)
    assert r.status == 404 and "no handler for route" in r.errors[0]
    bad = c.raw("POST", "/v1/sys/policies/acl/x", b"{not json",
                {"X-Vault-Token": c.token, "Content-Type": "application/json"})
    assert bad.status == 400
    assert bad.json["errors"][0].startswith("failed to parse JSON input")


@pytest.mark.double_only
def test_unknown_parameter_warning_and_namespace_header(vault):
    c = vault.client
    r = c.write("sys/policies/acl/vd-warn", {"policy": 'path "a" { capabilities = ["read"] }',
                                             "bogus": 1},
                headers={"X-Vault-Namespace": "team-a"})
    assert r.status == 200
    assert r.warnings == ["Endpoint ignored these unrecognized parameters: [bogus]"]
    c.delete_policy("vd-warn")


@pytest.mark.double_only
def test_seal_and_unseal(vault, env):
    env.setup()
    c = vault.client
    assert c.write("sys/seal").status == 204
    try:
        h = c.health()
        assert h.status == 503 and h.json["sealed"] is True
        r = c.creds(env.db_mount, "app", check=False)
        assert (r.status, r.errors) == (503, ["Vault is sealed"])
        wrong = c.request("PUT", "sys/unseal", {"key": "wrong"}, check=False)
        assert wrong.status == 400
    finally:
        u = c.request("PUT", "sys/unseal", {"key": vault.double.unseal_key()})
    assert u.json["sealed"] is False
    assert c.health().status == 200
    assert c.creds(env.db_mount, "app").status == 200


@pytest.mark.double_only
def test_require_request_header(workdir):
    with VaultDouble(workdir, require_request_header=True, name="vault-rrh") as vd:
        without = vd.client(request_header=False).lookup_self(check=False)
        assert without.status == 412
        assert without.errors == ['missing "X-Vault-Request" header']
        assert vd.client().lookup_self().status == 200


@pytest.mark.double_only
def test_https(workdir):
    tls_dir = os.path.join(workdir, "tls")
    os.makedirs(tls_dir, exist_ok=True)
    ca, crt, key = make_tls_files(tls_dir)
    with VaultDouble(workdir, tls_cert=crt, tls_key=key, cacert=ca, name="vault-tls") as vd:
        assert vd.addr.startswith("https://")
        assert vd.client().lookup_self().data["display_name"] == "root"
        untrusted = vd.client()
        untrusted._ssl = ssl.create_default_context()
        with pytest.raises(ssl.SSLError):
            untrusted.health()


@pytest.mark.double_only
def test_request_log_holds_no_secrets(vault, env, pg):
    env.setup()
    c = env.client
    secrets_seen = {c.token, pg.password}
    ctl, login = env.login()
    secrets_seen.add(ctl.token)
    wrapped = c.approle_secret_id(env.auth_mount, env.approle, wrap_ttl="30s")
    secrets_seen.add(wrapped)
    secrets_seen.add(c.unwrap(wrapped).data["secret_id"])
    creds = ctl.creds(env.db_mount, "app")
    secrets_seen.add(creds.data["password"])
    ctl.renew_self(60)
    with open(vault.double.log_file, encoding="utf-8") as f:
        log = f.read()
    assert "GET /v1/" + env.db_mount + "/creds/app 200" in log
    for s in secrets_seen:
        assert s and s not in log
    assert json.dumps(pg.password)[1:-1] not in log
