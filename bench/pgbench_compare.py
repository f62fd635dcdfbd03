#!/usr/bin/python3
"""pgbench -S through upstream PgBouncer 1.24.1 and through the patched one, alternating runs.

Variant A ("upstream") is PgBouncer 1.24.1 with Debian's security fixes only, its database
configured the classic way (`user=... password=...`). Variant B ("patched") is the patched
PgBouncer whose database has `credential=<set>`: its server login comes from the plugin
(libpgbv.so), fed by the test credential server tests/e2e/credserver.py running in this
process. Everything else is the same: one throwaway PostgreSQL 15, the same PgBouncer
settings (transaction pooling, same pool size, TCP on 127.0.0.1 for clients and servers), the
same login role, the same pgbench command. Both PgBouncers run for the whole benchmark, so
every measured run starts with a warm pool.

After one warm-up run of each (not counted), runs alternate A, B, A, B, ...; the result is
the median TPS of each variant and their ratio patched/upstream (target >= 0.99).

With --callgrind both PgBouncers run under valgrind's callgrind and each measured run is a
fixed number of transactions (pgbench -t); callgrind's counters are zeroed before and dumped
after it, giving PgBouncer's instructions per transaction: a count that other load on the
machine does not change, unlike TPS (which under valgrind means nothing).

With --rotate-every S the credentials of the patched run rotate every S seconds during the
measurement, each time to a role created before that run started; both variants then write
pgbench's per-transaction logs (-l) and the table adds failed transactions, aborted clients
and latency percentiles (p50, p99, max) computed from those logs.

PostgreSQL and PgBouncer run as the OS user `postgres` (they refuse root). Every process and
temporary directory is removed at exit, also on Ctrl-C or SIGTERM; children are started with
a parent-death signal, so even a SIGKILL of this script does not leave them behind.

Reuses the end-to-end harness in tests/e2e (postgres_cluster, pgbouncer_process, credserver,
pgbench_run, rig, processes) without changing it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import psycopg  # noqa: E402

import processes  # noqa: E402
from credserver import CredServer  # noqa: E402
from pgbench_run import Pgbench, PgbenchResult  # noqa: E402
from pgbouncer_process import PgBouncer  # noqa: E402
from postgres_cluster import PostgresCluster  # noqa: E402
from rig import SET_NAME, app_database, plugin_settings  # noqa: E402

UPSTREAM = "upstream"
PATCHED = "patched"
LABEL = {UPSTREAM: "A upstream", PATCHED: "B patched"}
TARGET_RATIO = 0.99


class Interrupted(Exception):
    """SIGTERM/SIGHUP, turned into an exception so that cleanup runs as on Ctrl-C."""


# ---------------------------------------------------------------------------------------------
# Command line and locating the binaries.


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare pgbench -S throughput through upstream PgBouncer 1.24.1 (classic "
                    "user=/password= database) and the patched PgBouncer (credential= "
                    "database, credentials from libpgbv.so), alternating runs.")
    p.add_argument("--build-dir", type=Path, default=Path("build"),
                   help="CMake build directory holding both PgBouncers and the plugin "
                        "(default ./build)")
    p.add_argument("-T", "--duration", type=int, default=20,
                   help="seconds per measured run (default 20)")
    p.add_argument("--runs", type=int, default=5,
                   help="measured runs of each variant, at least 5 (default 5)")
    p.add_argument("--warmup", type=int, default=5,
                   help="seconds of the one uncounted warm-up run of each variant (default 5)")
    p.add_argument("--order", choices=("abab", "abba"), default="abab",
                   help="abab: A B A B ... (default); abba: A B B A A B ..., which cancels a "
                        "steady rise or fall of background load out of the per-pair ratios")
    p.add_argument("-c", "--clients", type=int, default=8, help="pgbench -c (default 8)")
    p.add_argument("-j", "--threads", type=int, default=2, help="pgbench -j (default 2)")
    p.add_argument("--pool-size", type=int, default=20,
                   help="PgBouncer default_pool_size for both (default 20)")
    p.add_argument("--rotate-every", type=float, default=0, metavar="SECONDS",
                   help="rotate the patched run's credentials every SECONDS during each "
                        "measured run, and report failures and latency percentiles")
    p.add_argument("--latency", action="store_true",
                   help="write per-transaction logs and report latency percentiles even "
                        "without --rotate-every")
    p.add_argument("--callgrind", action="store_true",
                   help="run both PgBouncers under valgrind --tool=callgrind and report "
                        "PgBouncer instructions per transaction (fixed -t runs) instead of "
                        "relying on TPS")
    p.add_argument("--transactions", type=int, default=5000, metavar="N",
                   help="with --callgrind: pgbench -t per client for each measured run "
                        "(default 5000)")
    p.add_argument("--syscalls", action="store_true",
                   help="count PgBouncer's system calls per transaction with perf stat "
                        "(raw_syscalls:sys_enter); adds a little overhead to both variants")
    p.add_argument("--upstream-bin", type=Path,
                   help="upstream pgbouncer (default <build>/pgbouncer/upstream/pgbouncer)")
    p.add_argument("--patched-bin", type=Path,
                   help="patched pgbouncer (default <build>/pgbouncer/patched/pgbouncer)")
    p.add_argument("--plugin", type=Path,
                   help="libpgbv.so (default: found under <build>, normally plugin/libpgbv.so)")
    p.add_argument("--pg-bindir", type=Path, default=Path("/usr/lib/postgresql/15/bin"),
                   help="PostgreSQL 15 binaries (default /usr/lib/postgresql/15/bin)")
    p.add_argument("--json", type=Path, metavar="FILE",
                   help="also write every figure to FILE as JSON")
    p.add_argument("--keep-logs", type=Path, metavar="DIR",
                   help="copy PgBouncer, PostgreSQL and pgbench logs to DIR before cleanup")
    args = p.parse_args(argv)
    if args.runs < 5:
        p.error("--runs must be at least 5")
    if args.duration < 1 or args.warmup < 1:
        p.error("--duration and --warmup must be at least 1 second")
    if args.rotate_every and args.rotate_every >= args.duration:
        p.error("--rotate-every must be shorter than --duration, or no rotation happens")
    if args.rotate_every < 0:
        p.error("--rotate-every must be positive")
    if args.callgrind and (args.rotate_every or args.latency):
        p.error("--callgrind measures instructions only; run --rotate-every/--latency "
                "without it")
    if args.callgrind and args.syscalls:
        p.error("--syscalls under --callgrind would count valgrind's own system calls")
    if args.transactions < 100:
        p.error("--transactions must be at least 100")
    return args


def find_plugin(build_dir: Path) -> Path:
    """The pgbv_plugin target's output: plugin/libpgbv.so normally, else any libpgbv.so under
    the build dir (outside PgBouncer's own source trees), the newest if several."""
    usual = build_dir / "plugin" / "libpgbv.so"
    if usual.is_file():
        return usual
    found = [f for f in build_dir.rglob("libpgbv.so")
             if f.is_file() and "pgbouncer" not in f.relative_to(build_dir).parts[:1]]
    if not found:
        raise SystemExit(f"pgbench_compare: no libpgbv.so under {build_dir}; build it with "
                         f"`cmake --build {build_dir} --target pgbv_plugin` or pass --plugin")
    return max(found, key=lambda f: f.stat().st_mtime)


def need_file(path: Path, what: str, hint: str) -> Path:
    if not path.is_file() or not os.access(path, os.R_OK):
        raise SystemExit(f"pgbench_compare: {what} not found at {path}; {hint}")
    return path.resolve()


def tool_version(argv: list[str]) -> str:
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                            env=processes.client_env())
        return (cp.stdout or cp.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


# ---------------------------------------------------------------------------------------------
# The machine.


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (head or "?") + (" + uncommitted changes" if dirty else "")
    except OSError:
        return "?"


def machine_info(args: argparse.Namespace, bins: dict[str, Path]) -> dict[str, str]:
    wrapper = os.environ.get("PGBV_BENCH_WRAPPER_COMMAND")
    command = shlex.join([sys.executable, *sys.argv])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "host": platform.node(),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "command": f"{wrapper}  (ran: {command})" if wrapper else command,
        "source": git_revision(),
        "pgbench": tool_version([str(args.pg_bindir / "pgbench"), "--version"]),
        "postgres": tool_version([str(args.pg_bindir / "postgres"), "--version"]),
        "upstream_bin": str(bins[UPSTREAM]),
        "patched_bin": str(bins[PATCHED]),
        "plugin": str(bins["plugin"]),
    }


