"""The kubernetes auth method: config, roles, login through the TokenReview API of a fake
Kubernetes API server (kube_api_double.py), and every way a login fails.

Against a real Vault, Vault itself calls kube_api_double: set PGBV_TEST_KUBE_HOST_FOR_VAULT to
the address Vault reaches this machine at (default 127.0.0.1).
"""

import json
import os
import secrets
import subprocess
import time

import pytest

import vault_client as vc
from kube_api_double import KubeApiDouble
from tlsfiles import make_tls_set

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"


def vault_side_url(url):
    host = os.environ.get("PGBV_TEST_KUBE_HOST_FOR_VAULT")
    return url.replace("://127.0.0.1:", f"://{host}:") if host else url


@pytest.fixture(scope="module")
def k8s():
    with KubeApiDouble(host="0.0.0.0" if os.environ.get("PGBV_TEST_KUBE_HOST_FOR_VAULT")
                       else "127.0.0.1") as k:
        k.host = "127.0.0.1"
        yield k


class KubeEnv:
    """One test's kubernetes mount, role and policy (removed afterwards)."""

    def __init__(self, vault, k8s):
        suffix = secrets.token_hex(3)
        self.client = vault.client
        self.k8s = k8s
        self.mount = f"k8s-{suffix}"
        self.policy = f"pgbv-k8s-{suffix}"
        self.role = "pgbv"
        self.namespace = f"apps-{suffix}"
        self.sa = "pgbv"
        self.reviewer = k8s.token("kube-system", "vault-reviewer")
        self.client.put_policy(self.policy, vc.controller_policy("database", "app"))

    def setup(self, **kw):
        kw.setdefault("sa_names", [self.sa])
        kw.setdefault("namespaces", [self.namespace])
        kw.setdefault("audience", "vault")
        kw.setdefault("token_reviewer_jwt", self.reviewer)
        kw.setdefault("policies", [self.policy])
        return vc.setup_kubernetes_auth(self.client, vault_side_url(self.k8s.url),
                                        mount=self.mount, role=self.role, **kw)

    def jwt(self, sa=None, namespace=None, audiences=("vault",), **kw):
        return self.k8s.token(namespace or self.namespace, sa or self.sa, list(audiences),
                              **kw)

    def login(self, jwt, role=None, check=False):
        return vc.kubernetes_login(self.client, role or self.role, jwt, mount=self.mount,
                                   check=check)

    def cleanup(self):
        for fn, arg in ((self.client.disable_auth, self.mount),
                        (self.client.delete_policy, self.policy)):
            try:
                fn(arg)
            except Exception:
                pass


@pytest.fixture
def kenv(vault, k8s):
    e = KubeEnv(vault, k8s)
    yield e
    e.cleanup()


def test_login(kenv):
    kenv.setup(token_ttl="20m", token_max_ttl="1h")
    token = kenv.jwt(pod="pgbv-0")
    r = kenv.login(token, check=True)
    assert r.status == 200 and r.data is None
    a = r.auth
    assert a["policies"] == sorted(["default", kenv.policy])
    assert a["token_policies"] == a["policies"]
    assert a["lease_duration"] == 1200 and a["renewable"] is True
    assert a["token_type"] == "service" and a["orphan"] is True
    assert a["client_token"].startswith("hvs.") and a["accessor"] and a["entity_id"]
    md = a["metadata"]
    assert md["service_account_name"] == kenv.sa
    assert md["service_account_namespace"] == kenv.namespace
    assert md["role"] == kenv.role and md["service_account_secret_name"] == ""
    assert md["service_account_uid"]
    me = kenv.client.with_token(a["client_token"]).lookup_self().data
    assert me["display_name"] == f"{kenv.mount}-{kenv.namespace}-{kenv.sa}"
    assert me["path"] == f"auth/{kenv.mount}/login"
    # The same service account logs in again: a new token, the same entity.
    again = kenv.login(kenv.jwt(), check=True).auth
    assert again["client_token"] != a["client_token"]
    assert again["entity_id"] == a["entity_id"]


