#!/usr/bin/python3
"""A test JWT issuer for the jwt auth method: a signing key pair and signed tokens.

Library:
    from jwt_issuer import JwtIssuer
    iss = JwtIssuer(alg="RS256")                 # or "ES256"; issuer="https://issuer.test"
    iss.public_key_pem                           # for auth/<mount>/config jwt_validation_pubkeys
    token = iss.mint(sub="pgbv", aud=["pgbv"], ttl=600, extra={"env": "test"})
    iss.save(dir) / JwtIssuer.load(dir)          # key.pem (0600) + pub.pem

Command line:
    jwt_issuer.py keygen --dir D [--alg RS256|ES256] [--issuer URL]
    jwt_issuer.py mint --dir D --out FILE [--sub S] [--aud A]... [--ttl 600]
        [--iat-offset -SECONDS] [--claim k=v]...
"""

import argparse
import json
import os
import sys
import time
import uuid

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

DEFAULT_ISSUER = "https://issuer.pgbv.test"


def _write(path, text, private=False):
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class JwtIssuer:
    def __init__(self, alg="RS256", issuer=DEFAULT_ISSUER, key=None, kid=None):
        if alg not in ("RS256", "ES256"):
            raise ValueError("alg must be RS256 or ES256")
        self.alg = alg
        self.issuer = issuer
        if key is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048) \
                if alg == "RS256" else ec.generate_private_key(ec.SECP256R1())
        self.key = key
        self.kid = kid or uuid.uuid4().hex[:16]

    @property
    def public_key_pem(self):
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def private_key_pem(self):
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()

    def mint(self, sub="pgbv", aud=("pgbv",), ttl=600, iat_offset=0, extra=None,
             issuer=None, include_times=True):
        """A signed JWT: iss, sub, aud, iat, nbf, exp (= iat + ttl), jti, plus extra claims.
        iat_offset shifts all times (negative: issued in the past, e.g. already expired)."""
        now = int(time.time()) + int(iat_offset)
        claims = {"iss": self.issuer if issuer is None else issuer, "sub": sub,
                  "jti": str(uuid.uuid4())}
        if aud:
            claims["aud"] = list(aud) if not isinstance(aud, str) else aud
        if include_times:
            claims.update(iat=now, nbf=now, exp=now + int(ttl))
        claims.update(extra or {})
        return pyjwt.encode(claims, self.key, algorithm=self.alg, headers={"kid": self.kid})

    def save(self, directory):
        os.makedirs(directory, exist_ok=True)
        _write(os.path.join(directory, "key.pem"), self.private_key_pem(), private=True)
        _write(os.path.join(directory, "pub.pem"), self.public_key_pem)
        _write(os.path.join(directory, "issuer.json"),
               json.dumps({"alg": self.alg, "issuer": self.issuer, "kid": self.kid}))

    @classmethod
    def load(cls, directory):
        with open(os.path.join(directory, "issuer.json"), encoding="utf-8") as f:
            meta = json.load(f)
        with open(os.path.join(directory, "key.pem"), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        return cls(meta["alg"], meta["issuer"], key, meta["kid"])


def main(argv=None):
    ap = argparse.ArgumentParser(description="Test JWT issuer (keys and signed tokens).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("keygen")
    s.add_argument("--dir", required=True)
    s.add_argument("--alg", default="RS256", choices=("RS256", "ES256"))
    s.add_argument("--issuer", default=DEFAULT_ISSUER)
    s = sub.add_parser("mint")
    s.add_argument("--dir", required=True)
    s.add_argument("--out", required=True, help="write the JWT here (mode 0600)")
    s.add_argument("--sub", default="pgbv")
    s.add_argument("--aud", action="append")
    s.add_argument("--ttl", type=int, default=600)
    s.add_argument("--iat-offset", type=int, default=0)
    s.add_argument("--claim", action="append", default=[], help="k=v (string claim)")
    a = ap.parse_args(argv)
    if a.cmd == "keygen":
        iss = JwtIssuer(a.alg, a.issuer)
        iss.save(a.dir)
        print(json.dumps({"public_key": os.path.join(a.dir, "pub.pem"), "issuer": a.issuer}))
        return 0
    iss = JwtIssuer.load(a.dir)
    extra = dict(kv.split("=", 1) for kv in a.claim)
    token = iss.mint(a.sub, a.aud or ["pgbv"], a.ttl, a.iat_offset, extra)
    _write(a.out, token + "\n", private=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
