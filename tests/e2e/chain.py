"""The whole chain for the controller's end-to-end tests: PostgreSQL, Vault, pgbv-controller,
the patched PgBouncer with libpgbv.so.

Vault is the test double (tests/vault_double), started per test, or a real Vault when
PGBV_TEST_USE_REAL_VAULT=1 and VAULT_ADDR/VAULT_TOKEN are set (then every test mounts its
own engines under fresh names and removes them afterwards; tests that need the double's
fault injection skip). Vault is configured the way an operator configures it: a database
secrets engine per tenant with one dynamic role, a policy per tenant, one AppRole bound to
all of them; a tenant may instead be a static role or a KV v2 secret (add_tenant(kind=...)).
The controller logs in with AppRole (role_id and secret_id from files); the application side
holds no database password anywhere.

Fixtures: `chain` (a Chain to add tenants to and start) and what it needs from this module,
`vault_target`, `controller_bins` and `pg_admin_password`. A test module imports all four by
name (pytest finds fixtures in the module's namespace); the rest come from conftest.py.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

import processes
from controller_process import Controller
from pgbouncer_process import PgBouncer
from postgres_cluster import APP_DB, APP_GROUP, PostgresCluster, quote_ident, quote_literal
from processes import Process, wait_until
from rig import plugin_settings

_HERE = Path(__file__).resolve().parent
VAULT_DOUBLE_DIR = Path(os.environ.get("PGBV_VAULT_DOUBLE_DIR") or _HERE.parent / "vault_double")
sys.path.insert(0, str(VAULT_DOUBLE_DIR))

from vault_client import DoubleControl, VaultClient, setup_pgbv  # noqa: E402
from vault_client import (enable_database, enable_kv2, kv_policy,  # noqa: E402
                          static_role_policy, write_kv, write_static_role)

PYTHON = "/usr/bin/python3"
REAL_VAULT = os.environ.get("PGBV_TEST_USE_REAL_VAULT") == "1"
VAULT_ROLE_PREFIX = "v-"  # Vault's default username template starts every role with it
_SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                           r"runtime error:")
_BUILD_HINT = ("Build the project (cmake --build <build dir>) and run the suite through "
               "ctest, which sets it, or export it by hand.")


def _env_file(var: str, what: str) -> Path:
    value = os.environ.get(var, "")
    if not value:
        pytest.fail(f"{var} is not set: it must name {what}. {_BUILD_HINT}", pytrace=False)
    path = Path(value)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"{var}={value}: no such executable ({what}). {_BUILD_HINT}",
                    pytrace=False)
    return path


def rfc3339_epoch(text: str) -> float:
    """Vault's RFC 3339 times (`2024-01-02T03:04:05.123456Z`) as seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------------------------------------
# Vault: the double or a real one.


