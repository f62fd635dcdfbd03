"""The HTTP(S) transport: listener, one thread per connection, faults, control API, request log."""

import json
import os
import re
import secrets
import select
import socket
import ssl
import struct
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from .faults import FaultError
from .framework import Request
from .standby import STANDBY_LOCAL, standby_answer

MAX_BODY = 32 * 1024 * 1024
CONTROL_PREFIX = "/_double/"
_TOKEN_IN_PATH = re.compile(r"^(/v1/auth/token/(?:lookup|renew|revoke)(?:-orphan)?/).+$")

# The request this thread is handling. Vault hands the connection state to an auth method
# when one of its tokens is renewed (cert auth checks the client certificate again); the
# token store's renewal call has no request, so the cert method finds it here.
_current = threading.local()


def current_request():
    return getattr(_current, "req", None)


def go_json(body):
    """Encodes like Go's json.Encoder: compact, UTF-8, HTML characters escaped, newline."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return (text + "\n").encode("utf-8")


class RequestLog:
    """One line per request: time, client, method, path, status. Never a secret."""

    def __init__(self, path=None):
        self._lock = threading.Lock()
        self._file = open(path, "a", buffering=1, encoding="utf-8") if path else None

    def write(self, line):
        text = f"vault-double {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}\n"
        with self._lock:
            if self._file:
                self._file.write(text)
            else:
                os.write(2, text.encode())

    @staticmethod
    def safe_path(path):
        """The URL path without query, with any token that a legacy path might carry redacted."""
        return _TOKEN_IN_PATH.sub(r"\1<redacted>", path.split("?", 1)[0])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300

    # The standard library would log to stderr with the full request line; the double logs
    # its own sanitized line instead.
    def log_message(self, fmt, *args):
        pass

    def send_response(self, code, message=None):
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_LIST(self):
        self._dispatch("LIST")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_OPTIONS(self):
        self._dispatch("OPTIONS")

    # --- body and answers ----------------------------------------------------------------------

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status, body, content_type="application/json", head=False, headers=None):
        if isinstance(body, (dict, list)):
            payload = go_json(body)
        elif body is None:
            payload = b""
        else:
            payload = body
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status == 307 and not payload:
            # Go's WriteHeader(307) without a body: a bare redirect.
            self.send_header("Content-Length", "0")
        elif status != 204:
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and not head:
            self.wfile.write(payload)

    def _send_truncated(self, status, body):
        payload = go_json(body) if body else b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[:max(1, len(payload) // 2)])
        self.wfile.flush()
        # A clean FIN, so that the client reads the partial body and then hits end-of-stream.
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _send_huge(self, size):
        head = b'{"request_id":"' + secrets.token_hex(8).encode() + b'","data":{"pad":"'
        tail = b'"}}\n'
        fill = max(0, size - len(head) - len(tail))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(head) + fill + len(tail)))
        self.end_headers()
        self.wfile.write(head)
        block = b"A" * 65536
        while fill > 0:
            n = min(fill, len(block))
            self.wfile.write(block[:n])
            fill -= n
        self.wfile.write(tail)

    def _abort(self):
        """Closes the connection with a TCP reset (SO_LINGER 0), without an HTTP answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass

    # --- dispatch --------------------------------------------------------------------------

    def _dispatch(self, method):
        srv = self.server
        t0 = time.monotonic()
        url = urlsplit(self.path)
        path = url.path
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        status, cls, fault_mode = 0, "unknown", ""
        try:
            try:
                raw = self._read_body()
            except (ValueError, OSError):
                status = 413
                self._send(413, {"errors": ["request body too large"]})
                return
            if path.startswith(CONTROL_PREFIX):
                cls = "control"
                status = self._control(method, path, query, raw)
                return
            vault_path = path[len("/v1/"):] if path.startswith("/v1/") else path.lstrip("/")
            fault = srv.faults.take(vault_path, method)
            if fault is not None:
                fault_mode = fault.mode
                srv.stats.fault(fault.mode)
                if fault.mode == "reset":
                    self._abort()
                    return
                if fault.mode == "slow":
                    time.sleep(fault.delay_ms / 1000.0)
                elif fault.mode == "error":
                    status = fault.status
                    self._send(status, {"errors": fault.errors})
                    return
                elif fault.mode == "garbage":
                    status = 200
                    self._send(200, b"<html>\x00\xff garbage " + secrets.token_bytes(64))
                    return
                elif fault.mode == "huge":
                    status = 200
                    self._send_huge(fault.size)
                    return
            if srv.require_request_header and self.headers.get("X-Vault-Request") != "true":
                status = 412
                self._send(412, {"errors": ['missing "X-Vault-Request" header']})
                return
            if not path.startswith("/v1/"):
                status = 404
                self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
                return
            if raw.strip():
                try:
                    data = json.loads(raw)
                except ValueError as e:
                    status = 400
                    self._send(400, {"errors": [f"failed to parse JSON input: {e}"]})
                    return
                if not isinstance(data, dict):
                    status = 400
                    self._send(400, {"errors": ["failed to parse JSON input: body must be a "
                                                "JSON object"]})
                    return
            else:
                data = {}
            req = Request(method, vault_path, query, self.headers, data, self.client_address[0])
            req.fault_sealed = fault is not None and fault.mode == "sealed"
            req.node = srv.node
            if srv.node is not None and not srv.node.active and \
                    vault_path not in STANDBY_LOCAL and not srv.core.is_sealed(req):
                # A standby (request forwarding off): redirect before any token check.
                status, body, headers = standby_answer(srv.node, path, url.query)
                cls = "standby"
                self._send(status, body, headers=headers)
                return
            # The cert auth method reads the TLS peer certificate, as Vault's
            # logical.Connection.ConnState does.
            req.tls = isinstance(self.connection, ssl.SSLSocket)
            req.peer_cert_der = self.connection.getpeercert(binary_form=True) \
                if req.tls else None
            _current.req = req
            try:
                result = srv.core.handle(req)
            finally:
                _current.req = None
            status, cls = result.status, result.cls
            if fault is not None and fault.mode == "truncated":
                self._send_truncated(status, result.body)
                return
            self._send(status, result.body, head=(method == "HEAD"), headers=result.headers)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        except Exception as e:  # a bug in the double: answer like Vault's internal error
            status = 500
            # Frames only: an exception's message might quote a secret.
            srv.log.write("internal error " + type(e).__name__ + ":\n" +
                          "".join(traceback.format_tb(e.__traceback__)).rstrip())
            try:
                self._send(500, {"errors": ["1 error occurred:\n\t* internal error\n\n"]})
            except OSError:
                self.close_connection = True
        finally:
            if cls != "control":
                srv.stats.count(cls, status or "dropped")
            ms = (time.monotonic() - t0) * 1000
            extra = f" fault={fault_mode}" if fault_mode else ""
            srv.log.write(f"{self.client_address[0]} {method} {RequestLog.safe_path(path)} "
                          f"{status or '-'} {ms:.1f}ms{extra}")

    # --- the control API (not part of Vault) -----------------------------------------------

    def _control(self, method, path, query, raw):
        srv = self.server
        token = srv.core.request_token(self.headers)
        if not token or not secrets.compare_digest(token, srv.core.root_token):
            self._send(403, {"errors": ["permission denied"]})
            return 403
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            self._send(400, {"errors": [f"failed to parse JSON input: {e}"]})
            return 400
        name = path[len(CONTROL_PREFIX):].strip("/")
        if name == "fault" and method in ("POST", "PUT"):
            try:
                fault = srv.faults.add(body)
            except FaultError as e:
                self._send(400, {"errors": [str(e)]})
                return 400
            if fault.mode == "down":
                # Close the listener before answering, so that the caller's next request
                # is refused for sure; this connection survives just long enough to answer.
                srv.go_down(fault.for_ms / 1000.0, keep=self.connection)
                self.close_connection = True
            self._send(200, fault.describe())
            return 200
        if name == "ha" and srv.core.ha is not None:
            # Which node is active (null: none, as during an election). Not a Vault API.
            if method in ("POST", "PUT"):
                active = body.get("active")
                with srv.core.lock:
                    try:
                        srv.core.ha.set_active(None if active is None else int(active))
                    except (ValueError, TypeError):
                        self._send(400, {"errors": ["active must be a node index or null"]})
                        return 400
                    except Exception as e:  # VaultError: no such node
                        self._send(400, {"errors": [str(e)]})
                        return 400
            with srv.core.lock:
                desc = srv.core.ha.describe()
            desc["self"] = srv.node.index if srv.node is not None else None
            self._send(200, desc)
            return 200
        if name == "faults" and method == "GET":
            self._send(200, {"faults": srv.faults.describe()})
            return 200
        if name == "clear" and method in ("POST", "PUT"):
            srv.faults.clear()
            if body.get("stats"):
                srv.stats.reset()
            self._send(204, None)
            return 204
        if name == "stats" and method == "GET":
            snap = srv.stats.snapshot()
            snap.update(srv.core.snapshot())
            snap["faults"] = srv.faults.describe()
            if query.get("reset") in ("true", "1"):
                srv.stats.reset()
            self._send(200, snap)
            return 200
        self._send(404, {"errors": [f"unknown control endpoint {path}"]})
        return 404


