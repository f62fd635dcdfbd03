"""Helpers for the controller's auth, TLS and topology end-to-end tests: setting up Vault's
kubernetes, jwt and cert auth methods for a Chain, and running the controller alone (no
PgBouncer) for the paths where it must not get in.

Everything here talks to Vault through its public API, so it works the same on the double
and on a real Vault (PGBV_TEST_USE_REAL_VAULT=1); a real Vault must be able to reach the
Kubernetes API double on 127.0.0.1 (it calls it for TokenReview, as it calls a real cluster).
"""

from __future__ import annotations

import pytest

from chain import VAULT_ROLE_PREFIX, Chain, vault_roles
from controller_process import Controller
from processes import wait_until
from vault_client import setup_cert_auth, setup_jwt_auth, setup_kubernetes_auth

SA_NAMESPACE = "default"
SA_NAME = "pgbv"


def require_vault_reaches_localhost(chain: Chain, what: str) -> None:
    """Skips when a real Vault runs elsewhere: it must call `what` on 127.0.0.1."""
    from urllib.parse import urlsplit
    host = urlsplit(chain.vault.addr).hostname or ""
    if not chain.vault.is_double and host not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip(f"the real Vault at {chain.vault.addr} cannot reach {what} on 127.0.0.1")


def kubernetes_auth(k8s, *, role: str = "app", **kw):
    """configure_auth for Chain.start(): kubernetes auth at auth/k8s-<suffix>, with a role
    bound to service account default/pgbv and the tenants' policies."""
    def configure(chain: Chain) -> None:
        mount = f"k8s-{chain.suffix}"
        setup_kubernetes_auth(chain.vault.client, k8s.url, mount=mount,
                              token_reviewer_jwt=k8s.token("kube-system", "vault-reviewer"),
                              role=role, sa_names=(SA_NAME,), namespaces=(SA_NAMESPACE,),
                              policies=chain.policies, **kw)
        chain.extra_auth_mounts.append(mount)
    return configure


def jwt_auth(issuer, *, role: str = "app", **kw):
    """configure_auth: jwt auth at auth/jwt-<suffix> trusting `issuer`'s key, audience pgbv."""
    def configure(chain: Chain) -> None:
        mount = f"jwt-{chain.suffix}"
        setup_jwt_auth(chain.vault.client, issuer.public_key_pem, mount=mount, role=role,
                       bound_audiences=("pgbv",), user_claim="sub", policies=chain.policies,
                       **kw)
        chain.extra_auth_mounts.append(mount)
    return configure


def cert_auth(ca_cert_path: str, *, name: str = "app", **kw):
    """configure_auth: cert auth at auth/cert-<suffix> trusting certificates of that CA."""
    def configure(chain: Chain) -> None:
        mount = f"cert-{chain.suffix}"
        with open(ca_cert_path) as f:
            setup_cert_auth(chain.vault.client, f.read(), mount=mount, name=name,
                            policies=chain.policies, **kw)
        chain.extra_auth_mounts.append(mount)
    return configure


def controller_only(chain: Chain, *, vault_settings: dict | None = None, configure_auth=None,
                    prepare=None, token_ttl: str = "1h", token_max_ttl: str = "24h",
                    vault_addr: str | None = None) -> Controller:
    """Vault configured as Chain.start() does, then the controller started without PgBouncer."""
    if not chain.tenants:
        chain.add_tenant()
    chain.preexisting_roles = vault_roles(chain.pg)
    chain.configure_vault(token_ttl=token_ttl, token_max_ttl=token_max_ttl)
    if configure_auth is not None:
        configure_auth(chain)
    chain.controller = chain.make_controller(vault_settings=vault_settings, vault_addr=vault_addr)
    if prepare is not None:
        prepare(chain.controller)
    chain.controller.start()
    return chain.controller


def wait_log(ctl: Controller, text: str, timeout: float = 30) -> str:
    """Waits until the controller's log holds `text`; returns that line."""
    def line():
        for l in ctl.log_text().splitlines():
            if text in l:
                return l
        return None
    return wait_until(line, timeout, f"the controller to log {text!r}", interval=0.2)


def token_status(ctl: Controller) -> dict:
    answer = ctl.status()
    return answer.get("status", answer)["token"]


def query_as_vault_role(chain: Chain) -> str:
    """A query through PgBouncer; asserts it ran as a role Vault made; returns the role."""
    user = chain.bouncer.psql("SELECT current_user;").stdout.strip()
    assert user.startswith(VAULT_ROLE_PREFIX), f"not a Vault-made role: {user!r}"
    assert user == chain.current_user("app")
    return user


def assert_no_secret(ctl: Controller, *secrets: str) -> None:
    text = ctl.log_text()
    for s in secrets:
        assert s and s not in text, "a secret reached the controller's log"
