"""Every pgbvctl command against a running chain (PostgreSQL, Vault, pgbv-controller, the
patched PgBouncer): the tables it prints, --json, --help and its exit codes (0 done or
healthy, 1 failed, 2 usage, 3 cannot connect).

Nothing here needs the double's fault injection: it runs the same against a real Vault.
With PGBV_PGBVCTL_SAMPLE=<file>, the real output of `pgbvctl sets`, `status` and `leases` is
written there (for the README).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from processes import wait_until

COLUMNS_SETS = ["SET", "KIND", "STATE", "SOURCE", "USER", "GEN", "LEASE TTL", "DEADLINE",
                "RENEWS", "ROTATES", "OLD GENS IN USE"]
COLUMNS_LEASES = ["SET", "GEN", "STATE", "USER", "LEASE TTL", "DEADLINE", "HOLDERS", "LEASE ID"]


def table(text: str, header_first: str) -> list[dict[str, str]]:
    """Rows of the aligned table in `text` whose header starts with `header_first`, by column;
    checks that every cell starts exactly under its header."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_first + " "))
    header = lines[start]
    names = re.split(r" {2,}", header.strip())
    starts = [header.index(n) for n in names]
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        cells = {}
        for k, name in enumerate(names):
            begin = starts[k]
            end = starts[k + 1] if k + 1 < len(names) else len(line)
            if k > 0:
                assert line[begin - 1] == " " and line[begin] != " ", \
                    f"column {name!r} not aligned in:\n{header}\n{line}"
            cells[name] = line[begin:end].strip()
        rows.append(cells)
    return rows


def run(ctl, *args: str) -> subprocess.CompletedProcess:
    return ctl.pgbvctl_run(*args)


