#!/usr/bin/python3
"""Throw-away TLS material for tests: a CA, a server certificate, client certificates.

Library:
    from tlsfiles import make_tls_set
    t = make_tls_set("/tmp/dir")          # writes PEM files, returns their paths
    t.ca_cert, t.server_cert, t.server_key, t.client_cert, t.client_key,
    t.untrusted_ca_cert, t.untrusted_client_cert, t.untrusted_client_key

    Lower level: new_ca(cn), issue(ca, cn, dns=(), ips=(), server=False, client=False),
    write_pem(path, cert_or_key, private=False).

Command line (writes the same files into DIR, prints their paths as JSON):
    /usr/bin/python3 tests/vault_double/tlsfiles.py --out-dir DIR \
        [--server-dns vault.test]... [--client-cn pgbv-controller] [--days 2]

The server certificate is valid for 127.0.0.1, ::1, localhost and every --server-dns name
(default vault.test, for tls_server_name tests). The trusted client certificate is issued by
the test CA with clientAuth; the untrusted one by a second, unrelated CA. Keys are ECDSA P-256.
Made with python3-cryptography; nothing here is meant for production.
"""

import argparse
import datetime
import ipaddress
import json
import os
import sys
from dataclasses import asdict, dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_SERVER_DNS = ("vault.test",)


@dataclass
class Issued:
    """A certificate and its private key (cryptography objects)."""
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def key_pem(self):
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()


@dataclass
class TlsSet:
    """Paths of the PEM files make_tls_set() wrote."""
    directory: str
    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    untrusted_ca_cert: str
    untrusted_client_cert: str
    untrusted_client_key: str
    server_names: list
    client_cn: str


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pgbouncer-vault tests")])


def _validity(days):
    # Back-dated a little, so that a clock a few seconds behind still accepts it.
    now = datetime.datetime.now(datetime.timezone.utc)
    return now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)


def new_ca(cn="pgbv test CA", days=2):
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity(days)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


def issue(ca, cn, dns=(), ips=(), server=False, client=False, days=2, emails=()):
    """A leaf certificate signed by ca (an Issued) with the given SANs and key usages."""
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity(days)
    sans = [x509.DNSName(d) for d in dns] + \
           [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] + \
           [x509.RFC822Name(e) for e in emails]
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    b = (x509.CertificateBuilder()
         .subject_name(_name(cn)).issuer_name(ca.cert.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                      key_cert_sign=False, crl_sign=False,
                                      content_commitment=False, data_encipherment=False,
                                      key_agreement=True, encipher_only=False,
                                      decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             ca.key.public_key()), critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usages:
        b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return Issued(b.sign(ca.key, hashes.SHA256()), key)


def write_pem(path, text, private=False):
    """Writes PEM text atomically; private keys get mode 0600."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def make_tls_set(directory, server_dns=DEFAULT_SERVER_DNS, client_cn="pgbv-controller",
                 days=2):
    """Writes a complete set of test TLS files into directory; returns a TlsSet of paths.

    Files: ca.crt/ca.key (test CA), server.crt/server.key (127.0.0.1, ::1, localhost and
    server_dns), client.crt/client.key (CN client_cn, DNS SAN client_cn, clientAuth, issued
    by the test CA), untrusted-ca.crt and untrusted-client.crt/.key (same CN, unrelated CA).
    """
    os.makedirs(directory, exist_ok=True)
    p = lambda n: os.path.join(directory, n)  # noqa: E731
    ca = new_ca("pgbv test CA", days)
    names = ["localhost", *server_dns]
    server = issue(ca, "127.0.0.1", dns=names, ips=("127.0.0.1", "::1"), server=True,
                   days=days)
    client = issue(ca, client_cn, dns=(client_cn,), client=True, days=days)
    other_ca = new_ca("pgbv untrusted CA", days)
    other = issue(other_ca, client_cn, dns=(client_cn,), client=True, days=days)
    write_pem(p("ca.crt"), ca.cert_pem())
    write_pem(p("ca.key"), ca.key_pem(), private=True)
    write_pem(p("server.crt"), server.cert_pem())
    write_pem(p("server.key"), server.key_pem(), private=True)
    write_pem(p("client.crt"), client.cert_pem())
    write_pem(p("client.key"), client.key_pem(), private=True)
    write_pem(p("untrusted-ca.crt"), other_ca.cert_pem())
    write_pem(p("untrusted-client.crt"), other.cert_pem())
    write_pem(p("untrusted-client.key"), other.key_pem(), private=True)
    return TlsSet(directory=directory, ca_cert=p("ca.crt"), ca_key=p("ca.key"),
                  server_cert=p("server.crt"), server_key=p("server.key"),
                  client_cert=p("client.crt"), client_key=p("client.key"),
                  untrusted_ca_cert=p("untrusted-ca.crt"),
                  untrusted_client_cert=p("untrusted-client.crt"),
                  untrusted_client_key=p("untrusted-client.key"),
                  server_names=["127.0.0.1", "::1", *names], client_cn=client_cn)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a test CA, server and client certificates.")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--server-dns", action="append",
                    help="extra DNS name in the server certificate (repeatable; "
                         "default vault.test)")
    ap.add_argument("--client-cn", default="pgbv-controller")
    ap.add_argument("--days", type=int, default=2)
    a = ap.parse_args(argv)
    t = make_tls_set(a.out_dir, tuple(a.server_dns or DEFAULT_SERVER_DNS), a.client_cn, a.days)
    print(json.dumps(asdict(t), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
