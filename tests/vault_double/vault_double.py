#!/usr/bin/python3
"""Runs the Vault test double: an HTTP(S) server that answers like HashiCorp Vault's API.

Configure it exactly as a Vault operator would (sys/mounts, sys/auth, sys/policies, database/
config, ...). Tests that need faults use the separate /_double/ control API (root token only).
"""

import argparse
import os
import signal
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vdouble import leases  # noqa: E402
from vdouble.core import Core  # noqa: E402
from vdouble.durations import parse_duration_second  # noqa: E402
from vdouble.faults import FaultSet  # noqa: E402
from vdouble.httpserver import DoubleServer, RequestLog  # noqa: E402
from vdouble.stats import Stats  # noqa: E402


def write_private(path, text):
    """Writes a file atomically, readable by its owner only (it may hold a secret)."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", default="127.0.0.1:0",
                   help="HOST:PORT to listen on; port 0 picks a free port (default %(default)s)")
    p.add_argument("--root-token-file", required=True,
                   help="file holding the root token: read if it exists and is not empty, "
                        "otherwise a new root token is generated and written there (mode 0600)")
    p.add_argument("--port-file", help="write the chosen port here once listening")
    p.add_argument("--tls-cert", help="PEM certificate (chain) to serve HTTPS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--require-request-header", action="store_true",
                   help="answer 412 to requests without 'X-Vault-Request: true' (like a Vault "
                        "Agent/Proxy listener with require_request_header)")
    p.add_argument("--log-file", help="append the request log here instead of stderr")
    p.add_argument("--unseal-key-file",
                   help="write the unseal key here (needed to use sys/unseal after sys/seal)")
    p.add_argument("--default-lease-ttl", default="768h",
                   help="server default_lease_ttl (default %(default)s)")
    p.add_argument("--max-lease-ttl", default="768h",
                   help="server max_lease_ttl (default %(default)s)")
    p.add_argument("--invalid-token-error", choices=("modern", "legacy"), default="modern",
                   help="403 text for an expired/revoked token: 'modern' = Vault >= 1.15 "
                        "('permission denied' + 'invalid token', multierror), 'legacy' = "
                        "'permission denied' only (older Vault, OpenBao)")
    p.add_argument("--vault-version", default="1.17.2", help="version reported by sys/health")
    p.add_argument("--revoke-retry-base", type=float, default=leases.REVOKE_RETRY_BASE,
                   help="seconds before the first retry of a failed lease revocation")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if bool(args.tls_cert) != bool(args.tls_key):
        sys.exit("vault-double: --tls-cert and --tls-key go together")
    root_token = None
    if os.path.exists(args.root_token_file):
        with open(args.root_token_file, encoding="utf-8") as f:
            root_token = f.read().strip() or None
    leases.REVOKE_RETRY_BASE = args.revoke_retry_base
    core = Core(version=args.vault_version,
                default_ttl=parse_duration_second(args.default_lease_ttl),
                max_ttl=parse_duration_second(args.max_lease_ttl),
                invalid_token_style=args.invalid_token_error, root_token=root_token)
    if root_token is None:
        write_private(args.root_token_file, core.root_token + "\n")
    if args.unseal_key_file:
        write_private(args.unseal_key_file, core.unseal_key + "\n")
    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    log = RequestLog(args.log_file)
    server = DoubleServer(core, host, int(port or 0), ctx, FaultSet(), Stats(), log,
                          args.require_request_header)
    core.start()
    server.start()
    if args.port_file:
        write_private(args.port_file, f"{server.port}\n")
    scheme = "https" if ctx else "http"
    log.write(f"listening on {scheme}://{host}:{server.port} (pid {os.getpid()})")

    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not done.wait(1.0):
        pass
    server.stop()
    core.stop()
    log.write("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
