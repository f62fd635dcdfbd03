"""KV secrets engine, version 2 (and the version 1 basics): paths, shapes, versions, errors."""

import re
import secrets

import pytest

from vault_client import (delete_kv, destroy_kv_metadata, enable_kv2, kv_policy, read_kv,
                          write_kv)

RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
ENVELOPE_KEYS = {"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info",
                 "warnings", "auth", "mount_type"}


@pytest.fixture
def kv(vault):
    mount = "kv-" + secrets.token_hex(3)
    enable_kv2(vault.client, mount)
    yield mount
    vault.client.disable_secrets_engine(mount)


def test_mount_is_kv_version_2(vault, kv):
    d = vault.client.read(f"sys/mounts/{kv}").data
    assert d["type"] == "kv"
    assert d["options"] == {"version": "2"}
    # The "kv-v2" type is the same thing.
    other = "kvv2-" + secrets.token_hex(3)
    vault.client.enable_secrets_engine(other, "kv-v2")
    try:
        d = vault.client.read(f"sys/mounts/{other}").data
        assert (d["type"], d["options"]) == ("kv", {"version": "2"})
    finally:
        vault.client.disable_secrets_engine(other)


def test_write_and_read_shapes(vault, kv):
    c = vault.client
    r = c.write(f"{kv}/data/app/db", {"data": {"username": "u1", "password": "p1"}})
    assert r.status == 200
    meta = r.data
    assert set(meta) == {"created_time", "custom_metadata", "deletion_time", "destroyed",
                         "version"}
    assert meta["version"] == 1 and meta["destroyed"] is False
    assert meta["deletion_time"] == "" and meta["custom_metadata"] is None
    assert re.fullmatch(RFC3339, meta["created_time"]), meta["created_time"]

    r = read_kv(c, kv, "app/db")
    assert ENVELOPE_KEYS <= set(r.json)
    assert (r.json["lease_id"], r.json["renewable"], r.json["lease_duration"]) == ("", False, 0)
    assert r.json["mount_type"] == "kv"
    assert set(r.data) == {"data", "metadata"}
    assert r.data["data"] == {"username": "u1", "password": "p1"}
    assert r.data["metadata"] == meta

    assert write_kv(c, kv, "app/db", {"username": "u1", "password": "p2"}) == 2
    r = read_kv(c, kv, "app/db")
    assert r.data["metadata"]["version"] == 2 and r.data["data"]["password"] == "p2"
    assert read_kv(c, kv, "app/db", version=1).data["data"]["password"] == "p1"


def test_missing_secret_and_version_are_plain_404(vault, kv):
    r = read_kv(vault.client, kv, "nothing/here", check=False)
    assert (r.status, r.json) == (404, {"errors": []})
    write_kv(vault.client, kv, "one", {"a": "b"})
    r = read_kv(vault.client, kv, "one", version=7, check=False)
    assert (r.status, r.json) == (404, {"errors": []})


def test_deleted_and_destroyed_versions_are_404_with_metadata(vault, kv):
    c = vault.client
    write_kv(c, kv, "s", {"password": "p1"})
    write_kv(c, kv, "s", {"password": "p2"})
    assert delete_kv(c, kv, "s").status == 204
    r = read_kv(c, kv, "s", check=False)
    assert r.status == 404
    assert r.data["data"] is None
    assert r.data["metadata"]["version"] == 2
    assert re.fullmatch(RFC3339, r.data["metadata"]["deletion_time"])
    assert "errors" not in r.json
    # Older versions are still there; undelete brings version 2 back.
    assert read_kv(c, kv, "s", version=1).data["data"] == {"password": "p1"}
    c.write(f"{kv}/undelete/s", {"versions": [2]})
    assert read_kv(c, kv, "s").data["data"] == {"password": "p2"}
    c.write(f"{kv}/destroy/s", {"versions": [1]})
    r = read_kv(c, kv, "s", version=1, check=False)
    assert r.status == 404 and r.data["metadata"]["destroyed"] is True
    # Deleting the metadata removes every version.
    assert destroy_kv_metadata(c, kv, "s").status == 204
    assert read_kv(c, kv, "s", check=False).status == 404


