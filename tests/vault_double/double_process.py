"""Starts and stops the Vault double as a child process, for Python test suites.

    with VaultDouble(workdir) as vd:
        client = vd.client()            # VaultClient with the root token
        vd.control().fault("down", for_ms=500)
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vault_client import DoubleControl, VaultClient  # noqa: E402

PYTHON = "/usr/bin/python3"
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vault_double.py")


class VaultDouble:
    """One running double; files (token, port, log) live in workdir."""

    def __init__(self, workdir, tls_cert=None, tls_key=None, cacert=None,
                 require_request_header=False, extra_args=(), name="vault"):
        self.workdir = workdir
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.cacert = cacert
        self.require_request_header = require_request_header
        self.extra_args = list(extra_args)
        self.token_file = os.path.join(workdir, f"{name}.root-token")
        self.port_file = os.path.join(workdir, f"{name}.port")
        self.log_file = os.path.join(workdir, f"{name}.log")
        self.unseal_key_file = os.path.join(workdir, f"{name}.unseal-key")
        self.proc = None
        self.port = None
        self.token = None

    @property
    def addr(self):
        return f"{'https' if self.tls_cert else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout=10.0):
        for f in (self.port_file,):
            if os.path.exists(f):
                os.unlink(f)
        argv = [PYTHON, SCRIPT, "--listen", "127.0.0.1:0", "--root-token-file", self.token_file,
                "--port-file", self.port_file, "--log-file", self.log_file,
                "--unseal-key-file", self.unseal_key_file]
        if self.tls_cert:
            argv += ["--tls-cert", self.tls_cert, "--tls-key", self.tls_key]
        if self.require_request_header:
            argv.append("--require-request-header")
        argv += self.extra_args
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vault double exited with {self.proc.returncode}")
            if os.path.exists(self.port_file):
                with open(self.port_file, encoding="utf-8") as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    break
            time.sleep(0.02)
        else:
            self.stop()
            raise RuntimeError("vault double did not write its port file in time")
        with open(self.token_file, encoding="utf-8") as f:
            self.token = f.read().strip()
        self.client().wait_ready(timeout)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self, token=..., request_header=True):
        return VaultClient(self.addr, self.token if token is ... else token, cacert=self.cacert,
                           request_header=request_header)

    def control(self):
        return DoubleControl(self.client())

    def unseal_key(self):
        with open(self.unseal_key_file, encoding="utf-8") as f:
            return f.read().strip()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
