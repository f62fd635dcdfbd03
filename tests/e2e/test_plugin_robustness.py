"""Bad input from the controller side never hurts PgBouncer: the plugin drops the connection,
keeps serving the credentials it had, reconnects, and takes good updates again."""

import re

import pgbv_wire as wire
from processes import wait_until
from rig import SET_NAME


def _show(bouncer) -> dict[str, str]:
    rows = bouncer.admin("SHOW CREDENTIALS")
    assert len(rows) == 1, rows
    return rows[0]


_LOG_LINE_RE = re.compile(r"^\S+ \S+ \S+ \[\d+\] \S+ (.*)$")


def _names_both_versions(line: str) -> bool:
    """A log message (its timestamp and pid left aside) naming protocol versions 2 and 1."""
    m = _LOG_LINE_RE.match(line)
    msg = m.group(1) if m else ""
    return "version" in msg and bool(re.search(r"\b2\b", msg)) and \
        bool(re.search(r"\b1\b", msg))


def test_malformed_frames_do_not_hurt_pgbouncer(rig):
    server, bouncer = rig.credserver, rig.bouncer
    role = rig.current.role
    generation = _show(bouncer)["generation"]
    for kind in wire.MALFORMED_KINDS:
        handshakes, disconnects = server.handshakes, server.disconnects
        errors = len(server.errors_received)
        assert server.send_malformed(kind) == 1, kind
        # The plugin answers ERROR 2 (protocol error), hangs up, and comes back.
        server.wait_for(lambda: len(server.errors_received) > errors, 10,
                        f"ERROR from the plugin for a {kind} frame")
        assert server.errors_received[errors].code == wire.ERR_PROTOCOL, kind
        server.wait_disconnects(disconnects + 1, timeout=10)
        server.wait_handshakes(handshakes + 1, timeout=10)
        bouncer.check_alive()
        assert bouncer.psql("SELECT current_user;").stdout.strip() == role, kind
        # Nothing from a rejected frame was taken as credentials.
        assert _show(bouncer)["generation"] == generation, kind
    new = rig.rotate()
    wait_until(lambda: _show(bouncer)["user"] == new.role, 5, "a good rotation afterwards")
    assert bouncer.psql("SELECT current_user;").stdout.strip() == new.role


def test_wrong_hello_version_is_refused(rig):
    server, bouncer = rig.credserver, rig.bouncer
    role = rig.current.role
    server.hello_version = 2
    offset = bouncer.log_size()
    accepted, disconnects = server.connections_accepted, server.disconnects
    server.stop()
    server.start()
    server.wait_for(lambda: server.connections_accepted > accepted, 10, "a reconnect")
    # The plugin hangs up on a HELLO of another version and says which versions met.
    server.wait_disconnects(disconnects + 2, timeout=10)  # the stop, then the refusal
    wait_until(lambda: any(_names_both_versions(l)
                           for l in bouncer.log_since(offset).splitlines()), 5,
               "PgBouncer's log to name both protocol versions")
    bouncer.check_alive()
    assert bouncer.psql("SELECT current_user;").stdout.strip() == role

    server.hello_version = wire.VERSION
    handshakes = server.handshakes
    server.wait_handshakes(handshakes + 1, timeout=15)
    new = rig.rotate()
    wait_until(lambda: _show(bouncer)["user"] == new.role, 5, "a rotation after the fix")
    assert bouncer.psql("SELECT current_user;").stdout.strip() == new.role
    assert _show(bouncer)["set"] == SET_NAME
