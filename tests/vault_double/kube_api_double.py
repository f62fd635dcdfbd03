#!/usr/bin/python3
"""A fake Kubernetes API server for the kubernetes auth method: it mints service-account JWTs
and answers the TokenReview API the way kube-apiserver does, so that the Vault double (and a
real Vault) can be pointed at it as `kubernetes_host`.

Library (in-process, one thread per connection):
    with KubeApiDouble() as k8s:                 # or KubeApiDouble(tls_cert=..., tls_key=...)
        reviewer = k8s.token("kube-system", "vault-reviewer")     # can create TokenReviews
        jwt = k8s.token("apps", "pgbv", audiences=["vault"], ttl=600, pod="pgbv-0")
        k8s.revoke(jwt)                          # like deleting the pod the token is bound to
        k8s.delete_service_account("apps", "pgbv")   # every token of that SA stops working
        k8s.url, k8s.ca_pem, k8s.public_key_pem, k8s.issuer

Command line:
    kube_api_double.py serve --port-file F --admin-token-file F [--listen 127.0.0.1:0]
        [--tls-cert C --tls-key K] [--issuer URL] [--log-file F]
    kube_api_double.py mint --port-file F --admin-token-file F [--tls --cacert CA]
        --namespace NS --name SA --out FILE [--audience A]... [--ttl 3600] [--pod NAME]
        [--iat-offset -SECONDS]
    kube_api_double.py revoke --port-file F --admin-token-file F --token-file FILE
    kube_api_double.py delete-sa --port-file F --admin-token-file F --namespace NS --name SA

Kubernetes API (no authentication other than bearer service-account tokens):
    POST /apis/authentication.k8s.io/v1/tokenreviews   {"spec":{"token","audiences"}}
        The caller's bearer token must be a valid token of a service account allowed to
        review (the system:auth-delegator binding: can_review, true by default); else 401/403
        with a Status body. The reviewed token must be signed by this server, carry its
        issuer, not be expired (60 s leeway, like kube-apiserver), not revoked, its service
        account must still exist with the same uid, and its audiences must meet the wanted
        ones (default: the API server's own audience, the issuer).
    GET /version, GET /healthz.

Control API (not Kubernetes; header `Authorization: Bearer <admin token>`):
    POST /_kube_double/serviceaccount {"namespace","name","can_review"} -> {"uid"}
    DELETE /_kube_double/serviceaccount {"namespace","name"}
    POST /_kube_double/token {"namespace","name","audiences","ttl","pod","iat_offset"}
        -> {"token","exp","uid"}
    POST /_kube_double/revoke {"token"}
    GET /_kube_double/info -> {"issuer","public_key_pem","reviews"}

Tokens have the claims of a projected service-account token: iss, sub
(system:serviceaccount:<ns>:<name>), aud, exp, iat, nbf, jti and kubernetes.io {namespace,
serviceaccount {name, uid}, pod {name, uid}}; RS256 with a kid header. The request log never
contains a token.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import secrets
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
CONTROL_PREFIX = "/_kube_double/"
LEEWAY = 60  # kube-apiserver validates exp/nbf/iat with go-jose's default leeway


def _status(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


class ServiceAccount:
    def __init__(self, namespace, name, can_review=True):
        self.namespace = namespace
        self.name = name
        self.uid = str(uuid.uuid4())
        self.can_review = can_review

    @property
    def username(self):
        return f"system:serviceaccount:{self.namespace}:{self.name}"


class Cluster:
    """The state: signing key, service accounts, revoked token ids; thread-safe."""

    def __init__(self, issuer=DEFAULT_ISSUER):
        self.issuer = issuer
        self.api_audiences = [issuer]
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(pub).digest()).decode().rstrip("=")
        self.public_key_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self.lock = threading.Lock()
        self.accounts = {}
        self.revoked = set()
        self.reviews = 0

    def create_service_account(self, namespace, name, can_review=True):
        with self.lock:
            sa = self.accounts.get((namespace, name))
            if sa is None:
                sa = self.accounts[(namespace, name)] = ServiceAccount(namespace, name,
                                                                       can_review)
            else:
                sa.can_review = can_review
            return sa.uid

    def delete_service_account(self, namespace, name):
        with self.lock:
            self.accounts.pop((namespace, name), None)

    def token(self, namespace, name, audiences=None, ttl=3600, pod=None, iat_offset=0,
              can_review=None):
        """Mints a projected service-account token (creates the service account if needed).

        iat_offset shifts iat/nbf/exp (negative: a token issued in the past, e.g. expired).
        """
        with self.lock:
            sa = self.accounts.get((namespace, name))
            if sa is None:
                sa = self.accounts[(namespace, name)] = ServiceAccount(
                    namespace, name, True if can_review is None else can_review)
            elif can_review is not None:
                sa.can_review = can_review
        now = int(time.time()) + int(iat_offset)
        kube = {"namespace": namespace, "serviceaccount": {"name": name, "uid": sa.uid}}
        if pod:
            kube["pod"] = {"name": pod, "uid": str(uuid.uuid4())}
        claims = {"aud": list(audiences) if audiences else list(self.api_audiences),
                  "exp": now + int(ttl), "iat": now, "iss": self.issuer,
                  "jti": str(uuid.uuid4()), "kubernetes.io": kube, "nbf": now,
                  "sub": sa.username}
        return pyjwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def revoke(self, token):
        """Invalidates one token (as when the pod or secret it is bound to is deleted)."""
        claims = self._unverified(token)
        if claims and claims.get("jti"):
            with self.lock:
                self.revoked.add(claims["jti"])

    @staticmethod
    def _unverified(token):
        try:
            return pyjwt.decode(token, options={"verify_signature": False})
        except pyjwt.PyJWTError:
            return None

    def authenticate(self, token, audiences):
        """kube-apiserver's service-account authenticator: (service account, audiences) or
        raises ValueError with the reason."""
        try:
            claims = pyjwt.decode(token, self.key.public_key(), algorithms=["RS256"],
                                  options={"verify_aud": False, "verify_exp": False,
                                           "verify_nbf": False, "verify_iat": False})
        except pyjwt.PyJWTError:
            raise ValueError("invalid bearer token") from None
        if claims.get("iss") != self.issuer:
            raise ValueError("invalid bearer token")
        now = time.time()
        if "exp" in claims and now - LEEWAY > claims["exp"]:
            raise ValueError("service account token has expired")
        if "nbf" in claims and now + LEEWAY < claims["nbf"]:
            raise ValueError("service account token is not valid yet")
        aud = claims.get("aud") or []
        aud = [aud] if isinstance(aud, str) else list(aud)
        wanted = list(audiences) if audiences else list(self.api_audiences)
        matched = [a for a in wanted if a in aud]
        if not matched:
            raise ValueError(f"token audiences {json.dumps(aud)} is invalid for the target "
                             f"audiences {json.dumps(wanted)}")
        kube = claims.get("kubernetes.io") or {}
        ns = kube.get("namespace", "")
        sa_ref = kube.get("serviceaccount") or {}
        with self.lock:
            if claims.get("jti") in self.revoked:
                pod = (kube.get("pod") or {}).get("name", "")
                raise ValueError(f'pods "{pod}" not found' if pod else
                                 "service account token has been invalidated")
            sa = self.accounts.get((ns, sa_ref.get("name", "")))
            if sa is None:
                raise ValueError(f'serviceaccounts "{sa_ref.get("name", "")}" not found')
            if sa.uid != sa_ref.get("uid"):
                raise ValueError(f"service account UID ({sa.uid}) does not match claim "
                                 f"({sa_ref.get('uid')})")
            return sa, matched, kube

    def review(self, bearer, body):
        """POST tokenreviews: (HTTP status, JSON body)."""
        try:
            caller, _, _ = self.authenticate(bearer, None)
        except ValueError:
            return 401, _status(401, "Unauthorized", "Unauthorized")
        if not caller.can_review:
            return 403, _status(
                403, "Forbidden", f'tokenreviews.authentication.k8s.io is forbidden: User '
                f'"{caller.username}" cannot create resource "tokenreviews" in API group '
                f'"authentication.k8s.io" at the cluster scope',
                {"group": "authentication.k8s.io", "kind": "tokenreviews"})
        spec = (body or {}).get("spec") or {}
        token = spec.get("token") or ""
        audiences = spec.get("audiences") or []
        with self.lock:
            self.reviews += 1
        out_spec = {"token": "<redacted>"} if token else {}
        if audiences:
            out_spec["audiences"] = audiences
        resp = {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None}, "spec": out_spec}
        try:
            sa, matched, kube = self.authenticate(token, audiences)
        except ValueError as e:
            resp["status"] = {"user": {}, "error": f"[invalid bearer token, {e}]"}
            return 201, resp
        user = {"username": sa.username, "uid": sa.uid,
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{sa.namespace}",
                           "system:authenticated"]}
        pod = kube.get("pod")
        if pod:
            user["extra"] = {"authentication.kubernetes.io/pod-name": [pod.get("name", "")],
                             "authentication.kubernetes.io/pod-uid": [pod.get("uid", "")]}
        resp["status"] = {"authenticated": True, "user": user, "audiences": matched}
        return 201, resp


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body):
        payload = (json.dumps(body) + "\n").encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        return json.loads(raw) if raw.strip() else {}

    def _bearer(self):
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth[:7].lower() == "bearer " else ""

    def _handle(self, method):
        srv = self.server
        status = 500
        path = self.path.split("?", 1)[0]
        try:
            try:
                body = self._body()
            except ValueError:
                status = 400
                self._send(400, _status(400, "BadRequest", "invalid JSON body"))
                return
            if path.startswith(CONTROL_PREFIX):
                status, out = srv.control(method, path[len(CONTROL_PREFIX):].strip("/"),
                                          self._bearer(), body)
            elif path == REVIEW_PATH and method == "POST":
                status, out = srv.cluster.review(self._bearer(), body)
            elif path == "/version" and method == "GET":
                status, out = 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-double"}
            elif path in ("/healthz", "/readyz", "/livez") and method == "GET":
                status, out = 200, None
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                return
            else:
                status, out = 404, _status(404, "NotFound", "the server could not find the "
                                                            "requested resource")
            self._send(status, out)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        finally:
            srv.log(f"{self.client_address[0]} {method} {path} {status}")

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, cluster, admin_token, ssl_context, log):
        super().__init__(addr, _Handler)
        self.cluster = cluster
        self.admin_token = admin_token
        self.ssl_context = ssl_context
        self.log = log

    def get_request(self):
        conn, addr = super().get_request()
        if self.ssl_context is not None:
            conn.settimeout(10)
            conn = self.ssl_context.wrap_socket(conn, server_side=True)
            conn.settimeout(None)
        return conn, addr

    def handle_error(self, request, client_address):
        pass  # a broken client connection is not the server's problem

    def control(self, method, name, bearer, body):
        if not bearer or not secrets.compare_digest(bearer, self.admin_token):
            return 403, {"error": "admin token required"}
        c = self.cluster
        try:
            if name == "serviceaccount" and method == "POST":
                return 200, {"uid": c.create_service_account(
                    body["namespace"], body["name"], bool(body.get("can_review", True)))}
            if name == "serviceaccount" and method == "DELETE":
                c.delete_service_account(body["namespace"], body["name"])
                return 200, {}
            if name == "token" and method == "POST":
                tok = c.token(body["namespace"], body["name"], body.get("audiences"),
                              int(body.get("ttl", 3600)), body.get("pod"),
                              int(body.get("iat_offset", 0)), body.get("can_review"))
                claims = pyjwt.decode(tok, options={"verify_signature": False})
                return 200, {"token": tok, "exp": claims["exp"],
                             "uid": claims["kubernetes.io"]["serviceaccount"]["uid"]}
            if name == "revoke" and method == "POST":
                c.revoke(body["token"])
                return 200, {}
            if name == "info" and method == "GET":
                return 200, {"issuer": c.issuer, "public_key_pem": c.public_key_pem,
                             "reviews": c.reviews}
        except (KeyError, TypeError, ValueError) as e:
            return 400, {"error": f"bad control request: {type(e).__name__} {e}"}
        return 404, {"error": f"unknown control endpoint {name}"}


class KubeApiDouble:
    """The fake API server, run in this process (threads)."""

    def __init__(self, host="127.0.0.1", port=0, tls_cert=None, tls_key=None, ca_file=None,
                 issuer=DEFAULT_ISSUER, log_file=None, admin_token=None):
        self.cluster = Cluster(issuer)
        self.host = host
        self.tls = bool(tls_cert)
        self.ca_pem = None
        if ca_file:
            with open(ca_file, encoding="utf-8") as f:
                self.ca_pem = f.read()
        ctx = None
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(tls_cert, tls_key)
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self._log_lock = threading.Lock()
        self._log_file = open(log_file, "a", buffering=1, encoding="utf-8") if log_file else None
        self._server = _Server((host, port), self.cluster, self.admin_token, ctx, self._log)
        self.port = self._server.server_address[1]
        self._thread = None

    def _log(self, line):
        if self._log_file is None:
            return
        with self._log_lock:
            self._log_file.write(f"kube-double {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
                                 f" {line}\n")

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def issuer(self):
        return self.cluster.issuer

    @property
    def public_key_pem(self):
        return self.cluster.public_key_pem

    @property
    def reviews(self):
        return self.cluster.reviews

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, name="kube-double",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def create_service_account(self, namespace, name, can_review=True):
        return self.cluster.create_service_account(namespace, name, can_review)

    def delete_service_account(self, namespace, name):
        self.cluster.delete_service_account(namespace, name)

    def token(self, namespace, name, audiences=None, ttl=3600, pod=None, iat_offset=0,
              can_review=None):
        return self.cluster.token(namespace, name, audiences, ttl, pod, iat_offset, can_review)

    def revoke(self, token):
        self.cluster.revoke(token)


# --- command line ------------------------------------------------------------------------------


def _write_private(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def _control_call(a, method, name, body):
    port = int(_read(a.port_file))
    if a.tls:
        ctx = ssl.create_default_context(cafile=a.cacert)
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, CONTROL_PREFIX + name, body=json.dumps(body).encode(),
                     headers={"Authorization": "Bearer " + _read(a.admin_token_file),
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        out = json.loads(r.read() or b"{}")
        if r.status != 200:
            sys.exit(f"kube_api_double: {name} failed: {r.status} {out}")
        return out
    finally:
        conn.close()


def _serve(a):
    import signal
    host, _, port = a.listen.rpartition(":")
    admin = _read(a.admin_token_file) if os.path.exists(a.admin_token_file) else None
    k8s = KubeApiDouble(host or "127.0.0.1", int(port or 0), a.tls_cert, a.tls_key,
                        issuer=a.issuer, log_file=a.log_file, admin_token=admin or None)
    if not admin:
        _write_private(a.admin_token_file, k8s.admin_token + "\n")
    k8s.start()
    _write_private(a.port_file, f"{k8s.port}\n")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(1.0):
        pass
    k8s.stop()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Kubernetes API (TokenReview) for tests.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(s):
        s.add_argument("--port-file", required=True)
        s.add_argument("--admin-token-file", required=True,
                       help="control API token: read if present, else generated (serve)")

    s = sub.add_parser("serve")
    common(s)
    s.add_argument("--listen", default="127.0.0.1:0")
    s.add_argument("--tls-cert")
    s.add_argument("--tls-key")
    s.add_argument("--issuer", default=DEFAULT_ISSUER)
    s.add_argument("--log-file")
    for name in ("mint", "revoke", "delete-sa"):
        s = sub.add_parser(name)
        common(s)
        s.add_argument("--tls", action="store_true")
        s.add_argument("--cacert")
        if name in ("mint", "delete-sa"):
            s.add_argument("--namespace", required=True)
            s.add_argument("--name", required=True)
        if name == "mint":
            s.add_argument("--out", required=True, help="write the JWT here (mode 0600)")
            s.add_argument("--audience", action="append")
            s.add_argument("--ttl", type=int, default=3600)
            s.add_argument("--pod")
            s.add_argument("--iat-offset", type=int, default=0)
        if name == "revoke":
            s.add_argument("--token-file", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "serve":
        return _serve(a)
    if a.cmd == "mint":
        out = _control_call(a, "POST", "token", {
            "namespace": a.namespace, "name": a.name, "audiences": a.audience, "ttl": a.ttl,
            "pod": a.pod, "iat_offset": a.iat_offset})
        _write_private(a.out, out["token"] + "\n")
        print(json.dumps({"exp": out["exp"], "uid": out["uid"]}))
    elif a.cmd == "revoke":
        _control_call(a, "POST", "revoke", {"token": _read(a.token_file)})
    elif a.cmd == "delete-sa":
        _control_call(a, "DELETE", "serviceaccount", {"namespace": a.namespace,
                                                      "name": a.name})
    return 0


if __name__ == "__main__":
    sys.exit(main())
