"""The controller's /metrics against the whole chain (PostgreSQL, Vault, pgbv-controller,
patched PgBouncer): the exposition parses as Prometheus text format 0.0.4 and its numbers
follow what happened: rotations by `pgbvctl rotate`, renewals of short leases, revocations of
drained generations, and (with the double's faults) failed renewals and an unreachable Vault.
"""

from __future__ import annotations

import re

from chain import chain, controller_bins, pg_admin_password, vault_target  # noqa: F401
from processes import wait_until

# A short lease is renewed every few seconds (at about two thirds of its TTL).
LEASE_TTL = "9s"

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE_RE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _family_of(name: str, types: dict[str, str]) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return name


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Checks `text` against the text format 0.0.4 and returns {(name, labels): value}.

    Checked: every line is a HELP, TYPE or sample line; HELP and TYPE once per family, before
    its samples; every sample belongs to a declared family; label values well escaped; no
    sample repeated; histograms have cumulative buckets ending in le="+Inf" equal to _count.
    """
    assert text.endswith("\n"), "the exposition must end with a newline"
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: dict[tuple[str, frozenset], float] = {}
    for n, line in enumerate(text.splitlines(), 1):
        where = f"line {n}: {line!r}"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(_NAME, name) and name not in helps, where
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert re.fullmatch(_NAME, name) and name not in types and kind in _TYPES, where
            types[name] = kind
            continue
        assert line and not line.startswith("#"), where
        m = _SAMPLE_RE.match(line)
        assert m, where
        name, labels_text, value = m.groups()
        labels: dict[str, str] = {}
        if labels_text:
            pos = 0
            while pos < len(labels_text):
                lm = _LABEL_RE.match(labels_text, pos)
                assert lm, f"{where}: bad labels at {labels_text[pos:]!r}"
                assert lm.group(1) not in labels, where
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
        family = _family_of(name, types)
        assert family in types and family in helps, f"{where}: no TYPE/HELP for {family}"
        key = (name, frozenset(labels.items()))
        assert key not in samples, f"{where}: repeated sample"
        samples[key] = float(value)
    for family, kind in types.items():
        if kind != "histogram":
            continue
        series: dict[frozenset, list[tuple[float, float]]] = {}
        for (name, labels), v in samples.items():
            if name == family + "_bucket":
                d = dict(labels)
                le = d.pop("le")
                series.setdefault(frozenset(d.items()), []).append((float(le), v))
        for labels, buckets in series.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), f"{family}{dict(labels)}: buckets not cumulative"
            assert buckets[-1][0] == float("inf"), f"{family}{dict(labels)}: no +Inf bucket"
            assert samples[(family + "_count", labels)] == counts[-1], family
            assert (family + "_sum", labels) in samples, family
    return samples


def value(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples, name: str, **labels: str) -> float:
    """Sum over every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def scrape(ctl) -> dict[tuple[str, frozenset], float]:
    status, headers, body = ctl.http_get("/metrics")
    assert status == 200, (status, body)
    assert headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"), headers
    return parse_metrics(body)


def wait_metrics(ctl, check, timeout: float, what: str):
    """Scrapes until check(samples) is true; returns those samples."""
    def attempt():
        s = scrape(ctl)
        return s if check(s) else None
    return wait_until(attempt, timeout, what, interval=0.3)


