#!/usr/bin/python3
"""The demo: PostgreSQL, the Vault test double, pgbv-controller and the patched PgBouncer.

Starts every part in a temporary directory (PostgreSQL, PgBouncer and the controller as
the unprivileged user `postgres`), configures the Vault double exactly as an operator
configures Vault (database secrets engine, a dynamic role, a policy, an AppRole), runs
queries through PgBouncer as the Vault-made role, rotates, and shows what happened.
With --keep it stays up until Ctrl-C and prints how to connect.

Usage (as root, after a build): scripts/demo.py [--build-dir build] [--keep]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / "tests" / "e2e"))
sys.path.insert(0, str(TOP / "tests" / "vault_double"))

import processes  # noqa: E402
from controller_process import Controller  # noqa: E402
from double_process import VaultDouble  # noqa: E402
from pgbouncer_process import PgBouncer, plugin_options  # noqa: E402
from postgres_cluster import APP_DB, APP_GROUP, PostgresCluster  # noqa: E402
from vault_client import setup_pgbv  # noqa: E402

PG_BINDIR = Path("/usr/lib/postgresql/15/bin")


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def show(cmd_text: str, output: str) -> None:
    print(f"$ {cmd_text}")
    print(output.rstrip())


def psql_through(bouncer: PgBouncer, sql: str) -> str:
    """psql to PgBouncer's app database: no password anywhere, PG* variables cleared."""
    cp = processes.run([PG_BINDIR / "psql", "-X", "-h", "127.0.0.1", "-p", str(bouncer.port),
                        "-U", "app_client", "-d", APP_DB, "-c", sql],
                       env=processes.client_env(), timeout=60)
    return cp.stdout


def find_built(build: Path, rel: str, hint: str) -> Path:
    path = build / rel
    if not path.is_file():
        sys.exit(f"demo: {path} not found: {hint}")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=str(TOP / "build"))
    ap.add_argument("--keep", action="store_true", help="stay up until Ctrl-C")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("demo: run as root (PostgreSQL and PgBouncer are started as user postgres)")

    build = Path(args.build_dir).resolve()
    hint = "build first: cmake -S . -B build && cmake --build build"
    pgbouncer_bin = find_built(build, "pgbouncer/patched/pgbouncer", hint)
    plugin_src = find_built(build, "plugin/libpgbv.so", hint)
    controller_bin = find_built(build, "controller/pgbv-controller", hint)
    pgbvctl_bin = find_built(build, "controller/pgbvctl", hint)

    processes.sweep_stale_dirs()
    root = processes.new_temp_dir("demo")
    started: list = []
    try:
        step("PostgreSQL 15 in a temporary directory")
        pg = PostgresCluster(PG_BINDIR, root / "pg")
        (root / "pg").mkdir()
        processes.give_to_server_user(root / "pg")
        pg.start()
        started.append(pg)
        admin_password = secrets.token_urlsafe(18)
        pg.psql(f"ALTER ROLE postgres PASSWORD '{admin_password}'", db="postgres")
        print(f"listening on 127.0.0.1:{pg.port}; database {APP_DB!r}, group role {APP_GROUP!r}")

        step("Vault test double, configured the way an operator configures Vault")
        vault_dir = root / "vault"
        vault_dir.mkdir(mode=0o700)
        vault = VaultDouble(str(vault_dir)).start()
        started.append(vault)
        client = vault.client()
        summary = setup_pgbv(
            client, f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{pg.port}/"
            f"{APP_DB}?sslmode=disable", "postgres", admin_password,
            default_ttl="30s", max_ttl="90s", grant_roles=[APP_GROUP])
        secret_id = client.approle_secret_id(summary["auth_mount"], summary["approle"])
        print(f"Vault at {vault.addr}: {summary['creds_path']} (TTL 30 s, max TTL 90 s), "
              f"AppRole {summary['approle']!r} with policy {summary['policy']!r}")

        step("pgbv-controller (AppRole login; role_id and secret_id from files)")
        ctl = Controller(controller_bin, pgbvctl_bin, root, vault_addr=vault.addr,
                         vault={"auth_method": "approle"},
                         sets={"app": {"role": summary["role"], "mount": summary["db_mount"],
                                       "rotation_margin": "10s"}})
        ctl.vault["role_id_file"] = str(ctl.secret_file("role_id", summary["role_id"]))
        ctl.vault["secret_id_file"] = str(ctl.secret_file("secret_id", secret_id))
        ctl.start()
        started.append(ctl)
        print(ctl.config_path.read_text().rstrip())

        step("patched PgBouncer with the credential plugin")
        plugin_dir = processes.make_dir(root, "plugin", mode=0o755)
        plugin = plugin_dir / "libpgbv.so"
        shutil.copy2(plugin_src, plugin)
        bouncer_root = processes.make_dir(root, "bouncer", mode=0o755)
        pgb_copy = bouncer_root / "pgbouncer"
        shutil.copy2(pgbouncer_bin, pgb_copy)
        bouncer = PgBouncer(pgb_copy, bouncer_root, PG_BINDIR,
                            databases={APP_DB: f"host=127.0.0.1 port={pg.port} "
                                               f"dbname={APP_DB} credential=app"},
                            settings={"credential_plugin": str(plugin),
                                      "credential_plugin_options":
                                          plugin_options(ctl.plugin_socket)})
        bouncer.start()
        started.append(bouncer)
        print(bouncer.ini_path.read_text().rstrip())

        step("a query through PgBouncer, with no database password anywhere")
        deadline = time.monotonic() + 30
        while True:
            try:
                out = psql_through(bouncer, "SELECT current_user, now()")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        show(f"psql -h 127.0.0.1 -p {bouncer.port} -U app_client -d {APP_DB} "
             "-c 'SELECT current_user, now()'", out)
        show("SHOW CREDENTIALS;", bouncer.admin_raw("SHOW CREDENTIALS"))
        show("pgbvctl status", ctl.pgbvctl_run("status").stdout)

        step("rotation: pgbvctl rotate app")
        first_user = out.split("\n")[2].split("|")[0].strip()
        show("pgbvctl rotate app", ctl.pgbvctl_run("rotate", "app").stdout
             or ctl.pgbvctl_run("rotate", "app").stderr)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = psql_through(bouncer, "SELECT current_user")
            if first_user not in out:
                break
            time.sleep(0.5)
        show("psql ... -c 'SELECT current_user'", out)
        time.sleep(2)
        show("SHOW CREDENTIALS;", bouncer.admin_raw("SHOW CREDENTIALS"))
        roles = pg.psql("SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%' ORDER BY 1")
        show("roles made by Vault still in PostgreSQL", roles)

        if args.keep:
            step("running; Ctrl-C stops everything")
            print(f"  psql -h 127.0.0.1 -p {bouncer.port} -U app_client -d {APP_DB}")
            print(f"  psql -h 127.0.0.1 -p {bouncer.port} -U pgbouncer -d pgbouncer "
                  "-c 'SHOW CREDENTIALS'")
            print(f"  {ctl.pgbvctl} -s {ctl.admin_socket} status   (as user postgres)")
            print(f"  logs in {root}")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        step("demo finished: stopping everything")
        return 0
    finally:
        for part in reversed(started):
            try:
                part.stop()
            except Exception as e:  # keep stopping the rest
                print(f"demo: stopping {type(part).__name__}: {e}", file=sys.stderr)
        processes.remove_dir(root)


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}) \
        if "--keep" in sys.argv else None
    sys.exit(main())
