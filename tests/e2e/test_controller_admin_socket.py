"""The controller's admin socket under hostile use: another uid is refused (by the socket's
mode 0600, and by the peer uid check when the mode lets it connect), malformed, oversized and
random requests are answered with an error line, and the controller keeps serving PgBouncer.

Runs the same against a real Vault (nothing here needs the double's faults).
"""

from __future__ import annotations

import json
import os
import pwd
import random
import re
import socket
import stat
import subprocess

import pytest

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from processes import SERVER_USER, client_env, server_uid

OTHER_USER = "nobody"

RAW_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"command":"status"}\n')
except OSError:
    pass  # refused and closed before the request went out: the answer is already here
data = b""
while not data.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
"""


def as_other_user(argv: list[str]) -> subprocess.CompletedProcess:
    """Runs argv as `nobody` (needs root to switch users)."""
    if os.geteuid() != 0:
        pytest.skip("switching to another uid needs root")
    pw = pwd.getpwnam(OTHER_USER)
    prefix = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
              "--"]
    return subprocess.run(prefix + [str(a) for a in argv], capture_output=True, text=True,
                          env=client_env(), cwd="/", timeout=30)


def connect(path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(path))
    return s


def read_line(s: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def exchange(path, payload: bytes, half_close: bool = False) -> dict:
    """Sends payload on a new connection; returns the one answer line, parsed."""
    with connect(path) as s:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused the line before all of it arrived; its answer is there
        if half_close:
            s.shutdown(socket.SHUT_WR)
        line = read_line(s)
    assert line.endswith(b"\n") and line.count(b"\n") == 1, line
    return json.loads(line)


def healthy(chain) -> None:  # noqa: F811
    ctl = chain.controller
    assert ctl.alive(), ctl.log_text()[-3000:]
    cp = ctl.pgbvctl_run("status")
    assert cp.returncode == 0, (cp.stdout, cp.stderr)
    user = chain.bouncer.psql("SELECT current_user;").stdout.strip()
    assert user == chain.current_user("app")


def test_another_uid_is_refused(chain):  # noqa: F811
    # A mode that lets anyone connect, so that the peer uid check itself is what refuses;
    # JSON logs, checked at the end.
    chain.start(controller_settings={"admin_socket_mode": "0666", "log_format": "json"})
    ctl = chain.controller
    path = ctl.admin_socket
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
    other = pwd.getpwnam(OTHER_USER).pw_uid

    cp = as_other_user([ctl.pgbvctl, "-s", path, "status"])
    assert cp.returncode == 3, (cp.returncode, cp.stdout, cp.stderr)
    assert f"permission denied: uid {other} may not use the admin socket {path}" in cp.stderr, \
        cp.stderr
    assert f"only uid {server_uid()} ({SERVER_USER}) and uid 0 (root) may" in cp.stderr, \
        cp.stderr
    assert "run pgbvctl as that user" in cp.stderr, cp.stderr
    # The same over a raw connection: one error line, then the controller hangs up.
    cp = as_other_user(["/usr/bin/python3", "-c", RAW_CLIENT, path])
    answer = json.loads(cp.stdout)
    assert answer["ok"] is False and answer["error"].startswith("permission denied"), cp.stdout
    assert f"admin socket: refused a connection from uid {other}" in ctl.log_text()
    # Nothing it asked for happened, and the allowed users still get in (root here).
    for cmd in (["rotate", "app"], ["reload"], ["log-level", "debug"]):
        cp = as_other_user([ctl.pgbvctl, "-s", path, *cmd])
        assert cp.returncode == 3, (cmd, cp.stderr)
    assert "rotation of set app requested" not in ctl.log_text()
    cp = subprocess.run([ctl.pgbvctl, "-s", path, "status"], capture_output=True, text=True,
                        env=client_env(), timeout=30)
    assert cp.returncode == 0, cp.stderr
    healthy(chain)
    chain.rotate("app")

    # log_format = json: every line one JSON object with time, level and msg; the events
    # carry "event" and "set".
    records = []
    for line in ctl.log_text().splitlines():
        record = json.loads(line)
        assert isinstance(record, dict) and {"time", "level", "msg"} <= record.keys(), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"]), line
        assert record["level"] in ("error", "warning", "info", "debug"), line
        records.append(record)
    events = {(r.get("event"), r.get("set")) for r in records}
    assert ("fetch", "app") in events and ("rotate", "app") in events, events
    assert any(r.get("event") == "login" for r in records), events
    refusal = [r for r in records if "refused a connection from uid" in r["msg"]]
    assert refusal and refusal[0]["level"] == "warning", records[-5:]


def test_malformed_requests_answered_controller_unhurt(chain):  # noqa: F811
    chain.start()
    ctl = chain.controller
    path = ctl.admin_socket
    # Default mode 0600: another user cannot even connect.
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    if os.geteuid() == 0:
        cp = as_other_user([ctl.pgbvctl, "-s", path, "status"])
        assert cp.returncode == 3, (cp.returncode, cp.stdout, cp.stderr)
        assert "Permission denied" in cp.stderr and \
            "run pgbvctl as the controller's user or root" in cp.stderr, cp.stderr

    # Each malformed line: an error naming what is wrong, then the connection closes.
    for payload, expect in (
            (b"{nope\n", "bad request: invalid JSON"),
            (b"\n", "bad request: empty line"),
            (b"[1,2]\n", "bad request: the request is not a JSON object"),
            (b"null\n", "bad request"),
            (b'{"command":5}\n', 'bad request: the request has no "command" string'),
            (b'{"command":"rotate","set":["app"]}\n', 'bad request: "set" must be a string'),
            (b"\x00\xff\xfe\x01garbage\n", "bad request"),
            (b"a" * 5000, "request line longer than 4096 bytes"),
            (b'{"command":"rotate","set":"' + b"x" * 100000 + b'"}\n', "longer than 4096"),
    ):
        answer = exchange(path, payload)
        assert answer["ok"] is False and expect in answer["error"], (payload[:40], answer)

    # Well-formed but wrong: an answer, and the connection stays open for the next request.
    with connect(path) as s:
        for payload, expect in (
                (b'{"command":"dance"}\n', "unknown command 'dance'; valid commands: status, "
                                           "sets, leases, rotate, revoke-drained, reload, "
                                           "log-level"),
                (b'{"command":"rotate"}\n', "rotate needs the credential set's name"),
                (b'{"command":"rotate","set":"nosuch"}\n', "nosuch"),
                (b'{"command":"log-level","level":"loud"}\n', "error, warning, info or debug"),
        ):
            s.sendall(payload)
            answer = json.loads(read_line(s))
            assert answer["ok"] is False and expect in answer["error"], (payload, answer)
        s.sendall(b'{"command":"sets"}\n')
        answer = json.loads(read_line(s))
        assert answer["ok"] is True and answer["sets"][0]["name"] == "app", answer

    # Random bytes, sent whole then the writing side shut: an error line or nothing.
    rng = random.Random(20261128)
    for _ in range(60):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
        with connect(path) as s:
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass
            line = read_line(s)
        if line:
            answer = json.loads(line)
            assert answer["ok"] is False, (junk[:40], answer)

    # More idle connections than it serves at once: the extra ones are told so.
    idle = [connect(path) for _ in range(10)]
    try:
        answer = json.loads(read_line(idle[-1]))  # said at once, before any request
        assert answer["ok"] is False and "too many admin connections" in answer["error"], answer
    finally:
        for s in idle:
            s.close()

    healthy(chain)
    old, new = chain.rotate("app")
    assert old != new
