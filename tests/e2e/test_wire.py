"""The Python codec of PROTOCOL.md against hand-written bytes and every rule in the document."""

import struct

import pytest

import pgbv_wire as wire


def test_golden_bytes():
    # Written out by hand from PROTOCOL.md, so that the codec is checked against the text.
    assert wire.encode(wire.Hello(1, b"ab")) == b"\x00\x00\x00\x07\x01\x00\x01\x00\x02ab"
    assert wire.encode(wire.SnapshotDone(3)) == b"\x00\x00\x00\x05\x11\x00\x00\x00\x03"
    assert wire.encode(wire.Error(2, b"x")) == b"\x00\x00\x00\x06\x02\x00\x02\x00\x01x"
    cred = wire.encode(wire.Credentials(b"s", 258, b"u", b"p", -1, 0))
    assert cred == (b"\x00\x00\x00\x1e\x10" + b"\x00\x01s" + b"\x00" * 6 + b"\x01\x02" +
                    b"\x00\x01u" + b"\x00\x01p" + b"\xff" * 8 + b"\x00" * 4)
    assert wire.encode(wire.Drained(b"s", 1, b"u")) == (
        b"\x00\x00\x00\x0f\x20" + b"\x00\x01s" + b"\x00" * 7 + b"\x01" + b"\x00\x01u")
    assert wire.encode(wire.LoginFailed(b"s", 1, b"u", b"28P01")) == (
        b"\x00\x00\x00\x16\x21" + b"\x00\x01s" + b"\x00" * 7 + b"\x01" + b"\x00\x01u" +
        b"\x00\x0528P01")


ROUND_TRIP = [
    wire.Hello(1, b"pgbv-plugin 0.1"),
    wire.Hello(65535, b""),
    wire.Error(5, b"shutting down"),
    wire.Credentials(b"app_rw", 1, b"v-token-app-Xy", b"p w'\"\\\xc3\xa4", 0, 0),
    wire.Credentials(b"A.b-c_9", (1 << 64) - 1, b"u" * 127, b"p" * 1024, 1893456000, 0),
    wire.Credentials(b"s" * 63, 7, b"u", b"\x01\xff", -(1 << 63), 0),
    wire.SnapshotDone(0),
    wire.SnapshotDone((1 << 32) - 1),
    wire.Drained(b"app_rw", 42, b"role"),
    wire.LoginFailed(b"app_rw", 42, b"role", b"28P01"),
]


@pytest.mark.parametrize("msg", ROUND_TRIP, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    assert wire.decode_all(wire.encode(msg)) == [msg]


def test_stream_split_at_every_byte():
    stream = b"".join(wire.encode(m) for m in ROUND_TRIP)
    reader = wire.FrameReader()
    got = []
    for i in range(len(stream)):
        got += reader.feed(stream[i:i + 1])
    assert got == ROUND_TRIP
    assert reader.pending == 0


def test_password_not_in_repr():
    assert b"hunter2" not in repr(wire.Credentials(b"s", 1, b"u", b"hunter2", 0, 0)).encode()


@pytest.mark.parametrize("msg", [
    wire.Credentials(b"", 1, b"u", b"p", 0, 0),
    wire.Credentials(b"s" * 64, 1, b"u", b"p", 0, 0),
    wire.Credentials(b"a/b", 1, b"u", b"p", 0, 0),
    wire.Credentials(b"s", 0, b"u", b"p", 0, 0),
    wire.Credentials(b"s", 1, b"", b"p", 0, 0),
    wire.Credentials(b"s", 1, b"u" * 128, b"p", 0, 0),
    wire.Credentials(b"s", 1, b"u\0", b"p", 0, 0),
    wire.Credentials(b"s", 1, b"u", b"", 0, 0),
    wire.Credentials(b"s", 1, b"u", b"p" * 1025, 0, 0),
    wire.Credentials(b"s", 1, b"u", b"p", 0, 1),
    wire.Hello(1, b"s" * 65),
    wire.Error(0, b"x"),
    wire.Error(6, b"x"),
    wire.Error(1, b"x" * 513),
    wire.LoginFailed(b"s", 1, b"u", b"28p01"),
    wire.LoginFailed(b"s", 1, b"u", b"2801"),
    wire.Drained(b"s", 0, b"u"),
], ids=lambda m: type(m).__name__)
def test_encoder_refuses(msg):
    with pytest.raises(wire.ProtocolError):
        wire.encode(msg)


DECODE_ONLY_VALID = {"wrong_direction", "second_hello"}  # state rules, not codec rules


@pytest.mark.parametrize("kind", [k for k in wire.MALFORMED_KINDS if k not in DECODE_ONLY_VALID])
def test_decoder_rejects_malformed(kind):
    with pytest.raises(wire.ProtocolError):
        wire.decode_all(wire.malformed_frame(kind))


@pytest.mark.parametrize("kind", sorted(DECODE_ONLY_VALID))
def test_state_violations_decode(kind):
    assert len(wire.decode_all(wire.malformed_frame(kind))) == 1


def test_length_bound_is_checked_before_the_body_arrives():
    reader = wire.FrameReader()
    with pytest.raises(wire.ProtocolError, match="outside"):
        reader.feed(struct.pack(">I", wire.MAX_FRAME + 1))
    # Exactly the bound is a legal frame length; this one fails only on its type.
    with pytest.raises(wire.ProtocolError, match="unknown message type"):
        wire.FrameReader().feed(wire.raw_frame(0x55, b"\0" * (wire.MAX_FRAME - 1)))


def test_error_messages_never_show_content():
    secret = b"topsecretpassword"
    frame = wire.raw_frame(wire.MSG_CREDENTIALS, struct.pack(">H", 6) + b"app_rw" +
                           struct.pack(">Q", 1) + struct.pack(">H", 1) + b"u" +
                           struct.pack(">H", len(secret)) + secret + b"\0" * 12 + b"junk")
    with pytest.raises(wire.ProtocolError) as e:
        wire.decode_all(frame)
    assert "topsecret" not in str(e.value)
    assert "bytes left" in str(e.value)


def test_incomplete_frame_at_end():
    with pytest.raises(wire.ProtocolError, match="incomplete"):
        wire.decode_all(wire.encode(wire.SnapshotDone(1))[:-1])
