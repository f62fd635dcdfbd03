#!/usr/bin/python3
"""An HTTPS echo server for the controller's libcurl TLS tests (tls_transport_test.cpp).

Answers every request with a JSON echo of what arrived (method, path, body, headers and the
client certificate's CN), and redirects for the redirect tests:
  /redirect/<n>   307 to /redirect/<n-1>, then to /echo at 0
  /loop           307 to itself, forever
  /to-http        307 to http://127.0.0.1:<port>/echo (a scheme downgrade)
Writes its port to --port-file once it listens; runs until killed.
"""

import argparse
import http.server
import json
import ssl


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-ca", help="ask for a client certificate signed by this CA")
    p.add_argument("--require-client-cert", action="store_true")
    p.add_argument("--port-file", required=True)
    a = p.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.client_ca:
        ctx.load_verify_locations(a.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if a.require_client_cert else ssl.CERT_OPTIONAL

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode(errors="replace") if length else ""
            port = self.server.server_address[1]
            location = None
            if self.path.startswith("/redirect/"):
                n = int(self.path.rsplit("/", 1)[1])
                location = f"/redirect/{n - 1}" if n > 1 else "/echo"
            elif self.path == "/loop":
                location = "/loop"
            elif self.path == "/to-http":
                location = f"http://127.0.0.1:{port}/echo"
            if location is not None:
                self.send_response(307)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            cn = ""
            cert = self.connection.getpeercert()
            for rdn in (cert or {}).get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        cn = value
            out = json.dumps({"method": self.command, "path": self.path, "body": body,
                              "host": self.headers.get("Host", ""),
                              "token": self.headers.get("X-Vault-Token", ""),
                              "client_cn": cn,
                              "tls": self.connection.version()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = handle_any

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self):
            conn, addr = self.socket.accept()
            return ctx.wrap_socket(conn, server_side=True), addr

        def handle_error(self, request, client_address):
            pass  # failed handshakes are what some tests are about

    srv = Server(("127.0.0.1", 0), Handler)
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