class VaultTarget:
    """The Vault under test: a root client, and for the double its control API and logs."""

    def __init__(self, client: VaultClient, *, process: Process | None = None,
                 request_log: Path | None = None, cacert: str | None = None):
        self.client = client
        self.process = process
        self.request_log = request_log
        self.cacert = cacert
        self.tls = None  # the double's tlsfiles.TlsSet when it serves HTTPS
        self.standby_addr = ""  # the double's standby node, when started with one

    @property
    def addr(self) -> str:
        return self.client.addr

    @property
    def is_double(self) -> bool:
        return self.process is not None

    def require_double(self, why: str) -> None:
        if not self.is_double:
            pytest.skip(f"needs the Vault test double ({why}); running against a real Vault")

    def control(self) -> DoubleControl:
        self.require_double("fault injection and statistics")
        return DoubleControl(self.client)

    def stats(self) -> dict:
        return self.control().stats()

    def log_paths(self) -> list[Path]:
        """Every log the double wrote: its request log and its own stdout/stderr."""
        if not self.is_double:
            return []
        return [p for p in (self.request_log, self.process.log_path) if p is not None]

    def health_problems(self) -> list[str]:
        if self.process is not None and not self.process.stopped_by_us and \
                not self.process.alive():
            return [f"the Vault double exited by itself with status "
                    f"{self.process.returncode()}"]
        return []

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(((signal.SIGTERM, 10.0),))

    @classmethod
    def start_double(cls, directory: Path, double_script: Path, tls=None,
                     standby: bool = False, extra_args=()) -> "VaultTarget":
        """Starts tests/vault_double/vault_double.py as a child that dies with us.

        tls: a tlsfiles.TlsSet: serve HTTPS with its server certificate, asking for client
        certificates of its CA (and of the untrusted CA, so that Vault itself refuses those).
        standby: also listen as a standby node of the same cluster (its address in
        standby_addr), which answers API requests with 307 to the active node.
        extra_args: more vault_double.py flags (e.g. --enterprise)."""
        port_file = directory / "vault.port"
        token_file = directory / "vault.root-token"
        request_log = directory / "vault-requests.log"
        argv = [PYTHON, double_script, "--listen", "127.0.0.1:0", "--root-token-file",
                token_file, "--port-file", port_file, "--log-file", request_log,
                "--unseal-key-file", directory / "vault.unseal-key"]
        if tls is not None:
            argv += ["--tls-cert", tls.server_cert, "--tls-key", tls.server_key,
                     "--tls-client-ca", tls.ca_cert, "--tls-client-ca", tls.untrusted_ca_cert]
        argv += list(extra_args)
        standby_port_file = directory / "vault-standby.port"
        if standby:
            argv += ["--standby-listen", "127.0.0.1:0", "--standby-port-file", standby_port_file]
        env = processes.client_env(PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        proc = Process("vault-double", argv, directory / "vault-double.out", env=env,
                       as_server_user=False)

        def port() -> int:
            if not proc.alive():
                raise RuntimeError(f"the Vault double exited with {proc.returncode()}:\n"
                                   f"{proc.log_text()[-3000:]}")
            text = port_file.read_text().strip() if port_file.exists() else ""
            return int(text) if text else 0

        try:
            number = wait_until(port, 20, "the Vault double to write its port file")
            scheme = "https" if tls is not None else "http"
            client = VaultClient(f"{scheme}://127.0.0.1:{number}", token_file.read_text().strip(),
                                 cacert=tls.ca_cert if tls is not None else None)
            client.wait_ready(20)
        except BaseException:
            proc.stop()
            raise
        target = cls(client, process=proc, request_log=request_log,
                     cacert=tls.ca_cert if tls is not None else None)
        target.tls = tls
        if standby:
            scheme = "https" if tls is not None else "http"
            port = wait_until(lambda: standby_port_file.exists() and
                              standby_port_file.read_text().strip(), 20,
                              "the Vault double to write its standby port file")
            target.standby_addr = f"{scheme}://127.0.0.1:{port}"
        return target

    @classmethod
    def real_from_env(cls) -> "VaultTarget":
        missing = [v for v in ("VAULT_ADDR", "VAULT_TOKEN") if not os.environ.get(v)]
        if missing:
            pytest.fail(f"PGBV_TEST_USE_REAL_VAULT=1 but {' and '.join(missing)} not set: "
                        "give the real Vault's address and a root (or admin) token",
                        pytrace=False)
        cacert = os.environ.get("VAULT_CACERT") or None
        client = VaultClient(os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"],
                             cacert=cacert, namespace=os.environ.get("VAULT_NAMESPACE"))
        client.wait_ready(20)
        return cls(client, cacert=cacert)


# ---------------------------------------------------------------------------------------------
# Roles Vault makes in PostgreSQL.


class RoleWatcher:
    """Polls pg_roles for Vault-made roles in a thread: when each appeared and disappeared.

    Works the same against the double and a real Vault, so revocation timing can be checked
    without Vault's help. Times are wall clock (time.time()), comparable with Vault's.
    """

    def __init__(self, pg: PostgresCluster, interval: float = 0.2,
                 ignore: set[str] | None = None):
        self.pg = pg
        self.interval = interval
        self.ignore = set(ignore or ())
        self.first_seen: dict[str, float] = {}
        self.gone_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="role-watcher", daemon=True)

    def start(self) -> "RoleWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        if self._error is not None:
            raise AssertionError(f"watching pg_roles failed: {self._error!r}")

    def _run(self) -> None:
        try:
            with psycopg.connect(host=str(self.pg.sockdir), port=self.pg.port,
                                 user="postgres", dbname="postgres", autocommit=True,
                                 connect_timeout=10,
                                 application_name="pgbv-e2e-role-watcher") as conn:
                while not self._stop.is_set():
                    rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
                                        (VAULT_ROLE_PREFIX + "%",)).fetchall()
                    now = time.time()
                    present = {r[0] for r in rows} - self.ignore
                    with self._lock:
                        for name in present:
                            self.first_seen.setdefault(name, now)
                        for name in self.first_seen:
                            if name not in present and name not in self.gone_at:
                                self.gone_at[name] = now
                    self._stop.wait(self.interval)
        except BaseException as e:  # reported by stop()
            self._error = e

    def snapshot(self) -> tuple[dict[str, float], dict[str, float]]:
        with self._lock:
            return dict(self.first_seen), dict(self.gone_at)