def test_check_and_set(vault, kv):
    c = vault.client
    assert write_kv(c, kv, "cas", {"a": "1"}, cas=0) == 1
    r = write_kv(c, kv, "cas", {"a": "2"}, cas=0, check=False)
    assert (r.status, r.errors) == (400, ["check-and-set parameter did not match the current "
                                          "version"])
    assert write_kv(c, kv, "cas", {"a": "2"}, cas=1) == 2
    c.write(f"{kv}/config", {"cas_required": True})
    r = write_kv(c, kv, "cas", {"a": "3"}, check=False)
    assert (r.status, r.errors) == (400, ["check-and-set parameter required for this call"])
    cfg = c.read(f"{kv}/config").data
    assert cfg == {"cas_required": True, "delete_version_after": "0s", "max_versions": 0}


def test_metadata_read_and_list(vault, kv):
    c = vault.client
    write_kv(c, kv, "dir/a", {"x": "1"})
    write_kv(c, kv, "dir/a", {"x": "2"})
    write_kv(c, kv, "dir/sub/b", {"x": "1"})
    write_kv(c, kv, "top", {"x": "1"})
    d = c.read(f"{kv}/metadata/dir/a").data
    assert d["current_version"] == 2 and d["oldest_version"] == 1
    assert set(d["versions"]) == {"1", "2"}
    assert d["max_versions"] == 0 and d["cas_required"] is False
    assert d["delete_version_after"] == "0s"
    assert c.list(f"{kv}/metadata").data["keys"] == ["dir/", "top"]
    assert c.list(f"{kv}/metadata/dir").data["keys"] == ["a", "sub/"]
    assert c.list(f"{kv}/metadata/none", check=False).status == 404


def test_max_versions_drops_the_oldest(vault, kv):
    c = vault.client
    c.write(f"{kv}/metadata/mv", {"max_versions": 2})
    for i in range(4):
        write_kv(c, kv, "mv", {"i": str(i)})
    d = c.read(f"{kv}/metadata/mv").data
    assert d["current_version"] == 4 and d["oldest_version"] == 3
    assert read_kv(c, kv, "mv", version=1, check=False).status == 404


def test_wrong_paths_answer_like_vault(vault, kv):
    c = vault.client
    r = c.read(f"{kv}/plain", check=False)
    assert r.status == 404
    assert r.warnings == ["Invalid path for a versioned K/V secrets engine. See the API docs "
                          "for the appropriate API endpoints to use. If using the Vault CLI, "
                          "use 'vault kv get' for this operation."]
    r = c.write(f"{kv}/data/x", {"nodata": 1}, check=False)
    assert (r.status, r.errors) == (400, ["no data provided"])


def test_policy_on_data_path(vault, kv):
    c = vault.client
    write_kv(c, kv, "app/db", {"username": "u", "password": "p"})
    write_kv(c, kv, "app/other", {"username": "u", "password": "p"})
    name = "kvpol-" + secrets.token_hex(3)
    c.put_policy(name, kv_policy(kv, "app/db"))
    try:
        tok = c.create_token(policies=[name]).auth["client_token"]
        t = c.with_token(tok)
        assert read_kv(t, kv, "app/db").data["data"]["username"] == "u"
        assert c.with_token(tok).read(f"{kv}/metadata/app/db").status == 200
        assert read_kv(t, kv, "app/other", check=False).status == 403
        assert write_kv(t, kv, "app/db", {"a": "b"}, check=False).status == 403
    finally:
        c.delete_policy(name)


def test_kv_version_1(vault):
    c = vault.client
    mount = "kv1-" + secrets.token_hex(3)
    c.enable_secrets_engine(mount, "kv")
    try:
        assert c.write(f"{mount}/app/db", {"username": "u"}).status == 204
        r = c.read(f"{mount}/app/db")
        assert r.data == {"username": "u"} and r.json["mount_type"] == "kv"
        assert c.list(f"{mount}/app").data["keys"] == ["db"]
        assert c.read(f"{mount}/none", check=False).status == 404
    finally:
        c.disable_secrets_engine(mount)
