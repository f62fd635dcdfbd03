"""The cert auth method: trusted certificate roles and login with the TLS client certificate.

The double runs over HTTPS with --tls-client-ca (test CA and the untrusted CA, so that the
backend, not the handshake, judges the untrusted certificate, as in Vault). Against a real
Vault these tests need an https VAULT_ADDR whose listener requests client certificates (Vault's
default unless tls_disable_client_certs is set): set PGBV_TEST_REAL_VAULT_CERT_AUTH=1.
"""

import os
import secrets
import socket
import ssl

import pytest

import vault_client as vc
from conftest import REAL_VAULT
from double_process import VaultDouble
from tlsfiles import issue, make_tls_set, new_ca


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_set(str(tmp_path_factory.mktemp("cert-auth-tls")))


@pytest.fixture(scope="module")
def https_vault(tls, tmp_path_factory):
    """A root client of a Vault that sees client certificates."""
    if REAL_VAULT:
        addr = os.environ["VAULT_ADDR"]
        if not addr.startswith("https://") or \
                os.environ.get("PGBV_TEST_REAL_VAULT_CERT_AUTH") != "1":
            pytest.skip("cert auth needs an https Vault listener that requests client "
                        "certificates; set PGBV_TEST_REAL_VAULT_CERT_AUTH=1 with an https "
                        "VAULT_ADDR")
        yield vc.VaultClient(addr, os.environ["VAULT_TOKEN"],
                             cacert=os.environ.get("VAULT_CACERT"))
        return
    workdir = str(tmp_path_factory.mktemp("cert-auth-vault"))
    with VaultDouble(workdir, tls_cert=tls.server_cert, tls_key=tls.server_key,
                     cacert=tls.ca_cert, name="vault-cert",
                     extra_args=["--tls-client-ca", tls.ca_cert,
                                 "--tls-client-ca", tls.untrusted_ca_cert]) as vd:
        yield vd.client()


class CertEnv:
    def __init__(self, client, tls):
        suffix = secrets.token_hex(3)
        self.client = client
        self.tls = tls
        self.mount = f"cert-{suffix}"
        self.policy = f"pgbv-cert-{suffix}"
        self.client.put_policy(self.policy, vc.controller_policy("database", "app"))
        self.enabled = False

    def setup(self, certificate=None, name="pgbv", **kw):
        kw.setdefault("policies", [self.policy])
        kw.setdefault("enable", not self.enabled)
        self.enabled = True
        return vc.setup_cert_auth(self.client, certificate or _read(self.tls.ca_cert),
                                  mount=self.mount, name=name, **kw)

    def as_client(self, trusted=True):
        t = self.tls
        if trusted:
            return vc.with_client_cert(self.client, t.client_cert, t.client_key)
        return vc.with_client_cert(self.client, t.untrusted_client_cert,
                                   t.untrusted_client_key)

    def login(self, client, name=None):
        return vc.cert_login(client, mount=self.mount, name=name, check=False)

    def cleanup(self):
        for fn, arg in ((self.client.disable_auth, self.mount),
                        (self.client.delete_policy, self.policy)):
            try:
                fn(arg)
            except Exception:
                pass


@pytest.fixture
def cenv(https_vault, tls):
    e = CertEnv(https_vault, tls)
    yield e
    e.cleanup()


def test_login(cenv):
    cenv.setup(allowed_common_names=["pgbv-controller"], token_ttl="15m", token_max_ttl="1h")
    me = cenv.as_client()
    r = cenv.login(me)
    assert r.status == 200 and r.data is None
    a = r.auth
    assert a["policies"] == sorted(["default", cenv.policy])
    assert a["lease_duration"] == 900 and a["renewable"] is True
    assert a["token_type"] == "service"
    md = a["metadata"]
    assert md["cert_name"] == "pgbv" and md["common_name"] == "pgbv-controller"
    assert md["serial_number"].isdigit()
    assert len(md["subject_key_id"].split(":")) == 20
    assert len(md["authority_key_id"].split(":")) == 20
    ctl = me.with_token(a["client_token"])
    info = ctl.lookup_self().data
    assert info["display_name"] == f"{cenv.mount}-pgbv"
    assert info["path"] == f"auth/{cenv.mount}/login"
    assert ctl.renew_self().auth["lease_duration"] == 900
    # The role can be named.
    assert cenv.login(me, name="pgbv").status == 200


def test_no_client_certificate(cenv):
    cenv.setup()
    r = cenv.login(cenv.client)
    assert (r.status, r.errors) == (400, ["client certificate must be supplied"])


