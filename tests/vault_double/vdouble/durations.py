"""Vault's duration parsing, Go duration printing, RFC 3339 times and its TTL arithmetic."""

import math
import re
import time
from datetime import datetime, timezone

from .errors import VaultError

# Vault's compiled-in defaults for default_lease_ttl and max_lease_ttl (32 days).
SYSTEM_DEFAULT_TTL = 768 * 3600
SYSTEM_MAX_TTL = 768 * 3600

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
             "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text):
    """Parses a Go time.ParseDuration string ("1h30m", "90s", "1.5h") into seconds."""
    s = text.strip()
    sign = 1.0
    if s[:1] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _GO_PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            unit = re.match(r"[0-9.]*([^0-9.]*)", s[pos:]).group(1)
            if unit and not m:
                raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def parse_duration_second(value):
    """Parses a duration the way Vault's TypeDurationSecond fields do; returns whole seconds.

    Accepts numbers (seconds), numeric strings, Go durations and an "Nd" days suffix.
    """
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise ValueError(f"cannot parse {value!r} as a duration")
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"cannot parse {value!r} as a duration")
    s = value.strip()
    if s.endswith(("s", "m", "h")):
        return int(parse_go_duration(s))
    if s.endswith("d"):
        try:
            return int(s[:-1]) * 86400
        except ValueError:
            raise ValueError(f'strconv.Atoi: parsing "{s[:-1]}": invalid syntax') from None
    try:
        return int(s)
    except ValueError:
        try:
            return int(float(s))
        except ValueError:
            raise ValueError(f'strconv.ParseInt: parsing "{s}": invalid syntax') from None


def field_duration(data, name, default=0):
    """Reads a duration field from a request body, answering 400 like Vault's framework on junk."""
    if name not in data:
        return default
    try:
        return parse_duration_second(data[name])
    except ValueError as e:
        raise VaultError(400, f'error converting input {data[name]} for field "{name}": {e}')


def go_duration_string(seconds):
    """Formats whole seconds like Go's time.Duration.String() ("1h0m0s", "9m50s", "0s")."""
    seconds = int(seconds)
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{sign}{h}h{m}m{s}s"
    if m:
        return f"{sign}{m}m{s}s"
    return f"{sign}{s}s"


def human_duration(seconds):
    """Vault's humanDuration: a Go duration string without zero elements ("1h", "9m50s")."""
    if seconds == 0:
        return "0s"
    s = go_duration_string(seconds)
    if s.endswith("m0s"):
        s = s[:-2]
    idx = s.find("h0m")
    if idx > 0:
        s = s[:idx + 1] + s[idx + 3:]
    return s


def rfc3339nano(ts):
    """Formats a Unix time like Go's time.Time JSON encoding in UTC (RFC 3339, trimmed nanos)."""
    if ts is None:
        return None
    dt = datetime.fromtimestamp(ts, timezone.utc)
    frac = f"{dt.microsecond:06d}".rstrip("0")
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def pg_expiration(ts):
    """Formats a Unix time as Vault's {{expiration}}: Go layout 2006-01-02 15:04:05-0700 (UTC)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S+0000")


def ttl_remaining(expire_time, now=None):
    """Seconds left until expire_time, as Vault computes lease/token "ttl" (truncated)."""
    if expire_time is None:
        return 0
    now = time.time() if now is None else now
    return int(expire_time - round(now))


class SysView:
    """A mount's default and maximum lease TTLs (Vault's logical.SystemView)."""

    def __init__(self, default_ttl=SYSTEM_DEFAULT_TTL, max_ttl=SYSTEM_MAX_TTL):
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl


class PastMaxTTL(Exception):
    """CalculateTTL's "past the max TTL, cannot renew"."""

    def __str__(self):
        return "past the max TTL, cannot renew"


def calculate_ttl(sysview, increment, backend_ttl, period, backend_max, explicit_max,
                  start_time=None, now=None):
    """Vault's framework.CalculateTTL: returns (ttl_seconds, warnings) or raises PastMaxTTL.

    Times are truncated to the second exactly as Vault does, which is what makes the
    capped TTL and the warning text come out identical.
    """
    now = math.floor(time.time() if now is None else now)
    start = now if start_time is None else math.floor(start_time)
    warnings = []
    max_ttl = sysview.max_ttl
    if 0 < backend_max < max_ttl:
        max_ttl = backend_max
    if 0 < explicit_max < max_ttl:
        max_ttl = explicit_max
    if max_ttl <= 0:
        raise VaultError(500, "max TTL must be greater than zero", multi=True)
    max_valid = None
    if period > 0:
        if period > max_ttl:
            warnings.append(f'period of "{human_duration(period)}" exceeded the effective '
                            f'max_ttl of "{human_duration(max_ttl)}"; period value is capped '
                            f'accordingly')
            period = max_ttl
        ttl = period
        if explicit_max > 0:
            max_valid = start + explicit_max
    else:
        if increment > 0:
            ttl = increment
        elif backend_ttl > 0:
            ttl = backend_ttl
        else:
            ttl = sysview.default_ttl
        max_valid = start + max_ttl
    if max_valid is not None:
        max_valid_ttl = max_valid - now
        if max_valid_ttl <= 0:
            raise PastMaxTTL()
        if max_valid_ttl < ttl:
            warnings.append(f'TTL of "{human_duration(ttl)}" exceeded the effective max_ttl of '
                            f'"{human_duration(max_valid_ttl)}"; TTL value is capped accordingly')
            ttl = max_valid_ttl
    return int(ttl), warnings
