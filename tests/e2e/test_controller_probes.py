"""The controller's Kubernetes probes against the whole chain: /healthz answers 200 while the
controller runs; /readyz answers 503, naming the set and why, until the first credentials
have reached PgBouncer's plugin (first: none fetched yet, with the double holding Vault down;
then: fetched but no PgBouncer connected), 200 once they have, and 503 again when PgBouncer
goes away. Other methods get 405, other paths 404."""

from __future__ import annotations

from chain import (chain, controller_bins, pg_admin_password, vault_roles,  # noqa: F401
                   vault_target)
from processes import wait_until
from rig import plugin_settings
from test_controller_metrics import scrape, value


def _readyz(ctl) -> tuple[int, str]:
    status, _, body = ctl.http_get("/readyz")
    return status, body


def test_readyz_false_until_credentials_reach_pgbouncer(chain):  # noqa: F811
    chain.add_tenant("app")
    chain.preexisting_roles = vault_roles(chain.pg)
    chain.configure_vault(token_ttl="1h", token_max_ttl="24h")
    ctl = chain.controller = chain.make_controller()
    double = chain.vault.is_double
    if double:
        # No credentials can be fetched while Vault is away.
        chain.vault.control().fault("down", for_ms=8000)
    ctl.start()

    status, headers, body = ctl.http_get("/healthz")
    assert (status, body) == (200, "ok\n"), (status, body)
    assert headers["Content-Type"].startswith("text/plain")
    if double:
        status, body = _readyz(ctl)
        assert status == 503 and body.startswith("set app: no credentials yet ("), body
        assert body.count("\n") == 1, body
        assert value(scrape(ctl), "pgbv_ready") == 0
    else:
        print("real Vault: the 'no credentials yet' phase needs the double's fault injection "
              "to hold Vault away; checking the rest")

    # Credentials fetched, but no PgBouncer has connected: still not ready.
    wait_until(lambda: chain.set_status("app")["generation"] >= 1, 30,
               "the controller to fetch the first credentials", interval=0.2)
    status, body = _readyz(ctl)
    assert status == 503, body
    assert body.startswith("set app: generation 1 has not reached any plugin connection"), body
    s = scrape(ctl)
    assert value(s, "pgbv_ready") == 0 and value(s, "pgbv_generation", set="app",
                                                  kind="dynamic") == 1

    # PgBouncer starts and its plugin receives them: ready.
    t = chain.tenants["app"]
    chain.bouncer = chain.bouncers.start(
        {t.bouncer_db: f"host=127.0.0.1 port={chain.pg.port} dbname={t.pg_db} "
                       f"credential={t.set_name}"},
        plugin_settings(chain.plugin_so, ctl.plugin_socket))
    wait_until(lambda: _readyz(ctl)[0] == 200, 30, "/readyz to answer 200", interval=0.2)
    assert _readyz(ctl) == (200, "ok\n")
    assert chain.show("app") is not None
    assert value(scrape(ctl), "pgbv_ready") == 1
    user = chain.bouncer.psql("SELECT current_user;").stdout.strip()
    assert user == chain.show("app")["user"]

    # PgBouncer goes away: nobody holds the credentials any more.
    chain.bouncer.stop()
    wait_until(lambda: _readyz(ctl)[0] == 503, 15, "/readyz to answer 503 again",
               interval=0.2)
    assert "has not reached any plugin connection" in _readyz(ctl)[1]
    assert ctl.http_get("/healthz")[0] == 200


def test_probe_methods_and_paths(chain):  # noqa: F811
    chain.start()
    ctl = chain.controller
    assert f"http endpoint on {ctl.http_url}" in ctl.log_text()
    for path in ("/healthz", "/readyz", "/metrics"):
        status, headers, body = ctl.http_get(path, method="HEAD")
        assert status == 200 and body == "", (path, status)
        assert headers.get("Cache-Control") == "no-store", headers
        for method in ("POST", "PUT", "DELETE"):
            status, headers, body = ctl.http_get(path, method=method)
            assert status == 405 and headers.get("Allow") == "GET, HEAD", (path, method, status)
    assert ctl.http_get("/readyz?verbose=1")[0] == 200  # a query string changes nothing
    status, _, body = ctl.http_get("/nope")
    assert status == 404 and "/metrics" in body, body
    assert ctl.http_get("/")[0] == 404
