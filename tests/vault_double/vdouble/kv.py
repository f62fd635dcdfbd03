"""The KV secrets engine: version 1 (plain key/value) and version 2 (versioned), in memory.

Modelled on hashicorp/vault-plugin-secrets-kv (passthrough.go; path_data.go, path_metadata.go,
path_config.go, path_delete.go, path_destroy.go, backend.go). A mount of type "kv" is
version 1 unless its options say version "2"; the type "kv-v2" is the same as "kv" with
options {"version": "2"} (Vault's mount table does that rewrite).
"""

import time

from .durations import field_duration, go_duration_string, rfc3339nano
from .errors import VaultError
from .framework import Backend, Response, Route, get_bool, get_int

DATA_PATH = r"(?P<path>.*?[^/])"  # matchAllNoTrailingSlashRegex
ANY_PATH = r"(?P<path>.*)"  # framework.MatchAllRegex


def is_v2(mount):
    return str((mount.options or {}).get("version", "1")) == "2"


def make_kv_backend(core, mount):
    """SECRET_TYPES factory for "kv": picks the version from the mount options."""
    return KVv2Backend(core, mount) if is_v2(mount) else KVv1Backend(core, mount)


def _ts(t):
    """ptypes.TimestampString: RFC 3339 in UTC with trimmed fractional seconds; "" for none."""
    return rfc3339nano(t) if t is not None else ""


def _list_keys(paths, prefix):
    """Storage List semantics: direct children of prefix, folders with a trailing slash."""
    keys = set()
    for p in paths:
        if p.startswith(prefix):
            rest = p[len(prefix):]
            if not rest:
                continue
            head, sep, _ = rest.partition("/")
            keys.add(head + sep)
    return sorted(keys)


class KVv1Backend(Backend):
    """Version 1: a path holds a JSON object; no versions, no metadata."""

    type_name = "kv"

    def __init__(self, core, mount):
        super().__init__()
        self.core = core
        self.mount = mount
        self.store = {}
        self.routes = [Route(ANY_PATH, {"read": self.read, "update": self.write,
                                        "delete": self.delete, "list": self.list},
                             "kv", existence=True)]

    def read(self, req, m):
        data = self.store.get(m.group("path"))
        if data is None:
            return None
        return Response(data=dict(data))

    def write(self, req, m):
        path = m.group("path")
        if not path:
            raise VaultError(405, "unsupported operation", multi=True)
        if not req.data:
            raise VaultError(400, "no data provided")
        self.store[path] = dict(req.data)
        return None

    def delete(self, req, m):
        self.store.pop(m.group("path"), None)
        return None

    def list(self, req, m):
        prefix = m.group("path")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        keys = _list_keys(self.store, prefix)
        return Response(data={"keys": keys}) if keys else None


class Version:
    def __init__(self, data, created):
        self.data = data
        self.created = created
        self.deletion_time = None
        self.destroyed = False


class Key:
    """KeyMetadata: the versions of one secret and its per-key settings."""

    def __init__(self, now):
        self.versions = {}
        self.current = 0
        self.oldest = 0
        self.created = now
        self.updated = now
        self.max_versions = 0
        self.cas_required = False
        self.delete_version_after = 0
        self.custom_metadata = None

    def version_metadata(self, n):
        v = self.versions[n]
        return {"created_time": _ts(v.created), "custom_metadata": self.custom_metadata,
                "deletion_time": _ts(v.deletion_time), "destroyed": v.destroyed, "version": n}


