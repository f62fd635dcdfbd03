"""credserver.py on its own, driven by a tiny plugin-side client: no PgBouncer needed."""

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

import pgbv_wire as wire
import processes
from credserver import CredServer
from plugin_client import PluginClient

HERE = Path(__file__).resolve().parent


@pytest.fixture
def server(workdir):
    s = CredServer(workdir / "plugin.sock")
    s.start()
    yield s
    s.stop()


def test_handshake_snapshot_and_push(server):
    with PluginClient(server.socket_path) as c:
        hello, snapshot = c.handshake()
        assert hello.version == wire.VERSION
        assert snapshot == []
        gen = server.set_credentials("app_rw", "role_a", "pw a", 1893456000)
        assert gen == 1
        assert c.recv() == wire.Credentials(b"app_rw", 1, b"role_a", b"pw a", 1893456000, 0)
        assert server.set_credentials("app_rw", "role_b", "pw b") == 2
        assert c.recv().generation == 2
        # Generations count per set.
        assert server.set_credentials("other", "role_c", "pw c") == 1
        assert c.recv().set == b"other"
    with PluginClient(server.socket_path) as c2:
        _, snapshot = c2.handshake()
        assert [(m.set, m.generation, m.username) for m in snapshot] == [
            (b"app_rw", 2, b"role_b"), (b"other", 1, b"role_c")]
    assert server.handshakes == 2
    assert server.peer_uids == [os.geteuid(), os.geteuid()]
    assert server.protocol_errors == []


def test_credentials_set_before_start_are_in_the_snapshot(workdir):
    s = CredServer(workdir / "plugin.sock")
    s.set_credentials("app_rw", "early", "pw")
    with s, PluginClient(s.socket_path) as c:
        _, snapshot = c.handshake()
        assert [m.username for m in snapshot] == [b"early"]


def test_records_drained_and_login_failed(server):
    server.set_credentials("app_rw", "role_a", "pw")
    with PluginClient(server.socket_path) as c:
        c.handshake()
        c.send(wire.Drained(b"app_rw", 1, b"role_a"))
        c.send(wire.LoginFailed(b"app_rw", 1, b"role_a", b"28P01"))
        ev = server.wait_drained("app_rw", 1, timeout=5)
        assert (ev.set, ev.generation, ev.username) == ("app_rw", 1, "role_a")
        lf = server.wait_login_failed("app_rw", 1, timeout=5)
        assert lf.sqlstate == "28P01" and lf.username == "role_a"
        with pytest.raises(TimeoutError, match="DRAINED for app_rw generation 7"):
            server.wait_drained("app_rw", 7, timeout=0.2)
    assert server.protocol_errors == []


def test_wrong_version_gets_error_naming_both(server):
    with PluginClient(server.socket_path) as c:
        c.send(wire.Hello(2, b"future-plugin"))
        got = c.expect_closed()
    assert len(got) == 1 and isinstance(got[0], wire.Error)
    assert got[0].code == wire.ERR_VERSION
    assert b"2" in got[0].message and b"1" in got[0].message
    assert server.handshakes == 0


@pytest.mark.parametrize("frame,rule", [
    (wire.encode(wire.Drained(b"app_rw", 1, b"u")), "before HELLO"),
    (wire.raw_frame(0x7F, b""), "unknown message type"),
    (b"\0\0\0\0", "frame length 0"),
    (b"\0\0\x20\x01\x20", "frame length 8193"),
    (wire.encode(wire.Credentials(b"s", 1, b"u", b"secret-pw", 0, 0)), "not sent by a plugin"),
    (wire.encode(wire.SnapshotDone(0)), "not sent by a plugin"),
    (wire.raw_frame(wire.MSG_LOGIN_FAILED, b"\0\x01s" + b"\0" * 7 + b"\x01\0\x01u\0\x0328P"),
     "sqlstate"),
    (wire.raw_frame(wire.MSG_DRAINED, b"\0\x01s" + b"\0" * 7 + b"\x01\0\x01u!"), "bytes left"),
    (wire.raw_frame(wire.MSG_DRAINED, b"\0\x01s" + b"\0" * 8 + b"\0\x01u"), "generation"),
    (wire.encode(wire.Hello(1, b"again")), "second HELLO"),
])
def test_protocol_errors_close_with_error(server, frame, rule):
    with PluginClient(server.socket_path) as c:
        if rule not in ("before HELLO", "frame length 0", "frame length 8193",
                        "unknown message type"):
            c.handshake()
        c.send_raw(frame)
        got = c.expect_closed()
    assert isinstance(got[-1], wire.Error) and got[-1].code == wire.ERR_PROTOCOL
    assert len(server.protocol_errors) == 1
    assert rule in server.protocol_errors[0]
    assert "secret-pw" not in server.protocol_errors[0]
    assert "secret-pw" not in got[-1].message.decode()


