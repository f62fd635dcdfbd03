"""The plugin <-> controller wire protocol (include/pgbv/PROTOCOL.md), written again in Python.

This is deliberately an independent implementation: it shares no code with the C++ codec,
so the end-to-end tests double-check the plugin's encoder and decoder against the document
rather than against themselves. Encoders refuse to build a frame the protocol forbids;
`raw_frame` and `malformed_frame` exist for the negative tests that need one anyway.

Every error message here describes what was wrong with a frame, never its content: frames
carry passwords.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

# Numbers from include/pgbv/wire.h.
VERSION = 1
MAX_FRAME = 8192
HEADER_SIZE = 4
MAX_SOFTWARE = 64
MAX_ERROR_MESSAGE = 512
MAX_SET = 63
MAX_USERNAME = 127
MAX_PASSWORD = 1024
SQLSTATE_LEN = 5

MSG_HELLO = 0x01
MSG_ERROR = 0x02
MSG_CREDENTIALS = 0x10
MSG_SNAPSHOT_DONE = 0x11
MSG_DRAINED = 0x20
MSG_LOGIN_FAILED = 0x21

ERR_VERSION = 1
ERR_PROTOCOL = 2
ERR_NOT_PERMITTED = 3
ERR_TOO_MANY_CLIENTS = 4
ERR_SHUTTING_DOWN = 5
ERROR_CODES = frozenset(
    {ERR_VERSION, ERR_PROTOCOL, ERR_NOT_PERMITTED, ERR_TOO_MANY_CLIENTS, ERR_SHUTTING_DOWN})

MESSAGE_NAMES = {
    MSG_HELLO: "HELLO",
    MSG_ERROR: "ERROR",
    MSG_CREDENTIALS: "CREDENTIALS",
    MSG_SNAPSHOT_DONE: "SNAPSHOT_DONE",
    MSG_DRAINED: "DRAINED",
    MSG_LOGIN_FAILED: "LOGIN_FAILED",
}

# Which side may send which message.
FROM_CONTROLLER = frozenset({MSG_HELLO, MSG_ERROR, MSG_CREDENTIALS, MSG_SNAPSHOT_DONE})
FROM_PLUGIN = frozenset({MSG_HELLO, MSG_ERROR, MSG_DRAINED, MSG_LOGIN_FAILED})

_SET_RE = re.compile(rb"[A-Za-z0-9_.-]{1,%d}" % MAX_SET)
_SQLSTATE_RE = re.compile(rb"[0-9A-Z]{%d}" % SQLSTATE_LEN)
_U64_MAX = (1 << 64) - 1
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_U32_MAX = (1 << 32) - 1
_U16_MAX = (1 << 16) - 1


class ProtocolError(Exception):
    """A frame breaks PROTOCOL.md. The message names the rule, never the frame's content."""


@dataclass(frozen=True)
class Hello:
    version: int
    software: bytes


@dataclass(frozen=True)
class Error:
    code: int
    message: bytes


@dataclass(frozen=True)
class Credentials:
    set: bytes
    generation: int
    username: bytes
    password: bytes = field(repr=False)
    expires_at: int
    flags: int = 0


@dataclass(frozen=True)
class SnapshotDone:
    count: int


@dataclass(frozen=True)
class Drained:
    set: bytes
    generation: int
    username: bytes


@dataclass(frozen=True)
class LoginFailed:
    set: bytes
    generation: int
    username: bytes
    sqlstate: bytes


Message = Hello | Error | Credentials | SnapshotDone | Drained | LoginFailed


# ---------------------------------------------------------------------------------------------
# Field rules, shared by the encoder and the decoder.


def _check_set(value: bytes) -> None:
    if not _SET_RE.fullmatch(value):
        raise ProtocolError(f"set name must be 1-{MAX_SET} bytes of [A-Za-z0-9_.-]")


def _check_text(what: str, value: bytes, low: int, high: int) -> None:
    if not low <= len(value) <= high:
        raise ProtocolError(f"{what} must be {low}-{high} bytes, got {len(value)}")
    if b"\0" in value:
        raise ProtocolError(f"{what} contains a NUL byte")


def _check_generation(value: int) -> None:
    if not 0 < value <= _U64_MAX:
        raise ProtocolError("generation must be greater than 0")


def _check_sqlstate(value: bytes) -> None:
    if not _SQLSTATE_RE.fullmatch(value):
        raise ProtocolError(f"sqlstate must be exactly {SQLSTATE_LEN} bytes of [0-9A-Z]")


