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
from vdouble.standby import Cluster  # noqa: E402
from vdouble.stats import Stats  # noqa: E402


def write_private(path, text):
    """Writes a file atomically, readable by its owner only (it may hold a secret)."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _url_host(host):
    return f"[{host}]" if ":" in host else host


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
    p.add_argument("--tls-client-ca", action="append", default=[],
                   help="request a TLS client certificate (optional, like Vault's listener) and "
                        "accept those issued by the CAs in this PEM file (repeatable). Python's "
                        "ssl verifies what it requests, so give every CA whose clients must "
                        "reach the cert auth method, which then decides like Vault")
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
    p.add_argument("--enterprise", action="store_true",
                   help="model Vault Enterprise namespaces (sys/namespaces, X-Vault-Namespace, "
                        "namespace path prefixes); without it the header is ignored, as on "
                        "Vault's open-source server")
    p.add_argument("--standby-listen", metavar="HOST:PORT",
                   help="also listen here as a STANDBY node of an HA cluster whose active node "
                        "is --listen: API requests answer 307 to the active node, sys/health "
                        "429; sys/step-down swaps the roles (same core, same state)")
    p.add_argument("--standby-port-file", help="write the standby listener's port here")
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
                invalid_token_style=args.invalid_token_error, root_token=root_token,
                enterprise=args.enterprise)
    if root_token is None:
        write_private(args.root_token_file, core.root_token + "\n")
    if args.unseal_key_file:
        write_private(args.unseal_key_file, core.unseal_key + "\n")
    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            for ca in args.tls_client_ca:
                ctx.load_verify_locations(cafile=ca)
    elif args.tls_client_ca:
        sys.exit("vault-double: --tls-client-ca needs --tls-cert and --tls-key")
    log = RequestLog(args.log_file)
    core.log = log  # background events (static role rotations) go to the request log too
    cluster = Cluster(2) if args.standby_listen else None
    core.ha = cluster
    server = DoubleServer(core, host, int(port or 0), ctx, FaultSet(), Stats(), log,
                          args.require_request_header,
                          node=cluster.nodes[0] if cluster else None)
    standby = None
    if cluster:
        s_host, _, s_port = args.standby_listen.rpartition(":")
        s_host = s_host.strip("[]") or "127.0.0.1"
        # Each node has its own faults and counters, so a test can break one node only.
        standby = DoubleServer(core, s_host, int(s_port or 0), ctx, FaultSet(), Stats(), log,
                               args.require_request_header, node=cluster.nodes[1])
    core.start()
    server.start()
    scheme = "https" if ctx else "http"
    if standby is not None:
        standby.start()
        cluster.nodes[0].address = f"{scheme}://{_url_host(host)}:{server.port}"
        cluster.nodes[1].address = f"{scheme}://{_url_host(s_host)}:{standby.port}"
        if args.standby_port_file:
            write_private(args.standby_port_file, f"{standby.port}\n")
        log.write(f"standby node listening on {cluster.nodes[1].address}")
    if args.port_file:
        write_private(args.port_file, f"{server.port}\n")
    log.write(f"listening on {scheme}://{host}:{server.port} (pid {os.getpid()})")

    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not done.wait(1.0):
        pass
    server.stop()
    if standby is not None:
        standby.stop()
    core.stop()
    log.write("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
