"""Vault topologies: the controller pointed at a standby node follows its 307 redirects to the
active node (POST/PUT bodies kept) and reports the standby from sys/health; a sealed Vault
(503) and a rate limit (429) are retried with backoff, the log naming the cause."""

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from controller_auth import query_as_vault_role, wait_log
from processes import wait_until
from vault_client import fault_rate_limited, fault_sealed

VAULT_DOUBLE_STANDBY = True  # chain.vault_target also listens as a standby node


def test_standby_redirects_are_followed(chain):  # noqa: F811
    chain.vault.require_double("an HA cluster with a standby node")
    chain.start(vault_addr=chain.vault.standby_addr, vault_settings={"health_interval": "1s"})
    query_as_vault_role(chain)  # login (POST), creds (GET) went through 307s
    old, new = chain.rotate("app")  # and a fetch, renewals, revocations (PUT) keep working
    assert old != new
    health = wait_until(lambda: chain.status()["vault"]["health"]["state"] == "standby" and
                        chain.status()["vault"]["health"], 10, "sys/health to report a standby")
    assert health["standby"] and health["code"] == 200, health
    wait_log(chain.controller, "is a standby")
    cp = chain.controller.pgbvctl_run("status")
    assert "node:     standby" in cp.stdout, cp.stdout


def test_sealed_vault_is_retried_and_named(chain):  # noqa: F811
    chain.vault.require_double("sealing Vault on demand")
    chain.start(vault_settings={"health_interval": "1s"})
    user = query_as_vault_role(chain)
    control = chain.vault.control()
    fault_sealed(control, for_ms=5000)
    cp = chain.controller.pgbvctl_run("rotate", "app")
    assert cp.returncode == 0, cp.stderr
    wait_log(chain.controller, "HTTP 503: Vault is sealed", timeout=10)
    wait_until(lambda: chain.status()["vault"]["health"]["state"] == "sealed", 10,
               "status to show the sealed Vault", interval=0.3)
    # Still served meanwhile; once unsealed the retried fetch goes through.
    assert chain.current_user("app") == user
    wait_until(lambda: chain.current_user("app") != user, 30,
               "the rotation to succeed once Vault is unsealed", interval=0.3)
    wait_until(lambda: chain.status()["vault"]["health"]["state"] == "active", 10,
               "status to show the unsealed Vault", interval=0.3)
    wait_log(chain.controller, "vault: sys/health says Vault is sealed")
    query_as_vault_role(chain)


def test_rate_limit_is_retried_and_named(chain):  # noqa: F811
    chain.vault.require_double("a rate-limit quota answering 429 on demand")
    chain.start()
    user = query_as_vault_role(chain)
    mount = chain.tenants["app"].db_mount
    fault_rate_limited(chain.vault.control(), f"{mount}/creds/", count=3)
    cp = chain.controller.pgbvctl_run("rotate", "app")
    assert cp.returncode == 0, cp.stderr
    wait_log(chain.controller, "rate limit quota exceeded (rate limited by a Vault quota; "
                               "retrying)", timeout=10)
    wait_until(lambda: chain.current_user("app") != user, 30,
               "the rotation to succeed after the 429s", interval=0.3)
    query_as_vault_role(chain)
