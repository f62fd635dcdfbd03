"""A tiny blocking client for the plugin's side of PROTOCOL.md, to test credserver.py alone."""

from __future__ import annotations

import socket
import time

import pgbv_wire as wire


class PeerClosed(Exception):
    """The server closed the connection."""


class PluginClient:
    """Speaks as the plugin would, one blocking call at a time."""

    def __init__(self, socket_path: str, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(socket_path))
        self.reader = wire.FrameReader()
        self._pending: list[wire.Message] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "PluginClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, msg: wire.Message) -> None:
        self.sock.sendall(wire.encode(msg))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float = 5.0) -> wire.Message:
        """The next message from the server; PeerClosed on EOF, TimeoutError if none comes."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message from the credential server")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no message from the credential server") from None
            except ConnectionResetError:
                raise PeerClosed("connection reset") from None
            if not data:
                raise PeerClosed("credential server closed the connection")
            self._pending += self.reader.feed(data)
        return self._pending.pop(0)

    def expect_closed(self, timeout: float = 5.0) -> list[wire.Message]:
        """Reads until EOF; returns what came before it."""
        got: list[wire.Message] = []
        while True:
            try:
                got.append(self.recv(timeout))
            except PeerClosed:
                return got

    def handshake(self, version: int = wire.VERSION) -> tuple[wire.Hello, list[wire.Credentials]]:
        """HELLO, then the server's HELLO and its snapshot up to SNAPSHOT_DONE."""
        self.send(wire.Hello(version, b"pgbv-e2e-plugin-client"))
        hello = self.recv()
        if not isinstance(hello, wire.Hello):
            raise AssertionError(f"expected HELLO, got {type(hello).__name__}")
        snapshot: list[wire.Credentials] = []
        while True:
            msg = self.recv()
            if isinstance(msg, wire.SnapshotDone):
                if msg.count != len(snapshot):
                    raise AssertionError(f"SNAPSHOT_DONE says {msg.count}, got {len(snapshot)}")
                return hello, snapshot
            if not isinstance(msg, wire.Credentials):
                raise AssertionError(f"expected CREDENTIALS, got {type(msg).__name__}")
            snapshot.append(msg)
