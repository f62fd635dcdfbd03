"""Fixtures: a real PostgreSQL 15, the Vault under test (the double, or a real Vault), and a
freshly configured database mount + AppRole per test.

Against a real Vault: PGBV_TEST_USE_REAL_VAULT=1 VAULT_ADDR=... VAULT_TOKEN=... [VAULT_CACERT=...]
[PGBV_TEST_PG_HOST_FOR_VAULT=host Vault uses to reach the test PostgreSQL]. Tests marked
double_only (fault injection, server options) are skipped there.
"""

import os
import secrets
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pgtemp  # noqa: E402
from double_process import VaultDouble  # noqa: E402
from vault_client import VaultClient, setup_pgbv  # noqa: E402

REAL_VAULT = os.environ.get("PGBV_TEST_USE_REAL_VAULT") == "1"


def pytest_configure(config):
    config.addinivalue_line("markers", "double_only: needs the double (control API or its "
                                       "command-line options)")


def pytest_collection_modifyitems(config, items):
    if not REAL_VAULT:
        return
    skip = pytest.mark.skip(reason="needs the Vault double, running against a real Vault")
    for item in items:
        if "double_only" in item.keywords:
            item.add_marker(skip)


class Target:
    """The Vault under test: a root client, and the double's handle when it is the double."""

    def __init__(self, client, double=None):
        self.client = client
        self.double = double

    @property
    def is_double(self):
        return self.double is not None

    def control(self):
        return self.double.control()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("vault-double"))


@pytest.fixture(scope="session")
def pg():
    with pgtemp.TempPostgres() as server:
        yield server


@pytest.fixture(scope="session")
def vault(workdir):
    if REAL_VAULT:
        client = VaultClient(os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"],
                             cacert=os.environ.get("VAULT_CACERT"))
        client.wait_ready()
        yield Target(client)
        return
    with VaultDouble(workdir) as vd:
        yield Target(vd.client(), vd)


class Env:
    """One test's own mounts and policy names, removed afterwards."""

    def __init__(self, vault, pg):
        suffix = secrets.token_hex(3)
        self.vault = vault
        self.client = vault.client
        self.pg = pg
        self.db_mount = f"db-{suffix}"
        self.auth_mount = f"approle-{suffix}"
        self.policy = f"pgbv-{suffix}"
        self.role = "app"
        self.approle = "pgbv"
        self.info = None

    def pg_url(self):
        url = self.pg.url_template()
        host = os.environ.get("PGBV_TEST_PG_HOST_FOR_VAULT")
        return url.replace("@127.0.0.1:", f"@{host}:") if host else url

    def setup(self, default_ttl="30s", max_ttl="2m", **kw):
        """Mounts and configures everything pgbouncer-vault needs, through Vault's API."""
        self.info = setup_pgbv(self.client, self.pg_url(), self.pg.superuser, self.pg.password,
                               db_mount=self.db_mount, role=self.role,
                               default_ttl=default_ttl, max_ttl=max_ttl,
                               auth_mount=self.auth_mount, approle=self.approle,
                               policy=self.policy, **kw)
        return self.info

    def login(self):
        """An AppRole login as the controller would do it; returns a client with that token."""
        secret_id = self.client.approle_secret_id(self.auth_mount, self.approle)
        r = self.client.approle_login(self.auth_mount, self.info["role_id"], secret_id)
        return self.client.with_token(r.auth["client_token"]), r

    def controller_token(self, **fields):
        """A token from auth/token/create carrying only the controller policy."""
        r = self.client.create_token(policies=[self.policy], **fields)
        return self.client.with_token(r.auth["client_token"]), r

    def cleanup(self):
        for fn, arg in ((self.client.disable_secrets_engine, self.db_mount),
                        (self.client.disable_auth, self.auth_mount),
                        (self.client.delete_policy, self.policy)):
            try:
                fn(arg)
            except Exception:  # best effort: the test's own failure matters more
                pass


@pytest.fixture
def env(vault, pg):
    e = Env(vault, pg)
    yield e
    e.cleanup()
