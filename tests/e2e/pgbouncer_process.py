"""The patched PgBouncer under test: a generated pgbouncer.ini, the process, its consoles.

PgBouncer runs in the foreground as the `postgres` OS user, logging to stderr, which goes to
`pgbouncer.log` in its directory. Clients reach it over TCP on 127.0.0.1 with auth_type=any,
so they present no password at all.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
import signal
from pathlib import Path

from processes import (Process, client_env, free_port, give_to_server_user, port_accepts, run,
                       wait_until)

CLIENT_USER = "app_client"  # what applications say; PgBouncer ignores it under auth_type=any
ADMIN_USER = "pgbouncer"
_SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                           r"runtime error:|Segmentation fault|Assertion .* failed")


def plugin_options(socket_path: Path, **extra: int | str) -> str:
    """credential_plugin_options: space-separated key=value pairs, socket= first."""
    return " ".join([f"socket={socket_path}"] + [f"{k}={v}" for k, v in extra.items()])


class PgBouncer:
    """One PgBouncer with its own directory, port and ini file."""

    def __init__(self, binary: Path, root: Path, pg_bindir: Path, *,
                 databases: dict[str, str], settings: dict[str, str | int]):
        self.binary = binary
        self.pg_bindir = pg_bindir
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-", dir=root))
        os.chmod(self.dir, 0o755)
        give_to_server_user(self.dir)
        self.ini_path = self.dir / "pgbouncer.ini"
        self.log_path = self.dir / "pgbouncer.log"
        self.no_pgpass = self.dir / "no-such-pgpass"
        self.databases = dict(databases)
        self.settings = dict(settings)
        self.port = 0
        self.process: Process | None = None

    # -----------------------------------------------------------------------------------------
    # Configuration.

    def write_ini(self) -> None:
        base: dict[str, str | int] = {
            "listen_addr": "127.0.0.1",
            "listen_port": self.port,
            "unix_socket_dir": "",  # TCP only; a Unix socket would need a short path
            "auth_type": "any",
            "admin_users": ADMIN_USER,
            "pool_mode": "transaction",
            "default_pool_size": 20,
            "max_client_conn": 200,
            "log_connections": 1,
            "log_disconnections": 1,
            "log_pooler_errors": 1,
        }
        base.update(self.settings)
        lines = ["; Written by the pgbv end-to-end harness.", "[databases]"]
        lines += [f"{name} = {spec}" for name, spec in self.databases.items()]
        lines += ["", "[pgbouncer]"]
        lines += [f"{k} = {v}" for k, v in base.items() if v is not None]
        self.ini_path.write_text("\n".join(lines) + "\n")

    # -----------------------------------------------------------------------------------------
    # Life cycle.

    def _spawn(self) -> Process:
        return Process("pgbouncer", [self.binary, self.ini_path], self.log_path,
                       as_server_user=True, env=client_env(), cwd=self.dir)

    def start(self, timeout: float = 20) -> None:
        """Starts PgBouncer and waits until it accepts TCP connections."""
        for attempt in range(3):  # the port may be taken between free_port() and bind()
            self.port = free_port()
            self.write_ini()
            offset = self.log_size()
            self.process = self._spawn()
            try:
                wait_until(self._listening, timeout, "PgBouncer to listen")
                return
            except RuntimeError:
                text = self.log_since(offset)
                if "Address already in use" in text and attempt < 2:
                    continue
                raise
        raise RuntimeError(f"PgBouncer could not bind a port:\n{self.log_text()[-4000:]}")

    def _listening(self) -> bool:
        assert self.process is not None
        if not self.process.alive():
            raise RuntimeError(f"PgBouncer exited with status {self.process.returncode()} "
                               f"during start-up:\n{self.log_text()[-4000:]}")
        return port_accepts(self.port)

    def run_expecting_exit(self, timeout: float = 20) -> tuple[int, str]:
        """Starts PgBouncer with a config it should refuse; returns (exit status, output)."""
        self.port = free_port()
        self.write_ini()
        self.process = self._spawn()
        try:
            code = self.process.wait(timeout)
        except Exception:
            self.process.stop(((signal.SIGQUIT, 5.0),))
            raise AssertionError(f"PgBouncer did not exit within {timeout:g} s although its "
                                 f"configuration is invalid:\n{self.log_text()[-4000:]}")
        self.process.stop()
        return code, self.log_text()

    def stop(self) -> None:
        if self.process is not None:
            # SIGTERM waits for clients to leave; SIGQUIT exits at once.
            self.process.stop(((signal.SIGTERM, 5.0), (signal.SIGQUIT, 5.0)))

    def health_problems(self) -> list[str]:
        """Why this PgBouncer looks unwell: died on its own, or a sanitizer spoke."""
        problems = []
        if self.process is not None and not self.process.stopped_by_us and \
                not self.process.alive():
            problems.append(f"PgBouncer exited by itself with status "
                            f"{self.process.returncode()}")
        hits = sorted({m.group(0) for m in _SANITIZER_RE.finditer(self.log_text())})
        if hits:
            problems.append(f"PgBouncer's log reports {', '.join(hits)}")
        return problems

    def check_alive(self) -> None:
        if self.process is None or not self.process.alive():
            raise AssertionError(f"PgBouncer is not running:\n{self.log_text()[-4000:]}")

    # -----------------------------------------------------------------------------------------
    # Log.

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="backslashreplace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="backslashreplace")

    # -----------------------------------------------------------------------------------------
    # Clients.

    def conninfo(self, db: str = "app", user: str = CLIENT_USER) -> dict[str, str]:
        """How an application connects: no password anywhere."""
        return {"host": "127.0.0.1", "port": str(self.port), "dbname": db, "user": user}

    def psql(self, sql: str, db: str = "app", *, user: str = CLIENT_USER, check: bool = True,
             timeout: float = 60, extra_env: dict[str, str] | None = None):
        """psql through PgBouncer with -w (never ask for a password) and no password source."""
        env = client_env(PGPASSFILE=str(self.no_pgpass), **(extra_env or {}))
        argv = [self.pg_bindir / "psql", "-X", "-w", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db, "-f", "-"]
        return run(argv, input=sql, env=env, timeout=timeout, check=check)

    def admin(self, command: str) -> list[dict[str, str]]:
        """One admin console command (simple query protocol, via psql); rows as dicts."""
        env = client_env(PGPASSFILE=str(self.no_pgpass))
        argv = [self.pg_bindir / "psql", "-X", "-w", "-q", "--csv", "-h", "127.0.0.1",
                "-p", str(self.port), "-U", ADMIN_USER, "-d", "pgbouncer", "-c", command]
        out = run(argv, env=env, timeout=30).stdout
        return list(csv.DictReader(io.StringIO(out)))

    def admin_raw(self, command: str) -> str:
        env = client_env(PGPASSFILE=str(self.no_pgpass))
        argv = [self.pg_bindir / "psql", "-X", "-w", "-q", "--csv", "-h", "127.0.0.1",
                "-p", str(self.port), "-U", ADMIN_USER, "-d", "pgbouncer", "-c", command]
        return run(argv, env=env, timeout=30).stdout
