"""Helpers the test modules share: PostgreSQL role checks, waiting, TLS files."""

import os
import subprocess
import time


def role_exists(pg, name):
    return pg.psql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{name}'").strip() == "1"


def valid_until_epoch(pg, name):
    out = pg.psql(f"SELECT extract(epoch FROM rolvaliduntil) FROM pg_roles "
                  f"WHERE rolname = '{name}'").strip()
    return float(out) if out else None


def wait_for(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def capped_warning(requested, granted):
    return (f'TTL of "{requested}" exceeded the effective max_ttl of "{granted}"; '
            f'TTL value is capped accordingly')


def short(seconds):
    """Vault's human duration for under an hour."""
    m, s = divmod(int(seconds), 60)
    if m and s:
        return f"{m}m{s}s"
    return f"{m}m" if m else f"{s}s"


def make_tls_files(directory, host="127.0.0.1"):
    """A throw-away CA and a server certificate for host, made with the openssl CLI.

    Returns (ca_cert, server_cert, server_key) paths.
    """
    ca_key, ca_crt = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.crt")
    key, csr, crt = (os.path.join(directory, n) for n in ("server.key", "server.csr",
                                                          "server.crt"))
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w", encoding="utf-8") as f:
        f.write(f"subjectAltName=IP:{host},DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(argv):
        subprocess.run(argv, check=True, capture_output=True)

    run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "2",
         "-subj", "/CN=pgbv test CA"])
    run(["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={host}"])
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
         "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext])
    return ca_crt, crt, key
