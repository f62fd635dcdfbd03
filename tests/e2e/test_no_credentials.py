"""Before the plugin has any credentials for the set, clients wait as for a server that is
down: they get an error naming the set after query_wait_timeout, or proceed as soon as
credentials arrive."""

import threading
import time
from pathlib import Path

import pytest

from processes import wait_until
from rig import SET_NAME, app_database, plugin_settings

QUERY_WAIT_TIMEOUT_S = 3


@pytest.fixture
def waiting_bouncer(plugin_so, pg, credserver, bouncers):
    """PgBouncer connected to a credential server that has nothing for the set."""
    bouncer = bouncers.start({"app": app_database(pg)},
                             plugin_settings(plugin_so, Path(credserver.socket_path),
                                             query_wait_timeout=QUERY_WAIT_TIMEOUT_S))
    credserver.wait_ready()
    return bouncer


def test_client_gets_set_naming_error_after_query_wait_timeout(waiting_bouncer, pg):
    rows = waiting_bouncer.admin("SHOW CREDENTIALS")
    assert [(r["set"], r["user"], r["generation"]) for r in rows] == [(SET_NAME, "", "0")]
    offset = pg.log_size()
    t0 = time.monotonic()
    cp = waiting_bouncer.psql("SELECT current_user;", check=False, timeout=30)
    waited = time.monotonic() - t0
    assert cp.returncode != 0, cp.stdout
    assert SET_NAME in cp.stderr and "credential" in cp.stderr, cp.stderr
    assert "query_wait_timeout" in cp.stderr, cp.stderr
    # It waited for the timeout rather than failing at once.
    assert waited >= QUERY_WAIT_TIMEOUT_S - 0.5, f"failed after {waited:.1f} s: {cp.stderr}"
    # Nothing tried to log in to PostgreSQL without credentials.
    assert sum(pg.authorized_users(offset).values()) == 0


def test_waiting_client_proceeds_when_credentials_arrive(waiting_bouncer, credserver, roles):
    role, password = roles.new()
    result = {}

    def client():
        result["cp"] = waiting_bouncer.psql("SELECT current_user;", check=False, timeout=30)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        wait_until(lambda: any(r["database"] == "app"
                               for r in waiting_bouncer.admin("SHOW CLIENTS")),
                   5, "the client to be waiting in PgBouncer")
        time.sleep(0.5)
        assert thread.is_alive(), result
        credserver.set_credentials(SET_NAME, role, password)
    finally:
        thread.join(timeout=40)
    cp = result["cp"]
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == role
