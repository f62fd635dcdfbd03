"""The double's fault injection (/_double/ control API): every mode breaks the wire as promised."""

import http.client
import socket
import time

import pytest

from vault_client import DoubleControl, VaultError

pytestmark = pytest.mark.double_only


@pytest.fixture
def ctl(vault):
    control = vault.control()
    control.clear()
    yield control
    control.clear()


def test_control_api_needs_the_root_token(vault):
    c = vault.client.with_token("hvs.not-the-root-token")
    with pytest.raises(VaultError) as e:
        DoubleControl(c).stats()
    assert e.value.status == 403


def test_error_mode_with_count(vault, ctl):
    ctl.fault("error", status=500, errors=["internal error"], count=2, path="sys/health")
    for _ in range(2):
        r = vault.client.health()
        assert (r.status, r.json) == (500, {"errors": ["internal error"]})
    assert vault.client.health().status == 200


def test_error_mode_only_on_its_path(vault, ctl):
    ctl.fault("error", status=429, errors=["request rate limit exceeded"], path="sys/leases/")
    assert vault.client.lookup_self().status == 200
    r = vault.client.renew_lease("x/y", check=False)
    assert (r.status, r.errors) == (429, ["request rate limit exceeded"])


def test_down_refuses_connections_then_recovers(vault, ctl):
    ctl.fault("down", for_ms=3000)
    with pytest.raises(ConnectionRefusedError):
        vault.client.health(timeout=2)
    time.sleep(3.2)
    assert vault.client.wait_ready(5).status == 200


def test_reset_drops_the_connection(vault, ctl):
    ctl.fault("reset", count=1)
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        vault.client.health()
    assert vault.client.health().status == 200


def test_slow_outlasts_a_client_timeout(vault, ctl):
    ctl.fault("slow", delay_ms=3000, count=1, path="sys/health")
    t0 = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError)):
        vault.client.health(timeout=0.5)
    assert time.monotonic() - t0 < 2.5
    time.sleep(3.0)
    assert vault.client.health().status == 200


def test_garbage_body(vault, ctl):
    ctl.fault("garbage", count=1)
    r = vault.client.lookup_self(check=False)
    assert r.status == 200 and r.json is None and r.raw


def test_truncated_body(vault, ctl):
    ctl.fault("truncated", count=1)
    with pytest.raises(http.client.IncompleteRead):
        vault.client.lookup_self()
    assert vault.client.lookup_self().status == 200


def test_huge_body(vault, ctl):
    ctl.fault("huge", size=4 * 1024 * 1024, count=1)
    r = vault.client.lookup_self(timeout=30)
    assert r.status == 200 and len(r.raw) == 4 * 1024 * 1024


def test_sealed_mode(vault, ctl):
    ctl.fault("sealed", for_ms=60_000)
    h = vault.client.health()
    assert h.status == 503 and h.json["sealed"] is True
    r = vault.client.lookup_self(check=False)
    assert (r.status, r.errors) == (503, ["Vault is sealed"])
    ctl.clear()
    assert vault.client.health().status == 200


def test_for_ms_expires(vault, ctl):
    ctl.fault("error", status=502, for_ms=2000)
    assert vault.client.health().status == 502
    time.sleep(2.2)
    assert vault.client.health().status == 200


def test_bad_fault_specs(vault, ctl):
    for spec in ({"mode": "explode"}, {"mode": "down"}, {"mode": "down", "for_ms": 100,
                                                           "count": 1},
                 {"mode": "error", "status": 42}):
        with pytest.raises(VaultError) as e:
            ctl.fault(**spec)
        assert e.value.status == 400


def test_stats_count_requests_and_list_leases(vault, ctl, env):
    env.setup()
    ctl.stats(reset=True)
    r = env.client.creds(env.db_mount, "app")
    env.client.renew_lease(r.json["lease_id"])
    env.client.creds(env.db_mount, "nope", check=False)
    s = ctl.stats()
    assert s["requests"][f"{env.db_mount}/creds"] == 2
    assert s["statuses"][f"{env.db_mount}/creds"] == {"200": 1, "400": 1}
    assert s["requests"]["sys/leases/renew"] == 1
    live = {x["lease_id"]: x for x in s["leases"]}
    assert live[r.json["lease_id"]]["username"] == r.data["username"]
    assert live[r.json["lease_id"]]["role"] == "app"
