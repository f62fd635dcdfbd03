"""The controller logs in with Vault's kubernetes auth method: a service-account JWT (from the
Kubernetes API double, which Vault asks for TokenReview) read from jwt_file at every login;
queries through PgBouncer run as the role Vault made. Failures name method, mount and role."""

import os

import pytest

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from controller_auth import (SA_NAME, SA_NAMESPACE, assert_no_secret, controller_only,
                             kubernetes_auth, query_as_vault_role,
                             require_vault_reaches_localhost, token_status, wait_log)
from kube_api_double import KubeApiDouble
from processes import wait_until


def _settings(chain, role="app"):  # noqa: F811
    return {"auth_method": "kubernetes", "auth_mount": f"k8s-{chain.suffix}",
            "auth_role": role, "health_interval": "2s"}


def test_kubernetes_login_rereads_the_jwt_file(chain):  # noqa: F811
    require_vault_reaches_localhost(chain, "the Kubernetes API double (TokenReview)")
    with KubeApiDouble() as k8s:
        first = k8s.token(SA_NAMESPACE, SA_NAME)
        files = {}

        def prepare(ctl):
            files["jwt"] = ctl.secret_file("sa-token", first)
            ctl.vault["jwt_file"] = str(files["jwt"])

        # Token max TTL 30 s: the controller logs in again every ~15 s.
        chain.start(vault_settings=_settings(chain), prepare=prepare,
                    configure_auth=kubernetes_auth(k8s, token_ttl="30s", token_max_ttl="30s"))
        query_as_vault_role(chain)
        st = token_status(chain.controller)
        assert (st["method"], st["auth_path"], st["role"]) == \
            ("kubernetes", f"auth/k8s-{chain.suffix}", "app"), st

        # The kubelet rotates the projected token: the old one stops working.
        second = k8s.token(SA_NAMESPACE, SA_NAME)
        files["jwt"].write_text(second + "\n")
        k8s.revoke(first)
        logins = st["logins"]
        wait_until(lambda: token_status(chain.controller)["logins"] >= logins + 2, 45,
                   "two more logins with the rotated service-account token", interval=0.5)
        assert " failed: " not in chain.controller.log_text(), \
            "a login failed: the controller did not re-read jwt_file"
        query_as_vault_role(chain)
        assert_no_secret(chain.controller, first, second)


def test_kubernetes_wrong_role_is_named(chain):  # noqa: F811
    require_vault_reaches_localhost(chain, "the Kubernetes API double (TokenReview)")
    with KubeApiDouble() as k8s:
        jwt = k8s.token(SA_NAMESPACE, SA_NAME)

        def prepare(ctl):
            ctl.vault["jwt_file"] = str(ctl.secret_file("sa-token", jwt))

        ctl = controller_only(chain, vault_settings=_settings(chain, role="no-such-role"),
                              configure_auth=kubernetes_auth(k8s), prepare=prepare)
        mount = f"k8s-{chain.suffix}"
        line = wait_log(ctl, f'kubernetes login as role "no-such-role" at auth/{mount} failed: '
                             'Vault answered 400: invalid role name "no-such-role"; check '
                             'auth_role in [vault] and the role in Vault')
        assert "WARNING" in line.upper()
        st = token_status(ctl)
        assert st["state"] == "failing" and "no-such-role" in st["error"], st
        cp = ctl.pgbvctl_run("status")
        assert cp.returncode == 1, cp.stdout
        assert f'kubernetes login as role "no-such-role" at auth/{mount} failed' in cp.stdout
        assert_no_secret(ctl, jwt)


def test_unreadable_jwt_file_stops_start_naming_it(chain):  # noqa: F811
    require_vault_reaches_localhost(chain, "the Kubernetes API double (TokenReview)")
    with KubeApiDouble() as k8s:
        def prepare(ctl):
            path = ctl.secret_file("sa-token", k8s.token(SA_NAMESPACE, SA_NAME))
            path.chmod(0)  # the controller's user (not root) can no longer read it
            ctl.vault["jwt_file"] = str(path)

        if os.geteuid() != 0:
            pytest.skip("needs root to run the controller as another user than the file's")
        with pytest.raises(RuntimeError) as e:
            controller_only(chain, vault_settings=_settings(chain),
                            configure_auth=kubernetes_auth(k8s), prepare=prepare)
        chain.controller.stop()  # it exited as it should: not a crash for the fixture
        text = str(e.value)
        assert "exited with status 1" in text, text
        assert "jwt_file '" in text and "sa-token': cannot read it: Permission denied" in text, text