def test_error_from_plugin_is_recorded_and_closes(server):
    with PluginClient(server.socket_path) as c:
        c.handshake()
        c.send(wire.Error(wire.ERR_PROTOCOL, b"bad frame"))
        assert c.expect_closed() == []
    assert [(e.code, e.message) for e in server.errors_received] == [(2, "bad frame")]


def test_stop_and_start_keep_state(server):
    server.set_credentials("app_rw", "role_a", "pw")
    c = PluginClient(server.socket_path)
    c.handshake()
    server.stop()
    assert c.expect_closed() == []
    c.close()
    assert not Path(server.socket_path).exists()
    # Pushed while away: delivered in the next snapshot.
    assert server.set_credentials("app_rw", "role_b", "pw2") == 2
    server.start()
    with PluginClient(server.socket_path) as c:
        _, snapshot = c.handshake()
        assert [(m.generation, m.username) for m in snapshot] == [(2, b"role_b")]
        assert server.set_credentials("app_rw", "role_c", "pw3") == 3
        assert c.recv().generation == 3
    assert server.handshakes == 2


def test_stop_with_goodbye_sends_shutting_down(server):
    with PluginClient(server.socket_path) as c:
        c.handshake()
        server.stop(goodbye=True)
        got = c.expect_closed()
    assert [(m.code) for m in got] == [wire.ERR_SHUTTING_DOWN]


def test_negative_knobs(server):
    server.set_credentials("app_rw", "role_a", "pw")
    server.hello_version = 2
    with PluginClient(server.socket_path) as c:
        hello, _ = c.handshake()
        assert hello.version == 2
        assert server.send_malformed("bad_flags") == 1
        with pytest.raises(wire.ProtocolError, match="flags"):
            c.recv()
    with PluginClient(server.socket_path) as c:
        c.handshake()
        server.send_raw(wire.encode(wire.SnapshotDone(0)), close=True)
        assert c.expect_closed() == [wire.SnapshotDone(0)]


def test_socket_reachable_by_server_user(server, workdir):
    mode = stat.S_IMODE(os.stat(server.socket_path).st_mode)
    assert mode == 0o666
    server.set_credentials("app_rw", "role_a", "pw")
    # From a copy: the source tree may be out of that user's reach.
    for module in ("plugin_client.py", "pgbv_wire.py"):
        shutil.copyfile(HERE / module, workdir / module)
    code = (f"import sys; sys.path.insert(0, {str(workdir)!r}); "
            "from plugin_client import PluginClient; "
            f"c = PluginClient({server.socket_path!r}); h, s = c.handshake(); "
            "print(h.version, len(s))")
    cp = processes.run(["/usr/bin/python3", "-c", code], as_server_user=True,
                       env=processes.client_env(PYTHONDONTWRITEBYTECODE="1"))
    assert cp.stdout.split() == ["1", "1"]
    assert server.peer_uids[-1] == processes.server_uid()


def _read_events(proc, until, timeout=10):
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        events.append(json.loads(line))
        if until(events[-1]):
            return events
    raise AssertionError(f"no matching event; got {events}")


def test_command_line(workdir):
    sock = workdir / "cli.sock"
    user_file, pw_file = workdir / "user", workdir / "password"
    user_file.write_text("cli_role_1\n")
    pw_file.write_text("cli secret 1\n")
    argv = ["/usr/bin/python3", str(HERE / "credserver.py"), "--socket", str(sock),
            "--set", "app_rw", "--user-file", str(user_file), "--password-file", str(pw_file)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=processes.client_env(PYTHONDONTWRITEBYTECODE="1"))
    try:
        _read_events(proc, lambda e: e["event"] == "listening")
        with PluginClient(sock) as c:
            _, snapshot = c.handshake()
            assert [(m.username, m.password) for m in snapshot] == [
                (b"cli_role_1", b"cli secret 1")]
            user_file.write_text("cli_role_2")
            pw_file.write_text("cli secret 2\n")
            proc.send_signal(signal.SIGUSR1)
            msg = c.recv()
            assert (msg.generation, msg.username, msg.password) == (
                2, b"cli_role_2", b"cli secret 2")
            c.send(wire.Drained(b"app_rw", 1, b"cli_role_1"))
            ev = _read_events(proc, lambda e: e["event"] == "drained")[-1]
            assert (ev["set"], ev["generation"], ev["username"]) == ("app_rw", 1, "cli_role_1")
            proc.send_signal(signal.SIGTERM)
            assert [m.code for m in c.expect_closed()] == [wire.ERR_SHUTTING_DOWN]
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "secret" not in out and "secret" not in err
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_command_line_refuses_empty_password_file(workdir):
    (workdir / "pw").write_text("\n")
    cp = subprocess.run(["/usr/bin/python3", str(HERE / "credserver.py"), "--socket",
                         str(workdir / "s"), "--set", "x", "--user", "u", "--password-file",
                         str(workdir / "pw")], capture_output=True, text=True, timeout=30,
                        env=processes.client_env(PYTHONDONTWRITEBYTECODE="1"))
    assert cp.returncode != 0
    assert "password file" in cp.stderr and "empty" in cp.stderr
