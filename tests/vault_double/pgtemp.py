#!/usr/bin/python3
"""A throw-away PostgreSQL 15 cluster for tests: initdb in a temp dir, a free port, SCRAM on TCP.

Library use:
    with TempPostgres() as pg:
        pg.port, pg.superuser, pg.password, pg.dsn(), pg.url_template()
Command line (foreground until SIGTERM/SIGINT, for shell-driven tests):
    pgtemp.py --info-file F [--base-dir D] [--port N]
writes JSON {"host","port","user","password_file","socket_dir","data_dir"} to F.

Runs initdb/postgres as the user "postgres" (through runuser) when started as root, because
PostgreSQL refuses to run as root.
"""

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PG_BIN = os.environ.get("PGBV_PG_BIN", "/usr/lib/postgresql/15/bin")


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class TempPostgres:
    """A PostgreSQL cluster in a temporary directory, removed on stop()."""

    def __init__(self, base_dir=None, port=None, host="127.0.0.1", superuser="postgres"):
        self.host = host
        self.superuser = superuser
        self.password = secrets.token_urlsafe(18)
        self.port = port
        self._base_dir = base_dir
        self.dir = None
        self.data_dir = None
        self.socket_dir = None
        self.log_file = None
        self._as_root = os.geteuid() == 0
        self._started = False

    # --- process helpers ---------------------------------------------------------------------

    def _run(self, argv, **kw):
        if self._as_root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        # The postgres user may not be able to enter the caller's directory (a clone under
        # /root); psql would then mix a warning about it into the output it returns.
        kw.setdefault("cwd", "/")
        return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, **kw)

    def _chown(self, path):
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self):
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        self.dir = tempfile.mkdtemp(prefix="pgtemp-", dir=self._base_dir)
        os.chmod(self.dir, 0o700)
        self._chown(self.dir)
        self.data_dir = os.path.join(self.dir, "data")
        self.socket_dir = os.path.join(self.dir, "sock")
        self.log_file = os.path.join(self.dir, "postgres.log")
        os.mkdir(self.socket_dir, 0o700)
        self._chown(self.socket_dir)
        pwfile = os.path.join(self.dir, "pwfile")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password + "\n")
        self._chown(pwfile)
        try:
            self._run([f"{PG_BIN}/initdb", "-D", self.data_dir, "-U", self.superuser,
                       f"--pwfile={pwfile}", "--auth-local=trust",
                       "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
        finally:
            os.unlink(pwfile)
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a", encoding="utf-8") as f:
            f.write(f"\nlisten_addresses = '{self.host}'\n"
                    f"unix_socket_directories = '{self.socket_dir}'\n"
                    "password_encryption = 'scram-sha-256'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 200\n")
        for attempt in range(5):
            port = self.port or free_port(self.host)
            try:
                self._run([f"{PG_BIN}/pg_ctl", "-D", self.data_dir, "-l", self.log_file,
                           "-o", f"-p {port}", "-w", "-t", "30", "start"])
                self.port = port
                self._started = True
                break
            except subprocess.CalledProcessError:
                if self.port or attempt == 4:
                    raise RuntimeError(f"pgtemp: PostgreSQL did not start; see {self.log_file}:\n"
                                       + self.log_tail())
        return self

    def log_tail(self, lines=30):
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        if self._started:
            try:
                self._run([f"{PG_BIN}/pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w",
                           "stop"])
            except subprocess.CalledProcessError:
                pass
            self._started = False
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def restart(self):
        """Stops and starts the server on the same port (for connection-loss tests)."""
        self._run([f"{PG_BIN}/pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop"])
        self._run([f"{PG_BIN}/pg_ctl", "-D", self.data_dir, "-l", self.log_file,
                   "-o", f"-p {self.port}", "-w", "-t", "30", "start"])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # --- connection strings ----------------------------------------------------------------

    def dsn(self, user=None, password=None, dbname="postgres"):
        """A libpq key/value DSN over TCP (SCRAM), by default for the superuser."""
        user = user or self.superuser
        password = self.password if password is None else password
        return (f"host={self.host} port={self.port} dbname={dbname} user={user} "
                f"password='{_kv_escape(password)}' sslmode=disable connect_timeout=10")

    def url_template(self, dbname="postgres"):
        """A Vault connection_url for this server, with {{username}}/{{password}} templating."""
        return (f"postgresql://{{{{username}}}}:{{{{password}}}}@{self.host}:{self.port}/"
                f"{dbname}?sslmode=disable")

    def psql(self, sql, dbname="postgres"):
        """Runs SQL through psql as the superuser over the Unix socket; returns stdout."""
        argv = [f"{PG_BIN}/psql", "-h", self.socket_dir, "-p", str(self.port), "-U",
                self.superuser, "-d", dbname, "-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-c",
                sql]
        return self._run(argv).stdout


def _kv_escape(value):
    return value.replace("\\", "\\\\").replace("'", "\\'")


def main(argv=None):
    p = argparse.ArgumentParser(description="Run a temporary PostgreSQL 15 until signalled.")
    p.add_argument("--info-file", required=True, help="where to write connection info (JSON)")
    p.add_argument("--base-dir", help="parent directory of the cluster's temp dir")
    p.add_argument("--port", type=int, help="TCP port (default: a free one)")
    args = p.parse_args(argv)
    stop = []
    # Installed before start() so that a signal during initdb still cleans up.
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    pg = TempPostgres(base_dir=args.base_dir, port=args.port)
    try:
        pg.start()
        pw_path = os.path.join(os.path.dirname(os.path.abspath(args.info_file)),
                               os.path.basename(args.info_file) + ".password")
        fd = os.open(pw_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pg.password + "\n")
        info = {"host": pg.host, "port": pg.port, "user": pg.superuser,
                "password_file": pw_path, "socket_dir": pg.socket_dir,
                "data_dir": pg.data_dir, "url_template": pg.url_template()}
        tmp = args.info_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(info, f)
        os.replace(tmp, args.info_file)
        while not stop:
            time.sleep(0.2)
    finally:
        pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
