"""pgbv-controller as a child process: its configuration file, sockets, logs and pgbvctl.

The controller runs as the same unprivileged user as PgBouncer (`postgres`), so the plugin
socket's default peer check (the controller's own uid) lets PgBouncer in and nobody else.
Its binaries are copied next to its configuration so that user can run them even when the
build lives where it cannot read (a clone under /root).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from processes import Process, client_env, give_to_server_user, make_dir, wait_until, wrap


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now: each controller's http_listen gets its own, so that
    tests running side by side do not fight over the default 9439."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Controller:
    """One pgbv-controller with its own directory, config file and sockets."""

    def __init__(self, binary: Path, pgbvctl: Path, root: Path, *, vault_addr: str,
                 vault: dict[str, str], sets: dict[str, dict[str, str]],
                 controller: dict[str, str] | None = None, name: str = "controller"):
        self.dir = make_dir(root, name, server_owned=True, mode=0o755)
        self.binary = self.dir / "pgbv-controller"
        self.pgbvctl = self.dir / "pgbvctl"
        for src, dst in ((binary, self.binary), (pgbvctl, self.pgbvctl)):
            shutil.copy2(src, dst)
            give_to_server_user(dst)
        self.config_path = self.dir / "controller.ini"
        self.log_path = self.dir / "controller.log"
        self.plugin_socket = self.dir / "plugin.sock"
        self.admin_socket = self.dir / "admin.sock"
        self.vault = {"address": vault_addr, **vault}
        self.sets = sets
        self.controller = {"plugin_socket": str(self.plugin_socket),
                           "admin_socket": str(self.admin_socket),
                           "http_listen": f"127.0.0.1:{free_port()}", **(controller or {})}
        self.process: Process | None = None
        self._stale = False

    def secret_file(self, name: str, value: str) -> Path:
        """Writes a secret for the controller to read: mode 0600, owned by its user."""
        path = self.dir / name
        path.write_text(value + "\n")
        path.chmod(0o600)
        give_to_server_user(path)
        return path

    def write_config(self) -> None:
        lines = ["; Written by the pgbv end-to-end harness.", "[vault]"]
        lines += [f"{k} = {v}" for k, v in self.vault.items()]
        lines += ["", "[controller]"]
        lines += [f"{k} = {v}" for k, v in self.controller.items()]
        for name, keys in self.sets.items():
            lines += ["", f"[set.{name}]"]
            lines += [f"{k} = {v}" for k, v in keys.items()]
        self.config_path.write_text("\n".join(lines) + "\n")
        give_to_server_user(self.config_path)

    def start(self, timeout: float = 20, *, keep_stale_socket: bool = False) -> None:
        """Starts the controller and waits until its plugin socket is there.

        keep_stale_socket: leave socket files from a killed controller in place, for the new
        one to replace (as after a crash); readiness is then the admin socket answering
        `pgbvctl status`, since the stale plugin socket file exists from the start.
        """
        self.write_config()
        self._stale = keep_stale_socket and self.plugin_socket.exists()
        if self.plugin_socket.exists() and not keep_stale_socket:
            self.plugin_socket.unlink()
        env = {k: v for k, v in client_env().items() if not k.startswith("VAULT_")}
        self.process = Process("pgbv-controller", [self.binary, self.config_path],
                               self.log_path, as_server_user=True, env=env, cwd=self.dir)
        wait_until(self._listening, timeout, "pgbv-controller to open its plugin socket")

    def _listening(self) -> bool:
        assert self.process is not None
        if not self.process.alive():
            raise RuntimeError(f"pgbv-controller exited with status "
                               f"{self.process.returncode()}:\n{self.log_text()[-4000:]}")
        if self._stale:
            return self.pgbvctl_run("status").returncode in (0, 1)
        return self.plugin_socket.exists()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(((signal.SIGTERM, 10.0),))

    def kill(self) -> None:
        """SIGKILL: the controller gets no chance to say goodbye."""
        if self.process is not None:
            self.process.stop(((signal.SIGKILL, 5.0),))

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pgbvctl_run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        argv = wrap([str(self.pgbvctl), "-s", str(self.admin_socket), *args],
                    as_server_user=True)
        return subprocess.run(argv, capture_output=True, text=True, env=client_env(),
                              cwd=self.dir, check=check, timeout=30)

    def status(self) -> dict:
        """`pgbvctl status --json`, parsed."""
        cp = self.pgbvctl_run("status", "--json")
        if cp.returncode == 2 or not cp.stdout.strip():
            raise RuntimeError(f"pgbvctl status failed ({cp.returncode}): {cp.stderr.strip()}")
        return json.loads(cp.stdout)

    @property
    def http_url(self) -> str:
        """http://host:port of the HTTP endpoint (/metrics, /healthz, /readyz)."""
        listen = self.controller.get("http_listen", "off")
        assert listen != "off", "this controller's HTTP endpoint is off"
        return f"http://{listen}"

    def http_get(self, path: str, method: str = "GET",
                 timeout: float = 10) -> tuple[int, dict[str, str], str]:
        """One request to the HTTP endpoint: (status, headers, body); an HTTP error status is
        an answer here, not an exception."""
        req = urllib.request.Request(self.http_url + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()
