"""JWT checks the way Vault's auth plugins make them (hashicorp/cap jwt.Validator): signature
against static public keys, algorithm, iss/sub/aud, and exp/nbf/iat with cap's leeway rules.

The messages are cap's, so that the auth backends can wrap them exactly as Vault does.
"""

import base64
import json
import time

import jwt as pyjwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

# Every algorithm cap and the Kubernetes plugin accept.
ALL_ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
            "EdDSA")
K8S_ALGS = ALL_ALGS[:-1]

DEFAULT_LEEWAY = 150  # cap.DefaultLeewaySeconds: derives a missing exp or nbf
CLOCK_SKEW_LEEWAY = 60  # go-jose jwt.DefaultLeeway: applies to exp/nbf/iat checks


class JWTError(Exception):
    """A validation failure; str() is cap's message."""


class Expected:
    """cap's jwt.Expected: what a valid token must carry. Leeways in seconds; 0 = default,
    negative = none."""

    def __init__(self, issuer="", subject="", audiences=(), algorithms=ALL_ALGS,
                 not_before_leeway=0, expiration_leeway=0, clock_skew_leeway=0):
        self.issuer = issuer
        self.subject = subject
        self.audiences = list(audiences or [])
        self.algorithms = tuple(algorithms)
        self.not_before_leeway = not_before_leeway
        self.expiration_leeway = expiration_leeway
        self.clock_skew_leeway = clock_skew_leeway


def parse_public_key_pem(text):
    """A PEM public key or certificate -> its RSA/ECDSA/Ed25519 public key (cap's
    ParsePublicKeyPEM; same error text)."""
    data = text.encode() if isinstance(text, str) else text
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = x509.load_pem_x509_certificate(data).public_key()
        except ValueError:
            raise ValueError("data does not contain any valid RSA or ECDSA public keys") \
                from None
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey,
                            ed25519.Ed25519PublicKey)):
        raise ValueError("data does not contain any valid RSA or ECDSA public keys")
    return key


def _b64json(part):
    pad = "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(part + pad))


def parse_unverified(token, algorithms=ALL_ALGS):
    """(header, claims) of a compact JWS without checking its signature; raises JWTError
    with go-jose's parse messages."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JWTError("go-jose/go-jose: compact JWS format must have three parts")
    try:
        header = _b64json(parts[0])
        claims = _b64json(parts[1])
    except (ValueError, TypeError):
        raise JWTError("go-jose/go-jose: invalid compact JWS payload") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JWTError("go-jose/go-jose: invalid compact JWS payload")
    alg = header.get("alg")
    if alg not in algorithms:
        raise JWTError(f'go-jose/go-jose: unexpected signature algorithm "{alg}"; expected '
                       f'{list(algorithms)}')
    if not parts[2]:
        raise JWTError("token must be signed")
    return header, claims


def _verify_signature(token, keys):
    last = None
    for key in keys:
        try:
            pyjwt.api_jws.PyJWS().decode_complete(token, key=key, algorithms=list(ALL_ALGS))
            return
        except Exception as e:  # any failure means: not this key
            last = e
    if last is None:
        raise JWTError("publicKeys must not be empty")
    raise JWTError("no known key successfully validated the token signature")


def _numeric(claims, name):
    v = claims.get(name)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise JWTError(f"go-jose/go-jose/jwt: expected number claim {name}")
    return int(v)


def audiences_of(claims):
    aud = claims.get("aud")
    if aud is None:
        return []
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [str(a) for a in aud]
    raise JWTError("go-jose/go-jose/jwt: expected string or array value to unmarshal to "
                   "Audience")


def validate(token, keys, expected, allow_missing_times=False, now=None):
    """Validates a JWT like cap's Validator.Validate (or ValidateAllowMissingIatNbfExp);
    keys None = no signature check (the Kubernetes plugin without pem_keys). Returns the
    claims."""
    try:
        header, claims = parse_unverified(token, ALL_ALGS if keys else expected.algorithms)
        if keys:
            _verify_signature(token, keys)
    except JWTError as e:
        raise JWTError(f"error verifying token signature: {e}") from None
    if header.get("alg") not in expected.algorithms:
        raise JWTError("invalid algorithm (alg) header parameter: token signed with "
                       "unexpected algorithm")
    if expected.issuer and expected.issuer != claims.get("iss", ""):
        raise JWTError("invalid issuer (iss) claim")
    if expected.subject and expected.subject != claims.get("sub", ""):
        raise JWTError("invalid subject (sub) claim")
    if expected.audiences:
        aud = audiences_of(claims)
        if not any(a in aud for a in expected.audiences):
            raise JWTError("invalid audience (aud) claim: audience claim does not match any "
                           "expected audience")
    iat, exp, nbf = _numeric(claims, "iat"), _numeric(claims, "exp"), _numeric(claims, "nbf")
    if iat == 0 and exp == 0 and nbf == 0:
        if allow_missing_times:
            return claims
        raise JWTError("no issued at (iat), not before (nbf), or expiration time (exp) claims "
                       "in token")

    def leeway(value, default):
        return 0 if value < 0 else (default if value == 0 else value)

    if exp == 0:
        exp = max(iat, nbf) + leeway(expected.expiration_leeway, DEFAULT_LEEWAY)
    if nbf == 0:
        nbf = iat if iat != 0 else exp - leeway(expected.not_before_leeway, DEFAULT_LEEWAY)
    skew = leeway(expected.clock_skew_leeway, CLOCK_SKEW_LEEWAY)
    t = time.time() if now is None else now
    if t + skew < nbf:
        raise JWTError("invalid not before (nbf) claim: token not yet valid")
    if t - skew > exp:
        raise JWTError("invalid expiration time (exp) claim: token is expired")
    if iat and t + skew < iat:
        raise JWTError("invalid issued at (iat) claim: token issued in the future")
    return claims


def sign(claims, private_key, alg="RS256", kid=None):
    """Signs claims into a compact JWS (for the test doubles that mint tokens)."""
    headers = {"kid": kid} if kid else None
    return pyjwt.encode(claims, private_key, algorithm=alg, headers=headers)
