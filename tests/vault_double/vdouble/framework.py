"""What every backend shares: the request and response objects, routes, and field coercion."""

import re

from .errors import VaultError


class Request:
    """One API request after transport: Vault path, operation, body and the resolved token."""

    def __init__(self, method, path, query, headers, data, remote_addr):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.data = data
        self.remote_addr = remote_addr
        self.op = None
        self.token = None
        self.display_name = ""
        self.mount = None
        self.rel_path = ""
        self.wrap_ttl = 0
        self.request_id = ""


class Response:
    """A backend's answer; the core turns it into Vault's JSON envelope."""

    def __init__(self, data=None, auth=None, secret=None, warnings=None, status=None,
                 raw=None, wrapped_accessor="", inject=False):
        self.data = data
        self.auth = auth
        self.secret = secret  # {"lease_id", "ttl", "renewable"}
        self.warnings = list(warnings or [])
        self.status = status  # overrides 200 (e.g. 202)
        self.raw = raw  # (status, body dict) answered as-is, no envelope (sys/health)
        self.wrapped_accessor = wrapped_accessor
        self.inject = inject  # sys/ listings also repeat their data at the top level


class Route:
    """A path pattern of a backend and the operations it supports.

    existence: the path has an existence check, so a write needs "create" or "update".
    fields: the body parameters the endpoint knows (others draw Vault's warning).
    unauth: operations allowed without a token (logins).
    sudo: operations that also need the "sudo" capability.
    """

    def __init__(self, pattern, ops, cls, existence=False, fields=None, unauth=(), sudo=()):
        self.regex = re.compile(pattern)
        self.ops = ops
        self.cls = cls
        self.existence = existence
        self.fields = set(fields) if fields is not None else None
        self.unauth = set(unauth)
        self.sudo = set(sudo)


class Backend:
    """A mounted backend: routes over the path relative to its mount."""

    type_name = ""

    def __init__(self):
        self.routes = []

    def route(self, rel_path):
        for r in self.routes:
            m = r.regex.fullmatch(rel_path)
            if m:
                return r, m
        return None, None

    # Secret engines override these three.
    def describe_secret(self, lease):
        return {}

    def renew_secret(self, lease, increment, mount):
        raise VaultError(400, "lease is not renewable")

    def revoke_secret(self, lease):
        return None


def get_str(data, name, default=""):
    v = data.get(name, default)
    if v is None:
        return default
    if isinstance(v, (dict, list)):
        raise VaultError(400, f'error converting input {v} for field "{name}": expected a string')
    return str(v)


def get_bool(data, name, default=False):
    v = data.get(name, default)
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("1", "t", "true"):
            return True
        if s in ("0", "f", "false", ""):
            return False
    raise VaultError(400, f'error converting input {v} for field "{name}": cannot parse as a bool')


def get_int(data, name, default=0):
    v = data.get(name, default)
    try:
        if isinstance(v, bool):
            raise ValueError
        return int(v)
    except (TypeError, ValueError):
        raise VaultError(400, f'error converting input {v} for field "{name}": '
                              f'cannot parse as an int') from None


def get_comma_list(data, name, default=None):
    """Vault's TypeCommaStringSlice: a JSON list, or a comma-separated string."""
    v = data.get(name)
    if v is None:
        return list(default or [])
    if isinstance(v, str):
        return [p.strip() for p in v.split(",") if p.strip()]
    if isinstance(v, list):
        out = []
        for item in v:
            out.extend(p.strip() for p in str(item).split(",") if p.strip())
        return out
    return [str(v)]


def get_str_list(data, name, default=None):
    """Vault's TypeStringSlice: a JSON list, or one string taken as a one-element list."""
    v = data.get(name)
    if v is None:
        return list(default or [])
    if isinstance(v, str):
        return [v] if v else []
    if isinstance(v, list):
        return [str(x) for x in v]
    return [str(v)]


def unknown_fields_warning(route, data):
    """Vault (1.13+) answers unknown body parameters with this warning."""
    if route.fields is None or not isinstance(data, dict):
        return None
    extra = sorted(k for k in data if k not in route.fields)
    if not extra:
        return None
    return "Endpoint ignored these unrecognized parameters: [" + " ".join(extra) + "]"