# ---------------------------------------------------------------------------------------------
# One run.


@dataclass
class Latency:
    transactions: int
    failed: int  # log lines whose time is "failed" (pgbench 15)
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class Run:
    index: int  # 0 for warm-up
    variant: str
    tps: float = 0.0
    processed: int = 0
    failed: int = 0
    aborted_clients: int = 0
    returncode: int = 0
    load_before: float = 0.0
    load_after: float = 0.0
    rotations: int = 0
    drained: int = 0
    bouncer_cpu_s: float = 0.0  # user+system CPU of this variant's PgBouncer during the run
    instructions: int = 0  # callgrind Ir of PgBouncer during the run (--callgrind)
    syscalls: int = 0  # PgBouncer's system calls during the run (--syscalls, perf)
    latency: Latency | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def cpu_us_per_tx(self) -> float:
        return self.bouncer_cpu_s * 1e6 / self.processed if self.processed else math.nan

    @property
    def syscalls_per_tx(self) -> float:
        return self.syscalls / self.processed if self.processed else math.nan

    @property
    def ir_per_tx(self) -> float:
        return self.instructions / self.processed if self.processed else math.nan


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/<pid>/stat (fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class Callgrind:
    """One PgBouncer under callgrind: a wrapper script to start it, and zero/dump control.

    callgrind_control talks to valgrind's gdbserver through FIFOs that valgrind creates as
    the user it runs as; it must run as that same user (as root it hangs), and a private
    --vgdb-prefix keeps the FIFOs inside our temp dir.
    """

    def __init__(self, binary: Path, root: Path, name: str):
        self.dir = processes.make_dir(root, f"callgrind-{name}", server_owned=True)
        self.prefix = self.dir / "vgdb"
        self.wrapper = root / f"callgrind-{name}.sh"
        self.wrapper.write_text(
            "#!/bin/sh\n# Runs PgBouncer under callgrind for pgbench_compare.py.\n"
            f"exec valgrind --tool=callgrind --vgdb-prefix={shlex.quote(str(self.prefix))} "
            f"--callgrind-out-file={shlex.quote(str(self.dir))}/cg.%p "
            f"{shlex.quote(str(binary))} \"$@\"\n")
        self.wrapper.chmod(0o755)

    def _control(self, pid: int, action: str) -> None:
        processes.run(["callgrind_control", f"--vgdb-prefix={self.prefix}", action, str(pid)],
                      as_server_user=True, timeout=60)

    def zero(self, pid: int) -> None:
        self._control(pid, "--zero")

    def dump(self, pid: int) -> int:
        """Dumps the counters and returns the instructions (Ir) since the last zero."""
        before = set(self.dir.glob(f"cg.{pid}.*"))
        self._control(pid, "--dump")
        new = sorted(set(self.dir.glob(f"cg.{pid}.*")) - before,
                     key=lambda f: int(f.name.rsplit(".", 1)[1]))
        if not new:
            raise RuntimeError(f"callgrind wrote no dump for pid {pid} in {self.dir}")
        for line in new[-1].read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
        raise RuntimeError(f"no summary line in callgrind dump {new[-1]}")


class SyscallCounter:
    """perf stat counting the raw_syscalls:sys_enter tracepoint of one process.

    Counts every system call (recv/send/epoll_wait/...), in the kernel, without sampling.
    (/proc/<pid>/io's syscr/syscw would miss recv and send, which is what PgBouncer uses.)
    """

    def __init__(self, pid: int, out: Path):
        self.out = out
        self.process = processes.Process(
            "perf", ["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid),
                     "-o", str(out)], out.with_suffix(".stderr"), as_server_user=False)
        time.sleep(0.3)  # let perf attach before the work starts
        if not self.process.alive():
            raise RuntimeError(f"perf stat exited at once: {self.process.log_text()[-500:]}; "
                               "--syscalls needs perf (Debian linux-perf) and tracepoints")

    def stop(self) -> int:
        self.process.stop(((signal.SIGINT, 10.0),))
        for line in self.out.read_text().splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2] == "raw_syscalls:sys_enter":
                return int(fields[0])
        raise RuntimeError(f"no syscall count in perf's output {self.out}")


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile (the value at rank ceil(q*n))."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


