"""Reloading the controller's configuration under pgbench load (transaction pooling):

- a set added by the reload: PgBouncer already has its database (credential=<set>), whose
  clients wait for credentials and then succeed;
- a set removed by the reload: PgBouncer keeps serving it with the credentials it has;
- the set left unchanged gets nothing new (same generation, same lease);
- a bad file changes nothing; a [vault] change is reported as needing a restart.

Not one pgbench transaction fails on any of the three databases. Once by SIGHUP, once by
`pgbvctl reload`."""

import signal
import subprocess
import time

import pytest

from chain import (chain, controller_bins, pg_admin_password, vault_target)  # noqa: F401
from pgbench_run import Pgbench
from processes import client_env, wait_until

DURATION_S = 40
RELOAD_AT_S = 12


def _start(chain):
    """app stays, gone is removed, fresh is added; PgBouncer has all three databases from the
    start, the controller only app and gone."""
    for name in ("app", "gone", "fresh"):
        # One PostgreSQL database (its pgbench tables) behind three PgBouncer databases.
        chain.add_tenant(name, bouncer_db=name, default_ttl="5m", max_ttl="10m")
    chain.wait_all_sets = lambda timeout: wait_until(
        lambda: chain.show("app") and chain.show("gone"), timeout,
        "PgBouncer to receive credentials for app and gone", interval=0.2)
    chain.start(prepare=lambda ctl: ctl.sets.pop("fresh"),
                bouncer_settings={"pool_mode": "transaction", "query_wait_timeout": 60})
    assert chain.show("fresh") is None


def _bench(chain, pg_bindir, workdir, db, seconds, *, connect_timeout=10):
    # PgBouncer answers a client's login once its pool has had a server: for a set without
    # credentials yet, the connection itself waits.
    info = dict(chain.bouncer.conninfo(db=db))
    info["dbname"] = f"dbname={db} connect_timeout={connect_timeout}"
    return Pgbench(pg_bindir, workdir / f"pgbench-{db}.log", info,
                   ["-c", "3", "-j", "1", "-T", str(seconds), "-P", "5"])


def _psql_waiting(chain, db):
    """psql through PgBouncer, started now; it waits while the set has no credentials."""
    info = chain.bouncer.conninfo(db=db)
    env = client_env(PGCONNECT_TIMEOUT="90")
    if info.get("password"):
        env["PGPASSWORD"] = info["password"]
    argv = [str(chain.pg_bindir / "psql"), "-X", "-A", "-t", "-h", info["host"], "-p",
            str(info["port"]), "-U", info["user"], "-d", info["dbname"], "-c",
            "SELECT current_user"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def _reload_under_load(chain, pg_bindir, workdir, do_reload):
    _start(chain)
    ctl = chain.controller
    app_before = chain.show("app")
    app_lease = chain.set_status("app")["lease_id"]
    gone_before = chain.show("gone")

    benches = {db: _bench(chain, pg_bindir, workdir, db, DURATION_S) for db in ("app", "gone")}
    # fresh's clients connect now and wait for the reload to give it credentials.
    benches["fresh"] = _bench(chain, pg_bindir, workdir, "fresh", DURATION_S - RELOAD_AT_S,
                              connect_timeout=90)
    waiting = _psql_waiting(chain, "fresh")
    try:
        time.sleep(RELOAD_AT_S)
        assert waiting.poll() is None, f"psql on fresh did not wait: {waiting.communicate()}"

        # A bad file first: nothing changes.
        good = ctl.config_path.read_text()
        ctl.config_path.write_text(good + "\n[set.broken]\nkind = nope\n")
        offset = len(ctl.log_text())
        answer = do_reload(ctl)
        wait_until(lambda: "nothing changed" in ctl.log_text()[offset:], 10,
                   "the controller to refuse the bad file")
        if answer is not None:
            assert answer.returncode == 1, answer
            assert "kind 'nope'" in answer.stdout + answer.stderr, answer
        assert sorted(s["name"] for s in chain.status()["sets"]) == ["app", "gone"]

        # The real reload: fresh added, gone removed, and a [vault] key that needs a restart.
        ctl.sets["fresh"] = {"role": "fresh", "mount": chain.tenants["fresh"].db_mount,
                             "rotation_margin": "10s"}
        del ctl.sets["gone"]
        ctl.vault["retry_max"] = "6s"
        ctl.write_config()
        offset = len(ctl.log_text())
        t0 = time.monotonic()
        answer = do_reload(ctl)
        log = wait_until(lambda: (t := ctl.log_text()[offset:]) and
                         "reload: 1 set added fresh" in t and t, 10,
                         "the controller to log the reload")
        assert "0 changed, 1 removed gone, 1 unchanged" in log, log
        assert "PgBouncer keeps generation" in log and "drops the database" in log, log
        assert "[vault] retry_max changed but needs a restart; not applied" in log, log
        if answer is not None:
            assert answer.returncode == 0, answer
            out = answer.stdout
            assert "fresh" in out and "gone" in out and "retry_max" in out, out

        # fresh: its waiting client gets through, as a Vault role of its own.
        out, err = waiting.communicate(timeout=30)
        assert waiting.returncode == 0, err
        user = out.strip()
        assert user == chain.current_user("fresh"), (user, chain.show("fresh"))
        print(f"fresh's waiting psql got through {time.monotonic() - t0:.1f}s after the reload "
              f"as {user}")
        results = {db: b.wait(timeout=DURATION_S + 60) for db, b in benches.items()}
    finally:
        if waiting.poll() is None:
            waiting.kill()
        for b in benches.values():
            if b.alive():
                b.kill()

    for db, r in results.items():
        print(f"pgbench {db}: processed={r.processed} failed={r.failed} tps={r.tps:.0f}")
        assert r.returncode == 0, (db, r.describe())
        assert r.failed == 0 and not r.errors, (db, r.describe())
        assert r.processed > 0, (db, r.describe())

    # app untouched: same generation, same lease, nothing pushed.
    assert chain.show("app")["generation"] == app_before["generation"]
    assert chain.show("app")["user"] == app_before["user"]
    assert chain.set_status("app")["lease_id"] == app_lease
    # gone: PgBouncer still serves it with its last credentials; the controller no longer
    # lists it.
    assert chain.show("gone")["user"] == gone_before["user"]
    assert chain.bouncer.psql("SELECT current_user;", db="gone").stdout.strip() == \
        gone_before["user"]
    assert sorted(s["name"] for s in chain.status()["sets"]) == ["app", "fresh"]
    assert "server refused login" not in chain.bouncer.log_text()


def _sighup(ctl):
    ctl.process.send_signal(signal.SIGHUP)
    return None


def _pgbvctl_reload(ctl):
    return ctl.pgbvctl_run("reload")


def test_reload_by_sighup_adds_and_removes_sets_under_pgbench(chain, pg_bindir,  # noqa: F811
                                                              workdir):
    _reload_under_load(chain, pg_bindir, workdir, _sighup)


def test_reload_by_pgbvctl_adds_and_removes_sets_under_pgbench(chain, pg_bindir,  # noqa: F811
                                                               workdir, controller_bins):
    help_text = subprocess.run([str(controller_bins[1]), "--help"], capture_output=True,
                               text=True, timeout=10)
    if "reload" not in help_text.stdout + help_text.stderr:
        pytest.skip("this pgbvctl has no reload command yet")
    _reload_under_load(chain, pg_bindir, workdir, _pgbvctl_reload)
