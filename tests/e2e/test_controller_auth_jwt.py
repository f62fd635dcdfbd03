"""The controller logs in with Vault's jwt auth method (a JWT from a test issuer in jwt_file,
re-read at every login); an expired JWT is a clear error that never shows the JWT."""

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from controller_auth import (assert_no_secret, controller_only, jwt_auth, query_as_vault_role,
                             token_status, wait_log)
from jwt_issuer import JwtIssuer


def _settings(chain):  # noqa: F811
    return {"auth_method": "jwt", "auth_mount": f"jwt-{chain.suffix}", "auth_role": "app"}


def test_jwt_login_queries_as_vault_role(chain):  # noqa: F811
    issuer = JwtIssuer()
    jwt = issuer.mint(sub="pgbv", aud=("pgbv",), ttl=600)

    def prepare(ctl):
        ctl.vault["jwt_file"] = str(ctl.secret_file("jwt", jwt))

    chain.start(vault_settings=_settings(chain), configure_auth=jwt_auth(issuer),
                prepare=prepare)
    query_as_vault_role(chain)
    st = token_status(chain.controller)
    assert (st["method"], st["auth_path"], st["state"]) == \
        ("jwt", f"auth/jwt-{chain.suffix}", "valid"), st
    assert_no_secret(chain.controller, jwt)


def test_expired_jwt_is_a_clear_error(chain):  # noqa: F811
    issuer = JwtIssuer()
    expired = issuer.mint(sub="pgbv", aud=("pgbv",), ttl=600, iat_offset=-7200)
    files = {}

    def prepare(ctl):
        files["jwt"] = ctl.secret_file("jwt", expired)
        ctl.vault["jwt_file"] = str(files["jwt"])

    ctl = controller_only(chain, vault_settings=_settings(chain),
                          configure_auth=jwt_auth(issuer), prepare=prepare)
    line = wait_log(ctl, f'jwt login as role "app" at auth/jwt-{chain.suffix} failed: Vault '
                         'answered 400: error validating token: ')
    assert "expired" in line.split("error validating token: ", 1)[1], line
    assert "check auth_role in [vault]" in line, line
    assert token_status(ctl)["state"] == "failing"
    # The issuer writes a fresh JWT: the next attempt reads and uses it.
    fresh = issuer.mint(sub="pgbv", aud=("pgbv",), ttl=600)
    files["jwt"].write_text(fresh + "\n")
    wait_log(ctl, "vault: logged in (jwt login)", timeout=20)
    assert_no_secret(ctl, expired, fresh)
