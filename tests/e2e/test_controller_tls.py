"""TLS to Vault: the double over HTTPS with a test CA. Verified with ca_file (and with
tls_server_name); a wrong CA is refused with a clear error; tls_skip_verify works but warns at
every start."""

import pytest

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from controller_auth import controller_only, query_as_vault_role, token_status, wait_log

VAULT_DOUBLE_TLS = True  # chain.vault_target serves HTTPS with a test CA (tlsfiles.py)


def _https(chain):  # noqa: F811
    if not chain.vault.addr.startswith("https://"):
        pytest.skip(f"the real Vault at {chain.vault.addr} does not use HTTPS")


def _untrusted_ca(chain, workdir):  # noqa: F811
    if chain.vault.tls is not None:
        return chain.vault.tls.untrusted_ca_cert
    from tlsfiles import make_tls_set
    import processes
    d = processes.make_dir(workdir, "tls-other", mode=0o755)
    t = make_tls_set(str(d))
    processes.give_to_server_user(d / t.untrusted_ca_cert.rsplit("/", 1)[1])
    return t.untrusted_ca_cert


def test_https_verified_with_the_test_ca(chain):  # noqa: F811
    _https(chain)
    settings = {"tls_server_name": "vault.test"} if chain.vault.tls is not None else {}
    chain.start(vault_settings=settings)
    query_as_vault_role(chain)
    assert chain.status()["vault"]["state"] == "reachable"
    assert "tls_skip_verify" not in chain.controller.log_text()


def test_wrong_ca_is_refused_clearly(chain, workdir):  # noqa: F811
    _https(chain)
    ctl = controller_only(chain, vault_settings={"ca_file": _untrusted_ca(chain, workdir)})
    line = wait_log(ctl, f"vault: unreachable at {chain.vault.addr}: ")
    assert "certificate" in line, line
    st = ctl.status().get("status")
    assert st["vault"]["state"] == "unreachable" and "certificate" in st["vault"]["error"], st
    assert token_status(ctl)["state"] in ("failing", "logging_in")
    assert "logged in" not in ctl.log_text()


def test_skip_verify_works_and_warns(chain, workdir):  # noqa: F811
    _https(chain)
    ctl = controller_only(chain, vault_settings={"ca_file": _untrusted_ca(chain, workdir),
                                                 "tls_skip_verify": "true"})
    line = wait_log(ctl, "tls_skip_verify is on: Vault's TLS certificate is NOT verified")
    assert "WARNING" in line.upper(), line
    wait_log(ctl, "vault: logged in (AppRole login)")
    # Every start says it again.
    ctl.stop()
    ctl.start()
    wait_until_two = ctl.log_text().count("tls_skip_verify is on")
    assert wait_until_two == 2, ctl.log_text()[-3000:]
