"""Topologies: Enterprise namespaces, an HA standby (307, 429 health, step-down), sealed and
rate-limited nodes. Namespaces and standbys need the double's options (a real Vault here is
one open-source node), so those tests are double_only."""

import http.client
import os
import secrets

import pytest

from double_process import VaultDouble
from vault_client import (DoubleControl, VaultClient, create_namespace, enable_kv2,
                          fault_rate_limited, fault_sealed, ha_state, in_namespace, kv_policy,
                          read_kv, set_active_node, write_kv)


@pytest.fixture(scope="module")
def ent(tmp_path_factory):
    """A double in Enterprise mode (namespaces)."""
    with VaultDouble(str(tmp_path_factory.mktemp("ent")), extra_args=["--enterprise"],
                     name="ent") as vd:
        yield vd


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    """A double serving an HA pair: the active node and a standby listener."""
    d = str(tmp_path_factory.mktemp("ha"))
    port_file = os.path.join(d, "standby.port")
    with VaultDouble(d, extra_args=["--standby-listen", "127.0.0.1:0", "--standby-port-file",
                                    port_file], name="ha") as vd:
        with open(port_file, encoding="utf-8") as f:
            vd.standby_port = int(f.read().strip())
        yield vd


def standby_client(vd, token=...):
    return VaultClient(f"http://127.0.0.1:{vd.standby_port}",
                       vd.token if token is ... else token)


