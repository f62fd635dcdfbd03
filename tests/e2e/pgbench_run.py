"""pgbench as a load generator: run it in the background and read its summary strictly."""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from processes import Process, client_env

_PROCESSED_RE = re.compile(r"^number of transactions actually processed: (\d+)(?:/(\d+))?\s*$",
                           re.M)
_FAILED_RE = re.compile(r"^number of failed transactions: (\d+) \(([\d.]+)%\)\s*$", re.M)
_TPS_RE = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)\s*$", re.M)
_ABORT_RE = re.compile(r"^(pgbench: error: .*|.*client \d+ aborted.*)$", re.M)


@dataclass
class PgbenchResult:
    returncode: int
    output: str  # stdout and stderr, interleaved as written
    processed: int
    failed: int
    tps: float
    errors: list[str]  # pgbench's own error lines, e.g. an aborted client

    def describe(self) -> str:
        return (f"pgbench exited {self.returncode}: processed={self.processed} "
                f"failed={self.failed} tps={self.tps:.1f}\n--- pgbench output ---\n"
                f"{self.output[-6000:]}")


def parse_output(returncode: int, output: str) -> PgbenchResult:
    """Reads pgbench 15's summary. A summary line that is missing or appears twice is an
    error (ValueError with the whole output), never a silent zero."""
    def one(regex: re.Pattern, what: str) -> re.Match:
        found = list(regex.finditer(output))
        if len(found) != 1:
            raise ValueError(f"pgbench output has {len(found)} '{what}' lines, expected 1 "
                             f"(exit status {returncode}):\n{output[-6000:]}")
        return found[0]

    processed = one(_PROCESSED_RE, "number of transactions actually processed")
    failed = one(_FAILED_RE, "number of failed transactions")
    tps = one(_TPS_RE, "tps")
    return PgbenchResult(returncode=returncode, output=output,
                         processed=int(processed.group(1)), failed=int(failed.group(1)),
                         tps=float(tps.group(1)),
                         errors=[m.group(1) for m in _ABORT_RE.finditer(output)])


class Pgbench:
    """One pgbench run in the background, its output in a log file."""

    def __init__(self, bindir: Path, log_path: Path, conninfo: dict[str, str],
                 args: Sequence[str]):
        self.log_path = log_path
        argv = [str(bindir / "pgbench"), "-n"]  # -n: no VACUUM, clients own no tables
        argv += ["-h", conninfo["host"], "-p", str(conninfo["port"]),
                 "-U", conninfo["user"], *args, conninfo["dbname"]]
        env = client_env()
        if conninfo.get("password"):
            env["PGPASSWORD"] = conninfo["password"]  # harness roles only, never the plugin's
        else:
            env["PGPASSFILE"] = str(log_path.parent / "no-such-pgpass")
        self.process = Process("pgbench", argv, log_path, as_server_user=False, env=env)

    def alive(self) -> bool:
        return self.process.alive()

    def wait(self, timeout: float) -> PgbenchResult:
        try:
            code = self.process.wait(timeout)
        finally:
            self.process.stop(((signal.SIGINT, 5.0),))
        return parse_output(code, self.process.log_text())

    def kill(self) -> None:
        self.process.stop(((signal.SIGINT, 5.0),))