def test_metrics_follow_rotations_renewals_and_revocations(chain):  # noqa: F811
    chain.add_tenant("app", default_ttl=LEASE_TTL, max_ttl="10m", rotation_margin="3s")
    chain.start()
    ctl = chain.controller
    app = {"set": "app", "kind": "dynamic"}
    s = scrape(ctl)
    assert value(s, "pgbv_generation", **app) == 1
    assert value(s, "pgbv_ready") == 1
    assert value(s, "pgbv_set_ready", **app) == 1
    assert value(s, "pgbv_set_state", **app, state="serving") == 1
    assert value(s, "pgbv_vault_up") == 1
    assert value(s, "pgbv_token_valid") == 1
    assert value(s, "pgbv_logins_total") == 1
    assert value(s, "pgbv_login_failures_total") == 0
    assert value(s, "pgbv_plugin_connections") >= 1
    assert value(s, "pgbv_plugin_connections_total", result="accepted") >= 1
    assert value(s, "pgbv_current_generation_plugins", **app) >= 1
    assert 0 < value(s, "pgbv_lease_seconds_left", **app) <= 9
    assert 0 < value(s, "pgbv_token_seconds_left") <= 3600
    assert value(s, "pgbv_vault_requests_total", path_class="login", code="200") == 1
    assert value(s, "pgbv_vault_requests_total", path_class="creds", code="200") == 1
    assert value(s, "pgbv_rotations_total", **app, reason="manual") == 0
    assert value(s, "pgbv_vault_request_duration_seconds_count", path_class="creds") == 1

    # Two rotations by hand: the reason says so, the generation follows.
    chain.rotate("app")
    chain.rotate("app")
    s = scrape(ctl)
    assert value(s, "pgbv_rotations_total", **app, reason="manual") == 2
    assert total(s, "pgbv_rotations_total", **app) == 2
    assert value(s, "pgbv_generation", **app) == 3
    assert value(s, "pgbv_vault_requests_total", path_class="creds", code="200") == 3
    # The old generations drain in PgBouncer and their leases are revoked.
    s = wait_metrics(ctl, lambda s: value(s, "pgbv_revocations_total", **app) >= 2 and
                     value(s, "pgbv_old_generations", **app) == 0, 30,
                     "both old generations to be revoked")
    assert value(s, "pgbv_revocation_failures_total", **app) == 0
    assert total(s, "pgbv_vault_requests_total", path_class="lease_revoke") >= 2
    # The 9 s lease is renewed every few seconds.
    s = wait_metrics(ctl, lambda s: value(s, "pgbv_renewals_total", **app) >= 2, 30,
                     "two lease renewals")
    assert value(s, "pgbv_renewal_failures_total", **app) == 0
    assert value(s, "pgbv_vault_requests_total", path_class="lease_renew", code="200") >= 2
    assert value(s, "pgbv_generation", **app) == 3  # renewals make no new generation
    for path_class in ("login", "creds", "lease_renew", "lease_revoke"):
        assert value(s, "pgbv_vault_request_duration_seconds_count", path_class=path_class) >= 1
    assert value(s, "pgbv_ready") == 1
    print("--- /metrics after two rotations and renewals:\n" + ctl.http_get("/metrics")[2])
    # HEAD: the same headers, no body.
    status, headers, body = ctl.http_get("/metrics", method="HEAD")
    assert status == 200 and body == "" and int(headers["Content-Length"]) > 1000, headers


def test_metrics_show_a_failing_vault(chain):  # noqa: F811
    chain.vault.require_double("it makes Vault fail with the double's fault injection")
    chain.add_tenant("app", default_ttl=LEASE_TTL, max_ttl="10m", rotation_margin="3s")
    chain.start()
    ctl = chain.controller
    control = chain.vault.control()
    app = {"set": "app", "kind": "dynamic"}

    # Renewals answered 500 for a while: counted as failures, the set degraded, the
    # credentials PgBouncer has stay in use; then renewals succeed again.
    control.fault("error", status=500, path="sys/leases/renew", for_ms=7000)
    s = wait_metrics(ctl, lambda s: value(s, "pgbv_renewal_failures_total", **app) >= 1, 20,
                     "a failed renewal to be counted")
    assert value(s, "pgbv_vault_requests_total", path_class="lease_renew", code="500") >= 1
    renewed = value(s, "pgbv_renewals_total", **app)
    s = wait_metrics(ctl, lambda s: value(s, "pgbv_renewals_total", **app) > renewed and
                     value(s, "pgbv_set_state", **app, state="serving") == 1, 30,
                     "renewals to succeed again after the fault")

    # Vault down: a requested rotation fails with no answer (code "error"), Vault is down
    # in the metrics, the set degraded but still ready (its lease still runs)...
    # (If the 500s outlasted the 9 s lease, a lease_lost rotation happened: count from here.)
    generation = value(s, "pgbv_generation", **app)
    rotations = total(s, "pgbv_rotations_total", **app)
    assert rotations == generation - 1
    control.fault("down", for_ms=6000)
    cp = ctl.pgbvctl_run("rotate", "app")
    assert cp.returncode == 0, cp.stderr
    s = wait_metrics(ctl, lambda s: value(s, "pgbv_vault_up") == 0, 15,
                     "pgbv_vault_up to drop to 0")
    assert total(s, "pgbv_vault_requests_total", code="error") >= 1
    assert value(s, "pgbv_set_state", **app, state="degraded") == 1
    # ...and once Vault is back the rotation happens, counted once, as manual.
    s = wait_metrics(ctl, lambda s: value(s, "pgbv_vault_up") == 1 and
                     value(s, "pgbv_generation", **app) == generation + 1, 30,
                     "the rotation to succeed once Vault is back")
    assert value(s, "pgbv_rotations_total", **app, reason="manual") == 1
    assert total(s, "pgbv_rotations_total", **app) == rotations + 1
    wait_until(lambda: int(chain.show("app")["generation"]) == generation + 1, 10,
               "PgBouncer to receive the new generation", interval=0.2)
    wait_metrics(ctl, lambda s: value(s, "pgbv_ready") == 1, 10, "readiness to return")
