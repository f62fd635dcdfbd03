"""revoke_on_shutdown: on SIGTERM the controller waits until PgBouncer has let go of the
credentials (its plugin disconnected), then revokes every lease, so the Vault roles disappear
from PostgreSQL; without PgBouncer letting go it revokes at shutdown_timeout. Without the
option the leases outlive the controller (the default, checked for contrast)."""

import signal
import time

from chain import (chain, controller_bins, pg_admin_password, vault_target)  # noqa: F401
from processes import wait_until


def _start(chain, **controller_settings):
    chain.add_tenant("app", default_ttl="5m", max_ttl="10m")
    chain.add_tenant("reports", bouncer_db="reports", default_ttl="5m", max_ttl="10m")
    chain.start(controller_settings=controller_settings)
    roles = {chain.current_user("app"), chain.current_user("reports")}
    # Both roles really log in to PostgreSQL through PgBouncer.
    for db in ("app", "reports"):
        assert chain.bouncer.psql("SELECT current_user;", db=db).stdout.strip() in roles
    assert chain.new_vault_roles() == roles
    return roles


def _stop_controller(chain, timeout):
    ctl = chain.controller
    ctl.process.send_signal(signal.SIGTERM)
    code = ctl.process.wait(timeout)
    ctl.process.stop()  # marks it stopped by us, closes its log
    return code


def test_revoke_on_shutdown_after_pgbouncer_stopped(chain):  # noqa: F811
    roles = _start(chain, revoke_on_shutdown="true", shutdown_timeout="30s")
    chain.bouncer.stop()
    started = time.monotonic()
    assert _stop_controller(chain, 20) == 0
    elapsed = time.monotonic() - started
    log = chain.controller.log_text()
    assert "revoke_on_shutdown is on" in log, log[-3000:]
    assert "shutdown: no plugin is connected; revoking every lease" in log, log[-3000:]
    assert "shutdown: every revocation has finished" in log, log[-3000:]
    # Not the timeout: PgBouncer was gone already.
    assert elapsed < 15, elapsed
    wait_until(lambda: not (chain.new_vault_roles() & roles), 10,
               f"the Vault roles {sorted(roles)} to disappear from PostgreSQL")


def test_revoke_on_shutdown_waits_for_pgbouncer_then_revokes(chain):  # noqa: F811
    """PgBouncer stops while the controller waits: the revocation follows its disconnect."""
    roles = _start(chain, revoke_on_shutdown="true", shutdown_timeout="60s")
    ctl = chain.controller
    ctl.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "revoke_on_shutdown is on" in ctl.log_text(), 10,
               "the controller to start its shutdown")
    time.sleep(2)
    assert ctl.process.alive(), "the controller did not wait for PgBouncer"
    assert chain.new_vault_roles() >= roles, "revoked while PgBouncer still held them"
    chain.bouncer.stop()
    assert ctl.process.wait(20) == 0
    ctl.process.stop()
    assert "shutdown: every revocation has finished" in ctl.log_text()
    wait_until(lambda: not (chain.new_vault_roles() & roles), 10,
               f"the Vault roles {sorted(roles)} to disappear from PostgreSQL")


def test_revoke_on_shutdown_at_timeout_while_pgbouncer_runs(chain):  # noqa: F811
    roles = _start(chain, revoke_on_shutdown="true", shutdown_timeout="3s")
    started = time.monotonic()
    assert _stop_controller(chain, 25) == 0
    elapsed = time.monotonic() - started
    log = chain.controller.log_text()
    assert "shutdown_timeout (3s) has passed" in log, log[-3000:]
    assert elapsed >= 2.5, elapsed
    assert "shutdown: every revocation has finished" in log, log[-3000:]
    # Vault revoked the leases; PgBouncer's idle servers on those roles are dropped with them
    # (the roles' revocation statements), so the roles go too.
    wait_until(lambda: not (chain.new_vault_roles() & roles), 15,
               f"the Vault roles {sorted(roles)} to disappear from PostgreSQL")


def test_without_revoke_on_shutdown_leases_outlive_the_controller(chain):  # noqa: F811
    roles = _start(chain)
    chain.bouncer.stop()
    assert _stop_controller(chain, 20) == 0
    assert "leases are left to PgBouncer, not revoked" in chain.controller.log_text()
    time.sleep(1)
    assert chain.new_vault_roles() >= roles
