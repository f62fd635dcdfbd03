#!/usr/bin/python3
"""Writes the seed corpus of fuzz_wire_decoder into corpus/wire_decoder/ (valid and invalid
frames of PROTOCOL.md).  Run again after a protocol change: /usr/bin/python3 make_wire_corpus.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "wire_decoder")


def s(b):
    return struct.pack(">H", len(b)) + b


def frame(t, body, length=None):
    payload = bytes([t]) + body
    return struct.pack(">I", len(payload) if length is None else length) + payload


def creds(st=b"app", gen=1, user=b"v-app-1", pw=b"pw", exp=0, flags=0):
    return frame(0x10, s(st) + struct.pack(">Q", gen) + s(user) + s(pw) + struct.pack(">qI", exp, flags))


hello = frame(0x01, struct.pack(">H", 1) + s(b"pgbv-controller 0.1.0"))
seeds = {
    "valid_hello": hello,
    "valid_error": frame(0x02, struct.pack(">H", 1) + s(b"version 2 not supported")),
    "valid_credentials": creds(exp=1800000000),
    "valid_credentials_max": creds(b"s" * 63, 2**64 - 1, b"u" * 127, b"p" * 1024, 2**63 - 1),
    "valid_snapshot_done": frame(0x11, struct.pack(">I", 2)),
    "valid_drained": frame(0x20, s(b"app") + struct.pack(">Q", 3) + s(b"v-app-0")),
    "valid_login_failed": frame(0x21, s(b"app") + struct.pack(">Q", 4) + s(b"v-app-1") + s(b"28P01")),
    "valid_conversation": hello + creds() + creds(b"ro", 9, b"v-ro", b"x") + frame(0x11, struct.pack(">I", 2))
    + creds(gen=2, pw=b"new"),
    "bad_length_zero": b"\0\0\0\0",
    "bad_length_over": frame(0x01, b"\0\1\0\0", length=8193),
    "bad_unknown_type": frame(0x33, b"abc"),
    "bad_trailing": frame(0x11, struct.pack(">I", 2) + b"\0"),
    "bad_truncated_string": frame(0x01, struct.pack(">H", 1) + struct.pack(">H", 40) + b"ab"),
    "bad_nul_username": creds(user=b"a\0b"),
    "bad_flags": creds(flags=1),
    "bad_generation_zero": creds(gen=0),
    "bad_set_charset": creds(st=b"a b"),
    "bad_sqlstate": frame(0x21, s(b"app") + struct.pack(">Q", 4) + s(b"u") + s(b"28p01")),
    "bad_after_good": hello + b"\0\0\0\0",
    "partial_frame": creds()[:-3],
}

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {OUT}")