def test_token_renewal_follows_the_role(kenv):
    kenv.setup(token_ttl="5s", token_max_ttl="12s")
    a = kenv.login(kenv.jwt(), check=True).auth
    assert a["lease_duration"] == 5
    ctl = kenv.client.with_token(a["client_token"])
    time.sleep(1.1)
    rr = ctl.renew_self(3600)
    assert 1 <= rr.auth["lease_duration"] <= 11
    assert rr.warnings and "capped accordingly" in rr.warnings[0]
    kenv.client.delete(f"auth/{kenv.mount}/role/{kenv.role}")
    gone = ctl.renew_self(check=False)
    assert gone.status >= 400
    assert f"role {kenv.role} does not exist during renewal" in json.dumps(gone.errors)


def test_batch_token(kenv):
    kenv.setup(token_type="batch", token_ttl="10m")
    a = kenv.login(kenv.jwt(), check=True).auth
    assert a["token_type"] == "batch" and a["renewable"] is False
    assert a["client_token"].startswith("hvb.")
    assert a["lease_duration"] == 600
    ctl = kenv.client.with_token(a["client_token"])
    assert ctl.lookup_self().data["type"] == "batch"
    r = ctl.renew_self(check=False)
    assert (r.status, r.errors) == (400, ["batch tokens cannot be renewed"])


def test_wrong_role(kenv):
    kenv.setup()
    r = kenv.login(kenv.jwt(), role="no-such-role")
    assert (r.status, r.errors) == (400, ['invalid role name "no-such-role"'])


def test_missing_fields(kenv):
    kenv.setup()
    r = kenv.client.request("POST", f"auth/{kenv.mount}/login", {"jwt": kenv.jwt()},
                            token=None, check=False)
    assert (r.status, r.errors) == (400, ["missing role"])
    r = kenv.client.request("POST", f"auth/{kenv.mount}/login", {"role": kenv.role},
                            token=None, check=False)
    assert (r.status, r.errors) == (400, ["missing jwt"])


def test_service_account_not_authorized(kenv):
    kenv.setup()
    r = kenv.login(kenv.jwt(sa="someone-else"))
    assert (r.status, r.errors) == (403, ["service account name not authorized"])
    r = kenv.login(kenv.jwt(namespace="kube-system"))
    assert (r.status, r.errors) == (403, ["namespace not authorized"])


def test_bound_names_accept_globs(kenv):
    kenv.setup(sa_names=["pgbv-*"], namespaces=["*"])
    assert kenv.login(kenv.jwt(sa="pgbv-blue", namespace="anything")).status == 200
    r = kenv.login(kenv.jwt(sa="web"))
    assert (r.status, r.errors) == (403, ["service account name not authorized"])


def test_wrong_audience(kenv):
    kenv.setup(audience="vault")
    r = kenv.login(kenv.jwt(audiences=["https://kubernetes.default.svc"]))
    assert r.status == 403
    assert r.errors == ["invalid audience (aud) claim: audience claim does not match any "
                        "expected audience"]


def test_expired_jwt(kenv):
    kenv.setup()
    # Expired two minutes ago: beyond the 60 s clock-skew leeway of Vault and Kubernetes.
    r = kenv.login(kenv.jwt(ttl=600, iat_offset=-720))
    assert (r.status, r.errors) == (403, ["invalid expiration time (exp) claim: token is "
                                          "expired"])


def test_revoked_token_and_deleted_service_account(kenv):
    kenv.setup()
    token = kenv.jwt(pod="pgbv-1")
    assert kenv.login(token).status == 200
    kenv.k8s.revoke(token)  # the pod it was bound to is gone
    r = kenv.login(token)
    assert (r.status, r.errors) == (403, ["permission denied"])
    other = kenv.jwt()
    assert kenv.login(other).status == 200
    kenv.k8s.delete_service_account(kenv.namespace, kenv.sa)
    r = kenv.login(other)
    assert (r.status, r.errors) == (403, ["permission denied"])


def test_garbage_jwt_and_foreign_signer(kenv):
    kenv.setup()
    r = kenv.login("not-a-jwt")
    assert (r.status, r.errors) == (403, ["permission denied"])
    with KubeApiDouble() as other_cluster:
        foreign = other_cluster.token(kenv.namespace, kenv.sa, ["vault"])
    r = kenv.login(foreign)
    assert (r.status, r.errors) == (403, ["permission denied"])


