#!/usr/bin/python3
"""pgbv-controller's footprint: resident memory, idle CPU, and Vault requests per lease-hour.

A benchmark, not a test: it prints figures and asserts nothing about them. It exits non-zero
only when something broke (a part did not start, the controller died, a set never served).

What it runs (all in one temp dir, removed on every exit path):
- a throwaway PostgreSQL 15 (tests/e2e/postgres_cluster.py), run as user `postgres`;
- the Vault test double (tests/vault_double), configured through Vault's own API: database
  secrets engine, one connection config, distinct dynamic roles (fp000..fp099 with a long
  TTL, rate00..rate09 with the short TTL under test), a controller policy covering
  `database/creds/*`, and an AppRole;
- pgbv-controller (tests/e2e/controller_process.py), as user `postgres`, AppRole login, no
  PgBouncer (the controller fetches every set at start and renews/rotates with or without
  plugins connected).

Phases:
1. footprint, for each N in --sets (default 1 and 100): a controller with N sets, each its
   own dynamic role (so N real PostgreSQL roles, N leases). Once every set is `serving`
   (pgbvctl status), VmRSS/VmHWM/RssAnon/RssFile from /proc/<pid>/status; then one idle
   minute (leases and token last 1 h, so nothing is due) measured as utime+stime from
   /proc/<pid>/stat, the scheduler's run time from /proc/<pid>/task/*/schedstat, context
   switches, and the Vault requests the double saw in that minute.
2. request rate, for each N in --rate-sets (default 1 and 10): a controller with N sets on
   roles with default_ttl --ttl and max_ttl --max-ttl, plus a stand-in plugin on the plugin
   socket that reports each old generation DRAINED --drain-delay seconds after the new one
   arrives (as PgBouncer does once its idle servers on the old role are closed). The
   double's counters cover k whole rotation cycles (k ~ --rate-duration / cycle), from just
   after the first rotation to just after rotation k+1, so each set contributes exactly k
   leases; requests per path class are given per lease and per set-hour (a set holds one
   live lease at a time, so "per set-hour" is "per lease-hour" in the brief's sense).

Usage (as root, after building pgbv-controller and pgbvctl):
    bench/controller_footprint.py [--build-dir BUILD] [--json FILE] [options]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / "tests" / "e2e"))
sys.path.insert(0, str(TOP / "tests" / "vault_double"))

import pgbv_wire as wire  # noqa: E402
import processes  # noqa: E402
from controller_process import Controller  # noqa: E402
from double_process import VaultDouble  # noqa: E402
from plugin_client import PeerClosed, PluginClient  # noqa: E402
from postgres_cluster import APP_DB, APP_GROUP, PostgresCluster  # noqa: E402
from vault_client import controller_policy, setup_pgbv  # noqa: E402

PG_BINDIR = Path("/usr/lib/postgresql/15/bin")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
DB_MOUNT = "database"
DB_NAME = "pg"


class Interrupted(Exception):
    """SIGTERM or SIGHUP: clean up like Ctrl-C."""


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def parse_duration(text: str) -> float:
    """Seconds in `30s`, `2m`, `1h` or `45`, for the arithmetic (Vault gets the text)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


def parse_time(text: str) -> float:
    """The double's RFC 3339 UTC times (fraction up to nanoseconds) as Unix seconds."""
    text = text.rstrip("Z")
    base, _, frac = text.partition(".")
    t = dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return t.timestamp() + (float("0." + frac) if frac else 0.0)


# ---------------------------------------------------------------------------------------------
# What /proc says about one process.