def read_transaction_logs(log_dir: Path) -> Latency:
    """pgbench 15's -l lines: client_id transaction_no time script_no time_epoch time_us
    [schedule_lag] [retries]; `time` is microseconds, or `failed` / `skipped`."""
    latencies: list[int] = []
    failed = 0
    for path in sorted(log_dir.iterdir()):
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 3:
                    continue
                if fields[2].isdigit():
                    latencies.append(int(fields[2]))
                elif fields[2] == "failed":
                    failed += 1
    latencies.sort()
    return Latency(transactions=len(latencies) + failed, failed=failed,
                   p50_ms=percentile(latencies, 0.50) / 1000,
                   p99_ms=percentile(latencies, 0.99) / 1000,
                   max_ms=(latencies[-1] / 1000) if latencies else math.nan)


class Bench:
    """PostgreSQL, the credential server and both PgBouncers, set up once for all runs."""

    def __init__(self, args: argparse.Namespace, bins: dict[str, Path], root: Path):
        self.args = args
        self.bins = bins
        self.root = root
        self.pg: PostgresCluster | None = None
        self.credserver: CredServer | None = None
        self.bouncers: dict[str, PgBouncer] = {}
        self.generation_roles: list[tuple[int, str]] = []  # patched set's history
        self.dropped: set[str] = set()
        self.bench_role = ""
        self.run_count = 0
        self.with_latency = bool(args.rotate_every or args.latency)
        self.callgrind: dict[str, Callgrind] = {}

    # -- set-up and tear-down -----------------------------------------------------------------

    def start(self) -> None:
        a = self.args
        processes.make_dir(self.root, "logs")
        self.pg = PostgresCluster(a.pg_bindir, processes.make_dir(self.root, "pg"))
        self.pg.start()
        # One role for both variants: the same SCRAM login and the same privileges.
        self.bench_role = f"pgbv_bench_{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(18)  # no quoting needed in an ini connect string
        self.pg.create_role(self.bench_role, password)

        ctl = processes.make_dir(self.root, "ctl")
        self.credserver = CredServer(str(ctl / "plugin.sock"))
        self.credserver.start()
        gen = self.credserver.set_credentials(SET_NAME, self.bench_role, password)
        self.generation_roles.append((gen, self.bench_role))

        common = {"default_pool_size": a.pool_size, "max_client_conn": 200,
                  "pool_mode": "transaction"}
        upstream_db = (f"host=127.0.0.1 port={self.pg.port} dbname=app "
                       f"user={self.bench_role} password={password}")
        binary = dict(self.bins)
        if a.callgrind:
            for v in (UPSTREAM, PATCHED):
                self.callgrind[v] = Callgrind(self.bins[v], self.root, v)
                binary[v] = self.callgrind[v].wrapper
        self.bouncers[UPSTREAM] = PgBouncer(binary[UPSTREAM], self.root, a.pg_bindir,
                                            databases={"app": upstream_db}, settings=common)
        self.bouncers[PATCHED] = PgBouncer(
            binary[PATCHED], self.root, a.pg_bindir,
            databases={"app": app_database(self.pg)},
            settings={**common, **plugin_settings(self.bins["plugin"],
                                                  Path(self.credserver.socket_path))})
        for b in self.bouncers.values():
            b.start(timeout=120 if a.callgrind else 20)
        self.credserver.wait_ready(timeout=15)
        self.check_wiring()

    def check_wiring(self) -> None:
        """Both PgBouncers log in as the bench role; the patched one through the plugin."""
        for variant, b in self.bouncers.items():
            with psycopg.connect(**b.conninfo(), passfile=str(b.no_pgpass),
                                 connect_timeout=15, prepare_threshold=None) as conn:
                user = conn.execute("SELECT current_user").fetchone()[0]
            if user != self.bench_role:
                raise RuntimeError(f"{variant} PgBouncer logs in as {user!r}, expected "
                                   f"{self.bench_role!r}")
        rows = self.bouncers[PATCHED].admin("SHOW CREDENTIALS")
        if len(rows) != 1 or rows[0]["set"] != SET_NAME or rows[0]["user"] != self.bench_role:
            raise RuntimeError(f"patched PgBouncer's SHOW CREDENTIALS is not the plugin's set: "
                               f"{rows}")
        for variant, b in self.bouncers.items():
            assert b.process is not None
            comm = Path(f"/proc/{b.process.pid}/comm").read_text().strip()
            if comm != "pgbouncer" and not (self.callgrind and comm.startswith("callgrind")):
                raise RuntimeError(f"{variant}: pid {b.process.pid} is {comm!r}, not pgbouncer; "
                                   "its CPU time cannot be measured")
        ini = self.bouncers[UPSTREAM].ini_path.read_text()
        if "credential" in ini:
            raise RuntimeError("the upstream configuration mentions credential settings")

    def stop(self) -> list[str]:
        """Stops everything that was started; returns health problems PgBouncer showed."""
        problems: list[str] = []
        for variant, b in self.bouncers.items():
            try:
                b.stop()
                problems += [f"{variant}: {p}" for p in b.health_problems()]
            except Exception as e:  # keep stopping the rest
                problems.append(f"{variant}: stopping PgBouncer failed: {e}")
        if self.credserver is not None:
            try:
                self.credserver.stop()
                records = self.credserver.snapshot_records()
                problems += [f"credential server: {e}" for e in records["protocol_errors"]]
            except Exception as e:
                problems.append(f"stopping the credential server failed: {e}")
        if self.pg is not None:
            try:
                self.pg.stop()
            except Exception as e:
                problems.append(f"stopping PostgreSQL failed: {e}")
        return problems

    def keep_logs(self, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for variant, b in self.bouncers.items():
            if b.log_path.exists():
                shutil.copy(b.log_path, dest / f"pgbouncer-{variant}.log")
                ini = re.sub(r"password=\S+", "password=<redacted>", b.ini_path.read_text())
                (dest / f"pgbouncer-{variant}.ini").write_text(ini)
        if self.pg is not None and self.pg.log_path.exists():
            shutil.copy(self.pg.log_path, dest / "postgres.log")
        for f in (self.root / "logs").glob("*.log"):
            shutil.copy(f, dest / f.name)

    # -- rotation -----------------------------------------------------------------------------

    def rotations_per_run(self, duration: float) -> int:
        every = self.args.rotate_every
        return 0 if not every else max(0, math.ceil(duration / every) - 1)

    def make_roles(self, n: int) -> list[tuple[str, str]]:
        assert self.pg is not None
        made = []
        for i in range(n):
            name = f"pgbv_bench_rot_{self.run_count}_{i}_{secrets.token_hex(2)}"
            password = secrets.token_urlsafe(18)
            self.pg.create_role(name, password)
            made.append((name, password))
        return made

    def _rotator(self, roles: list[tuple[str, str]], start: float, stop: threading.Event,
                 pushed: list[int], errors: list[str]) -> None:
        assert self.credserver is not None
        for k, (name, password) in enumerate(roles, start=1):
            if stop.wait(max(0.0, start + k * self.args.rotate_every - time.monotonic())):
                return
            try:
                gen = self.credserver.set_credentials(SET_NAME, name, password)
            except Exception as e:
                errors.append(f"rotation {k} failed: {e}")
                return
            self.generation_roles.append((gen, name))
            pushed.append(gen)

    def drop_drained_roles(self, timeout: float = 5) -> int:
        """Drops roles of generations PgBouncer reported drained (all but the current one);
        returns how many of those old generations were drained within `timeout`."""
        assert self.credserver is not None and self.pg is not None
        old = self.generation_roles[:-1]
        drained = 0
        deadline = time.monotonic() + timeout
        for gen, role in old:
            if role in self.dropped:
                drained += 1
                continue
            try:
                self.credserver.wait_drained(SET_NAME, gen,
                                             timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                continue
            drained += 1
            if role != self.bench_role:
                self.pg.drop_role(role)
            self.dropped.add(role)
        return drained

    # -- pgbench ------------------------------------------------------------------------------

    def run(self, variant: str, index: int, duration: int) -> Run:
        self.run_count += 1
        a = self.args
        tag = f"{self.run_count:02d}-{'warmup' if index == 0 else f'run{index}'}-{variant}"
        result = Run(index=index, variant=variant)
        rotate = variant == PATCHED and index > 0 and bool(a.rotate_every)
        roles = self.make_roles(self.rotations_per_run(duration)) if rotate else []
        pgbench_args = ["-S", "-c", str(a.clients), "-j", str(a.threads)]
        counting = bool(self.callgrind) and index > 0
        # Under callgrind a measured run is a fixed amount of work, not a fixed time.
        pgbench_args += ["-t", str(a.transactions)] if counting else ["-T", str(duration)]
        txlog_dir = None
        if self.with_latency and index > 0:
            txlog_dir = processes.make_dir(self.root / "logs", f"{tag}-tx")
            pgbench_args += ["-l", f"--log-prefix={txlog_dir / 'tx'}"]
        stop_rotating = threading.Event()
        pushed: list[int] = []
        rot_errors: list[str] = []
        rotator = None
        drained_before = len(self.credserver.drained) if self.credserver else 0

        result.load_before = os.getloadavg()[0]
        bouncer = self.bouncers[variant]
        assert bouncer.process is not None
        # The harness starts PgBouncer through setpriv, which execs it: same pid.
        if counting:
            self.callgrind[variant].zero(bouncer.process.pid)
        cpu_before = process_cpu_seconds(bouncer.process.pid)
        counter = SyscallCounter(bouncer.process.pid, self.root / "logs" / f"{tag}.perf") \
            if a.syscalls and index > 0 else None
        bench = Pgbench(a.pg_bindir, self.root / "logs" / f"{tag}.log",
                        self.bouncers[variant].conninfo(), pgbench_args)
        try:
            if rotate:
                rotator = threading.Thread(
                    target=self._rotator, name="rotator", daemon=True,
                    args=(roles, time.monotonic(), stop_rotating, pushed, rot_errors))
                rotator.start()
            try:
                parsed: PgbenchResult = bench.wait(timeout=duration + 120 if not counting
                                                   else 3600)
            except ValueError as e:
                result.problems.append(f"pgbench summary unreadable: {str(e)[:2000]}")
                parsed = PgbenchResult(bench.process.returncode() or -1,
                                       bench.process.log_text(), 0, 0, 0.0, [])
        finally:
            stop_rotating.set()
            if rotator is not None:
                rotator.join(timeout=15)
            if bench.alive():
                bench.kill()
        result.load_after = os.getloadavg()[0]
        result.bouncer_cpu_s = process_cpu_seconds(bouncer.process.pid) - cpu_before
        if counter is not None:
            result.syscalls = counter.stop()
        if counting:
            result.instructions = self.callgrind[variant].dump(bouncer.process.pid)
        result.tps = parsed.tps
        result.processed = parsed.processed
        result.failed = parsed.failed
        result.returncode = parsed.returncode
        result.aborted_clients = sum(1 for e in parsed.errors if "aborted" in e)
        result.problems += rot_errors
        if parsed.returncode != 0:
            result.problems.append(f"pgbench exited with {parsed.returncode}: "
                                   + "; ".join(parsed.errors[:5]))
        if rotate:
            result.rotations = len(pushed)
            # An old generation drains once its last server closed (after its transaction).
            self.drop_drained_roles(timeout=5)
            assert self.credserver is not None
            result.drained = len(self.credserver.drained) - drained_before
        for variant_, b in self.bouncers.items():
            for p in b.health_problems():
                result.problems.append(f"{variant_} PgBouncer: {p}")
        if txlog_dir is not None:
            result.latency = read_transaction_logs(txlog_dir)
            processes.remove_dir(txlog_dir)  # up to a few MB per run
        failed_in_log = result.latency.failed if result.latency else 0
        if result.failed or failed_in_log:
            result.problems.append(f"{result.failed} failed transactions in pgbench's summary, "
                                   f"{failed_in_log} in its per-transaction log")
        return result


# ---------------------------------------------------------------------------------------------
# Report.


def fmt_ms(v: float) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.2f}"


def report(info: dict[str, str], args: argparse.Namespace, runs: list[Run],
           stop_problems: list[str]) -> tuple[str, dict]:
    measured = [r for r in runs if r.index > 0]
    tps = {v: [r.tps for r in measured if r.variant == v] for v in (UPSTREAM, PATCHED)}
    med = {v: statistics.median(t) if t else math.nan for v, t in tps.items()}
    ratio = med[PATCHED] / med[UPSTREAM] if med[UPSTREAM] else math.nan
    cpu = {v: [r.cpu_us_per_tx for r in measured if r.variant == v] for v in (UPSTREAM, PATCHED)}
    cpu_med = {v: statistics.median(c) if c else math.nan for v, c in cpu.items()}
    cpu_ratio = cpu_med[PATCHED] / cpu_med[UPSTREAM] if cpu_med[UPSTREAM] else math.nan
    by_index = {(r.variant, r.index): r for r in measured}
    pair_ratios = [by_index[(PATCHED, i)].tps / by_index[(UPSTREAM, i)].tps
                   for i in sorted({r.index for r in measured})
                   if (UPSTREAM, i) in by_index and (PATCHED, i) in by_index
                   and by_index[(UPSTREAM, i)].tps]
    with_lat = any(r.latency for r in runs)

    out = []
    out.append("pgbench_compare: pgbench -S through upstream vs patched PgBouncer 1.24.1")
    for key in ("date", "host", "nproc", "cpu", "kernel", "source", "postgres", "pgbench",
                "upstream_bin", "patched_bin", "plugin", "command"):
        out.append(f"  {key + ':':14}{info[key]}")
    length = f"-t {args.transactions}" if args.callgrind else f"-T {args.duration}"
    out.append(f"  {'workload:':14}pgbench -n -S -c {args.clients} -j {args.threads} "
               f"{length} (warm-up -T {args.warmup}), {args.runs} runs each, "
               f"order {'A B B A A B ...' if args.order == 'abba' else 'A B A B ...'}")
    if args.callgrind:
        out.append(f"  {'callgrind:':14}both PgBouncers run under valgrind --tool=callgrind; "
                   "TPS and CPU time are valgrind's, only Ir/tx compares the binaries")
    out.append(f"  {'pgbouncer:':14}pool_mode=transaction default_pool_size={args.pool_size} "
               "listen 127.0.0.1 (TCP), server 127.0.0.1 (TCP, SCRAM), auth_type=any")
    out.append(f"  {'A upstream:':14}[databases] app = host=... user=<role> password=<...>")
    out.append(f"  {'B patched:':14}[databases] app = host=... credential={SET_NAME}; "
               "credential_plugin=libpgbv.so <- tests/e2e/credserver.py")
    if args.rotate_every:
        out.append(f"  {'rotation:':14}patched runs rotate to a pre-created role every "
                   f"{args.rotate_every:g} s")
    out.append("")
    head = (f"{'run':>6}  {'variant':<10} {'tps':>10} {'bouncer CPU':>11} {'us CPU/tx':>9} "
            f"{'load1 before>after':>18}")
    if args.syscalls:
        head += f" {'sys/tx':>7}"
    if args.callgrind:
        head += f" {'Ir/tx':>9}"
    if with_lat:
        head += f" {'failed':>6} {'aborted':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    if args.rotate_every:
        head += f" {'rot':>4} {'drained':>7}"
    out.append(head)
    out.append("-" * len(head))
    for r in runs:
        name = "warm" if r.index == 0 else str(r.index)
        line = (f"{name:>6}  {LABEL[r.variant]:<10} {r.tps:>10.1f} {r.bouncer_cpu_s:>10.2f}s "
                f"{r.cpu_us_per_tx:>9.2f} {r.load_before:>12.2f}>{r.load_after:<5.2f}")
        if args.syscalls:
            line += f" {r.syscalls_per_tx:>7.3f}" if r.syscalls else f" {'-':>7}"
        if args.callgrind:
            line += f" {r.ir_per_tx:>9.0f}" if r.instructions else f" {'-':>9}"
        if with_lat:
            lat = r.latency
            line += (f" {r.failed:>6} {r.aborted_clients:>7} "
                     f"{fmt_ms(lat.p50_ms) if lat else '-':>7} "
                     f"{fmt_ms(lat.p99_ms) if lat else '-':>7} "
                     f"{fmt_ms(lat.max_ms) if lat else '-':>7}")
        if args.rotate_every:
            line += (f" {r.rotations:>4} {r.drained:>7}" if r.variant == PATCHED and r.index
                     else f" {'-':>4} {'-':>7}")
        if r.index == 0:
            line += "   (warm-up, not counted)"
        out.append(line)
    out.append("")
    for v in (UPSTREAM, PATCHED):
        t = tps[v]
        if t:
            out.append(f"median TPS {LABEL[v]:<10}: {med[v]:10.1f}   (min {min(t):.1f}, "
                       f"max {max(t):.1f}, spread {(max(t) - min(t)) / med[v] * 100:.1f}% "
                       "of median)")
    if args.callgrind:
        out.append(f"ratio patched/upstream (medians): {ratio:.4f}   (under valgrind: not a "
                   "throughput figure; see instructions per transaction below)")
    else:
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        out.append(f"ratio patched/upstream (medians): {ratio:.4f}   target >= {TARGET_RATIO}: "
                   f"{verdict}")
    if pair_ratios:
        out.append(f"per-pair ratios B/A: {', '.join(f'{x:.3f}' for x in pair_ratios)}; "
                   f"median {statistics.median(pair_ratios):.4f}")
    for v in (UPSTREAM, PATCHED) if not args.callgrind else ():
        if cpu[v]:
            out.append(f"median PgBouncer CPU per transaction {LABEL[v]:<10}: "
                       f"{cpu_med[v]:.2f} us   (min {min(cpu[v]):.2f}, max {max(cpu[v]):.2f})")
    sc = {v: [r.syscalls_per_tx for r in measured if r.variant == v and r.syscalls]
          for v in (UPSTREAM, PATCHED)}
    sc_med = {v: statistics.median(c) if c else math.nan for v, c in sc.items()}
    if args.syscalls:
        out.append(f"median syscalls per transaction: {LABEL[UPSTREAM]} {sc_med[UPSTREAM]:.3f}, "
                   f"{LABEL[PATCHED]} {sc_med[PATCHED]:.3f}, ratio "
                   f"{sc_med[PATCHED] / sc_med[UPSTREAM]:.4f}")
    if not args.callgrind:
        out.append(f"CPU per transaction patched/upstream (medians): {cpu_ratio:.4f}   "
                   "(1.00 = same cost; PgBouncer's own user+system time, less sensitive to "
                   "other load than TPS)")
    ir_med: dict[str, float] = {}
    ir_ratio = math.nan
    if args.callgrind:
        ir = {v: [r.ir_per_tx for r in measured if r.variant == v and r.instructions]
              for v in (UPSTREAM, PATCHED)}
        for v in (UPSTREAM, PATCHED):
            if ir[v]:
                ir_med[v] = statistics.median(ir[v])
                out.append(f"median PgBouncer instructions per transaction {LABEL[v]:<10}: "
                           f"{ir_med[v]:.0f}   (min {min(ir[v]):.0f}, max {max(ir[v]):.0f})")
        if len(ir_med) == 2:
            ir_ratio = ir_med[PATCHED] / ir_med[UPSTREAM]
            out.append(f"instructions per transaction patched/upstream (medians): "
                       f"{ir_ratio:.4f}   (throughput equivalent {1 / ir_ratio:.4f} if "
                       "PgBouncer were the bottleneck)")
    if with_lat:
        for v in (UPSTREAM, PATCHED):
            rs = [r for r in measured if r.variant == v and r.latency]
            if rs:
                out.append(
                    f"{LABEL[v]:<10}: failed transactions {sum(r.failed for r in rs)}, "
                    f"failed in logs {sum(r.latency.failed for r in rs)}, aborted clients "
                    f"{sum(r.aborted_clients for r in rs)}, median p99 "
                    f"{statistics.median(r.latency.p99_ms for r in rs):.2f} ms, worst p99 "
                    f"{max(r.latency.p99_ms for r in rs):.2f} ms")
    if args.rotate_every:
        rs = [r for r in measured if r.variant == PATCHED]
        out.append(f"rotations during patched runs: {sum(r.rotations for r in rs)}, old "
                   f"generations reported drained: {sum(r.drained for r in rs)}")
    problems = [f"run {r.index} {r.variant}: {p}" for r in runs for p in r.problems]
    problems += stop_problems
    if problems:
        out.append("")
        out.append("PROBLEMS:")
        out += [f"  {p}" for p in problems]
    data = {"machine": info, "settings": {k: (str(v) if isinstance(v, Path) else v)
                                          for k, v in vars(args).items()},
            "runs": [{**asdict(r), "cpu_us_per_tx": r.cpu_us_per_tx, "ir_per_tx": r.ir_per_tx,
                      "syscalls_per_tx": r.syscalls_per_tx}
                     for r in runs],
            "median_ir_per_tx": ir_med, "ir_ratio": ir_ratio, "median_syscalls_per_tx": sc_med,
            "median_tps": med, "ratio": ratio, "median_cpu_us_per_tx": cpu_med,
            "cpu_ratio": cpu_ratio,
            "pair_ratios": pair_ratios, "target_ratio": TARGET_RATIO, "problems": problems}
    return "\n".join(out), data


# ---------------------------------------------------------------------------------------------
# Main.


_signalled: list[str] = []  # set first, so errors caused by the signal are recognised


def _on_signal(signum, frame):
    name = signal.Signals(signum).name
    _signalled.append(name)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(f"signal {name}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    build = args.build_dir.resolve()
    bins = {
        UPSTREAM: need_file(args.upstream_bin or build / "pgbouncer/upstream/pgbouncer",
                            "upstream pgbouncer",
                            f"run `cmake --build {build} --target pgbouncer_upstream`"),
        PATCHED: need_file(args.patched_bin or build / "pgbouncer/patched/pgbouncer",
                           "patched pgbouncer", f"run `cmake --build {build} --target pgbouncer`"),
    }
    bins["plugin"] = need_file(args.plugin or find_plugin(build), "libpgbv.so",
                               f"run `cmake --build {build} --target pgbv_plugin`")
    for b in ("postgres", "initdb", "pgbench", "psql", "pg_isready"):
        need_file(args.pg_bindir / b, f"PostgreSQL's {b}", "install postgresql-15")
    if args.syscalls and not shutil.which("perf"):
        raise SystemExit("pgbench_compare: --syscalls needs perf (Debian package linux-perf)")
    if args.callgrind and not all(shutil.which(t) for t in ("valgrind", "callgrind_control")):
        raise SystemExit("pgbench_compare: --callgrind needs valgrind and callgrind_control "
                         "(Debian package valgrind)")
    if os.geteuid() == 0:
        # The binaries are run by `postgres`: they and their directories must be reachable.
        for path in (bins[UPSTREAM], bins[PATCHED], bins["plugin"]):
            cp = processes.run(["test", "-r", str(path)], as_server_user=True, check=False)
            if cp.returncode != 0:
                raise SystemExit(f"pgbench_compare: user postgres cannot read {path}; make "
                                 "the build directory world-readable (chmod o+rx)")

    info = machine_info(args, bins)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    processes.sweep_stale_dirs()
    root = processes.new_temp_dir("bench")
    bench = Bench(args, bins, root)
    runs: list[Run] = []
    stop_problems: list[str] = []
    interrupted = None
    try:
        print(f"pgbench_compare: setting up PostgreSQL and both PgBouncers in {root}",
              file=sys.stderr, flush=True)
        bench.start()
        schedule = [(UPSTREAM, 0, args.warmup), (PATCHED, 0, args.warmup)]
        for i in range(1, args.runs + 1):
            pair = [(UPSTREAM, i, args.duration), (PATCHED, i, args.duration)]
            schedule += pair[::-1] if args.order == "abba" and i % 2 == 0 else pair
        for n, (variant, index, duration) in enumerate(schedule, start=1):
            what = "warm-up" if index == 0 else f"run {index}"
            length = f"-t {args.transactions}" if args.callgrind and index else f"{duration} s"
            print(f"pgbench_compare: [{n}/{len(schedule)}] {what} {LABEL[variant]} "
                  f"({length})", file=sys.stderr, flush=True)
            r = bench.run(variant, index, duration)
            runs.append(r)
            print(f"pgbench_compare:   tps {r.tps:.1f}"
                  + (f", problems: {r.problems}" if r.problems else ""),
                  file=sys.stderr, flush=True)
    except (KeyboardInterrupt, Interrupted) as e:
        interrupted = e
        print("\npgbench_compare: interrupted; stopping everything", file=sys.stderr)
    except Exception as e:
        # A terminal's Ctrl-C also reaches PostgreSQL, PgBouncer and pgbench (same process
        # group); one of them may fail a call before Python raises KeyboardInterrupt here.
        if not _signalled:
            raise
        interrupted = e
        print(f"\npgbench_compare: interrupted ({', '.join(_signalled)}); stopping everything",
              file=sys.stderr)
    finally:
        # Cleanup must finish even if a second Ctrl-C arrives.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if args.keep_logs:
                bench.keep_logs(args.keep_logs)
            stop_problems = bench.stop()
        finally:
            processes.remove_dir(root)
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupted is not None:
        return 130
    text, data = report(info, args, runs, stop_problems)
    print(text, flush=True)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 1 if data["problems"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
