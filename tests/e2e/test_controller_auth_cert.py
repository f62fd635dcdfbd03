"""The controller logs in with Vault's cert auth method over HTTPS: its TLS client certificate
(client_cert/client_key) is checked against the cert role; an untrusted certificate is a clear
error naming method, mount and role."""

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from controller_auth import (cert_auth, controller_only, query_as_vault_role, token_status,
                             wait_log)

VAULT_DOUBLE_TLS = True  # chain.vault_target serves HTTPS with a test CA (tlsfiles.py)


def _settings(chain, cert, key):  # noqa: F811
    return {"auth_method": "cert", "auth_mount": f"cert-{chain.suffix}", "auth_role": "app",
            "client_cert": cert, "client_key": key}


def _tls(chain):  # noqa: F811
    chain.vault.require_double("cert auth needs Vault's listener to request client "
                               "certificates (tls_client_ca_file in its config file), which no "
                               "API call can set")
    return chain.vault.tls


def test_cert_login_queries_as_vault_role(chain):  # noqa: F811
    tls = _tls(chain)
    chain.start(vault_settings=_settings(chain, tls.client_cert, tls.client_key),
                configure_auth=cert_auth(tls.ca_cert))
    query_as_vault_role(chain)
    st = token_status(chain.controller)
    assert (st["method"], st["auth_path"], st["role"]) == \
        ("cert", f"auth/cert-{chain.suffix}", "app"), st
    wait_log(chain.controller, "(with a TLS client certificate)")


def test_untrusted_client_certificate_is_refused(chain):  # noqa: F811
    tls = _tls(chain)
    ctl = controller_only(chain, vault_settings=_settings(chain, tls.untrusted_client_cert,
                                                          tls.untrusted_client_key),
                          configure_auth=cert_auth(tls.ca_cert))
    line = wait_log(ctl, f'cert login as role "app" at auth/cert-{chain.suffix} failed: Vault '
                         'answered 400: ')
    assert "certificate" in line.split("answered 400: ", 1)[1], line
    assert "client_cert/client_key" in line, line
    assert token_status(ctl)["state"] == "failing"