def vault_roles(pg: PostgresCluster) -> set[str]:
    rows = pg.query(f"SELECT rolname FROM pg_roles WHERE rolname LIKE "
                    f"{quote_literal(VAULT_ROLE_PREFIX + '%')}", db="postgres")
    return {r["rolname"] for r in rows}


# ---------------------------------------------------------------------------------------------
# The chain.


@dataclass
class Tenant:
    """One credential set: a Vault database mount with one dynamic role, a PostgreSQL database
    it makes roles in, and the PgBouncer database that uses it (credential=<set>).

    kind "static": the mount has one static role for `login_user`, a PostgreSQL user the chain
    creates (in `group`), rotated by Vault every `rotation_period`. kind "kv": db_mount is a
    KV v2 mount holding `login_user` and its password at `kv_path`."""
    set_name: str
    pg_db: str
    group: str
    default_ttl: str
    max_ttl: str
    rotation_margin: str
    db_mount: str = ""
    role: str = ""
    policy: str = ""
    bouncer_db: str = ""
    set_keys: dict[str, str] = field(default_factory=dict)
    kind: str = "dynamic"
    rotation_period: str = ""
    login_user: str = ""
    kv_path: str = ""


class Chain:
    """PostgreSQL + Vault + pgbv-controller + patched PgBouncer, wired as in scripts/demo.py."""

    def __init__(self, *, pg: PostgresCluster, pg_admin_password: str, vault: VaultTarget,
                 workdir: Path, controller_bin: Path, pgbvctl_bin: Path, plugin_so: Path,
                 bouncers, pg_bindir: Path):
        self.pg = pg
        self.pg_admin_password = pg_admin_password
        self.vault = vault
        self.workdir = workdir
        self.controller_bin = controller_bin
        self.pgbvctl_bin = pgbvctl_bin
        self.plugin_so = plugin_so
        self.bouncers = bouncers
        self.pg_bindir = pg_bindir
        self.suffix = secrets.token_hex(3)
        self.auth_mount = f"approle-{self.suffix}"
        self.approle = "pgbv"
        self.tenants: dict[str, Tenant] = {}
        self.controller: Controller | None = None
        self.bouncer: PgBouncer | None = None
        self.secret_id = ""
        self.role_id = ""
        self.preexisting_roles: set[str] = set()
        self._vault_configured = False
        self._mounted: list[str] = []
        self._policies: list[str] = []
        self._auth_enabled = False
        self._pg_users: list[str] = []
        self.extra_auth_mounts: list[str] = []  # disabled at close()

    # -----------------------------------------------------------------------------------------
    # Set-up.

    def add_tenant(self, set_name: str = "app", *, pg_db: str = APP_DB, group: str = APP_GROUP,
                   default_ttl: str = "5m", max_ttl: str = "10m", rotation_margin: str = "10s",
                   bouncer_db: str | None = None, kind: str = "dynamic",
                   rotation_period: str = "1h", **set_keys: str) -> Tenant:
        """A credential set to configure at start(); the Vault role is named like the set.
        kind: dynamic, static (rotation_period) or kv (set_keys may hold refresh_interval)."""
        assert kind in ("dynamic", "static", "kv"), kind
        login_user = f"pgbv_{kind}_{self.suffix}_{set_name}" if kind != "dynamic" else ""
        t = Tenant(set_name=set_name, pg_db=pg_db, group=group, default_ttl=default_ttl,
                   max_ttl=max_ttl, rotation_margin=rotation_margin,
                   db_mount=f"{'kv' if kind == 'kv' else 'db'}-{self.suffix}-{set_name}",
                   role=set_name, policy=f"pgbv-{self.suffix}-{set_name}",
                   bouncer_db=bouncer_db or pg_db, set_keys=dict(set_keys), kind=kind,
                   rotation_period=rotation_period, login_user=login_user,
                   kv_path=f"pgbv/{set_name}" if kind == "kv" else "")
        self.tenants[set_name] = t
        return t

    def pg_url(self, db: str) -> str:
        host = os.environ.get("PGBV_TEST_PG_HOST_FOR_VAULT") or "127.0.0.1"
        return (f"postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{self.pg.port}/{db}"
                "?sslmode=disable")

    def configure_vault(self, *, token_ttl: str, token_max_ttl: str) -> None:
        """Everything an operator does in Vault, through its API (the same on a real Vault)."""
        c = self.vault.client
        c.enable_auth(self.auth_mount, "approle")
        self._auth_enabled = True
        policies = []
        for t in self.tenants.values():
            if t.kind != "dynamic":
                self._configure_leaseless(t)
                self._policies.append(t.policy)
                policies.append(t.policy)
                continue
            c.enable_secrets_engine(t.db_mount, "database")
            self._mounted.append(t.db_mount)
            # setup_pgbv writes the connection, the role, the tenant's policy and an AppRole
            # bound to that one policy; the AppRole is rewritten below with every policy.
            info = setup_pgbv(c, self.pg_url(t.pg_db), "postgres", self.pg_admin_password,
                              db_mount=t.db_mount, db_name="pg", role=t.role,
                              default_ttl=t.default_ttl, max_ttl=t.max_ttl,
                              grant_roles=[t.group], auth_mount=self.auth_mount,
                              approle=self.approle, policy=t.policy, enable=False)
            self._policies.append(t.policy)
            policies.append(t.policy)
            self.role_id = info["role_id"]
        c.write_approle(self.auth_mount, self.approle, token_policies=policies,
                        token_ttl=token_ttl, token_max_ttl=token_max_ttl,
                        secret_id_num_uses=0, secret_id_ttl=0)
        self.role_id = c.approle_role_id(self.auth_mount, self.approle)
        self.secret_id = c.approle_secret_id(self.auth_mount, self.approle)
        self._vault_configured = True

    def create_login_user(self, t: Tenant, name: str, password: str) -> None:
        """A PostgreSQL user in the tenant's group, dropped at close()."""
        self.pg.psql(f"CREATE ROLE {quote_ident(name)} LOGIN PASSWORD {quote_literal(password)} "
                     f"IN ROLE {quote_ident(t.group)};", db="postgres")
        self._pg_users.append(name)

    def write_kv_login(self, set_name: str, username: str, password: str) -> int:
        """Writes a new version of a kv tenant's secret; returns the version."""
        t = self.tenants[set_name]
        return write_kv(self.vault.client, t.db_mount, t.kv_path,
                        {"username": username, "password": password})

    def _configure_leaseless(self, t: Tenant) -> None:
        """A static role or a KV v2 secret for `t`, and a policy that reads only it."""
        c = self.vault.client
        password = secrets.token_urlsafe(18)
        self.create_login_user(t, t.login_user, password)
        if t.kind == "static":
            # Vault checks for due rotations every tick_interval seconds (5 by default).
            enable_database(c, t.db_mount, tick_interval=1)
            self._mounted.append(t.db_mount)
            c.configure_postgres(t.db_mount, "pg", self.pg_url(t.pg_db), "postgres",
                                 self.pg_admin_password, [t.role])
            # Vault sets a password it alone knows at once.
            write_static_role(c, t.db_mount, t.role, "pg", t.login_user, t.rotation_period)
            hcl = static_role_policy(t.db_mount, t.role)
        else:
            enable_kv2(c, t.db_mount)
            self._mounted.append(t.db_mount)
            self.write_kv_login(t.set_name, t.login_user, password)
            hcl = kv_policy(t.db_mount, t.kv_path)
        c.put_policy(t.policy, hcl)

    @property
    def policies(self) -> list[str]:
        """The tenants' Vault policies, for an auth method's role."""
        return list(self._policies)

    def make_controller(self, *, vault_settings: dict | None = None,
                        controller_settings: dict | None = None,
                        vault_addr: str | None = None) -> Controller:
        vault = {"auth_method": "approle", "approle_mount": self.auth_mount,
                 "retry_min": "500ms", "retry_max": "5s"}
        if self.vault.cacert:
            vault["ca_file"] = self.vault.cacert
        if self.vault.client.namespace:
            vault["namespace"] = self.vault.client.namespace
        vault.update(vault_settings or {})
        def set_keys(t: Tenant) -> dict[str, str]:
            if t.kind == "static":
                return {"kind": "static", "role": t.role, "mount": t.db_mount, **t.set_keys}
            if t.kind == "kv":
                return {"kind": "kv", "mount": t.db_mount, "path": t.kv_path, **t.set_keys}
            return {"role": t.role, "mount": t.db_mount, "rotation_margin": t.rotation_margin,
                    **t.set_keys}

        sets = {t.set_name: set_keys(t) for t in self.tenants.values()}
        ctl = Controller(self.controller_bin, self.pgbvctl_bin, self.workdir,
                         vault_addr=vault_addr or self.vault.addr, vault=vault, sets=sets,
                         controller=controller_settings)
        if vault.get("auth_method") != "approle":
            # Another auth method (see controller_auth.py): no AppRole keys for it.
            ctl.vault.pop("approle_mount", None)
            return ctl
        ctl.vault["role_id_file"] = str(ctl.secret_file("role_id", self.role_id))
        if "secret_id_file" not in ctl.vault:
            ctl.vault["secret_id_file"] = str(ctl.secret_file("secret_id", self.secret_id))
        return ctl

    def start(self, *, token_ttl: str = "1h", token_max_ttl: str = "24h",
              vault_settings: dict | None = None, controller_settings: dict | None = None,
              bouncer_settings: dict | None = None, vault_addr: str | None = None,
              configure_auth=None, prepare=None) -> "Chain":
        """Configures Vault, starts the controller and PgBouncer, and waits until every set
        has credentials in PgBouncer.

        configure_auth(chain): called once Vault has the tenants' policies (chain.policies), to
        set up another auth method (register its mount in chain.extra_auth_mounts).
        prepare(controller): called before the controller starts, e.g. to write its JWT file."""
        if not self.tenants:
            self.add_tenant()
        self.preexisting_roles = vault_roles(self.pg)
        self.configure_vault(token_ttl=token_ttl, token_max_ttl=token_max_ttl)
        if configure_auth is not None:
            configure_auth(self)
        self.controller = self.make_controller(vault_settings=vault_settings,
                                               controller_settings=controller_settings,
                                               vault_addr=vault_addr)
        if prepare is not None:
            prepare(self.controller)
        self.controller.start()
        databases = {t.bouncer_db: f"host=127.0.0.1 port={self.pg.port} dbname={t.pg_db} "
                                   f"credential={t.set_name}"
                     for t in self.tenants.values()}
        self.bouncer = self.bouncers.start(
            databases, plugin_settings(self.plugin_so, self.controller.plugin_socket,
                                       **(bouncer_settings or {})))
        self.wait_all_sets(timeout=30)
        return self

    def wait_all_sets(self, timeout: float) -> None:
        wait_until(lambda: all(self.show(t.set_name) for t in self.tenants.values()), timeout,
                   f"PgBouncer to receive credentials for {sorted(self.tenants)}",
                   interval=0.2)

    # -----------------------------------------------------------------------------------------
    # Looking at it.

    def show(self, set_name: str = "app") -> dict[str, str] | None:
        """The set's row of PgBouncer's SHOW CREDENTIALS, or None before its first push."""
        assert self.bouncer is not None
        for row in self.bouncer.admin("SHOW CREDENTIALS"):
            if row["set"] == set_name and row["user"]:
                return row
        return None

    def current_user(self, set_name: str = "app") -> str:
        row = self.show(set_name)
        assert row is not None, f"PgBouncer has no credentials for set {set_name!r}"
        return row["user"]

    def status(self) -> dict:
        """The controller's status object (`pgbvctl status --json`)."""
        assert self.controller is not None
        answer = self.controller.status()
        return answer.get("status", answer)

    def set_status(self, set_name: str = "app") -> dict:
        sets = {s["name"]: s for s in self.status()["sets"]}
        assert set_name in sets, f"pgbvctl status has no set {set_name!r}: {sorted(sets)}"
        return sets[set_name]

    def rotate(self, set_name: str = "app", timeout: float = 20) -> tuple[str, str]:
        """`pgbvctl rotate SET`, then waits until PgBouncer uses a new user; (old, new)."""
        assert self.controller is not None
        old = self.current_user(set_name)
        cp = self.controller.pgbvctl_run("rotate", set_name)
        assert cp.returncode == 0, f"pgbvctl rotate {set_name} exited {cp.returncode}: " \
                                   f"{cp.stderr.strip()} {cp.stdout.strip()}"

        def new_user():
            row = self.show(set_name)
            return row["user"] if row and row["user"] != old else None

        return old, wait_until(new_user, timeout, f"set {set_name} to rotate away from {old}",
                               interval=0.1)

    def new_vault_roles(self) -> set[str]:
        """Vault-made roles in PostgreSQL now, leaving out those from before this chain."""
        return vault_roles(self.pg) - self.preexisting_roles

    def log_paths(self) -> dict[str, Path]:
        """Every log of PgBouncer, the controller and the Vault double, by name."""
        logs: dict[str, Path] = {}
        if self.bouncer is not None:
            logs["pgbouncer"] = self.bouncer.log_path
        if self.controller is not None:
            logs["controller"] = self.controller.log_path
        for p in self.vault.log_paths():
            logs[f"vault double ({p.name})"] = p
        return logs

    # -----------------------------------------------------------------------------------------
    # Tear-down.

    def stop_controller(self) -> list[str]:
        """Stops the controller; returns why it looked unwell: it had died on its own, or a
        sanitizer spoke in its log (also at exit, hence after stopping)."""
        ctl = self.controller
        if ctl is None or ctl.process is None:
            return []
        problems = []
        if not ctl.process.stopped_by_us and not ctl.process.alive():
            problems.append(f"pgbv-controller exited by itself with status "
                            f"{ctl.process.returncode()}")
        ctl.stop()
        hits = sorted({m.group(0) for m in _SANITIZER_RE.finditer(ctl.log_text())})
        if hits:
            problems.append(f"pgbv-controller's log reports {', '.join(hits)}")
        return problems

    def close(self) -> list[str]:
        """Stops everything (PgBouncer, controller), removes this chain's Vault set-up (which
        revokes its leases, dropping their roles), and returns health problems seen."""
        if self.bouncer is not None:
            self.bouncer.stop()
        problems = self.stop_controller()
        c = self.vault.client
        if self._vault_configured or self._mounted:
            for mount in self._mounted:
                for call in (lambda: c.request("PUT", f"sys/leases/revoke-prefix/{mount}",
                                               {"sync": True}),
                             lambda: c.disable_secrets_engine(mount)):
                    try:
                        call()
                    except Exception:  # best effort: the test's own outcome matters more
                        pass
            for p in self._policies:
                try:
                    c.delete_policy(p)
                except Exception:
                    pass
            if self._auth_enabled:
                try:
                    c.disable_auth(self.auth_mount)
                except Exception:
                    pass
        for mount in self.extra_auth_mounts:
            try:
                c.disable_auth(mount)
            except Exception:
                pass
        for user in self._pg_users:  # Vault never drops a static role's user
            try:
                self.pg.psql(f"DROP ROLE IF EXISTS {quote_ident(user)};", db="postgres")
            except Exception:
                pass
        return problems


