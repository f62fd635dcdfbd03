"""PostgreSQL refuses the current generation's password: the credential server hears
LOGIN_FAILED 28P01, and correct credentials pushed then let clients in at once, without
PgBouncer's server_login_retry pause."""

import threading
import time
from pathlib import Path

from rig import SET_NAME, app_database, plugin_settings

LOGIN_RETRY_S = 30  # longer than the default 15 s, so that waiting for it cannot pass


def test_wrong_password_reported_and_fixed_without_retry_pause(plugin_so, pg, credserver,
                                                               roles, bouncers):
    role, password = roles.new()
    bad_gen = credserver.set_credentials(SET_NAME, role, "not-" + password)
    bouncer = bouncers.start({"app": app_database(pg)},
                             plugin_settings(plugin_so, Path(credserver.socket_path),
                                             server_login_retry=LOGIN_RETRY_S,
                                             query_wait_timeout=60))
    credserver.wait_ready()
    offset = pg.log_size()

    result = {}

    def client():
        result["cp"] = bouncer.psql("SELECT current_user;", check=False, timeout=60)

    waiting = threading.Thread(target=client)
    waiting.start()
    try:
        failed = credserver.wait_login_failed(SET_NAME, bad_gen, timeout=15)
        assert (failed.username, failed.sqlstate) == (role, "28P01")
        assert f'password authentication failed for user "{role}"' in pg.log_text()
        # Wait past a first retry pause, then fix the credentials.
        time.sleep(1)
        pushed = time.monotonic()
        good_gen = credserver.set_credentials(SET_NAME, role, password)
    finally:
        waiting.join(timeout=70)

    # The client that was waiting got in with the new credentials...
    cp = result["cp"]
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == role
    # ...well before server_login_retry would have allowed another attempt.
    fresh = bouncer.psql("SELECT current_user;", timeout=LOGIN_RETRY_S)
    assert fresh.stdout.strip() == role
    assert time.monotonic() - pushed < LOGIN_RETRY_S / 2
    assert pg.authorized_users(offset)[role] >= 1
    assert not [e for e in credserver.login_failed if e.generation == good_gen]

    rows = bouncer.admin("SHOW CREDENTIALS")
    assert rows[0]["user"] == role and int(rows[0]["generation"]) >= 2
    attempts = len(credserver.login_failed)
    print(f"LOGIN_FAILED frames for the bad generation: {attempts}")
