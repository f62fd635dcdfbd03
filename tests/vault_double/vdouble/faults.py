"""Fault injection for tests: what the next requests suffer (down, slow, errors, broken bodies)."""

import threading
import time

MODES = {"down", "reset", "slow", "error", "garbage", "truncated", "huge", "sealed"}
MAX_DOWN_MS = 600_000


class FaultError(Exception):
    """A fault specification the control API rejects (answered 400)."""


class Fault:
    """One injected fault.

    count: how many matching requests it affects (None: unlimited while it lasts).
    until: when it ends (monotonic seconds; None: until cleared or count runs out).
    path: only Vault paths starting with this prefix (e.g. "sys/leases/renew").
    """

    def __init__(self, fid, spec):
        self.id = fid
        self.mode = spec.get("mode")
        if self.mode not in MODES:
            raise FaultError(f"mode must be one of {sorted(MODES)}")
        self.status = _int(spec, "status", 500)
        if not 100 <= self.status <= 599:
            raise FaultError("status must be an HTTP status code")
        self.delay_ms = _int(spec, "delay_ms", 5000)
        self.size = _int(spec, "size", 16 * 1024 * 1024)
        self.count = _int(spec, "count", None)
        for_ms = _int(spec, "for_ms", None)
        self.until = time.monotonic() + for_ms / 1000.0 if for_ms is not None else None
        self.for_ms = for_ms
        self.path = str(spec.get("path") or "").lstrip("/")
        if self.path.startswith("v1/"):
            self.path = self.path[3:]
        self.method = str(spec.get("method") or "").upper()
        errors = spec.get("errors")
        if errors is None:
            errors = [_default_message(self.status)]
        if not isinstance(errors, list) or not all(isinstance(e, str) for e in errors):
            raise FaultError("errors must be a list of strings")
        self.errors = errors
        if self.mode == "down":
            if for_ms is None or not 0 < for_ms <= MAX_DOWN_MS:
                raise FaultError(f"down needs for_ms between 1 and {MAX_DOWN_MS}: the "
                                 "listening socket is closed, so nothing could clear it")
            if self.count is not None or self.path or self.method:
                raise FaultError("down affects the whole listener: no count, path or method")

    def active(self, now):
        if self.until is not None and now >= self.until:
            return False
        return self.count is None or self.count > 0

    def matches(self, vault_path, method):
        if self.path and not vault_path.startswith(self.path):
            return False
        return not self.method or self.method == method

    def describe(self):
        d = {"id": self.id, "mode": self.mode, "path": self.path, "method": self.method,
             "count": self.count}
        if self.until is not None:
            d["remaining_ms"] = max(0, int((self.until - time.monotonic()) * 1000))
        if self.mode == "error":
            d.update({"status": self.status, "errors": self.errors})
        if self.mode == "slow":
            d["delay_ms"] = self.delay_ms
        if self.mode == "huge":
            d["size"] = self.size
        return d


def _int(spec, name, default):
    v = spec.get(name, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise FaultError(f"{name} must be a non-negative number")
    return int(v)


def _default_message(status):
    return {429: "request rate limit exceeded", 500: "internal error",
            502: "upstream rate limit exceeded", 503: "Vault is sealed"}.get(
        status, f"injected error {status}")


class FaultSet:
    """The active faults, first match wins; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults = []
        self._next = 1

    def add(self, spec):
        if not isinstance(spec, dict):
            raise FaultError("body must be a JSON object")
        with self._lock:
            fault = Fault(self._next, spec)
            self._next += 1
            if fault.mode != "down":
                self._faults.append(fault)
            return fault

    def take(self, vault_path, method):
        """The fault that applies to this request, counting it against the fault's count."""
        now = time.monotonic()
        with self._lock:
            self._faults = [f for f in self._faults if f.active(now)]
            for f in self._faults:
                if f.matches(vault_path, method):
                    if f.count is not None:
                        f.count -= 1
                    return f
        return None

    def clear(self):
        with self._lock:
            self._faults = []

    def describe(self):
        now = time.monotonic()
        with self._lock:
            return [f.describe() for f in self._faults if f.active(now)]