def _check_message(msg: Message) -> None:
    if isinstance(msg, Hello):
        if not 0 <= msg.version <= _U16_MAX:
            raise ProtocolError("HELLO version does not fit a u16")
        _check_text("HELLO software", msg.software, 0, MAX_SOFTWARE)
    elif isinstance(msg, Error):
        if msg.code not in ERROR_CODES:
            raise ProtocolError("ERROR code out of range")
        _check_text("ERROR message", msg.message, 0, MAX_ERROR_MESSAGE)
    elif isinstance(msg, Credentials):
        _check_set(msg.set)
        _check_generation(msg.generation)
        _check_text("username", msg.username, 1, MAX_USERNAME)
        _check_text("password", msg.password, 1, MAX_PASSWORD)
        if not _I64_MIN <= msg.expires_at <= _I64_MAX:
            raise ProtocolError("expires_at does not fit an i64")
        if msg.flags != 0:
            raise ProtocolError("CREDENTIALS flags must be 0 in version 1")
    elif isinstance(msg, SnapshotDone):
        if not 0 <= msg.count <= _U32_MAX:
            raise ProtocolError("SNAPSHOT_DONE count does not fit a u32")
    elif isinstance(msg, Drained):
        _check_set(msg.set)
        _check_generation(msg.generation)
        _check_text("username", msg.username, 1, MAX_USERNAME)
    elif isinstance(msg, LoginFailed):
        _check_set(msg.set)
        _check_generation(msg.generation)
        _check_text("username", msg.username, 1, MAX_USERNAME)
        _check_sqlstate(msg.sqlstate)
    else:
        raise TypeError(f"not a protocol message: {type(msg).__name__}")


# ---------------------------------------------------------------------------------------------
# Encoding.


def _str(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def _body(msg: Message) -> tuple[int, bytes]:
    if isinstance(msg, Hello):
        return MSG_HELLO, struct.pack(">H", msg.version) + _str(msg.software)
    if isinstance(msg, Error):
        return MSG_ERROR, struct.pack(">H", msg.code) + _str(msg.message)
    if isinstance(msg, Credentials):
        return MSG_CREDENTIALS, (_str(msg.set) + struct.pack(">Q", msg.generation) +
                                 _str(msg.username) + _str(msg.password) +
                                 struct.pack(">qI", msg.expires_at, msg.flags))
    if isinstance(msg, SnapshotDone):
        return MSG_SNAPSHOT_DONE, struct.pack(">I", msg.count)
    if isinstance(msg, Drained):
        return MSG_DRAINED, _str(msg.set) + struct.pack(">Q", msg.generation) + _str(msg.username)
    if isinstance(msg, LoginFailed):
        return MSG_LOGIN_FAILED, (_str(msg.set) + struct.pack(">Q", msg.generation) +
                                  _str(msg.username) + _str(msg.sqlstate))
    raise TypeError(f"not a protocol message: {type(msg).__name__}")


def raw_frame(msg_type: int, body: bytes) -> bytes:
    """A frame with any type and body, unchecked: for negative tests."""
    return struct.pack(">IB", len(body) + 1, msg_type) + body


def encode(msg: Message) -> bytes:
    """One frame for `msg`; raises ProtocolError if any field breaks the protocol's rules."""
    _check_message(msg)
    msg_type, body = _body(msg)
    if len(body) + 1 > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body) + 1} bytes exceeds {MAX_FRAME}")
    return raw_frame(msg_type, body)


# ---------------------------------------------------------------------------------------------
# Decoding.


class _Reader:
    """Reads a frame body field by field; running past the end is a protocol error."""

    def __init__(self, body: bytes, name: str):
        self._body = body
        self._pos = 0
        self._name = name

    def _take(self, n: int, what: str) -> bytes:
        if self._pos + n > len(self._body):
            raise ProtocolError(f"{self._name}: field {what} runs past the end of the frame")
        chunk = self._body[self._pos:self._pos + n]
        self._pos += n
        return chunk

    def u16(self, what: str) -> int:
        return struct.unpack(">H", self._take(2, what))[0]

    def u32(self, what: str) -> int:
        return struct.unpack(">I", self._take(4, what))[0]

    def u64(self, what: str) -> int:
        return struct.unpack(">Q", self._take(8, what))[0]

    def i64(self, what: str) -> int:
        return struct.unpack(">q", self._take(8, what))[0]

    def str(self, what: str) -> bytes:
        return self._take(self.u16(what), what)

    def finish(self) -> None:
        if self._pos != len(self._body):
            raise ProtocolError(
                f"{self._name}: {len(self._body) - self._pos} bytes left after the last field")


