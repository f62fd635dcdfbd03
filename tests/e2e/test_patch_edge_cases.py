"""Edge cases of the patch found in review: server errors other than 28P01 keep their text
and their meaning, and a RELOAD that drops credential= never logs in as the set's name."""

import signal
import time
from pathlib import Path

from processes import wait_until
from rig import SET_NAME, Rig, app_database, plugin_settings


def test_other_login_errors_reach_the_client_unchanged(plugin_so, pg, credserver, roles,
                                                       bouncers):
    """A credential= database pointing at a missing database fails like any other one:
    the client sees PostgreSQL's own error, not a dropped connection."""
    rig = Rig(pg, credserver, roles)
    rig.rotate()
    missing = f"host=127.0.0.1 port={pg.port} dbname=no_such_database credential={SET_NAME}"
    bouncer = bouncers.start({"app": app_database(pg), "missing": missing},
                             plugin_settings(plugin_so, Path(credserver.socket_path)))
    credserver.wait_ready()
    cp = bouncer.psql("SELECT 1;", db="missing", check=False, timeout=30)
    assert cp.returncode != 0
    assert 'database "no_such_database" does not exist' in cp.stderr, cp.stderr
    assert "(null)" not in bouncer.log_text()
    # Not a password problem: nothing was reported to the credential server.
    assert not credserver.login_failed
    # The good database of the same set is unaffected.
    assert bouncer.psql("SELECT current_user;").stdout.strip() == rig.current.role


def test_reload_dropping_credential_keeps_the_set(plugin_so, pg, credserver, roles, bouncers):
    """Removing credential= by RELOAD is refused with a warning: the database keeps its set
    rather than logging in as a user named after the set."""
    rig = Rig(pg, credserver, roles)
    first = rig.rotate()
    bouncer = bouncers.start({"app": app_database(pg)},
                             plugin_settings(plugin_so, Path(credserver.socket_path)))
    credserver.wait_ready()
    assert bouncer.psql("SELECT current_user;").stdout.strip() == first.role

    offset = bouncer.log_size()
    bouncer.databases["app"] = f"host=127.0.0.1 port={pg.port} dbname=app"
    bouncer.write_ini()
    bouncer.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "removing credential= is not supported" in bouncer.log_since(offset),
               10, "PgBouncer to refuse dropping credential=")
    time.sleep(0.2)
    assert bouncer.psql("SELECT current_user;").stdout.strip() == first.role
    second = rig.rotate()
    wait_until(lambda: bouncer.psql("SELECT current_user;").stdout.strip() == second.role,
               10, "the next generation to be used after the reload")
