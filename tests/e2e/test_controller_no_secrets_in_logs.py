"""No database password, Vault token or AppRole secret_id appears in any log of PgBouncer, the
controller or the Vault double, nor in pgbvctl's output, SHOW output, or the argv and
environment of the controller and PgBouncer.

The secrets checked are the real ones: a recording TCP proxy between the controller and Vault
keeps every answer Vault sent, so the passwords of every lease, and every client token the
controller received (logins, renewals), are known to the test; the secret_id is the one it
delivered. The run exercises what writes logs: debug logging in the controller, verbose
PgBouncer, logins again as the token reaches its max TTL, rotations, drains, revocations, and
on the double also a garbage answer and a truncated credentials answer."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from processes import wait_until

RUN_S = 25
# "key":"string" in Vault's JSON answers, for the keys that carry secrets.
_SECRET_RE = re.compile(rb'"(client_token|password|secret_id|id)":"((?:[^"\\]|\\.){8,})"')


class RecordingProxy:
    """A TCP proxy to one upstream that keeps every byte the upstream sent back."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.streams: list[bytearray] = []
        self.connections = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()  # upstream down: the client sees the connection drop
                continue
            record = bytearray()
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self.connections += 1
                self.streams.append(record)
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, record),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bytearray | None) -> None:
        try:
            while data := src.recv(65536):
                if record is not None:
                    with self._lock:
                        record += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def secrets(self) -> dict[str, set[str]]:
        """Every secret-bearing string value Vault sent, by key."""
        found: dict[str, set[str]] = {}
        with self._lock:
            streams = [bytes(s) for s in self.streams]
        for stream in streams:
            for m in _SECRET_RE.finditer(stream):
                key = m.group(1).decode()
                value = json.loads(b'"' + m.group(2) + b'"')
                if key == "id" and not value.startswith(("hvs.", "hvb.", "s.", "b.")):
                    continue  # some other id; token ids are what lookup-self reports as "id"
                found.setdefault("token" if key in ("client_token", "id") else key,
                                 set()).add(value)
        return found

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = list(self._sockets)
        self.listener.close()
        for s in sockets:
            try:
                s.close()
            except OSError:
                pass


def _proc_text(pid: int, what: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes()
    except OSError:
        return b""


def test_no_secret_in_any_log(chain, workdir):  # noqa: F811
    u = urlsplit(chain.vault.addr)
    if u.scheme != "http":
        pytest.skip("the recording proxy needs Vault over plain HTTP to see its answers")
    proxy = RecordingProxy((u.hostname, u.port))
    try:
        _run(chain, proxy)
    finally:
        proxy.close()


def _run(chain, proxy: RecordingProxy) -> None:
    # Short leases and a short-lived token: rotations, drains, revocations and logins again.
    chain.add_tenant("app", default_ttl="4s", max_ttl="6s", rotation_margin="2s")
    chain.start(token_ttl="8s", token_max_ttl="16s", vault_addr=proxy.addr,
                controller_settings={"log_level": "debug"}, bouncer_settings={"verbose": 2})
    bouncer, ctl = chain.bouncer, chain.controller
    outputs: dict[str, str] = {}
    users = set()
    deadline = time.monotonic() + RUN_S
    faults_done = False
    while time.monotonic() < deadline:
        users.add(bouncer.psql("SELECT current_user;").stdout.strip())
        if chain.vault.is_double and not faults_done and time.monotonic() > deadline - RUN_S / 2:
            # Error paths log what went wrong: a garbage answer to a renewal and a creds
            # answer cut in half after its password went out.
            control = chain.vault.control()
            control.fault("garbage", path="sys/leases/renew", count=1)
            control.fault("truncated", path=f"{chain.tenants['app'].db_mount}/creds", count=1)
            faults_done = True
        time.sleep(0.5)
    wait_until(lambda: chain.status()["health"] == "ok", 15, "the controller to be healthy")
    st = chain.status()
    for args in (("status",), ("status", "--json")):
        cp = ctl.pgbvctl_run(*args)
        outputs[f"pgbvctl {' '.join(args)}"] = cp.stdout + cp.stderr
    for command in ("SHOW CREDENTIALS", "SHOW SERVERS", "SHOW POOLS", "SHOW DATABASES",
                    "SHOW CONFIG"):
        outputs[command] = bouncer.admin_raw(command)
    procs = {"pgbv-controller": ctl.process.pid, "pgbouncer": bouncer.process.pid}
    for name, pid in procs.items():
        outputs[f"/proc/{name}/cmdline"] = _proc_text(pid, "cmdline").decode(errors="replace")
        outputs[f"/proc/{name}/environ"] = _proc_text(pid, "environ").decode(errors="replace")

    found = proxy.secrets()
    secrets_by_kind = {
        "database password": found.get("password", set()),
        "Vault token": found.get("token", set()) | {chain.vault.client.token},
        "AppRole secret_id": {chain.secret_id} | found.get("secret_id", set()),
        "PostgreSQL admin password (Vault's connection)": {chain.pg_admin_password},
    }
    print(f"proxy saw {proxy.connections} connections; secrets: "
          f"{ {k: len(v) for k, v in secrets_by_kind.items()} }; users seen {len(users)}; "
          f"controller generation {st['sets'][0]['generation']}, logins {st['token']['logins']}")
    # The run did what it is meant to: several leases, several tokens.
    assert len(users) >= 3, users
    assert st["token"]["logins"] >= 2, st["token"]
    assert len(secrets_by_kind["database password"]) >= st["sets"][0]["generation"], \
        "the proxy missed some of the controller's credentials"
    assert len(found.get("token", set())) >= st["token"]["logins"]

    texts = {name: path.read_bytes() for name, path in chain.log_paths().items()
             if path.exists()}
    assert {"pgbouncer", "controller"} <= set(texts), sorted(texts)
    if chain.vault.is_double:
        assert len(texts) == 4, sorted(texts)
    texts.update({name: text.encode() for name, text in outputs.items()})
    # A secret this test run was given in its own environment (VAULT_TOKEN of a real Vault)
    # reaches PgBouncer through the harness, not through the product: not a leak there.
    inherited = {v for v in os.environ.values() if v}
    leaks = []
    for kind, values in secrets_by_kind.items():
        for value in values:
            for name, text in texts.items():
                if name.endswith("/environ") and value in inherited:
                    continue
                if value and value.encode() in text:
                    # Never print the secret itself: where it is is enough.
                    leaks.append(f"a {kind} ({len(value)} characters) in {name} at byte "
                                 f"{text.index(value.encode())}")
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks)
    # The logs are not empty: the check looked at something.
    assert b"rotated to generation" in texts["controller"]
    assert len(texts["pgbouncer"]) > 1000
    if chain.vault.is_double:
        applied = chain.vault.stats()["faults_applied"]
        assert applied.get("garbage") == 1 and applied.get("truncated") == 1, applied
        warnings = [line for line in texts["controller"].decode().splitlines()
                    if " WARNING " in line]
        print("controller warnings:\n" + "\n".join(warnings))
        assert warnings, "the injected faults left no warning in the controller's log"