def decode_body(msg_type: int, body: bytes) -> Message:
    """Decodes and validates one frame's type and body."""
    name = MESSAGE_NAMES.get(msg_type)
    if name is None:
        raise ProtocolError(f"unknown message type 0x{msg_type:02x}")
    r = _Reader(body, name)
    msg: Message
    if msg_type == MSG_HELLO:
        msg = Hello(r.u16("version"), r.str("software"))
    elif msg_type == MSG_ERROR:
        msg = Error(r.u16("code"), r.str("message"))
    elif msg_type == MSG_CREDENTIALS:
        msg = Credentials(r.str("set"), r.u64("generation"), r.str("username"),
                          r.str("password"), r.i64("expires_at"), r.u32("flags"))
    elif msg_type == MSG_SNAPSHOT_DONE:
        msg = SnapshotDone(r.u32("count"))
    elif msg_type == MSG_DRAINED:
        msg = Drained(r.str("set"), r.u64("generation"), r.str("username"))
    else:
        msg = LoginFailed(r.str("set"), r.u64("generation"), r.str("username"),
                          r.str("sqlstate"))
    r.finish()
    try:
        _check_message(msg)
    except ProtocolError as e:
        raise ProtocolError(f"{name}: {e}") from None
    return msg


class FrameReader:
    """Splits a byte stream into validated messages; a protocol error is final."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """Appends `data`; returns every complete message. Raises ProtocolError."""
        self.append(data)
        out: list[Message] = []
        while (msg := self.next_message()) is not None:
            out.append(msg)
        return out

    def append(self, data: bytes) -> None:
        self._buf += data

    def next_message(self) -> Message | None:
        """The next complete message, or None if more bytes are needed. Raises ProtocolError."""
        if len(self._buf) < HEADER_SIZE:
            return None
        (length,) = struct.unpack_from(">I", self._buf)
        # Checked before waiting for the body, so that a huge length fails at once.
        if length == 0 or length > MAX_FRAME:
            raise ProtocolError(f"frame length {length} outside 1..{MAX_FRAME}")
        if len(self._buf) < HEADER_SIZE + length:
            return None
        frame = bytes(self._buf[HEADER_SIZE:HEADER_SIZE + length])
        del self._buf[:HEADER_SIZE + length]
        return decode_body(frame[0], frame[1:])

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buf)


def decode_all(data: bytes) -> list[Message]:
    """Every message in `data`, which must end on a frame boundary."""
    reader = FrameReader()
    out = reader.feed(data)
    if reader.pending:
        raise ProtocolError(f"{reader.pending} bytes of an incomplete frame at the end")
    return out


# ---------------------------------------------------------------------------------------------
# Frames the protocol forbids, each breaking one rule, for the negative tests.


def malformed_frame(kind: str) -> bytes:
    """A frame a strict receiver must reject. `kind` is one of MALFORMED_KINDS."""
    cred_fields = (_str(b"app_rw") + struct.pack(">Q", 1) + _str(b"user") + _str(b"pw"))
    frames = {
        "zero_length": struct.pack(">I", 0),
        "oversized_length": struct.pack(">IB", MAX_FRAME + 1, MSG_CREDENTIALS),
        "huge_length": struct.pack(">IB", 0xFFFFFFFF, MSG_CREDENTIALS),
        "unknown_type": raw_frame(0x7F, b""),
        "wrong_direction": raw_frame(MSG_DRAINED, _str(b"app_rw") + struct.pack(">Q", 1) +
                                     _str(b"user")),
        "truncated_field": raw_frame(MSG_CREDENTIALS, _str(b"app_rw") + b"\0\0\0"),
        "trailing_bytes": raw_frame(MSG_SNAPSHOT_DONE, struct.pack(">I", 0) + b"x"),
        "bad_flags": raw_frame(MSG_CREDENTIALS, cred_fields + struct.pack(">qI", 0, 1)),
        "zero_generation": raw_frame(MSG_CREDENTIALS, _str(b"app_rw") + struct.pack(">Q", 0) +
                                     _str(b"user") + _str(b"pw") + struct.pack(">qI", 0, 0)),
        "nul_in_password": raw_frame(MSG_CREDENTIALS, _str(b"app_rw") + struct.pack(">Q", 1) +
                                     _str(b"user") + _str(b"p\0w") + struct.pack(">qI", 0, 0)),
        "bad_set_name": raw_frame(MSG_CREDENTIALS, _str(b"app rw") + struct.pack(">Q", 1) +
                                  _str(b"user") + _str(b"pw") + struct.pack(">qI", 0, 0)),
        "password_too_long": raw_frame(
            MSG_CREDENTIALS, _str(b"app_rw") + struct.pack(">Q", 1) + _str(b"user") +
            _str(b"p" * (MAX_PASSWORD + 1)) + struct.pack(">qI", 0, 0)),
        "second_hello": raw_frame(MSG_HELLO, struct.pack(">H", VERSION) + _str(b"again")),
    }
    try:
        return frames[kind]
    except KeyError:
        raise ValueError(f"unknown malformed frame kind {kind!r}; "
                         f"choose from {sorted(frames)}") from None


MALFORMED_KINDS = ("zero_length", "oversized_length", "huge_length", "unknown_type",
                   "wrong_direction", "truncated_field", "trailing_bytes", "bad_flags",
                   "zero_generation", "nul_in_password", "bad_set_name", "password_too_long",
                   "second_hello")