class KVv2Backend(Backend):
    """Version 2: data/, metadata/, config, delete/, undelete/, destroy/."""

    type_name = "kv"

    def __init__(self, core, mount):
        super().__init__()
        self.core = core
        self.mount = mount
        self.keys = {}
        self.max_versions = 0  # 0: Vault's default of 10
        self.cas_required = False
        self.delete_version_after = 0
        vfields = {"path", "versions"}
        self.routes = [
            Route(r"config", {"read": self.read_config, "update": self.write_config},
                  "config", fields={"max_versions", "cas_required", "delete_version_after"}),
            Route(r"data/" + DATA_PATH, {"read": self.read_data, "update": self.write_data,
                                         "delete": self.delete_latest},
                  "data", existence=True, fields={"path", "version", "options", "data"}),
            Route(r"metadata/" + ANY_PATH, {"read": self.read_metadata,
                                            "update": self.write_metadata,
                                            "delete": self.delete_metadata,
                                            "list": self.list_metadata},
                  "metadata", existence=True,
                  fields={"path", "cas_required", "max_versions", "delete_version_after",
                          "custom_metadata"}),
            Route(r"delete/" + DATA_PATH, {"update": self.delete_versions}, "delete",
                  fields=vfields),
            Route(r"undelete/" + DATA_PATH, {"update": self.undelete_versions}, "undelete",
                  fields=vfields),
            Route(r"destroy/" + DATA_PATH, {"update": self.destroy_versions}, "destroy",
                  fields=vfields),
            Route(r".*", {op: self.invalid for op in ("read", "update", "delete", "list")},
                  "invalid"),
        ]

    # --- helpers ---------------------------------------------------------------------------

    def _raw(self, req, status, data=None, warnings=None):
        """logical.RespondWithStatusCode: the whole response as a body with another status."""
        return Response(raw=(status, {
            "request_id": req.request_id, "lease_id": "", "renewable": False,
            "lease_duration": 0, "data": data, "wrap_info": None,
            "warnings": warnings or None, "auth": None, "mount_type": ""}))

    def invalid(self, req, m):
        rel = req.rel_path
        if rel in ("metadata", "data", "delete", "undelete", "destroy"):
            return self._raw(req, 404, warnings=[
                "Non-listing operations on the root of a K/V v2 mount are not supported."])
        sub = {"read": "get", "update": "put", "delete": "delete", "list": "list"}[req.op]
        return self._raw(req, 404, warnings=[
            "Invalid path for a versioned K/V secrets engine. See the API docs for the "
            "appropriate API endpoints to use. If using the Vault CLI, use 'vault kv "
            f"{sub}' for this operation."])

    def _effective_max(self, key):
        cfg = self.max_versions or 10
        if key.max_versions and key.max_versions < cfg:
            return key.max_versions
        return cfg

    @staticmethod
    def _versions_arg(data):
        raw = data.get("versions")
        if raw is None:
            raise VaultError(400, "no version number provided")
        if isinstance(raw, (int, str)):
            raw = [p for p in str(raw).split(",") if p.strip()]
        try:
            return [int(v) for v in raw]
        except (TypeError, ValueError):
            raise VaultError(400, "error parsing version numbers") from None

    # --- config -----------------------------------------------------------------------------

    def read_config(self, req, m):
        return Response(data={"cas_required": self.cas_required,
                              "delete_version_after":
                                  go_duration_string(self.delete_version_after),
                              "max_versions": self.max_versions})

    def write_config(self, req, m):
        d = req.data
        if "max_versions" in d:
            self.max_versions = get_int(d, "max_versions")
        if "cas_required" in d:
            self.cas_required = get_bool(d, "cas_required")
        if "delete_version_after" in d:
            self.delete_version_after = max(0, field_duration(d, "delete_version_after"))
        return None

    # --- data/<path> ------------------------------------------------------------------------

    def read_data(self, req, m):
        key = self.keys.get(m.group("path"))
        if key is None:
            return None
        n = key.current
        want = get_int(req.data, "version", 0)
        if want > 0:
            n = want
        if n not in key.versions:
            return None
        v = key.versions[n]
        data = {"data": None, "metadata": key.version_metadata(n)}
        deleted = v.deletion_time is not None and v.deletion_time <= time.time()
        if deleted or v.destroyed:
            return self._raw(req, 404, data=data)
        data["data"] = dict(v.data)
        return Response(data=data)

    def write_data(self, req, m):
        path = m.group("path")
        if "data" not in req.data or req.data.get("data") is None:
            raise VaultError(400, "no data provided")
        payload = req.data["data"]
        if not isinstance(payload, dict):
            raise VaultError(400, 'error converting input for field "data": expected a map')
        now = time.time()
        key = self.keys.get(path)
        existing = key is not None
        if key is None:
            key = Key(now)
        options = req.data.get("options") or {}
        if not isinstance(options, dict):
            raise VaultError(400, "error converting input for field \"options\": expected a map")
        if "cas" in options:
            try:
                cas = int(str(options["cas"]))
            except ValueError:
                raise VaultError(400, "error parsing check-and-set parameter") from None
            if cas != key.current:
                raise VaultError(400, "check-and-set parameter did not match the current "
                                      "version")
        elif self.cas_required or key.cas_required:
            raise VaultError(400, "check-and-set parameter required for this call")
        n = key.current + 1
        v = Version(dict(payload), now)
        dva = key.delete_version_after or self.delete_version_after
        if dva:
            v.deletion_time = now + dva
        key.versions[n] = v
        key.current = n
        if key.oldest == 0:
            key.oldest = 1
        key.updated = now
        limit = self._effective_max(key)
        while len(key.versions) > limit:
            oldest = min(key.versions)
            del key.versions[oldest]
            key.oldest = min(key.versions)
        if not existing:
            self.keys[path] = key
        return Response(data=key.version_metadata(n))

    def delete_latest(self, req, m):
        key = self.keys.get(m.group("path"))
        if key is None or key.current not in key.versions:
            return None
        v = key.versions[key.current]
        if v.destroyed or (v.deletion_time is not None and v.deletion_time <= time.time()):
            return None
        v.deletion_time = time.time()
        return None

    # --- delete/, undelete/, destroy/ --------------------------------------------------------

    def delete_versions(self, req, m):
        key = self.keys.get(m.group("path"))
        versions = self._versions_arg(req.data)
        if key is None:
            return None
        now = time.time()
        for n in versions:
            v = key.versions.get(n)
            if v is not None and not v.destroyed and (v.deletion_time is None or
                                                      v.deletion_time > now):
                v.deletion_time = now
        return None

    def undelete_versions(self, req, m):
        key = self.keys.get(m.group("path"))
        versions = self._versions_arg(req.data)
        if key is None:
            return None
        for n in versions:
            v = key.versions.get(n)
            if v is not None and not v.destroyed:
                v.deletion_time = None
        return None

    def destroy_versions(self, req, m):
        key = self.keys.get(m.group("path"))
        versions = self._versions_arg(req.data)
        if key is None:
            return None
        for n in versions:
            v = key.versions.get(n)
            if v is not None:
                v.destroyed = True
                v.data = {}
        return None

    # --- metadata/<path> ------------------------------------------------------------------

    def read_metadata(self, req, m):
        key = self.keys.get(m.group("path"))
        if key is None:
            return None
        versions = {str(n): {"created_time": _ts(v.created),
                             "deletion_time": _ts(v.deletion_time),
                             "destroyed": v.destroyed}
                    for n, v in sorted(key.versions.items())}
        return Response(data={
            "cas_required": key.cas_required, "created_time": _ts(key.created),
            "current_version": key.current, "custom_metadata": key.custom_metadata,
            "delete_version_after": go_duration_string(key.delete_version_after),
            "max_versions": key.max_versions, "oldest_version": key.oldest,
            "updated_time": _ts(key.updated), "versions": versions})

    def write_metadata(self, req, m):
        path = m.group("path")
        if not path:
            raise VaultError(400, "missing path")
        d = req.data
        if not any(k in d for k in ("max_versions", "cas_required", "delete_version_after",
                                    "custom_metadata")):
            return None
        now = time.time()
        key = self.keys.get(path)
        if key is None:
            key = self.keys[path] = Key(now)
        if "max_versions" in d:
            key.max_versions = get_int(d, "max_versions")
        if "cas_required" in d:
            key.cas_required = get_bool(d, "cas_required")
        if "delete_version_after" in d:
            key.delete_version_after = max(0, field_duration(d, "delete_version_after"))
        if "custom_metadata" in d:
            cm = d.get("custom_metadata")
            if cm is not None and not isinstance(cm, dict):
                raise VaultError(400, "custom_metadata must be a map of strings")
            key.custom_metadata = {str(k): str(v) for k, v in (cm or {}).items()} or None
        key.updated = now
        return None

    def delete_metadata(self, req, m):
        self.keys.pop(m.group("path"), None)
        return None

    def list_metadata(self, req, m):
        prefix = m.group("path")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        keys = _list_keys(self.keys, prefix)
        if get_bool(req.data, "exclude_deleted", False):
            now = time.time()
            kept = []
            for k in keys:
                key = self.keys.get(prefix + k)
                v = key.versions.get(key.current) if key is not None else None
                if v is not None and v.deletion_time is not None and v.deletion_time <= now:
                    continue
                kept.append(k)
            keys = kept
        return Response(data={"keys": keys}) if keys else None