# ---------------------------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(scope="session")
def pg_admin_password(pg: PostgresCluster) -> str:
    """The superuser gets a password: Vault logs in with it over TCP (SCRAM)."""
    password = secrets.token_urlsafe(18)
    pg.psql(f"ALTER ROLE postgres PASSWORD {quote_literal(password)};", db="postgres")
    return password


@pytest.fixture(scope="session")
def controller_bins() -> tuple[Path, Path]:
    return (_env_file("PGBV_CONTROLLER", "the pgbv-controller binary"),
            _env_file("PGBV_PGBVCTL", "the pgbvctl binary"))


@pytest.fixture
def vault_target(request, workdir: Path):
    """The double (one per test) or, with PGBV_TEST_USE_REAL_VAULT=1, the real Vault."""
    if REAL_VAULT:
        yield VaultTarget.real_from_env()
        return
    script = Path(os.environ.get("PGBV_VAULT_DOUBLE") or VAULT_DOUBLE_DIR / "vault_double.py")
    if not script.is_file():
        pytest.fail(f"the Vault double {script} is missing (PGBV_VAULT_DOUBLE)", pytrace=False)
    directory = processes.make_dir(workdir, "vault", mode=0o700)
    tls = None
    if getattr(request.module, "VAULT_DOUBLE_TLS", False):
        # The module asks for an HTTPS double; the controller (user postgres) reads the files.
        from tlsfiles import make_tls_set
        tls_dir = processes.make_dir(workdir, "tls", mode=0o755)
        tls = make_tls_set(str(tls_dir))
        for f in tls_dir.iterdir():
            processes.give_to_server_user(f)
    target = VaultTarget.start_double(directory, script, tls=tls,
                                      standby=getattr(request.module, "VAULT_DOUBLE_STANDBY",
                                                      False),
                                      extra_args=getattr(request.module, "VAULT_DOUBLE_ARGS", ()))
    yield target
    problems = target.health_problems()
    target.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed or problems:
        for p in target.log_paths():
            text = p.read_text(errors="replace") if p.exists() else ""
            print(f"--- {p} (last 6000 chars):\n{text[-6000:]}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def chain(request, pg: PostgresCluster, pg_bindir: Path, pgbouncer_bin: Path, plugin_so: Path,
          controller_bins, pg_admin_password: str, vault_target: VaultTarget, bouncers,
          workdir: Path):
    """A Chain not started yet: add tenants if needed, then call start()."""
    ch = Chain(pg=pg, pg_admin_password=pg_admin_password, vault=vault_target, workdir=workdir,
               controller_bin=controller_bins[0], pgbvctl_bin=controller_bins[1],
               plugin_so=plugin_so, bouncers=bouncers, pg_bindir=pg_bindir)
    yield ch
    problems = ch.close()
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed or problems:
        ctl = ch.controller
        if ctl is not None:
            config = ctl.config_path.read_text() if ctl.config_path.exists() else ""
            print(f"--- {ctl.config_path}:\n{config}")
            print(f"--- {ctl.log_path} (last 15000 chars):\n{ctl.log_text()[-15000:]}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def make_database(pg: PostgresCluster, name: str, group: str) -> None:
    """A second tenant's database: a table owned by its own group role."""
    pg.psql(f"CREATE DATABASE {quote_ident(name)};", db="postgres")
    pg.psql(f"""
        CREATE ROLE {quote_ident(group)} NOLOGIN;
        GRANT CONNECT ON DATABASE {quote_ident(name)} TO {quote_ident(group)};
    """, db="postgres")
    pg.psql(f"""
        CREATE TABLE tenant_notes (id bigserial PRIMARY KEY, note text NOT NULL,
                                   written_by name NOT NULL DEFAULT current_user);
        ALTER TABLE tenant_notes OWNER TO {quote_ident(group)};
        ALTER SEQUENCE tenant_notes_id_seq OWNER TO {quote_ident(group)};
    """, db=name)