def read_memory(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile, VmSize, Threads from /proc/<pid>/status (kB, count)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize", "Threads",
                       "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                out[key] = int(value.split()[0])
    return out


def read_cpu(pid: int) -> dict[str, float]:
    """utime+stime (s, clock-tick resolution) and the summed scheduler run time (s, ns)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    # After the command name: field 3 is state, so utime (14) and stime (15) are [11], [12].
    utime, stime = int(fields[11]), int(fields[12])
    runtime_ns = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as f:
                runtime_ns += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended meanwhile (libcurl's resolver)
    return {"utime": utime / CLK_TCK, "stime": stime / CLK_TCK,
            "cpu": (utime + stime) / CLK_TCK, "runtime": runtime_ns / 1e9}


def status_of(ctl: Controller) -> dict:
    """The status object of `pgbvctl status --json` ({"ok":..,"status":{..}})."""
    answer = ctl.status()
    if not answer.get("ok", False):
        raise RuntimeError(f"pgbvctl status: {answer.get('error')}")
    return answer["status"]


def controller_pid(ctl: Controller) -> int:
    """The controller's pid: setpriv execs it, so it is the child's pid; checked anyway."""
    pid = ctl.process.pid
    exe = os.readlink(f"/proc/{pid}/exe")
    if not exe.endswith("pgbv-controller"):
        raise RuntimeError(f"pid {pid} runs {exe}, not pgbv-controller")
    return pid


# ---------------------------------------------------------------------------------------------
# A stand-in for PgBouncer's plugin: it holds every set and reports old generations drained.


class DrainingPlugin(threading.Thread):
    """Holds every set like a plugin; DRAINED for generation g-1 `delay` s after g arrives.

    With drain=False it never reports DRAINED (a PgBouncer whose old servers never close),
    so the controller revokes old leases at their deadline. It also records when each
    generation arrived, which the main thread uses to place its counting window.
    """

    def __init__(self, socket_path: Path, delay: float, drain: bool = True):
        super().__init__(name="draining-plugin", daemon=True)
        self.socket_path = socket_path
        self.delay = delay
        self.drain = drain
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.current: dict[str, wire.Credentials] = {}
        self.arrived: dict[tuple[str, int], float] = {}
        self.due: list[tuple[float, wire.Drained]] = []
        self.credentials_seen = 0
        self.drained_sent = 0
        self.error: str | None = None
        self.client: PluginClient | None = None

    def run(self) -> None:
        try:
            self.client = PluginClient(str(self.socket_path), timeout=5)
            _, snapshot = self.client.handshake()
            for creds in snapshot:
                self._got(creds)
            while not self.stop_event.is_set():
                try:
                    msg = self.client.recv(timeout=0.1)
                    if isinstance(msg, wire.Credentials):
                        self._got(msg)
                    elif isinstance(msg, wire.Error):
                        raise RuntimeError(f"controller sent ERROR code {msg.code}")
                except TimeoutError:
                    pass
                now = time.monotonic()
                for item in [d for d in self.due if d[0] <= now]:
                    self.client.send(item[1])
                    self.drained_sent += 1
                    self.due.remove(item)
        except PeerClosed:
            if not self.stop_event.is_set():
                self.error = "the controller closed the plugin connection"
        except Exception as e:  # reported by the main thread
            self.error = f"{type(e).__name__}: {e}"
        finally:
            if self.client is not None:
                self.client.close()

    def _got(self, creds: wire.Credentials) -> None:
        name = creds.set.decode()
        now = time.monotonic()
        with self.lock:
            self.credentials_seen += 1
            self.arrived.setdefault((name, creds.generation), now)
            old = self.current.get(name)
            if old is not None and creds.generation > old.generation and self.drain:
                self.due.append((now + self.delay,
                                 wire.Drained(old.set, old.generation, old.username)))
            if old is None or creds.generation >= old.generation:
                self.current[name] = creds

    def reached(self, names: list[str], generation: int) -> float | None:
        """When the last of `names` got `generation` or later (monotonic), else None."""
        with self.lock:
            times = []
            for name in names:
                cur = self.current.get(name)
                if cur is None or cur.generation < generation:
                    return None
                times.append(self.arrived.get((name, generation), self.arrived.get(
                    (name, cur.generation), time.monotonic())))
            return max(times)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# The rig: PostgreSQL, the double configured like Vault, and controllers on demand.


class Rig:
    def __init__(self, args: argparse.Namespace, root: Path):
        self.args = args
        self.root = root
        self.pg: PostgresCluster | None = None
        self.vault: VaultDouble | None = None
        self.controllers: list[Controller] = []
        self.plugins: list[DrainingPlugin] = []
        self.role_id = ""
        self.secret_id = ""

    def start(self, fp_roles: int, rate_roles: int) -> None:
        a = self.args
        log("starting PostgreSQL 15")
        (self.root / "pg").mkdir()
        processes.give_to_server_user(self.root / "pg")
        self.pg = PostgresCluster(PG_BINDIR, self.root / "pg")
        self.pg.start()
        admin_password = secrets.token_urlsafe(18)
        self.pg.psql(f"ALTER ROLE postgres PASSWORD '{admin_password}'", db="postgres")

        log("starting the Vault double")
        vault_dir = self.root / "vault"
        vault_dir.mkdir(mode=0o700)
        self.vault = VaultDouble(str(vault_dir))
        self.vault.start()
        client = self.vault.client()
        url = (f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{self.pg.port}/"
               f"{APP_DB}?sslmode=disable")
        # The first role the standard way; then the connection may serve every role, more
        # roles, and a policy that lets the controller read any of them.
        creation = setup_pgbv(client, url, "postgres", admin_password, db_mount=DB_MOUNT,
                              db_name=DB_NAME, role="fp000", default_ttl=a.idle_ttl,
                              max_ttl="24h", grant_roles=[APP_GROUP], token_ttl=a.token_ttl,
                              token_max_ttl="24h")
        client.configure_postgres(DB_MOUNT, DB_NAME, url, "postgres", admin_password, ["*"])
        statements = [
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
            "VALID UNTIL '{{expiration}}';",
            f'GRANT "{APP_GROUP}" TO "{{{{name}}}}";']
        for i in range(1, fp_roles):
            client.write_db_role(DB_MOUNT, f"fp{i:03d}", DB_NAME, statements, a.idle_ttl, "24h")
        for i in range(rate_roles):
            client.write_db_role(DB_MOUNT, f"rate{i:02d}", DB_NAME, statements, a.ttl,
                                 a.max_ttl)
        client.put_policy(creation["policy"], controller_policy(DB_MOUNT, "*"))
        self.role_id = creation["role_id"]
        self.secret_id = client.approle_secret_id(creation["auth_mount"], creation["approle"])
        log(f"Vault double at {self.vault.addr}: roles fp000..fp{fp_roles - 1:03d} "
            f"(TTL {a.idle_ttl}), rate00..rate{rate_roles - 1:02d} (TTL {a.ttl}, max {a.max_ttl}),"
            f" policy on {DB_MOUNT}/creds/*")

    def controller(self, label: str, sets: dict[str, dict[str, str]],
                   extra: dict[str, str] | None = None) -> Controller:
        ctl = Controller(self.args.controller_bin, self.args.pgbvctl_bin, self.root,
                         vault_addr=self.vault.addr, vault={"auth_method": "approle"},
                         sets=sets, controller=extra, name=f"ctl-{label}")
        ctl.vault["role_id_file"] = str(ctl.secret_file("role_id", self.role_id))
        ctl.vault["secret_id_file"] = str(ctl.secret_file("secret_id", self.secret_id))
        self.controllers.append(ctl)
        ctl.start()
        return ctl

    def wait_serving(self, ctl: Controller, n: int, timeout: float) -> dict:
        last: list = [None]

        def all_serving():
            if not ctl.alive():
                raise RuntimeError(f"pgbv-controller exited:\n{ctl.log_text()[-3000:]}")
            try:
                st = status_of(ctl)
            except RuntimeError as e:
                last[0] = str(e)
                return None
            last[0] = st
            sets = st.get("sets", [])
            if len(sets) == n and all(s.get("state") == "serving" for s in sets):
                return st
            return None
        try:
            return processes.wait_until(all_serving, timeout, f"{n} sets to serve",
                                        interval=0.1)
        except TimeoutError as e:
            raise RuntimeError(f"{e}; last status: {json.dumps(last[0])[:2000]}\n"
                               f"controller log:\n{ctl.log_text()[-3000:]}") from None

    def stop_controller(self, ctl: Controller) -> None:
        ctl.stop()
        if ctl in self.controllers:
            self.controllers.remove(ctl)

    def stop(self) -> None:
        for p in self.plugins:
            p.stop()
        for ctl in list(self.controllers):
            try:
                ctl.stop()
            except Exception as e:
                print(f"controller_footprint: stopping a controller: {e}", file=sys.stderr)
        if self.vault is not None:
            try:
                self.vault.stop()
            except Exception as e:
                print(f"controller_footprint: stopping the double: {e}", file=sys.stderr)
        if self.pg is not None:
            try:
                self.pg.stop()
            except Exception as e:
                print(f"controller_footprint: stopping PostgreSQL: {e}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Phase 1: memory and idle CPU.


def footprint(rig: Rig, n: int) -> dict:
    a = rig.args
    sets = {f"s{i:03d}": {"role": f"fp{i:03d}", "mount": DB_MOUNT, "rotation_margin": "60s"}
            for i in range(n)}
    log(f"footprint: controller with {n} set(s)")
    rig.vault.control().stats(reset=True)  # so start_stats holds this controller's only
    t0 = time.monotonic()
    ctl = rig.controller(f"idle-{n}", sets)
    pid = controller_pid(ctl)
    rig.wait_serving(ctl, n, timeout=60 + 2 * n)
    startup = time.monotonic() - t0
    time.sleep(a.settle)
    control = rig.vault.control()
    start_stats = control.stats(reset=True)["requests"]
    mem = read_memory(pid)
    cpu_start = read_cpu(pid)
    log(f"  {n} set(s) serving after {startup:.1f} s; VmRSS {mem['VmRSS']} kB; idle "
        f"{a.idle:g} s")
    t1 = time.monotonic()
    time.sleep(a.idle)
    cpu_end = read_cpu(pid)
    elapsed = time.monotonic() - t1
    mem_end = read_memory(pid)
    idle_requests = control.stats()["requests"]
    if not ctl.alive():
        raise RuntimeError(f"pgbv-controller died during the idle time:\n"
                           f"{ctl.log_text()[-3000:]}")
    status = status_of(ctl)
    rig.stop_controller(ctl)
    return {
        "sets": n, "startup_s": round(startup, 2), "startup_requests": start_stats,
        "memory_kB": mem, "memory_after_idle_kB": mem_end,
        "idle_s": round(elapsed, 2),
        "idle_cpu_s": round(cpu_end["cpu"] - cpu_start["cpu"], 3),
        "idle_utime_s": round(cpu_end["utime"] - cpu_start["utime"], 3),
        "idle_stime_s": round(cpu_end["stime"] - cpu_start["stime"], 3),
        "idle_runtime_ms": round((cpu_end["runtime"] - cpu_start["runtime"]) * 1000, 3),
        "idle_ctxt_switches": (mem_end["voluntary_ctxt_switches"]
                               + mem_end["nonvoluntary_ctxt_switches"]
                               - mem["voluntary_ctxt_switches"]
                               - mem["nonvoluntary_ctxt_switches"]),
        "idle_vault_requests": idle_requests,
        "total_cpu_s_since_start": round(cpu_end["cpu"], 3),
        "health": status.get("health"),
        "token_ttl_s": status.get("token", {}).get("ttl"),
    }


# ---------------------------------------------------------------------------------------------
# Phase 2: Vault requests per lease-hour.


def lease_records(snapshot: dict, roles: set[str], since: float) -> list[dict]:
    """The double's live and revoked leases of `roles` issued at or after `since`.

    Earlier runs may have used the same roles; their leases stay in the double's history.
    """
    out = []
    for rec in snapshot.get("leases", []) + snapshot.get("revoked", []):
        if rec.get("role") in roles and parse_time(rec["issue_time"]) >= since:
            out.append(rec)
    return out


def request_rate(rig: Rig, n: int) -> dict:
    """Counts Vault requests over k whole rotation cycles of n sets.

    Every set fetches at start, so all rotate in step (a lease's final end is its issue time
    plus max_ttl). The window opens and closes `quiet` seconds after every set has rotated,
    between the old lease's revocation and the new lease's first renewal, so it holds
    exactly k leases' creds, renews and revokes per set: no partial cycle at either end.
    """
    a = rig.args
    names = [f"r{i:02d}" for i in range(n)]
    sets = {name: {"role": f"rate{i:02d}", "mount": DB_MOUNT, "rotation_margin": a.margin}
            for i, name in enumerate(names)}
    drain = not a.no_drain
    quiet = (a.drain_delay if drain else parse_duration(a.margin)) + 3.0
    log(f"request rate: controller with {n} set(s), TTL {a.ttl}, max TTL {a.max_ttl}, "
        f"margin {a.margin}; plugin "
        + (f"reports DRAINED {a.drain_delay:g} s after a rotation" if drain
           else "never reports DRAINED"))
    rig.vault.control().stats(reset=True)  # so startup_requests holds this controller's only
    started_wall = time.time()
    ctl = rig.controller(f"rate-{n}", sets, {"allowed_uids": "postgres root"})
    plugin = DrainingPlugin(ctl.plugin_socket, a.drain_delay, drain)
    rig.plugins.append(plugin)
    plugin.start()
    rig.wait_serving(ctl, n, timeout=60 + 2 * n)
    control = rig.vault.control()
    startup_requests = control.stats()["requests"]

    def wait_generation(gen: int, timeout: float) -> float:
        def check():
            if not ctl.alive():
                raise RuntimeError(f"pgbv-controller died:\n{ctl.log_text()[-3000:]}")
            if plugin.error:
                raise RuntimeError(f"stand-in plugin: {plugin.error}")
            return plugin.reached(names, gen)
        return processes.wait_until(check, timeout, f"every set at generation {gen}",
                                    interval=0.05)

    def sleep_until(t: float) -> None:
        time.sleep(max(0.0, t - time.monotonic()))

    max_ttl = parse_duration(a.max_ttl)
    t_first = wait_generation(1, 30)
    t_g2 = wait_generation(2, 2 * max_ttl + 60)
    period_est = t_g2 - t_first
    k = max(1, round(a.rate_duration / period_est))
    log(f"  first rotation after {period_est:.1f} s; counting {k} whole cycle(s), about "
        f"{k * period_est:.0f} s")
    sleep_until(t_g2 + quiet)
    control.stats(reset=True)
    t0_wall, t0 = time.time(), time.monotonic()
    t_end = wait_generation(2 + k, k * period_est * 1.5 + 60)
    sleep_until(t_end + quiet)
    snap = control.stats()
    window = time.monotonic() - t0
    t1_wall = time.time()
    status = status_of(ctl)
    plugin.stop()
    rig.plugins.remove(plugin)
    rig.stop_controller(ctl)
    if plugin.error:
        raise RuntimeError(f"stand-in plugin: {plugin.error}")

    requests = snap["requests"]
    leases = k * n
    per_set_hour = {cls: round(count * 3600 / (window * n), 2) for cls, count in requests.items()}
    per_lease = {cls: round(count / leases, 3) for cls, count in requests.items()}

    # From the double's lease records: the rotation period (issue to issue) and how long an
    # old lease outlived the issue of its successor before being revoked.
    roles = {s["role"] for s in sets.values()}
    by_role: dict[str, list[dict]] = {}
    for rec in lease_records(snap, roles, started_wall - 1.0):
        by_role.setdefault(rec["role"], []).append(rec)
    intervals: list[float] = []
    overlaps: list[float] = []
    reasons: dict[str, int] = {}
    for role_recs in by_role.values():
        role_recs.sort(key=lambda r: parse_time(r["issue_time"]))
        issued = [parse_time(r["issue_time"]) for r in role_recs]
        intervals += [b - a_ for a_, b in zip(issued, issued[1:])]
        for rec, nxt in zip(role_recs, role_recs[1:]):
            if "revoked_at" in rec:
                overlaps.append(parse_time(rec["revoked_at"]) - parse_time(nxt["issue_time"]))
        for rec in role_recs:
            if "revoked_at" in rec and t0_wall <= parse_time(rec["revoked_at"]) <= t1_wall:
                reasons[rec["reason"]] = reasons.get(rec["reason"], 0) + 1
    period = sum(intervals) / len(intervals) if intervals else None
    return {
        "sets": n, "cycles": k, "leases": leases, "window_s": round(window, 1),
        "startup_requests": startup_requests, "requests": requests,
        "statuses": snap["statuses"], "per_set_hour": per_set_hour, "per_lease": per_lease,
        "requests_per_lease": round(sum(requests.values()) / leases, 3),
        "total_per_set_hour": round(sum(requests.values()) * 3600 / (window * n), 1),
        "rotation_period_s": None if period is None else {
            "mean": round(period, 2), "min": round(min(intervals), 2),
            "max": round(max(intervals), 2), "count": len(intervals)},
        "old_lease_revoked_after_successor_s": (
            {"min": round(min(overlaps), 2), "max": round(max(overlaps), 2),
             "mean": round(sum(overlaps) / len(overlaps), 2)} if overlaps else None),
        "revocations_in_window_by_reason": reasons,
        "plugin": {"credentials_received": plugin.credentials_seen,
                   "drained_sent": plugin.drained_sent},
        "health": status.get("health"),
    }


# ---------------------------------------------------------------------------------------------
# Report.


def machine_info(args: argparse.Namespace, command: str) -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def git(*argv):
        cp = subprocess.run(["git", "-C", str(TOP), *argv], capture_output=True, text=True)
        return cp.stdout.strip() if cp.returncode == 0 else ""

    rev = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "controller", "include")
    build_type = ""
    cache = Path(args.build_dir) / "CMakeCache.txt"
    if cache.is_file():
        for line in cache.read_text(errors="replace").splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                build_type = line.split("=", 1)[1] or "(none)"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "host": platform.node(), "nproc": os.cpu_count(), "cpu": cpu,
        "kernel": platform.release(), "load1": os.getloadavg()[0],
        "source": (rev + (" + uncommitted changes in controller/ or include/" if dirty else ""))
        or "unknown",
        "controller_bin": str(args.controller_bin), "build_type": build_type,
        "command": command,
    }


def fmt_kb(kb: int) -> str:
    return f"{kb} kB"


def report(info: dict, fps: list[dict], rates: list[dict], args: argparse.Namespace) -> str:
    L = ["controller_footprint: pgbv-controller memory, idle CPU, Vault requests per lease-hour"]
    for key in ("date", "host", "nproc", "cpu", "kernel", "source", "controller_bin",
                "build_type", "command"):
        L.append(f"  {key + ':':15s}{info[key]}")
    L.append(f"  {'load1:':15s}{info['load1']:.2f} at start, {info.get('load1_end', 0):.2f} at end")
    if fps:
        L += ["", f"Footprint: N sets, each its own dynamic role (lease TTL {args.idle_ttl}, "
              f"token TTL {args.token_ttl}), no plugin connected;",
              f"memory {args.settle:g} s after every set is serving; idle = the next "
              f"{args.idle:g} s.", ""]
        head = (f"{'sets':>5} {'start s':>8} {'VmRSS':>10} {'VmHWM':>10} {'RssAnon':>10} "
                f"{'RssFile':>10} {'thr':>4} {'idle CPU s':>11} {'run ms':>8} {'ctxsw':>6} "
                f"{'Vault req':>9}")
        L += [head, "-" * len(head)]
        for f in fps:
            m = f["memory_kB"]
            L.append(f"{f['sets']:>5} {f['startup_s']:>8.1f} {fmt_kb(m['VmRSS']):>10} "
                     f"{fmt_kb(m['VmHWM']):>10} {fmt_kb(m['RssAnon']):>10} "
                     f"{fmt_kb(m['RssFile']):>10} {m['Threads']:>4} {f['idle_cpu_s']:>11.2f} "
                     f"{f['idle_runtime_ms']:>8.2f} {f['idle_ctxt_switches']:>6} "
                     f"{sum(f['idle_vault_requests'].values()):>9}")
        L += ["", "  start s: controller start to every set serving; idle CPU s: utime+stime "
              f"from /proc/<pid>/stat over the idle {args.idle:g} s (1/{CLK_TCK} s ticks);",
              "  run ms: the same from /proc/<pid>/task/*/schedstat (ns); ctxsw: context "
              "switches in that time; Vault req: requests the double saw in it.",
              "  VmRSS after the idle minute: " + ", ".join(
                  f"{f['sets']} set(s) {fmt_kb(f['memory_after_idle_kB']['VmRSS'])}"
                  for f in fps)]
        if len(fps) >= 2:
            a_, b = fps[0], fps[-1]
            if b["sets"] > a_["sets"]:
                per = (b["memory_kB"]["VmRSS"] - a_["memory_kB"]["VmRSS"]) / (
                    b["sets"] - a_["sets"])
                L.append(f"  VmRSS per additional set: {per:.1f} kB "
                         f"(({b['memory_kB']['VmRSS']} - {a_['memory_kB']['VmRSS']}) kB / "
                         f"{b['sets'] - a_['sets']})")
    if rates:
        L += ["", f"Vault requests: roles with default_ttl {args.ttl}, max_ttl {args.max_ttl}; "
              f"rotation_margin {args.margin}; token TTL {args.token_ttl};",
              ("stand-in plugin never reports DRAINED" if args.no_drain else
               f"stand-in plugin reports DRAINED {args.drain_delay:g} s after each rotation")
              + "; counted by the double over whole rotation cycles (see README).", ""]
        classes = sorted({c for r in rates for c in r["requests"]})
        width = max([18] + [len(c) for c in classes])
        head = (f"{'sets':>5} {'cycles':>6} {'window s':>9}  {'':14}"
                + "  ".join(f"{c:>{width}}" for c in classes) + f"  {'all':>8}")
        L += [head, "-" * len(head)]
        for r in rates:
            rows = (("requests", r["requests"], "{:>%d}" % width, sum(r["requests"].values())),
                    ("per lease", r["per_lease"], "{:>%d.2f}" % width, r["requests_per_lease"]),
                    ("per set-hour", r["per_set_hour"], "{:>%d.1f}" % width,
                     r["total_per_set_hour"]))
            for i, (label, values, fmt, total) in enumerate(rows):
                lead = (f"{r['sets']:>5} {r['cycles']:>6} {r['window_s']:>9.0f}  " if i == 0
                        else " " * 24)
                L.append(lead + f"{label:14}" + "  ".join(
                    fmt.format(values.get(c, 0)) for c in classes)
                    + "  " + (f"{total:>8}" if i == 0 else f"{total:>8.2f}" if i == 1
                              else f"{total:>8.1f}"))
        for r in rates:
            L += ["", f"{r['sets']} set(s): {sum(r['requests'].values())} requests in "
                  f"{r['window_s']:.1f} s over {r['cycles']} cycle(s) x {r['sets']} set(s) = "
                  f"{r['leases']} leases; per lease {r['requests_per_lease']:.2f}; "
                  f"{sum(r['requests'].values())} x 3600 / ({r['window_s']:.1f} x {r['sets']})"
                  f" = {r['total_per_set_hour']:.1f} per set per hour."]
            rp = r["rotation_period_s"]
            if rp:
                L.append(f"  a new lease every {rp['mean']:.1f} s per set (min {rp['min']:.1f},"
                         f" max {rp['max']:.1f}, {rp['count']} rotations, the double's issue "
                         f"times) = {3600 / rp['mean']:.1f} leases per set-hour; x "
                         f"{r['requests_per_lease']:.2f} = "
                         f"{3600 / rp['mean'] * r['requests_per_lease']:.1f} per set-hour.")
            ov = r["old_lease_revoked_after_successor_s"]
            if ov:
                L.append(f"  old lease revoked {ov['mean']:.1f} s after its successor's issue "
                         f"(min {ov['min']:.1f}, max {ov['max']:.1f}); revocations in the "
                         f"window by reason: {r['revocations_in_window_by_reason']}")
            L.append(f"  before the window (login and first fetch): {r['startup_requests']}")
            L.append(f"  stand-in plugin: {r['plugin']['credentials_received']} CREDENTIALS "
                     f"received, {r['plugin']['drained_sent']} DRAINED sent")
            bad = {c: st for c, st in r["statuses"].items()
                   if any(not k.startswith("2") for k in st)}
            if bad:
                L.append(f"  non-2xx answers: {bad}")
        tok = parse_duration(args.token_ttl)
        L += ["", f"  Token: with token TTL {args.token_ttl} no renew-self falls in these "
              f"windows. The controller renews its token at 2/3 of its TTL less up to 10 % "
              f"jitter, i.e. every {0.6 * tok:.0f}-{2 / 3 * tok:.0f} s: "
              f"{3600 / (2 / 3 * tok):.2f}-{3600 / (0.6 * tok):.2f} auth/token/renew-self per "
              "hour per controller, shared by all its sets (plus one login per token max TTL)."]
    return "\n".join(L)


# ---------------------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=str(TOP / "build"),
                    help="build dir with controller/pgbv-controller and controller/pgbvctl")
    ap.add_argument("--controller-bin", help="override <build>/controller/pgbv-controller")
    ap.add_argument("--pgbvctl-bin", help="override <build>/controller/pgbvctl")
    ap.add_argument("--sets", type=int_list, default=[1, 100],
                    help="footprint runs: comma-separated set counts ('' skips); default 1,100")
    ap.add_argument("--idle", type=float, default=60, help="idle seconds measured (default 60)")
    ap.add_argument("--settle", type=float, default=2,
                    help="seconds after every set serves before memory is read (default 2)")
    ap.add_argument("--idle-ttl", default="1h",
                    help="default_ttl of the footprint roles (default 1h: nothing due)")
    ap.add_argument("--token-ttl", default="1h", help="AppRole token_ttl (default 1h)")
    ap.add_argument("--rate-sets", type=int_list, default=[1, 10],
                    help="request-rate runs: comma-separated set counts ('' skips); "
                         "default 1,10")
    ap.add_argument("--rate-duration", type=float, default=240,
                    help="about this many seconds counted per request-rate run, rounded to "
                         "whole rotation cycles (default 240)")
    ap.add_argument("--ttl", default="30s", help="default_ttl of the rate roles (default 30s)")
    ap.add_argument("--max-ttl", default="120s", help="max_ttl of the rate roles (default 120s)")
    ap.add_argument("--margin", default="10s", help="rotation_margin of the rate sets")
    ap.add_argument("--drain-delay", type=float, default=1.0,
                    help="the stand-in plugin reports DRAINED this long after a rotation")
    ap.add_argument("--no-drain", action="store_true",
                    help="the stand-in plugin never reports DRAINED: old leases are revoked "
                         "at their deadline")
    ap.add_argument("--json", help="also write every figure to this file")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("controller_footprint: run as root (PostgreSQL and the controller are started "
                 "as user postgres)")
    build = Path(args.build_dir).resolve()
    args.build_dir = str(build)
    args.controller_bin = Path(args.controller_bin or build / "controller" / "pgbv-controller")
    args.pgbvctl_bin = Path(args.pgbvctl_bin or build / "controller" / "pgbvctl")
    for b in (args.controller_bin, args.pgbvctl_bin):
        if not b.is_file():
            sys.exit(f"controller_footprint: {b} not found: build it first: cmake -S . -B "
                     f"{build} && cmake --build {build} --target pgbv-controller pgbvctl")
    for d in (args.ttl, args.max_ttl, args.margin, args.idle_ttl, args.token_ttl):
        parse_duration(d)  # a typo fails here, not halfway through

    command = shlex.join([sys.executable, *sys.argv])
    info = machine_info(args, command)

    def on_signal(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    processes.sweep_stale_dirs()
    root = processes.new_temp_dir("footprint")
    rig = Rig(args, root)
    fps: list[dict] = []
    rates: list[dict] = []
    status = 0
    try:
        rig.start(max(args.sets or [1]), max(args.rate_sets or [1]))
        for n in args.sets:
            fps.append(footprint(rig, n))
        for n in args.rate_sets:
            rates.append(request_rate(rig, n))
    except KeyboardInterrupt:
        print("controller_footprint: interrupted; cleaning up", file=sys.stderr)
        status = 130
    except Interrupted as e:
        print(f"controller_footprint: {e}; cleaning up", file=sys.stderr)
        status = 143 if str(e) == "SIGTERM" else 129
    except Exception as e:
        print(f"controller_footprint: FAILED: {e}", file=sys.stderr)
        status = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        rig.stop()
        processes.remove_dir(root)
    info["load1_end"] = os.getloadavg()[0]
    if fps or rates:
        print(report(info, fps, rates, args))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, "footprint": fps, "request_rate": rates,
                       "settings": {k: str(v) for k, v in vars(args).items()}}, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())
