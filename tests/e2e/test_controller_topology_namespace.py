"""Vault Enterprise namespaces: everything (database mount, policy, AppRole) lives in a
namespace; the controller sends X-Vault-Namespace on every request and serves as usual.
Runs on the double in its Enterprise mode, and on a real Vault Enterprise; an open-source
Vault (no namespaces) skips."""

import pytest

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from controller_auth import query_as_vault_role, token_status
from vault_client import create_namespace, in_namespace

VAULT_DOUBLE_ARGS = ("--enterprise",)  # the double models namespaces only in this mode


def test_everything_in_a_namespace(chain):  # noqa: F811
    root = chain.vault.client
    ns = f"pgbv-{chain.suffix}"
    r = create_namespace(root, ns, check=False)
    if r.status >= 400:
        pytest.skip(f"this Vault has no namespaces (HTTP {r.status} on sys/namespaces: the "
                    "open-source server)")
    chain.vault.client = in_namespace(root, ns)  # every set-up call, and the controller's
    try:
        chain.start()
        query_as_vault_role(chain)
        assert f"namespace = {ns}" in chain.controller.config_path.read_text()
        assert token_status(chain.controller)["state"] == "valid"
        assert chain.status()["health"] == "ok"
        # The mount exists in the namespace, not at the root.
        mount = chain.tenants["app"].db_mount
        assert root.request("GET", f"{mount}/roles/app", check=False).status in (403, 404)
    finally:
        chain.close()
        chain.vault.client = root
        root.request("DELETE", f"sys/namespaces/{ns}", check=False)
