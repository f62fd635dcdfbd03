"""The token method: a token file (a Vault Agent sink) and batch tokens, which are never
renewed and whose end is explained; an unreadable token file stops the start naming it."""

import os

import pytest

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from controller_auth import assert_no_secret, query_as_vault_role, token_status, wait_log
from processes import wait_until


def test_batch_token_from_a_file_never_renewed(chain):  # noqa: F811
    files = {}

    def prepare(ctl):
        c = chain.vault.client
        files["token"] = c.create_token(type="batch", ttl="40s", policies=chain.policies,
                                        no_default_policy=False).auth["client_token"]
        files["path"] = ctl.secret_file("vault-token", files["token"])
        ctl.vault["token_file"] = str(files["path"])

    chain.start(vault_settings={"auth_method": "token"}, prepare=prepare)
    query_as_vault_role(chain)
    ctl = chain.controller
    st = token_status(ctl)
    assert st["method"] == "token" and st["batch"] and not st["renewable"], st
    wait_log(ctl, "batch token (never renewed; leases end with it)")
    # Near its end the controller says why it cannot go on by itself ...
    wait_log(ctl, f"token_file {files['path']} still holds the current token, which ends soon "
                  "and cannot be renewed (a batch token); the token method cannot log in again "
                  "by itself", timeout=40)
    # ... and takes the next token the sink writes.
    token2 = chain.vault.client.create_token(type="batch", ttl="10m", policies=chain.policies
                                             ).auth["client_token"]
    files["path"].write_text(token2 + "\n")
    wait_until(lambda: token_status(ctl)["logins"] >= 2, 30, "the new token to be taken up",
               interval=0.5)
    wait_until(lambda: chain.set_status("app")["state"] == "serving", 30,
               "the set to serve under the new token", interval=0.5)
    query_as_vault_role(chain)
    assert "renewed for" not in "\n".join(
        l for l in ctl.log_text().splitlines() if "vault: token #" in l), "a batch token renewed"
    assert_no_secret(ctl, files["token"], token2)


def test_unreadable_token_file_stops_the_start(chain):  # noqa: F811
    if os.geteuid() != 0:
        pytest.skip("needs root to run the controller as another user than the file's")
    if not chain.tenants:
        chain.add_tenant()
    chain.configure_vault(token_ttl="1h", token_max_ttl="24h")
    ctl = chain.make_controller(vault_settings={"auth_method": "token"})
    chain.controller = ctl
    path = ctl.secret_file("vault-token", "hvs.not-readable")
    path.chmod(0)
    ctl.vault["token_file"] = str(path)
    with pytest.raises(RuntimeError) as e:
        ctl.start()
    ctl.stop()
    text = str(e.value)
    assert f"token_file '{path}': cannot read it: Permission denied" in text, text