def test_reviewer_without_tokenreview_permission(kenv, k8s):
    weak = k8s.token("kube-system", f"weak-{secrets.token_hex(2)}", can_review=False)
    kenv.setup(token_reviewer_jwt=weak)
    r = kenv.login(kenv.jwt())
    assert (r.status, r.errors) == (403, ["permission denied"])


def test_login_jwt_used_as_reviewer_when_none_configured(kenv):
    # Without token_reviewer_jwt Vault sends the login JWT itself as the bearer token, which
    # kube-apiserver accepts only for its own audience.
    kenv.setup(token_reviewer_jwt=None, audience=None)
    api_aud = kenv.k8s.issuer
    assert kenv.login(kenv.jwt(audiences=[api_aud])).status == 200
    r = kenv.login(kenv.jwt(audiences=["vault"]))
    assert (r.status, r.errors) == (403, ["permission denied"])


def test_kubernetes_unreachable(kenv):
    with KubeApiDouble() as gone:
        url = gone.url
    kenv.setup()
    kenv.client.write(f"auth/{kenv.mount}/config",
                      {"kubernetes_host": vault_side_url(url),
                       "token_reviewer_jwt": kenv.reviewer, "disable_local_ca_jwt": True})
    r = kenv.login(kenv.jwt())
    assert (r.status, r.errors) == (403, ["permission denied"])


def test_https_kubernetes_host(kenv, workdir):
    tls = make_tls_set(os.path.join(workdir, f"k8s-tls-{secrets.token_hex(2)}"))
    with open(tls.ca_cert, encoding="utf-8") as f:
        ca_pem = f.read()
    with open(tls.untrusted_ca_cert, encoding="utf-8") as f:
        wrong_ca = f.read()
    bind = "0.0.0.0" if os.environ.get("PGBV_TEST_KUBE_HOST_FOR_VAULT") else "127.0.0.1"
    with KubeApiDouble(host=bind, tls_cert=tls.server_cert, tls_key=tls.server_key) as k:
        k.host = "127.0.0.1"
        kenv.k8s = k
        kenv.reviewer = k.token("kube-system", "vault-reviewer")
        kenv.setup(ca_pem=ca_pem)
        assert kenv.login(kenv.jwt()).status == 200
        kenv.setup(ca_pem=wrong_ca, enable=False)
        r = kenv.login(kenv.jwt())
        assert (r.status, r.errors) == (403, ["permission denied"])


def test_config_and_role_api(kenv, vault):
    c = kenv.client
    c.enable_auth(kenv.mount, "kubernetes")
    r = c.write(f"auth/{kenv.mount}/config", {"kubernetes_ca_cert": "x"}, check=False)
    assert (r.status, r.errors) == (400, ["no host provided"])
    r = c.write(f"auth/{kenv.mount}/config", {"kubernetes_host": "https://k8s.test",
                                              "kubernetes_ca_cert": "not a pem"}, check=False)
    assert (r.status, r.errors) == (400, ["The provided CA PEM data contains no valid "
                                          "certificates"])
    info = kenv.setup(enable=False, token_ttl="10m", token_max_ttl="1h")
    assert info["warnings"] is None
    cfg = c.read(f"auth/{kenv.mount}/config").data
    assert cfg["kubernetes_host"] == vault_side_url(kenv.k8s.url)
    assert cfg["token_reviewer_jwt_set"] is True and "token_reviewer_jwt" not in cfg
    assert cfg["disable_local_ca_jwt"] is True
    role = c.read(f"auth/{kenv.mount}/role/{kenv.role}").data
    assert role["bound_service_account_names"] == [kenv.sa]
    assert role["bound_service_account_namespaces"] == [kenv.namespace]
    assert role["audience"] == "vault"
    assert role["token_ttl"] == 600 and role["token_max_ttl"] == 3600
    assert role["token_policies"] == [kenv.policy]
    assert role["alias_name_source"] == "serviceaccount_uid"
    assert c.list(f"auth/{kenv.mount}/role").data["keys"] == [kenv.role]
    r = c.write(f"auth/{kenv.mount}/role/empty", {"bound_service_account_namespaces": ["a"]},
                check=False)
    assert (r.status, r.errors) == (400, ['"bound_service_account_names" can not be empty'])
    r = c.write(f"auth/{kenv.mount}/role/nons", {"bound_service_account_names": ["a"]},
                check=False)
    assert (r.status, r.errors) == (400, ['"bound_service_account_namespaces" can not be '
                                          'empty if "bound_service_account_namespace_selector" '
                                          'is not set'])
    r = c.write(f"auth/{kenv.mount}/role/noaud", {"bound_service_account_names": ["a"],
                                                  "bound_service_account_namespaces": ["b"]})
    assert r.status in (200, 204)
    if vault.is_double:  # plugin releases since mid-2025 warn; older Vault servers do not
        assert r.warnings and "does not have an audience configured" in r.warnings[0]