def test_untrusted_certificate(cenv):
    cenv.setup()
    r = cenv.login(cenv.as_client(trusted=False))
    assert (r.status, r.errors) == (400, ["invalid certificate or no client certificate "
                                          "supplied"])


def test_unknown_role_name(cenv):
    cenv.setup()
    r = cenv.login(cenv.as_client(), name="nope")
    assert (r.status, r.errors) == (400, ["invalid certificate or no client certificate "
                                          "supplied"])


def test_constraints(cenv):
    cenv.setup(name="others", allowed_common_names=["someone-else"])
    r = cenv.login(cenv.as_client(), name="others")
    assert (r.status, r.errors) == (400, ["no chain matching all constraints could be found "
                                          "for this login certificate"])
    cenv.setup(name="dns", allowed_dns_sans=["pgbv-*"])
    assert cenv.login(cenv.as_client(), name="dns").status == 200
    # Without a name, any role that matches will do.
    assert cenv.login(cenv.as_client()).auth["metadata"]["cert_name"] == "dns"


def test_client_certificate_itself_as_trusted(cenv):
    cenv.setup(certificate=_read(cenv.tls.client_cert), name="leaf")
    assert cenv.login(cenv.as_client(), name="leaf").status == 200


def test_batch_token(cenv):
    cenv.setup(token_type="batch")
    a = cenv.login(cenv.as_client()).auth
    assert a["token_type"] == "batch" and a["renewable"] is False


def test_certs_api(cenv):
    c = cenv.client
    c.enable_auth(cenv.mount, "cert")
    cenv.enabled = True
    r = c.write(f"auth/{cenv.mount}/certs/bad", {"certificate": "junk"}, check=False)
    assert (r.status, r.errors) == (400, ["failed to parse certificate"])
    r = c.write(f"auth/{cenv.mount}/certs/server",
                {"certificate": _read(cenv.tls.server_cert)}, check=False)
    assert (r.status, r.errors) == (400, ["nonCA certificates should have TLS client "
                                          "authentication set as an extended key usage"])
    cenv.setup(allowed_common_names=["pgbv-controller"], token_ttl="10m")
    got = c.read(f"auth/{cenv.mount}/certs/pgbv").data
    assert got["display_name"] == "pgbv"
    assert got["allowed_common_names"] == ["pgbv-controller"]
    assert got["token_ttl"] == 600 and got["token_policies"] == [cenv.policy]
    assert c.list(f"auth/{cenv.mount}/certs").data["keys"] == ["pgbv"]


@pytest.mark.double_only
def test_plain_http_listener(vault):
    mount = f"cert-{secrets.token_hex(3)}"
    vault.client.enable_auth(mount, "cert")
    try:
        r = vc.cert_login(vault.client, mount=mount, check=False)
        assert (r.status, r.errors) == (400, ["tls connection required"])
    finally:
        vault.client.disable_auth(mount)


@pytest.mark.double_only
def test_ca_unknown_to_the_listener_fails_the_handshake(cenv, tmp_path):
    # Python's ssl verifies the client certificates it requests: one from a CA that was not
    # given with --tls-client-ca is refused in the handshake (Vault would answer 400).
    ca = new_ca("stranger CA")
    leaf = issue(ca, "pgbv-controller", client=True)
    (tmp_path / "c.crt").write_text(leaf.cert_pem())
    (tmp_path / "c.key").write_text(leaf.key_pem())
    stranger = vc.with_client_cert(cenv.client, str(tmp_path / "c.crt"),
                                   str(tmp_path / "c.key"))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        cenv.login(stranger)


@pytest.mark.double_only
def test_server_certificate_names(cenv, tls):
    # tlsfiles' server certificate also holds vault.test, for tls_server_name tests.
    port = int(cenv.client.addr.rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=tls.ca_cert)
    for name in ("vault.test", "localhost", "127.0.0.1"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=name) as t:
                assert t.version() in ("TLSv1.2", "TLSv1.3")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(s, server_hostname="other.test")


def test_renewal_needs_the_client_certificate(cenv):
    cenv.setup(token_ttl="10m")
    me = cenv.as_client()
    token = cenv.login(me).auth["client_token"]
    assert me.with_token(token).renew_self().auth["lease_duration"] == 600
    # Vault checks the renewing connection's certificate too (pathLoginRenew) ...
    r = cenv.client.with_token(token).renew_self(check=False)
    assert (r.status, r.errors) == (400, ["client certificate must be supplied"])
    # ... unless the method's config says disable_binding.
    cenv.client.write(f"auth/{cenv.mount}/config", {"disable_binding": True})
    assert cenv.client.with_token(token).renew_self().auth["lease_duration"] == 600