def raw_get(port, url_path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", url_path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


# --- namespaces --------------------------------------------------------------------------


@pytest.mark.double_only
def test_namespaces_have_their_own_mounts_and_policies(ent):
    root = ent.client()
    ns = "team-" + secrets.token_hex(3)
    r = create_namespace(root, ns)
    assert r.data["path"] == ns + "/" and r.data["id"] and r.data["custom_metadata"] == {}
    assert ns + "/" in root.list("sys/namespaces").data["keys"]
    assert root.read(f"sys/namespaces/{ns}").data["path"] == ns + "/"

    in_ns = in_namespace(root, ns)
    enable_kv2(in_ns, "secret")
    write_kv(in_ns, "secret", "app/db", {"username": "u", "password": "p"})
    # The same mount path in the root namespace is another mount (absent here).
    assert root.read("secret/data/app/db", check=False).status == 404
    # The namespace may also be given as a path prefix.
    assert read_kv(root, f"{ns}/secret", "app/db").data["data"]["username"] == "u"
    assert in_ns.read("sys/mounts").data["secret/"]["type"] == "kv"
    assert "secret/" not in root.read("sys/mounts").data

    # Policies are per namespace too.
    in_ns.put_policy("reader", kv_policy("secret", "app/db"))
    assert root.read("sys/policies/acl/reader", check=False).status == 404


@pytest.mark.double_only
def test_tokens_are_bound_to_their_namespace(ent):
    root = ent.client()
    ns = "tok-" + secrets.token_hex(3)
    create_namespace(root, ns)
    in_ns = in_namespace(root, ns)
    enable_kv2(in_ns, "kv")
    write_kv(in_ns, "kv", "s", {"password": "p"})
    in_ns.put_policy("reader", kv_policy("kv", "s"))
    r = in_ns.create_token(policies=["reader"])
    tok = r.auth["client_token"]
    nsid = root.read(f"sys/namespaces/{ns}").data["id"]
    assert tok.endswith("." + nsid)
    t_ns = in_namespace(root.with_token(tok), ns)
    assert read_kv(t_ns, "kv", "s").data["data"] == {"password": "p"}
    assert t_ns.lookup_self().data["policies"] == ["default", "reader"]
    # The token means nothing in the root namespace.
    r = root.with_token(tok).lookup_self(check=False)
    assert r.status == 403
    # A root-namespace token with a policy naming the namespace's path may act there.
    root.put_policy("ns-reader-" + ns, f'path "{ns}/kv/data/s" {{ capabilities = ["read"] }}')
    parent_tok = root.create_token(policies=["ns-reader-" + ns]).auth["client_token"]
    pt = root.with_token(parent_tok)
    assert read_kv(in_namespace(pt, ns), "kv", "s").status == 200
    assert read_kv(pt, f"{ns}/kv", "s").status == 200
    # Deleting the namespace revokes its tokens (and the namespace is gone).
    tokens_before = ent.control().stats()["tokens"]
    assert root.delete(f"sys/namespaces/{ns}").status == 204
    assert t_ns.lookup_self(check=False).status == 404
    assert root.read(f"sys/namespaces/{ns}", check=False).status == 404
    assert ent.control().stats()["tokens"] == tokens_before - 1


@pytest.mark.double_only
def test_nested_namespaces_and_unknown_namespace(ent):
    root = ent.client()
    top = "org-" + secrets.token_hex(3)
    create_namespace(root, top)
    create_namespace(in_namespace(root, top), "dev")
    r = root.read(f"sys/namespaces/{top}/dev", check=False)  # path prefix of the parent
    assert r.status == 200 and r.data["path"] == f"{top}/dev/"
    assert in_namespace(root, top).list("sys/namespaces").data["keys"] == ["dev/"]
    enable_kv2(in_namespace(root, f"{top}/dev"), "kv")
    write_kv(in_namespace(root, top), "dev/kv", "x", {"a": "b"})
    assert read_kv(in_namespace(root, f"{top}/dev"), "kv", "x").data["data"] == {"a": "b"}
    r = in_namespace(root, "no-such-ns").read("sys/mounts", check=False)
    assert r.status == 404
    h = ent.client().health()
    assert h.json["enterprise"] is True and h.json["version"].endswith("+ent")


def test_open_source_server_ignores_the_namespace_header(vault):
    if not vault.is_double and os.environ.get("PGBV_TEST_VAULT_ENTERPRISE") == "1":
        pytest.skip("the Vault under test is Enterprise")
    c = vault.client
    r = in_namespace(c, "whatever").lookup_self()
    assert r.status == 200
    assert in_namespace(c, "whatever").read("sys/mounts").data["sys/"]["type"] == "system"
    r = c.write("sys/namespaces/x", {}, check=False)
    assert r.status in (404, 405)


# --- HA: standby --------------------------------------------------------------------------


@pytest.mark.double_only
def test_standby_redirects_api_requests_with_307(ha):
    status, headers, body = raw_get(ha.standby_port, "/v1/auth/token/lookup-self?x=1",
                                    {"X-Vault-Token": ha.token})
    assert status == 307
    assert headers["Location"] == f"http://127.0.0.1:{ha.port}/v1/auth/token/lookup-self?x=1"
    assert body == b""
    # Before any token check: no token at all is redirected just the same.
    status, headers, _ = raw_get(ha.standby_port, "/v1/secret/data/x")
    assert status == 307 and headers["Location"].endswith("/v1/secret/data/x")
    # Following it works (method and body kept by a 307).
    r = VaultClient(headers["Location"].split("/v1/")[0], ha.token).lookup_self()
    assert r.status == 200


@pytest.mark.double_only
def test_standby_health_leader_and_seal_status(ha):
    sb = standby_client(ha, token=None)
    h = sb.health()
    assert h.status == 429
    assert h.json["standby"] is True and h.json["sealed"] is False
    assert sb.request("GET", "sys/health?standbyok=true", token=None, check=False).status == 200
    assert sb.request("GET", "sys/health?standbycode=299", token=None,
                      check=False).status == 299
    ld = sb.read("sys/leader", token=None).json
    assert ld["ha_enabled"] is True and ld["is_self"] is False
    assert ld["leader_address"] == f"http://127.0.0.1:{ha.port}"
    assert ha.client(token=None).read("sys/leader").json["is_self"] is True
    assert ha.client(token=None).health().status == 200
    assert sb.read("sys/seal-status", token=None).json["sealed"] is False


@pytest.mark.double_only
def test_step_down_moves_the_active_role(ha):
    active = ha.client()
    assert active.write("sys/step-down", {}).status == 204
    try:
        status, headers, _ = raw_get(ha.port, "/v1/sys/mounts", {"X-Vault-Token": ha.token})
        assert status == 307
        assert headers["Location"] == f"http://127.0.0.1:{ha.standby_port}/v1/sys/mounts"
        assert standby_client(ha).read("sys/mounts").status == 200
        assert ha.client(token=None).health().status == 429
        assert standby_client(ha, token=None).health().status == 200
    finally:
        standby_client(ha).write("sys/step-down", {})
    assert ha.client().lookup_self().status == 200


@pytest.mark.double_only
def test_no_active_node_is_503(ha):
    ctl = ha.control()
    set_active_node(ctl, None)
    try:
        status, _, body = raw_get(ha.standby_port, "/v1/sys/mounts")
        assert status == 503 and b"no active Vault instance found" in body
    finally:
        set_active_node(ctl, 0)
    st = ha_state(ctl)
    assert st["active"] == 0 and st["self"] == 0
    assert st["nodes"] == [f"http://127.0.0.1:{ha.port}", f"http://127.0.0.1:{ha.standby_port}"]


@pytest.mark.double_only
def test_faults_hit_one_node_only(ha):
    sb_ctl = DoubleControl(standby_client(ha))
    fault_sealed(sb_ctl, count=2)
    try:
        h = standby_client(ha, token=None).health()
        assert h.status == 503 and h.json["sealed"] is True
        # A sealed standby answers API requests 503 (sealed is checked before standby).
        status, _, body = raw_get(ha.standby_port, "/v1/sys/mounts")
        assert status == 503 and b"Vault is sealed" in body
        assert ha.client(token=None).health().status == 200
    finally:
        sb_ctl.clear()
    ctl = ha.control()
    fault_rate_limited(ctl, "sys/mounts", count=1)
    try:
        r = ha.client().read("sys/mounts", check=False)
        assert (r.status, r.errors) == (429, ['request path "sys/mounts": rate limit quota '
                                              'exceeded'])
        assert ha.client().read("sys/mounts").status == 200
    finally:
        ctl.clear()


def test_single_node_health_and_leader(vault):
    h = vault.client.health()
    assert h.status == 200
    assert h.json["standby"] is False and h.json["sealed"] is False
    ld = vault.client.read("sys/leader", token=None).json
    assert {"ha_enabled", "is_self", "leader_address"} <= set(ld)