@pytest.mark.double_only
def test_missing_config(kenv):
    c = kenv.client
    c.enable_auth(kenv.mount, "kubernetes")
    c.write(f"auth/{kenv.mount}/role/{kenv.role}", {"bound_service_account_names": ["a"],
                                                    "bound_service_account_namespaces": ["b"]})
    r = kenv.login(kenv.jwt())
    assert (r.status, r.errors) == (500, ["could not load backend configuration"])


def test_kube_api_double_command_line(tmp_path):
    port_file, admin = tmp_path / "port", tmp_path / "admin"
    proc = subprocess.Popen([PYTHON, os.path.join(HERE, "kube_api_double.py"), "serve",
                             "--port-file", str(port_file), "--admin-token-file", str(admin)])
    try:
        deadline = time.monotonic() + 10
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        out = tmp_path / "jwt"
        subprocess.run([PYTHON, os.path.join(HERE, "kube_api_double.py"), "mint",
                        "--port-file", str(port_file), "--admin-token-file", str(admin),
                        "--namespace", "apps", "--name", "pgbv", "--audience", "vault",
                        "--out", str(out)], check=True, capture_output=True)
        assert oct(out.stat().st_mode & 0o777) == "0o600"
        token = out.read_text().strip()
        import jwt as pyjwt
        claims = pyjwt.decode(token, options={"verify_signature": False})
        assert claims["sub"] == "system:serviceaccount:apps:pgbv"
        assert claims["aud"] == ["vault"] and claims["exp"] > claims["iat"] == claims["nbf"]
        assert claims["kubernetes.io"]["namespace"] == "apps"
        assert claims["kubernetes.io"]["serviceaccount"]["name"] == "pgbv"
        subprocess.run([PYTHON, os.path.join(HERE, "kube_api_double.py"), "revoke",
                        "--port-file", str(port_file), "--admin-token-file", str(admin),
                        "--token-file", str(out)], check=True, capture_output=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.double_only
def test_logs_hold_no_tokens(kenv, vault, tmp_path):
    log = tmp_path / "kube.log"
    with KubeApiDouble(log_file=str(log)) as k:
        kenv.k8s = k
        kenv.reviewer = k.token("kube-system", "vault-reviewer")
        kenv.setup()
        jwt = kenv.jwt()
        token = kenv.login(jwt, check=True).auth["client_token"]
        assert kenv.login(jwt, role="nope").status == 400
    kube_log = log.read_text()
    assert "POST /apis/authentication.k8s.io/v1/tokenreviews 201" in kube_log
    with open(vault.double.log_file, encoding="utf-8") as f:
        vault_log = f.read()
    assert f"POST /v1/auth/{kenv.mount}/login 200" in vault_log
    for secret in (jwt, kenv.reviewer, token):
        assert secret not in kube_log and secret not in vault_log


def test_pem_keys_and_issuer(kenv):
    kenv.setup(pem_keys=[kenv.k8s.public_key_pem], issuer=kenv.k8s.issuer)
    assert kenv.login(kenv.jwt()).status == 200
    with KubeApiDouble() as other:
        forged = other.token(kenv.namespace, kenv.sa, ["vault"])
    r = kenv.login(forged)
    assert (r.status, r.errors) == (403, ["permission denied"])
    kenv.setup(pem_keys=[kenv.k8s.public_key_pem], issuer="https://elsewhere.test",
               enable=False)
    r = kenv.login(kenv.jwt())
    assert (r.status, r.errors) == (403, ["invalid issuer (iss) claim"])
