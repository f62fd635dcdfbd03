"""A throwaway PostgreSQL 15 cluster for the tests: SCRAM over TCP, connections logged.

The harness itself talks to it as the superuser `postgres` over the Unix socket (trust);
everything else comes in over TCP on 127.0.0.1 and must authenticate with SCRAM-SHA-256.
Database `app` holds the pgbench tables, owned by the group role `pgbv_app`: every rotating
role is made a member of it, so a fresh role can run pgbench at once.
"""

from __future__ import annotations

import csv
import io
import re
import signal
from collections import Counter
from pathlib import Path

import psycopg

from processes import (Process, client_env, free_port, make_dir, run, wait_until)

APP_DB = "app"
APP_GROUP = "pgbv_app"
_AUTHORIZED_RE = re.compile(r"connection authorized: user=(\S+) database=(\S+)")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    if "\0" in value:
        raise ValueError("a NUL byte cannot be part of an SQL literal")
    return "'" + value.replace("'", "''") + "'"


class PostgresCluster:
    """initdb, start, query and stop one cluster under `root`."""

    def __init__(self, bindir: Path, root: Path):
        self.bindir = bindir
        self.root = root
        self.datadir = root / "data"
        self.sockdir = root / "sock"
        self.log_path = root / "postgres.log"
        self.port = 0
        self.process: Process | None = None
        self._monitor: psycopg.Connection | None = None

    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    # -----------------------------------------------------------------------------------------
    # Life cycle.

    def start(self) -> None:
        make_dir(self.root, "data", server_owned=True, mode=0o700)
        make_dir(self.root, "sock", server_owned=True)
        run([self._bin("initdb"), "-D", self.datadir, "-U", "postgres", "-E", "UTF8",
             "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"],
            as_server_user=True, timeout=120)
        (self.datadir / "pg_hba.conf").write_text(
            "# Written by the pgbv end-to-end harness.\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n")
        last_error = ""
        for _ in range(3):  # a free port can be taken by someone else before we bind it
            self.port = free_port()
            self._write_conf()
            self.process = Process("postgres", [self._bin("postgres"), "-D", self.datadir],
                                   self.log_path, as_server_user=True, env=client_env())
            try:
                wait_until(self._ready, 60, "PostgreSQL to accept connections")
                break
            except TimeoutError as e:
                last_error = f"{e}\n{self.process.log_text()[-3000:]}"
                self.process.stop(((signal.SIGINT, 5.0),))
                self.process = None
        else:
            raise RuntimeError(f"PostgreSQL did not start (log {self.log_path}):\n{last_error}")
        self._make_app_database()

    def _write_conf(self) -> None:
        (self.datadir / "postgresql.auto.conf").write_text(
            "# Written by the pgbv end-to-end harness.\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.sockdir}'\n"
            "password_encryption = 'scram-sha-256'\n"
            "log_connections = on\n"
            "log_line_prefix = '%m [%p] '\n"
            "logging_collector = off\n"
            "max_connections = 100\n"
            "shared_buffers = 32MB\n"
            # Durability is of no interest to a throwaway cluster; speed is.
            "fsync = off\n"
            "synchronous_commit = off\n"
            "full_page_writes = off\n")

    def _ready(self) -> bool:
        if self.process is not None and not self.process.alive():
            raise RuntimeError(f"PostgreSQL exited with {self.process.returncode()}:\n"
                               f"{self.process.log_text()[-3000:]}")
        cp = run([self._bin("pg_isready"), "-q", "-h", self.sockdir, "-p", str(self.port),
                  "-U", "postgres", "-d", "postgres"], check=False, env=client_env())
        return cp.returncode == 0

    def _make_app_database(self) -> None:
        self.psql(f"CREATE DATABASE {APP_DB}", db="postgres")
        run([self._bin("pgbench"), "-i", "-q", "-s", "1", "-h", self.sockdir, "-p",
             str(self.port), "-U", "postgres", APP_DB], env=client_env(), timeout=120)
        self.psql(f"""
            CREATE ROLE {APP_GROUP} NOLOGIN;
            GRANT CONNECT ON DATABASE {APP_DB} TO {APP_GROUP};
            ALTER TABLE pgbench_accounts OWNER TO {APP_GROUP};
            ALTER TABLE pgbench_branches OWNER TO {APP_GROUP};
            ALTER TABLE pgbench_tellers OWNER TO {APP_GROUP};
            ALTER TABLE pgbench_history OWNER TO {APP_GROUP};
            CREATE TABLE e2e_notes (id bigserial PRIMARY KEY, note text NOT NULL,
                                    written_by name NOT NULL DEFAULT current_user);
            ALTER TABLE e2e_notes OWNER TO {APP_GROUP};
            ALTER SEQUENCE e2e_notes_id_seq OWNER TO {APP_GROUP};
        """)

    def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        if self.process is not None:
            # Fast shutdown; then immediate; then SIGKILL.
            self.process.stop(((signal.SIGINT, 20.0), (signal.SIGQUIT, 5.0)))
            self.process = None

    def check_alive(self) -> None:
        if self.process is None or not self.process.alive():
            raise AssertionError(f"PostgreSQL is not running:\n{self.log_text()[-3000:]}")

    # -----------------------------------------------------------------------------------------
    # Superuser access over the Unix socket.

    def psql(self, sql: str, db: str = APP_DB, *, csv_output: bool = False) -> str:
        """Runs `sql` (from stdin, so no secret reaches argv) and returns psql's output."""
        argv = [self._bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.sockdir,
                "-p", str(self.port), "-U", "postgres", "-d", db, "-f", "-"]
        argv += ["--csv"] if csv_output else ["-At"]
        return run(argv, input=sql, env=client_env(), timeout=60).stdout

    def query(self, sql: str, db: str = APP_DB) -> list[dict[str, str]]:
        """The rows of one query, as dicts of text values."""
        return list(csv.DictReader(io.StringIO(self.psql(sql, db, csv_output=True))))

    def create_role(self, name: str, password: str, *, member_of_app: bool = True) -> None:
        sql = f"CREATE ROLE {quote_ident(name)} LOGIN PASSWORD {quote_literal(password)}"
        if member_of_app:
            sql += f" IN ROLE {APP_GROUP}"
        self.psql(sql + ";")

    def drop_role(self, name: str) -> None:
        self.psql(f"DROP ROLE IF EXISTS {quote_ident(name)};")

    def sessions_by_user(self, db: str = APP_DB) -> Counter:
        """Client backends connected to `db`, counted by login role.

        Asked over one kept-open superuser connection: tests poll this under load, and a
        psql process per poll would add load of its own.
        """
        if self._monitor is None or self._monitor.closed:
            self._monitor = psycopg.connect(host=str(self.sockdir), port=self.port,
                                            user="postgres", dbname="postgres",
                                            autocommit=True, connect_timeout=10,
                                            application_name="pgbv-e2e-monitor")
        rows = self._monitor.execute(
            "SELECT usename FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND datname = %s AND pid <> pg_backend_pid()", (db,)).fetchall()
        return Counter(r[0] for r in rows)

    def backend_pids(self, user: str, db: str = APP_DB) -> set[int]:
        rows = self.query(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
            f"AND datname = {quote_literal(db)} AND usename = {quote_literal(user)}")
        return {int(r["pid"]) for r in rows}

    # -----------------------------------------------------------------------------------------
    # The server log.

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="backslashreplace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def authorized_users(self, since: int = 0, db: str = APP_DB) -> Counter:
        """Logins PostgreSQL accepted into `db` after log offset `since`, by role."""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="backslashreplace")
        return Counter(m.group(1) for m in _AUTHORIZED_RE.finditer(text) if m.group(2) == db)

    def tcp_conninfo(self, user: str, password: str, db: str = APP_DB) -> dict[str, str]:
        return {"host": "127.0.0.1", "port": str(self.port), "dbname": db, "user": user,
                "password": password}