def test_every_pgbvctl_command(chain):  # noqa: F811
    chain.add_tenant("app")
    chain.add_tenant("legacy", kind="kv", bouncer_db="legacy")
    chain.start()
    ctl = chain.controller
    user = chain.current_user("app")

    # status: words and a table; --json: the raw answer.
    cp = run(ctl, "status")
    assert cp.returncode == 0, cp.stderr
    assert "health:   ok" in cp.stdout and "vault:    reachable" in cp.stdout, cp.stdout
    assert "token:    valid, approle" in cp.stdout, cp.stdout
    rows = {r["SET"]: r for r in table(cp.stdout, "SET")}
    assert rows["app"]["USER"] == user and rows["app"]["KIND"] == "dynamic", cp.stdout
    assert rows["legacy"]["KIND"] == "kv" and rows["legacy"]["STATE"] == "serving", cp.stdout
    cp = run(ctl, "status", "--json")
    assert cp.returncode == 0, cp.stderr
    answer = json.loads(cp.stdout)
    assert answer["ok"] is True and answer["status"]["health"] == "ok", answer
    assert len(cp.stdout.strip().splitlines()) == 1

    # sets: one row per set, every column of the contract, aligned.
    cp = run(ctl, "sets")
    assert cp.returncode == 0, cp.stderr
    header = cp.stdout.splitlines()[0]
    assert re.split(r" {2,}", header.strip()) == COLUMNS_SETS, header
    rows = {r["SET"]: r for r in table(cp.stdout, "SET")}
    app, legacy = rows["app"], rows["legacy"]
    assert app["USER"] == user and app["GEN"] == "1" and app["STATE"] == "serving", cp.stdout
    assert app["SOURCE"] == f"{chain.tenants['app'].db_mount}/creds/app", cp.stdout
    assert re.fullmatch(r"\d+m\d\ds|\d+s", app["LEASE TTL"]), cp.stdout
    # A renewable lease's deadline is known once Vault caps a renewal (max TTL) or the token
    # cannot be renewed further; until then DEADLINE and ROTATES say "-".
    assert app["RENEWS"].startswith("in ") and app["OLD GENS IN USE"] == "0", cp.stdout
    for column in ("DEADLINE", "ROTATES"):
        assert app[column] == "-" or app[column].startswith("in "), cp.stdout
    assert legacy["KIND"] == "kv" and legacy["USER"] == chain.tenants["legacy"].login_user
    assert legacy["LEASE TTL"] == "-" and legacy["DEADLINE"] == "-", cp.stdout
    assert legacy["ROTATES"].startswith("in "), cp.stdout
    cp = run(ctl, "sets", "--json")
    assert cp.returncode == 0, cp.stderr
    sets = {s["name"]: s for s in json.loads(cp.stdout)["sets"]}
    assert sets["app"]["username"] == user and sets["app"]["renew_at"] > 0, sets
    assert sets["app"]["generations"][0]["state"] == "current", sets

    # rotate: a new generation; the old one shows in leases until it is drained and revoked.
    old, new = chain.rotate("app")
    assert old == user and new != old
    cp = run(ctl, "leases", "--json")
    assert cp.returncode == 0, cp.stderr
    leases = json.loads(cp.stdout)["leases"]
    mine = [lease for lease in leases if lease["set"] == "app"]
    assert mine[0]["generation"] == 2 and mine[0]["state"] == "current", leases
    assert mine[0]["username"] == new and mine[0]["lease_id"], leases
    for lease in mine[1:]:
        assert lease["generation"] == 1 and lease["state"] in ("in_use", "drained"), leases
    cp = run(ctl, "leases")
    assert cp.returncode == 0, cp.stderr
    header = cp.stdout.splitlines()[0]
    assert re.split(r" {2,}", header.strip()) == COLUMNS_LEASES, header
    rows = table(cp.stdout, "SET")
    current = [r for r in rows if r["SET"] == "app" and r["STATE"] == "current"]
    assert len(current) == 1 and current[0]["USER"] == new and current[0]["GEN"] == "2", \
        cp.stdout
    assert current[0]["LEASE ID"] == mine[0]["lease_id"], cp.stdout
    kv = [r for r in rows if r["SET"] == "legacy"]
    assert kv and kv[0]["LEASE ID"] == "-", cp.stdout

    # revoke-drained: done, whatever is left to revoke; the old generation ends up gone.
    cp = run(ctl, "revoke-drained")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip(), "revoke-drained printed nothing"
    wait_until(lambda: all(g["generation"] == 2 for g in
                           (lease for lease in json.loads(run(ctl, "leases", "--json").stdout)
                            ["leases"] if lease["set"] == "app")),
               30, "generation 1 of set app to be drained and revoked")
    cp = run(ctl, "sets")
    assert table(cp.stdout, "SET")[0]["OLD GENS IN USE"] == "0", cp.stdout

    # rotate of an unknown set: the controller's refusal, exit 1.
    cp = run(ctl, "rotate", "nosuch")
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
    assert "pgbvctl: rotate failed:" in cp.stderr and "nosuch" in cp.stderr, cp.stderr

    # log-level: applied at once, reported, logged.
    cp = run(ctl, "log-level", "debug")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == "log level: debug (was info)", cp.stdout
    wait_until(lambda: "admin socket: log level debug (was info)" in ctl.log_text(), 5,
               "the log level change in the controller's log")
    cp = run(ctl, "log-level", "info", "--json")
    assert cp.returncode == 0 and json.loads(cp.stdout) == \
        {"ok": True, "level": "info", "previous": "debug"}, cp.stdout
    cp = run(ctl, "log-level", "loud")
    assert cp.returncode == 2 and "error, warning, info or debug" in cp.stderr, cp.stderr

    # reload: the same file changes nothing; a broken file is refused and nothing changes.
    gen_before = chain.set_status("app")["generation"]
    cp = run(ctl, "reload")
    assert cp.returncode == 0, cp.stderr
    assert "added:    -" in cp.stdout and "changed:  -" in cp.stdout and \
        "removed:  -" in cp.stdout, cp.stdout
    cp = run(ctl, "reload", "--json")
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout)["reload"] == {"added": [], "changed": [], "removed": [],
                                               "restart_needed": []}, cp.stdout
    good = ctl.config_path.read_text()
    ctl.config_path.write_text(good + "\n[set.broken]\nrol = oops\n")
    try:
        cp = run(ctl, "reload")
        assert cp.returncode == 1, (cp.stdout, cp.stderr)
        assert "pgbvctl: reload failed:" in cp.stderr and "running configuration is " \
            "unchanged" in cp.stderr, cp.stderr
    finally:
        ctl.config_path.write_text(good)
    assert chain.set_status("app")["generation"] == gen_before
    assert chain.current_user("app") == new

    # Usage errors and help.
    for args in ((), ("dance",), ("rotate",), ("status", "extra"), ("--bogus", "status"),
                 ("sets", "--strict")):
        cp = run(ctl, *args)
        assert cp.returncode == 2, (args, cp.returncode, cp.stdout, cp.stderr)
        assert cp.stderr.startswith("pgbvctl: "), (args, cp.stderr)
    cp = run(ctl, "dance")
    assert "status, sets, leases, rotate, revoke-drained, reload, log-level" in cp.stderr
    cp = run(ctl, "--help")
    assert cp.returncode == 0 and "Exit status" in cp.stdout, cp.stdout
    for command in ("status", "sets", "leases", "rotate", "revoke-drained", "reload",
                    "log-level"):
        assert re.search(rf"^  {command}\b", cp.stdout, re.M), (command, cp.stdout)
        sub = run(ctl, command, "--help")
        assert sub.returncode == 0, (command, sub.stderr)
        assert sub.stdout.startswith("usage: pgbvctl ") and command in sub.stdout.splitlines()[0]

    sample = os.environ.get("PGBV_PGBVCTL_SAMPLE")
    if sample:
        with open(sample, "w") as f:
            for args in (("sets",), ("status",), ("leases",)):
                f.write(f"$ pgbvctl {' '.join(args)}\n{run(ctl, *args).stdout}\n")

    # No controller: exit 3, saying what failed and what to check.
    chain.stop_controller()
    cp = run(ctl, "status")
    assert cp.returncode == 3, (cp.returncode, cp.stdout, cp.stderr)
    assert f"cannot connect to {ctl.admin_socket}" in cp.stderr and \
        "is pgbv-controller running" in cp.stderr, cp.stderr
    for args in (("sets",), ("rotate", "app"), ("reload",)):
        assert run(ctl, *args).returncode == 3, args