class DoubleServer:
    """Owns the listening socket so that the "down" fault can really close and reopen it."""

    def __init__(self, core, host, port, ssl_context, faults, stats, log,
                 require_request_header=False, node=None):
        self.core = core
        self.node = node  # standby.Node of the HA cluster this listener is, or None
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.faults = faults
        self.stats = stats
        self.log = log
        self.require_request_header = require_request_header
        self._lock = threading.Lock()
        self._listener = None
        self._reopen_at = None
        self._conns = set()
        self._stopping = False
        self._thread = None

    def _bind(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(128)
        self.port = s.getsockname()[1]
        return s

    def start(self):
        self._listener = self._bind()
        self._thread = threading.Thread(target=self._accept_loop, name="accept", daemon=True)
        self._thread.start()

    def _close_listener(self):
        """Stops listening at once: shutdown() resets the backlog and refuses new connections
        even while the accept thread still holds the socket in select()."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._listener = None

    def stop(self):
        with self._lock:
            self._stopping = True
            if self._listener is not None:
                self._close_listener()
        if self._thread:
            self._thread.join(timeout=5)

    def go_down(self, seconds, keep=None):
        """Closes the listener (connections are refused) and drops open connections."""
        with self._lock:
            if self._listener is not None:
                self._close_listener()
            until = time.monotonic() + seconds
            self._reopen_at = max(self._reopen_at or 0, until)
            conns = [c for c in self._conns if c is not keep]
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.log.write(f"listener down for {int(seconds * 1000)}ms")

    def _accept_loop(self):
        while True:
            with self._lock:
                if self._stopping:
                    return
                lst = self._listener
                if lst is None and self._reopen_at is not None \
                        and time.monotonic() >= self._reopen_at:
                    try:
                        self._listener = lst = self._bind()
                        self._reopen_at = None
                        self.log.write("listener up again")
                    except OSError:
                        lst = None
            if lst is None:
                time.sleep(0.02)
                continue
            try:
                ready, _, _ = select.select([lst], [], [], 0.05)
                if not ready:
                    continue
                conn, addr = lst.accept()
            except (OSError, ValueError):
                continue
            threading.Thread(target=self._serve, args=(conn, addr), daemon=True).start()

    def _serve(self, conn, addr):
        sock = conn
        try:
            if self.ssl_context is not None:
                conn.settimeout(10)
                try:
                    sock = self.ssl_context.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    conn.close()
                    return
                sock.settimeout(None)
            with self._lock:
                self._conns.add(sock)
            Handler(sock, addr, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self._lock:
                self._conns.discard(sock)
            try:
                sock.close()
            except OSError:
                pass
