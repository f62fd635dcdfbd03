"""Child processes and temporary directories of the end-to-end suite, cleaned up on every path.

Servers (postgres, pgbouncer) refuse to run as root, so they run as the `postgres` OS user.
Every child is started through `setpriv --pdeathsig KILL`: if pytest dies (a ctest timeout
kills it outright) the kernel kills the children too, so nothing outlives a test run. Temp
dirs carry the pid of the pytest process that made them; a later run removes those whose
owner is gone.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Sequence

SERVER_USER = "postgres"
_DIR_PREFIX = "pgbv-e2e-"
_DIR_RE = re.compile(re.escape(_DIR_PREFIX) + r"(\d+)-")


def is_root() -> bool:
    return os.geteuid() == 0


def server_uid() -> int:
    """The uid the servers run as: postgres when we are root, else ourselves."""
    return pwd.getpwnam(SERVER_USER).pw_uid if is_root() else os.geteuid()


def wrap(argv: Sequence[str], *, as_server_user: bool) -> list[str]:
    """argv prefixed so that the child dies with us and, if asked, runs as postgres."""
    prefix = ["setpriv", "--pdeathsig=KILL"]
    if as_server_user and is_root():
        prefix += [f"--reuid={SERVER_USER}", f"--regid={SERVER_USER}", "--clear-groups"]
    return prefix + ["--"] + [str(a) for a in argv]


def give_to_server_user(path: Path) -> None:
    if is_root():
        pw = pwd.getpwnam(SERVER_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def make_dir(parent: Path, name: str, *, server_owned: bool = False, mode: int = 0o755) -> Path:
    path = parent / name
    path.mkdir(mode=mode)
    os.chmod(path, mode)  # mkdir's mode is filtered by the umask
    if server_owned:
        give_to_server_user(path)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_dirs() -> None:
    """Removes temp dirs left by test runs that were killed before they could clean up."""
    base = Path(tempfile.gettempdir())
    for path in base.glob(_DIR_PREFIX + "*"):
        m = _DIR_RE.match(path.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def new_temp_dir(tag: str) -> Path:
    """A fresh directory that the server user can traverse (mode 0755)."""
    path = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-{tag}-"))
    os.chmod(path, 0o755)
    return path


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def client_env(**extra: str) -> dict[str, str]:
    """The environment for clients: no PG* variable, so nothing supplies a password, and no
    VAULT_* variable, so a real Vault's token never reaches PgBouncer or a client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "VAULT_"))}
    env.update({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "PGCONNECT_TIMEOUT": "10"})
    env.update(extra)
    return env


class Process:
    """A child process whose output goes to a log file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, *,
                 as_server_user: bool, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self._log = open(log_path, "ab")
        try:
            self.popen = subprocess.Popen(
                wrap(self.argv, as_server_user=as_server_user), stdin=subprocess.DEVNULL,
                stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        except OSError:
            self._log.close()
            raise
        self.stopped_by_us = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def returncode(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def send_signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, signals: Sequence[tuple[int, float]] = ((signal.SIGTERM, 10.0),)) -> int:
        """Sends each signal in turn, waiting its timeout; SIGKILL if all fail."""
        self.stopped_by_us = True
        try:
            for sig, timeout in signals:
                if not self.alive():
                    break
                self.popen.send_signal(sig)
                try:
                    self.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    continue
            if self.alive():
                self.popen.kill()
                self.popen.wait(10)
            return self.popen.returncode
        finally:
            self._log.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="backslashreplace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="backslashreplace")
        except FileNotFoundError:
            return ""


def run(argv: Sequence[str], *, as_server_user: bool = False, input: str | None = None,
        env: dict[str, str] | None = None, timeout: float = 60,
        check: bool = True) -> subprocess.CompletedProcess:
    """Runs a short command to completion, capturing its output as text."""
    cp = subprocess.run(wrap(argv, as_server_user=as_server_user), input=input,
                        capture_output=True, text=True, env=env, timeout=timeout)
    if check and cp.returncode != 0:
        raise RuntimeError(f"{' '.join(str(a) for a in argv)} exited with {cp.returncode}:\n"
                           f"{cp.stderr}{cp.stdout}")
    return cp


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls predicate() until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
