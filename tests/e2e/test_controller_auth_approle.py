"""AppRole with a response-wrapped secret ID: the controller checks the wrapping token
(sys/wrapping/lookup), unwraps it once and logs in; a wrapping token already used is a clear
error naming the file and what to do, never showing the token."""

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from controller_auth import (assert_no_secret, controller_only, query_as_vault_role,
                             token_status, wait_log)


def _wrapped_secret_id(chain):  # noqa: F811
    return chain.vault.client.approle_secret_id(chain.auth_mount, chain.approle, wrap_ttl="5m")


def test_wrapped_secret_id_unwrapped_once(chain):  # noqa: F811
    tokens = {}

    def prepare(ctl):
        tokens["wrapping"] = _wrapped_secret_id(chain)
        ctl.vault["secret_id_file"] = str(ctl.secret_file("secret_id.wrapped",
                                                          tokens["wrapping"]))

    # Token max TTL 20 s: it logs in again within the test, with the kept secret ID.
    chain.start(token_ttl="20s", token_max_ttl="20s",
                vault_settings={"secret_id_wrapped": "true"}, prepare=prepare)
    query_as_vault_role(chain)
    ctl = chain.controller
    wait_log(ctl, "vault: unwrapped the secret ID in ")
    logins = token_status(ctl)["logins"]
    wait_log(ctl, "vault: logged in (AppRole login): token #2", timeout=40)
    assert token_status(ctl)["logins"] >= max(2, logins)
    assert ctl.log_text().count("unwrapped the secret ID") == 1
    # The wrapping token is used up: Vault no longer knows it.
    r = chain.vault.client.request("POST", "sys/wrapping/lookup", {"token": tokens["wrapping"]},
                                   token=None, check=False)
    assert r.status == 400, r.status
    query_as_vault_role(chain)
    assert_no_secret(ctl, tokens["wrapping"], chain.secret_id)


def test_wrapped_secret_id_already_used(chain):  # noqa: F811
    tokens = {}

    def prepare(ctl):
        tokens["wrapping"] = _wrapped_secret_id(chain)
        chain.vault.client.unwrap(tokens["wrapping"])  # someone else got there first
        path = ctl.secret_file("secret_id.wrapped", tokens["wrapping"])
        tokens["path"] = str(path)
        ctl.vault["secret_id_file"] = str(path)

    ctl = controller_only(chain, vault_settings={"secret_id_wrapped": "true"}, prepare=prepare)
    line = wait_log(ctl, f"secret_id_file {tokens['path']} holds a response-wrapping token that "
                         "Vault no longer knows: it was already unwrapped (a wrapping token works "
                         "once) or it expired (Vault answered 400); deliver a new wrapped secret "
                         "ID there")
    assert "WARNING" in line.upper()
    st = token_status(ctl)
    assert st["state"] == "failing" and "already unwrapped" in st["error"], st
    assert "logged in" not in ctl.log_text()
    assert_no_secret(ctl, tokens["wrapping"])
