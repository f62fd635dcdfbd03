#!/usr/bin/python3
"""A test credential server: the controller's side of PROTOCOL.md, scriptable by the tests.

In-process use (pytest):

    server = CredServer("/tmp/x/plugin.sock")
    server.start()
    gen = server.set_credentials("app_rw", "role_1", "secret")   # pushed to every plugin
    server.wait_drained("app_rw", gen, timeout=10)
    server.stop()                                               # the controller goes away
    server.start()                                              # back, with the same state

It records every DRAINED, LOGIN_FAILED and ERROR it receives and every protocol violation
it sees (the fixture fails a test that leaves any), counts connections and handshakes, and
can answer with a wrong HELLO version or send malformed frames for negative tests.

Command line (the demo): see `credserver.py --help`. Secrets come from files, never argv;
SIGUSR1 re-reads the files and pushes a new generation.

All socket I/O happens on one thread running a selector loop; the public methods hand work to
it and wait, so every frame goes out in protocol order.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pgbv_wire as wire

log = logging.getLogger("credserver")


@dataclass(frozen=True)
class CredentialSet:
    """One generation of a set, as this server hands it out."""
    set: str
    generation: int
    username: str
    password: str = field(repr=False)
    expires_at: int


@dataclass(frozen=True)
class DrainedEvent:
    set: str
    generation: int
    username: str
    received_at: float


@dataclass(frozen=True)
class LoginFailedEvent:
    set: str
    generation: int
    username: str
    sqlstate: str
    received_at: float


@dataclass(frozen=True)
class ErrorEvent:
    code: int
    message: str
    received_at: float


@dataclass
class _Conn:
    sock: socket.socket
    conn_id: int
    peer_uid: int
    reader: wire.FrameReader = field(default_factory=wire.FrameReader)
    out: bytearray = field(default_factory=bytearray)
    ready: bool = False  # HELLO exchanged and snapshot sent
    close_after_flush: bool = False


def _text(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class CredServer:
    """The controller side of the protocol on one Unix socket."""

    SOFTWARE = b"pgbv-e2e-credserver"

    def __init__(self, socket_path: str, *, socket_mode: int = 0o666,
                 on_event: Callable[[dict[str, Any]], None] | None = None):
        self.socket_path = str(socket_path)
        self.socket_mode = socket_mode
        self._on_event = on_event
        self._cond = threading.Condition()
        # Everything below is guarded by _cond.
        self._sets: dict[str, CredentialSet] = {}
        self._last_generation: dict[str, int] = {}
        self.drained: list[DrainedEvent] = []
        self.login_failed: list[LoginFailedEvent] = []
        self.errors_received: list[ErrorEvent] = []
        self.protocol_errors: list[str] = []
        self.connections_accepted = 0
        self.handshakes = 0
        self.disconnects = 0
        self.peer_uids: list[int] = []
        self._ready_count = 0
        # Knobs for negative tests.
        self.hello_version = wire.VERSION
        # Read by the test fixture: protocol errors are expected, do not fail the test.
        self.allow_protocol_errors = False
        # The loop.
        self._thread: threading.Thread | None = None
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._conns: dict[int, _Conn] = {}
        self._next_conn_id = 1

    # -----------------------------------------------------------------------------------------
    # Life cycle.

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Listens on the socket; the state (sets, generations, records) carries over."""
        if self._thread is not None:
            raise RuntimeError("credential server already running")
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.socket_path)
            # PgBouncer runs as another user (postgres): the socket must be connectable by it.
            os.chmod(self.socket_path, self.socket_mode)
            listener.listen(16)
            listener.setblocking(False)
        except OSError as e:
            listener.close()
            raise RuntimeError(f"credential server cannot listen on {self.socket_path}: {e}; "
                               "check that its directory exists and is writable") from e
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(target=self._run, args=(listener,),
                                        name="credserver", daemon=True)
        self._thread.start()
        self._emit({"event": "listening", "socket": self.socket_path})

    def stop(self, *, goodbye: bool = False) -> None:
        """Goes away: closes the listener and every connection and removes the socket file.

        With goodbye=True each plugin first gets ERROR 5 (shutting down), as a controller
        stopping cleanly would send; otherwise the connections just drop, as on a crash.
        """
        if self._thread is None:
            return
        self._call(lambda: self._shutdown(goodbye))
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError("credential server thread did not stop within 10 s")
        self._thread = None
        for s in (self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._wake_r = self._wake_w = None
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        self._emit({"event": "stopped"})

    def __enter__(self) -> "CredServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -----------------------------------------------------------------------------------------
    # Scripting.

    def set_credentials(self, set_name: str, username: str, password: str,
                        expires_at: int = 0, *, generation: int | None = None) -> int:
        """Makes (username, password) the set's new generation and pushes it to every plugin.

        Returns the generation. It is the next one for the set unless `generation` is given
        (for tests of odd controller behaviour). If the server is stopped, the plugins get it
        in the snapshot once it is started again.
        """
        with self._cond:
            gen = generation if generation is not None else \
                self._last_generation.get(set_name, 0) + 1
            cred = CredentialSet(set_name, gen, username, password, expires_at)
            frame = wire.encode(self._credentials_msg(cred))  # validates before we commit
            self._sets[set_name] = cred
            self._last_generation[set_name] = max(gen, self._last_generation.get(set_name, 0))
        if self._thread is not None:
            self._call(lambda: self._broadcast(frame))
        self._emit({"event": "pushed", "set": set_name, "generation": gen, "username": username,
                    "expires_at": expires_at})
        return gen

    def current(self, set_name: str) -> CredentialSet | None:
        with self._cond:
            return self._sets.get(set_name)

    def send_raw(self, data: bytes, *, close: bool = False) -> int:
        """Writes `data` as is to every connection that finished its handshake.

        Returns how many connections got it. With close=True each is closed after the write.
        """
        if self._thread is None:
            raise RuntimeError("credential server is stopped")
        return self._call(lambda: self._send_raw(data, close))

    def send_malformed(self, kind: str) -> int:
        """Sends one frame of pgbv_wire.MALFORMED_KINDS to every ready plugin."""
        return self.send_raw(wire.malformed_frame(kind))

    @property
    def ready_connections(self) -> int:
        with self._cond:
            return self._ready_count

    # -----------------------------------------------------------------------------------------
    # Waiting for the plugin.

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Waits until predicate() (evaluated under the server's lock) holds."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(f"credential server: no {what} within {timeout:g} s "
                                   f"({self._summary()})")

    def wait_handshakes(self, count: int, timeout: float = 10) -> None:
        self.wait_for(lambda: self.handshakes >= count, timeout,
                      f"handshake number {count}")

    def wait_ready(self, timeout: float = 10) -> None:
        """Waits until at least one plugin is connected and has its snapshot."""
        self.wait_for(lambda: self._ready_count > 0, timeout, "connected plugin")

    def wait_disconnects(self, count: int, timeout: float = 10) -> None:
        self.wait_for(lambda: self.disconnects >= count, timeout,
                      f"disconnect number {count}")

    def wait_drained(self, set_name: str, generation: int | None = None, timeout: float = 10,
                     *, username: str | None = None) -> DrainedEvent:
        """The first DRAINED for the set matching `generation` and `username` (when given)."""
        found: list[DrainedEvent] = []

        def seen() -> bool:
            found[:] = [d for d in self.drained if d.set == set_name and
                        (generation is None or d.generation == generation) and
                        (username is None or d.username == username)]
            return bool(found)
        what = f"DRAINED for {set_name}"
        what += "" if generation is None else f" generation {generation}"
        what += "" if username is None else f" user {username}"
        self.wait_for(seen, timeout, what)
        return found[0]

    def wait_login_failed(self, set_name: str, generation: int | None = None,
                          timeout: float = 10) -> LoginFailedEvent:
        found: list[LoginFailedEvent] = []

        def seen() -> bool:
            found[:] = [e for e in self.login_failed if e.set == set_name and
                        (generation is None or e.generation == generation)]
            return bool(found)
        self.wait_for(seen, timeout, f"LOGIN_FAILED for {set_name}"
                      + ("" if generation is None else f" generation {generation}"))
        return found[0]

    def snapshot_records(self) -> dict[str, Any]:
        """A consistent copy of the counters and records."""
        with self._cond:
            return {
                "drained": list(self.drained),
                "login_failed": list(self.login_failed),
                "errors_received": list(self.errors_received),
                "protocol_errors": list(self.protocol_errors),
                "connections_accepted": self.connections_accepted,
                "handshakes": self.handshakes,
                "disconnects": self.disconnects,
                "peer_uids": list(self.peer_uids),
            }

    def _summary(self) -> str:
        return (f"connections={self.connections_accepted} handshakes={self.handshakes} "
                f"ready={self._ready_count} disconnects={self.disconnects} "
                f"drained={[(d.set, d.generation) for d in self.drained]} "
                f"login_failed={[(e.set, e.generation, e.sqlstate) for e in self.login_failed]} "
                f"errors={[(e.code, e.message) for e in self.errors_received]} "
                f"protocol_errors={self.protocol_errors}")

    # -----------------------------------------------------------------------------------------
    # The loop thread.

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Runs fn on the loop thread and returns its result."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def job() -> None:
            try:
                box["result"] = fn()
            except BaseException as e:  # handed back to the caller
                box["error"] = e
            finally:
                done.set()
        self._commands.put(job)
        assert self._wake_w is not None
        try:
            self._wake_w.send(b"x")
        except BlockingIOError:
            pass  # the loop is already being woken
        if not done.wait(10):
            raise RuntimeError("credential server loop did not answer within 10 s")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def _run(self, listener: socket.socket) -> None:
        self._sel = selectors.DefaultSelector()
        self._listener = listener
        self._stopping = False
        self._sel.register(listener, selectors.EVENT_READ, "listener")
        assert self._wake_r is not None
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stopping:
                for key, events in self._sel.select():
                    if key.data == "listener":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_commands()
                    else:
                        conn = self._conns.get(key.data)
                        if conn is None:
                            continue
                        if events & selectors.EVENT_READ:
                            self._on_readable(conn)
                        if events & selectors.EVENT_WRITE and conn.conn_id in self._conns:
                            self._flush(conn)
                    if self._stopping:
                        break
        except Exception:  # a bug here must not hang the tests silently
            log.exception("credential server loop crashed")
            with self._cond:
                self.protocol_errors.append("credential server loop crashed (see log)")
            self._shutdown(False)
        finally:
            self._drain_commands()
            self._sel.close()

    def _drain_commands(self) -> None:
        try:
            while self._wake_r is not None and self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        while True:
            try:
                job = self._commands.get_nowait()
            except queue.Empty:
                return
            job()

    def _shutdown(self, goodbye: bool) -> None:
        self._stopping = True
        if goodbye:
            bye = wire.encode(wire.Error(wire.ERR_SHUTTING_DOWN, b"credential server stopping"))
            for conn in list(self._conns.values()):
                try:
                    conn.sock.setblocking(True)
                    conn.sock.settimeout(1)
                    conn.sock.sendall(bytes(conn.out) + bye)
                except OSError:
                    pass
        for conn in list(self._conns.values()):
            self._close(conn, "credential server stopped")
        try:
            self._sel.unregister(self._listener)
        except (KeyError, ValueError):
            pass
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            conn = _Conn(sock=sock, conn_id=self._next_conn_id, peer_uid=_peer_uid(sock))
            self._next_conn_id += 1
            self._conns[conn.conn_id] = conn
            self._sel.register(sock, selectors.EVENT_READ, conn.conn_id)
            with self._cond:
                self.connections_accepted += 1
                self.peer_uids.append(conn.peer_uid)
                self._cond.notify_all()
            self._emit({"event": "connected", "connection": conn.conn_id, "uid": conn.peer_uid})

    def _on_readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._close(conn, f"read failed: {e.strerror}")
            return
        if not data:
            why = "plugin closed the connection"
            if conn.reader.pending:
                why += f" in the middle of a frame ({conn.reader.pending} bytes pending)"
            self._close(conn, why)
            return
        if conn.close_after_flush:
            return  # already rejected; ignore what follows
        conn.reader.append(data)
        while conn.conn_id in self._conns and not conn.close_after_flush:
            try:
                msg = conn.reader.next_message()
            except wire.ProtocolError as e:
                self._protocol_error(conn, str(e))
                return
            if msg is None:
                return
            self._on_message(conn, msg)

    def _on_message(self, conn: _Conn, msg: wire.Message) -> None:
        now = time.time()
        if isinstance(msg, wire.Error):
            with self._cond:
                self.errors_received.append(ErrorEvent(msg.code, _text(msg.message), now))
                self._cond.notify_all()
            self._emit({"event": "error_received", "connection": conn.conn_id,
                        "code": msg.code, "message": _text(msg.message)})
            self._close(conn, f"plugin sent ERROR {msg.code}")
            return
        if not conn.ready:
            if not isinstance(msg, wire.Hello):
                self._protocol_error(conn, f"{type(msg).__name__.upper()} before HELLO")
                return
            self._on_hello(conn, msg)
            return
        if isinstance(msg, wire.Hello):
            self._protocol_error(conn, "a second HELLO")
        elif isinstance(msg, wire.Drained):
            ev = DrainedEvent(_text(msg.set), msg.generation, _text(msg.username), now)
            with self._cond:
                self.drained.append(ev)
                self._cond.notify_all()
            self._emit({"event": "drained", "set": ev.set, "generation": ev.generation,
                        "username": ev.username})
        elif isinstance(msg, wire.LoginFailed):
            ev2 = LoginFailedEvent(_text(msg.set), msg.generation, _text(msg.username),
                                   _text(msg.sqlstate), now)
            with self._cond:
                self.login_failed.append(ev2)
                self._cond.notify_all()
            self._emit({"event": "login_failed", "set": ev2.set, "generation": ev2.generation,
                        "username": ev2.username, "sqlstate": ev2.sqlstate})
        else:
            self._protocol_error(
                conn, f"{wire.MESSAGE_NAMES.get(_type_of(msg), '?')} is not sent by a plugin")

    def _on_hello(self, conn: _Conn, msg: wire.Hello) -> None:
        if msg.version != wire.VERSION:
            text = (f"protocol version {msg.version} not supported; "
                    f"this server speaks version {wire.VERSION}").encode()
            self._queue(conn, wire.encode(wire.Error(wire.ERR_VERSION, text)))
            conn.close_after_flush = True
            with self._cond:
                self.protocol_errors.append(
                    f"connection {conn.conn_id}: plugin asked for protocol version "
                    f"{msg.version}")
                self._cond.notify_all()
            self._flush(conn)
            return
        with self._cond:
            sets = sorted(self._sets.values(), key=lambda c: c.set)
            frames = [wire.encode(wire.Hello(self.hello_version, self.SOFTWARE))]
            frames += [wire.encode(self._credentials_msg(c)) for c in sets]
            frames.append(wire.encode(wire.SnapshotDone(len(sets))))
            conn.ready = True
            self._ready_count += 1
            self.handshakes += 1
            self._cond.notify_all()
        self._queue(conn, b"".join(frames))
        self._emit({"event": "handshake", "connection": conn.conn_id,
                    "software": _text(msg.software), "snapshot": len(sets)})
        self._flush(conn)

    def _protocol_error(self, conn: _Conn, rule: str) -> None:
        with self._cond:
            self.protocol_errors.append(f"connection {conn.conn_id}: {rule}")
            self._cond.notify_all()
        log.error("credential server: protocol error from plugin on connection %d: %s",
                  conn.conn_id, rule)
        self._emit({"event": "protocol_error", "connection": conn.conn_id, "rule": rule})
        self._queue(conn, wire.encode(wire.Error(wire.ERR_PROTOCOL,
                                                 f"protocol error: {rule}"[:500].encode())))
        conn.close_after_flush = True
        self._flush(conn)

    def _broadcast(self, frame: bytes) -> None:
        for conn in list(self._conns.values()):
            if conn.ready and not conn.close_after_flush:
                self._queue(conn, frame)
                self._flush(conn)

    def _send_raw(self, data: bytes, close: bool) -> int:
        sent = 0
        for conn in list(self._conns.values()):
            if conn.ready and not conn.close_after_flush:
                self._queue(conn, data)
                conn.close_after_flush = close
                self._flush(conn)
                sent += 1
        return sent

    def _queue(self, conn: _Conn, data: bytes) -> None:
        conn.out += data

    def _flush(self, conn: _Conn) -> None:
        while conn.out:
            try:
                n = conn.sock.send(conn.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self._close(conn, f"write failed: {e.strerror}")
                return
            del conn.out[:n]
        if conn.out:
            self._sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE,
                             conn.conn_id)
        else:
            self._sel.modify(conn.sock, selectors.EVENT_READ, conn.conn_id)
            if conn.close_after_flush:
                self._close(conn, "closed after rejecting the plugin")

    def _close(self, conn: _Conn, why: str) -> None:
        if self._conns.pop(conn.conn_id, None) is None:
            return
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        with self._cond:
            if conn.ready:
                self._ready_count -= 1
            self.disconnects += 1
            self._cond.notify_all()
        self._emit({"event": "disconnected", "connection": conn.conn_id, "why": why})

    @staticmethod
    def _credentials_msg(c: CredentialSet) -> wire.Credentials:
        return wire.Credentials(c.set.encode(), c.generation, c.username.encode(),
                                c.password.encode(), c.expires_at, 0)

    def _emit(self, event: dict[str, Any]) -> None:
        event = {"time": round(time.time(), 3), **event}
        log.info("credserver %s", json.dumps(event))
        if self._on_event is not None:
            self._on_event(event)


def _type_of(msg: wire.Message) -> int:
    return {wire.Hello: wire.MSG_HELLO, wire.Error: wire.MSG_ERROR,
            wire.Credentials: wire.MSG_CREDENTIALS, wire.SnapshotDone: wire.MSG_SNAPSHOT_DONE,
            wire.Drained: wire.MSG_DRAINED, wire.LoginFailed: wire.MSG_LOGIN_FAILED}[type(msg)]


# ---------------------------------------------------------------------------------------------
# Command line.


def _read_secret_file(path: str, what: str) -> str:
    """A file's content without one trailing newline; the content itself is never printed."""
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read()
    except OSError as e:
        raise SystemExit(f"credserver: cannot read the {what} file {path}: {e.strerror}")
    except UnicodeDecodeError:
        raise SystemExit(f"credserver: the {what} file {path} is not UTF-8 text")
    if value.endswith("\r\n"):
        value = value[:-2]
    elif value.endswith("\n"):
        value = value[:-1]
    if not value:
        raise SystemExit(f"credserver: the {what} file {path} is empty")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Serve one credential set to pgbv plugins over PROTOCOL.md. "
                    "Send SIGUSR1 to re-read --user-file/--password-file and push them as a "
                    "new generation; SIGTERM or SIGINT to stop. Events are printed to stdout "
                    "as JSON lines (never a password).")
    parser.add_argument("--socket", required=True, help="Unix socket path to listen on")
    parser.add_argument("--set", required=True, dest="set_name", help="credential set name")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="login user name")
    who.add_argument("--user-file", help="file holding the login user name (re-read on SIGUSR1)")
    parser.add_argument("--password-file", required=True,
                        help="file holding the password (re-read on SIGUSR1)")
    parser.add_argument("--expires-at", type=int, default=0,
                        help="seconds since the epoch when the credentials end (default 0)")
    parser.add_argument("--socket-mode", type=lambda s: int(s, 8), default=0o666,
                        help="octal permissions of the socket file (default 0666)")
    args = parser.parse_args(argv)

    out_lock = threading.Lock()

    def print_event(event: dict[str, Any]) -> None:
        with out_lock:
            print(json.dumps(event), flush=True)

    def load() -> tuple[str, str]:
        user = args.user if args.user is not None else \
            _read_secret_file(args.user_file, "user")
        return user, _read_secret_file(args.password_file, "password")

    user, password = load()
    # The loop thread inherits this mask, so the signals reach sigwait below.
    handled = {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, handled)
    server = CredServer(args.socket, socket_mode=args.socket_mode, on_event=print_event)
    server.set_credentials(args.set_name, user, password, args.expires_at)
    try:
        server.start()
    except RuntimeError as e:
        print(f"credserver: {e}", file=sys.stderr)
        return 1
    try:
        while True:
            sig = signal.sigwait(handled)
            if sig == signal.SIGUSR1:
                try:
                    user, password = load()
                except SystemExit as e:  # keep serving the last good credentials
                    print(str(e), file=sys.stderr, flush=True)
                    continue
                server.set_credentials(args.set_name, user, password, args.expires_at)
            elif sig == signal.SIGHUP:
                continue
            else:
                break
    finally:
        server.stop(goodbye=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
