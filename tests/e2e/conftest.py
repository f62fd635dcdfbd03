"""Fixtures of the end-to-end suite: binaries, PostgreSQL, credential server, PgBouncer.

Paths come from the environment that tests/e2e/CMakeLists.txt sets for every ctest:
PGBV_PGBOUNCER (the patched pgbouncer), PGBV_PLUGIN (libpgbv.so), PGBV_BAD_ABI_PLUGIN (the
wrong-ABI test object) and PG_BINDIR (default /usr/lib/postgresql/15/bin). A missing binary
fails the test that needs it with a message saying what to build or install.

Scopes: one PostgreSQL cluster per pytest process (ctest runs one test per process); a
fresh credential server, roles and PgBouncer for every test. Teardown stops every process
and removes every temp dir, also when the test failed, and prints the logs of a failed test.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import processes  # noqa: E402
from credserver import CredServer  # noqa: E402
from pgbouncer_process import PgBouncer  # noqa: E402
from postgres_cluster import PostgresCluster  # noqa: E402
from rig import Rig, Roles, app_database, plugin_settings  # noqa: E402

PG_BINARIES = ("initdb", "postgres", "pg_isready", "psql", "pgbench")


def _env_file(var: str, what: str, hint: str) -> Path:
    value = os.environ.get(var, "")
    if not value:
        pytest.fail(f"{var} is not set: it must name {what}. {hint}", pytrace=False)
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"{var}={value}: no such file ({what}). {hint}", pytrace=False)
    return path


_BUILD_HINT = ("Build the project (cmake --build <build dir>) and run the suite through "
               "ctest, which sets it, or export it by hand.")


@pytest.fixture(scope="session")
def pg_bindir() -> Path:
    bindir = Path(os.environ.get("PG_BINDIR") or "/usr/lib/postgresql/15/bin")
    missing = [b for b in PG_BINARIES if not os.access(bindir / b, os.X_OK)]
    if missing:
        pytest.fail(f"PostgreSQL binaries missing in {bindir}: {', '.join(missing)}. Install "
                    "the Debian packages postgresql-15 and postgresql-client-15 (or run "
                    "scripts/install-deps.sh), or set PG_BINDIR.", pytrace=False)
    return bindir


@pytest.fixture(scope="session")
def session_root():
    processes.sweep_stale_dirs()
    root = processes.new_temp_dir("session")
    yield root
    processes.remove_dir(root)


@pytest.fixture(scope="session")
def server_bin_dir(session_root: Path) -> Path:
    return processes.make_dir(session_root, "bin")


def _for_server_user(path: Path, bin_dir: Path) -> Path:
    """A copy of a build output that the postgres user can surely read and run.

    The build tree may sit where that user cannot reach it (a clone under /root, say); the
    bytes are the same, only the directory differs.
    """
    copy = bin_dir / path.name
    shutil.copyfile(path, copy)
    os.chmod(copy, 0o755)
    return copy


@pytest.fixture(scope="session")
def pgbouncer_bin(server_bin_dir: Path) -> Path:
    path = _env_file("PGBV_PGBOUNCER", "the patched pgbouncer binary", _BUILD_HINT)
    if not os.access(path, os.X_OK):
        pytest.fail(f"PGBV_PGBOUNCER={path} is not executable", pytrace=False)
    return _for_server_user(path, server_bin_dir)


@pytest.fixture(scope="session")
def plugin_so(pgbouncer_bin: Path, server_bin_dir: Path) -> Path:
    # Depends on pgbouncer_bin so that whichever is missing is reported before a cluster starts.
    path = _env_file("PGBV_PLUGIN", "the credential plugin libpgbv.so", _BUILD_HINT)
    return _for_server_user(path, server_bin_dir)


@pytest.fixture(scope="session")
def bad_abi_plugin(server_bin_dir: Path) -> Path:
    path = _env_file("PGBV_BAD_ABI_PLUGIN",
                     "the wrong-ABI test plugin built from tests/e2e/bad_abi_plugin.c",
                     _BUILD_HINT)
    return _for_server_user(path, server_bin_dir)


@pytest.fixture(scope="session")
def pg(pg_bindir: Path, session_root: Path):
    cluster = PostgresCluster(pg_bindir, processes.make_dir(session_root, "pg"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def _failed(request) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture
def workdir(request, session_root: Path) -> Path:
    # Short: Unix socket paths inside it must stay under 108 bytes.
    safe = "".join(c if c.isalnum() else "_" for c in request.node.name.removeprefix("test_"))
    path = processes.new_temp_dir(f"t-{safe[:16]}")
    yield path
    processes.remove_dir(path)


@pytest.fixture
def credserver(request, workdir: Path):
    """A running credential server; fails the test if it saw the plugin break the protocol.

    A test that provokes protocol errors on purpose sets `server.allow_protocol_errors`.
    """
    ctl = processes.make_dir(workdir, "ctl")
    server = CredServer(ctl / "plugin.sock")
    server.start()
    yield server
    server.stop()
    records = server.snapshot_records()
    if _failed(request):
        print(f"--- credential server: handshakes={records['handshakes']} "
              f"connections={records['connections_accepted']} "
              f"drained={[(d.set, d.generation) for d in records['drained']]} "
              f"login_failed={[(e.set, e.generation, e.sqlstate) for e in records['login_failed']]}"
              f" errors={[(e.code, e.message) for e in records['errors_received']]} "
              f"protocol_errors={records['protocol_errors']}")
    if records["protocol_errors"] and not server.allow_protocol_errors:
        pytest.fail("the credential server saw protocol violations from the plugin: "
                    + "; ".join(records["protocol_errors"]), pytrace=False)


@pytest.fixture
def roles(pg: PostgresCluster):
    made = Roles(pg)
    yield made
    made.drop_all()


class Bouncers:
    """Starts PgBouncers for one test; stops them all and checks their health afterwards."""

    def __init__(self, binary: Path, pg_bindir: Path, workdir: Path):
        self.binary = binary
        self.pg_bindir = pg_bindir
        self.workdir = workdir
        self.started: list[PgBouncer] = []

    def make(self, databases: dict[str, str], settings: dict) -> PgBouncer:
        bouncer = PgBouncer(self.binary, self.workdir, self.pg_bindir,
                            databases=databases, settings=settings)
        self.started.append(bouncer)
        return bouncer

    def start(self, databases: dict[str, str], settings: dict) -> PgBouncer:
        bouncer = self.make(databases, settings)
        bouncer.start()
        return bouncer


@pytest.fixture
def bouncers(request, pgbouncer_bin: Path, pg_bindir: Path, workdir: Path):
    made = Bouncers(pgbouncer_bin, pg_bindir, workdir)
    yield made
    problems = []
    for b in made.started:
        b.stop()
        problems += b.health_problems()
    if _failed(request) or problems:
        for b in made.started:
            print(f"--- {b.ini_path}:\n{b.ini_path.read_text() if b.ini_path.exists() else ''}")
            print(f"--- {b.log_path} (last 12000 chars):\n{b.log_text()[-12000:]}")
        if "pg" in request.fixturenames:
            pg = request.getfixturevalue("pg")
            print(f"--- PostgreSQL log (last 6000 chars):\n{pg.log_text()[-6000:]}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def rig(pgbouncer_bin: Path, plugin_so: Path, pg: PostgresCluster, credserver: CredServer,
        roles: Roles, bouncers: Bouncers) -> Rig:
    """Credentials for a fresh role pushed, then PgBouncer started with database `app`
    (credential=app_rw) and connected to the credential server.

    The binaries come first in the arguments: a missing one fails before PostgreSQL starts.
    """
    r = Rig(pg, credserver, roles)
    r.rotate()
    r.bouncer = bouncers.start({"app": app_database(pg)},
                               plugin_settings(plugin_so, Path(credserver.socket_path)))
    credserver.wait_ready(timeout=15)
    return r

