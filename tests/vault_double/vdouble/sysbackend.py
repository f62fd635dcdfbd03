"""The sys/ endpoints: health, seal, mounts, auth methods, policies, leases, response wrapping."""

import time

from . import acl, passwords
from .durations import field_duration
from .errors import VaultError
from .framework import Backend, Response, Route, get_bool, get_str

LEASE_ID = r"(?P<lease>.+)"
MOUNT = r"(?P<path>.+?)/?"
POLICY = r"(?P<name>[^/]+)"


class SysBackend(Backend):
    type_name = "system"

    def __init__(self, core, mount):
        super().__init__()
        self.core = core
        self.mount = mount
        renew = {"update": self.lease_renew}
        revoke = {"update": self.lease_revoke}
        rf = {"lease_id", "increment", "url_lease_id"}
        vf = {"lease_id", "sync", "url_lease_id"}
        self.routes = [
            Route(r"health", {"read": self.health}, "health", unauth={"read"}),
            Route(r"seal-status", {"read": self.seal_status}, "seal-status", unauth={"read"}),
            Route(r"seal", {"update": self.seal}, "seal", sudo={"update"}, fields=set()),
            Route(r"unseal", {"update": self.unseal}, "unseal", unauth={"update"},
                  fields={"key", "reset", "migrate"}),
            Route(r"leader", {"read": self.leader}, "leader", unauth={"read"}),
            Route(r"mounts/?", {"read": self.list_mounts}, "mounts"),
            Route(r"mounts/" + r"(?P<path>.+?)/tune", {"read": self.read_tune,
                                                       "update": self.write_tune},
                  "mounts/tune", fields={"default_lease_ttl", "max_lease_ttl", "description",
                                         "options"}),
            Route(r"mounts/" + MOUNT, {"update": self.enable_mount, "delete": self.disable_mount,
                                       "read": self.read_mount},
                  "mounts", fields={"path", "type", "description", "config", "options",
                                    "local", "seal_wrap", "external_entropy_access",
                                    "plugin_name", "plugin_version"}),
            Route(r"auth/?", {"read": self.list_auth}, "auth"),
            Route(r"auth/" + MOUNT, {"update": self.enable_auth, "delete": self.disable_auth,
                                     "read": self.read_auth},
                  "auth", sudo={"update", "delete", "read"},
                  fields={"path", "type", "description", "config", "options", "local",
                          "seal_wrap", "plugin_name", "plugin_version"}),
            Route(r"policy/?", {"read": self.list_policies_legacy}, "policy"),
            Route(r"policy/" + POLICY, {"read": self.read_policy_legacy,
                                        "update": self.write_policy,
                                        "delete": self.delete_policy},
                  "policy", existence=True, fields={"name", "policy", "rules"}),
            Route(r"policies/acl/?", {"list": self.list_policies}, "policies/acl"),
            Route(r"policies/acl/" + POLICY, {"read": self.read_policy,
                                              "update": self.write_policy,
                                              "delete": self.delete_policy},
                  "policies/acl", existence=True, fields={"name", "policy"}),
            Route(r"policies/password/" + POLICY + r"/generate",
                  {"read": self.generate_password}, "policies/password/generate"),
            Route(r"policies/password/" + POLICY, {"read": self.read_password_policy,
                                                   "update": self.write_password_policy,
                                                   "delete": self.delete_password_policy},
                  "policies/password", existence=True, fields={"name", "policy"}),
            Route(r"(leases/)?renew(/" + LEASE_ID + ")?", renew, "leases/renew", fields=rf),
            Route(r"leases/revoke-prefix/" + LEASE_ID, {"update": self.revoke_prefix},
                  "leases/revoke-prefix", sudo={"update"}, fields={"prefix", "sync"}),
            Route(r"revoke-prefix/" + LEASE_ID, {"update": self.revoke_prefix},
                  "leases/revoke-prefix", sudo={"update"}, fields={"prefix", "sync"}),
            Route(r"(leases/)?revoke-force/" + LEASE_ID, {"update": self.revoke_force},
                  "leases/revoke-force", sudo={"update"}, fields={"prefix"}),
            Route(r"(leases/)?revoke(/" + LEASE_ID + ")?", revoke, "leases/revoke", fields=vf),
            Route(r"leases/lookup", {"update": self.lease_lookup}, "leases/lookup",
                  fields={"lease_id"}),
            Route(r"leases/lookup/(?P<prefix>.*)", {"list": self.lease_list}, "leases/lookup",
                  sudo={"list"}),
            Route(r"wrapping/unwrap", {"update": self.unwrap}, "wrapping/unwrap",
                  unauth={"update"}, fields={"token"}),
            Route(r"wrapping/lookup", {"update": self.wrap_lookup, "read": self.wrap_lookup},
                  "wrapping/lookup", unauth={"update", "read"}, fields={"token"}),
        ]

    # --- health and seal ---------------------------------------------------------------------

    def health(self, req, m):
        q = req.query
        sealed = self.core.is_sealed(req)

        def code(name, default):
            if name in q:
                try:
                    return int(q[name])
                except ValueError:
                    raise VaultError(400) from None
            return default

        status = code("activecode", 200)
        if sealed:
            status = code("sealedcode", 503)
        body = {"initialized": True, "sealed": sealed, "standby": sealed,
                "performance_standby": False,
                "replication_performance_mode": "unknown" if sealed else "disabled",
                "replication_dr_mode": "unknown" if sealed else "disabled",
                "server_time_utc": int(time.time()), "version": self.core.version,
                "enterprise": False}
        if not sealed:
            body.update({"cluster_name": self.core.cluster_name,
                         "cluster_id": self.core.cluster_id})
        body.update({"echo_duration_ms": 0, "clock_skew_ms": 0,
                     "replication_primary_canary_age_ms": 0})
        return Response(raw=(status, body))

    def _seal_status_body(self, sealed):
        body = {"type": "shamir", "initialized": True, "sealed": sealed, "t": 1, "n": 1,
                "progress": 0, "nonce": "", "version": self.core.version,
                "build_date": "2024-01-01T00:00:00Z", "migration": False,
                "recovery_seal": False, "storage_type": "inmem"}
        if not sealed:
            body.update({"cluster_name": self.core.cluster_name,
                         "cluster_id": self.core.cluster_id})
        return body

    def seal_status(self, req, m):
        return Response(raw=(200, self._seal_status_body(self.core.is_sealed(req))))

    def seal(self, req, m):
        self.core.seal()
        return None

    def unseal(self, req, m):
        if get_bool(req.data, "reset", False):
            return Response(raw=(200, self._seal_status_body(self.core.sealed)))
        key = get_str(req.data, "key")
        if not key:
            raise VaultError(400, "'key' must be specified in request body as JSON, or 'reset' "
                                  "set to true")
        if self.core.sealed:
            if key != self.core.unseal_key:
                raise VaultError(400, "Unseal failed, invalid key")
            self.core.unseal()
        return Response(raw=(200, self._seal_status_body(self.core.sealed)))

    def leader(self, req, m):
        return Response(raw=(200, {"ha_enabled": False, "is_self": False,
                                   "active_time": "0001-01-01T00:00:00Z", "leader_address": "",
                                   "leader_cluster_address": "",
                                   "performance_standby": False,
                                   "performance_standby_last_remote_wal": 0}))

    # --- secrets engines -----------------------------------------------------------------------

    def list_mounts(self, req, m):
        return Response(data={p: mt.describe() for p, mt in sorted(self.core.mounts.items())
                              if not p.startswith("auth/")}, inject=True)

    def enable_mount(self, req, m):
        path = m.group("path").strip("/") + "/"
        mtype = get_str(req.data, "type")
        config = req.data.get("config") or {}
        if not isinstance(config, dict):
            raise VaultError(400, "config must be a map")
        self.core.mount(path, mtype, get_str(req.data, "description"), config,
                        req.data.get("options") or {})
        return None

    def disable_mount(self, req, m):
        self.core.unmount(m.group("path").strip("/") + "/")
        return None

    def read_mount(self, req, m):
        mt = self.core.mounts.get(m.group("path").strip("/") + "/")
        if mt is None or mt.path.startswith("auth/"):
            raise VaultError(400, f"No secret engine mount at {m.group('path').strip('/')}/")
        return Response(data=mt.describe())

    def read_tune(self, req, m):
        path = m.group("path").strip("/") + "/"
        mt = self.core.mounts.get(path)
        if mt is None:
            raise VaultError(400, f"cannot fetch sysview for path {path!r}")
        return Response(data={"default_lease_ttl": mt.sysview.default_ttl,
                              "max_lease_ttl": mt.sysview.max_ttl,
                              "force_no_cache": False, "description": mt.description})

    def write_tune(self, req, m):
        path = m.group("path").strip("/") + "/"
        mt = self.core.mounts.get(path)
        if mt is None:
            raise VaultError(400, f"cannot tune '{path}'")
        self.core.apply_mount_config(mt, req.data)
        return None

    # --- auth methods ----------------------------------------------------------------------------

    def list_auth(self, req, m):
        return Response(data={p[len("auth/"):]: mt.describe()
                              for p, mt in sorted(self.core.mounts.items())
                              if p.startswith("auth/")}, inject=True)

    def enable_auth(self, req, m):
        path = "auth/" + m.group("path").strip("/") + "/"
        mtype = get_str(req.data, "type")
        config = req.data.get("config") or {}
        self.core.mount(path, mtype, get_str(req.data, "description"), config,
                        req.data.get("options") or {})
        return None

    def disable_auth(self, req, m):
        self.core.unmount("auth/" + m.group("path").strip("/") + "/")
        return None

    def read_auth(self, req, m):
        mt = self.core.mounts.get("auth/" + m.group("path").strip("/") + "/")
        if mt is None:
            raise VaultError(400, f"No auth engine at {m.group('path').strip('/')}/")
        return Response(data=mt.describe())

    # --- ACL policies --------------------------------------------------------------------------

    def _policy_names(self):
        return sorted(set(self.core.policies) | {"root"})

    def list_policies_legacy(self, req, m):
        names = self._policy_names()
        return Response(data={"keys": names, "policies": names}, inject=True)

    def list_policies(self, req, m):
        return Response(data={"keys": self._policy_names()})

    def _read_policy(self, name):
        name = name.lower()
        if name == "root":
            return ""
        return self.core.policies.get(name)

    def read_policy_legacy(self, req, m):
        text = self._read_policy(m.group("name"))
        if text is None:
            return None
        return Response(data={"name": m.group("name").lower(), "rules": text}, inject=True)

    def read_policy(self, req, m):
        text = self._read_policy(m.group("name"))
        if text is None:
            return None
        return Response(data={"name": m.group("name").lower(), "policy": text})

    def write_policy(self, req, m):
        name = m.group("name").lower()
        text = get_str(req.data, "policy") or get_str(req.data, "rules")
        if name in ("root", "response-wrapping"):
            raise VaultError(400, f'cannot update "{name}" policy')
        if not text:
            raise VaultError(400, "'policy' parameter not supplied or empty")
        acl.parse_policy(text)
        self.core.policies[name] = text
        return None

    def delete_policy(self, req, m):
        name = m.group("name").lower()
        if name in ("root", "default", "response-wrapping"):
            raise VaultError(400, f'cannot delete "{name}" policy')
        self.core.policies.pop(name, None)
        return None

    # --- password policies -----------------------------------------------------------------------

    def write_password_policy(self, req, m):
        text = get_str(req.data, "policy")
        if not text:
            raise VaultError(400, "missing policy")
        self.core.password_policies[m.group("name")] = passwords.parse_policy(text)
        self.core.password_policy_texts[m.group("name")] = text
        return None

    def read_password_policy(self, req, m):
        text = self.core.password_policy_texts.get(m.group("name"))
        if text is None:
            return None
        return Response(data={"policy": text})

    def delete_password_policy(self, req, m):
        self.core.password_policies.pop(m.group("name"), None)
        self.core.password_policy_texts.pop(m.group("name"), None)
        return None

    def generate_password(self, req, m):
        pol = self.core.password_policies.get(m.group("name"))
        if pol is None:
            raise VaultError(404, "no password policy found")
        return Response(data={"password": pol.generate()})

    # --- leases ----------------------------------------------------------------------------------

    def _lease_id(self, req, m):
        lease_id = get_str(req.data, "lease_id") or (m.group("lease") or "")
        if not lease_id:
            raise VaultError(400, "lease_id must be specified")
        return lease_id

    def lease_renew(self, req, m):
        lease_id = self._lease_id(req, m)
        increment = field_duration(req.data, "increment")
        lease, ttl, warnings = self.core.expiration.renew(lease_id, increment)
        return Response(secret={"lease_id": lease_id, "ttl": ttl, "renewable": lease.renewable},
                        warnings=warnings)

    def lease_revoke(self, req, m):
        lease_id = self._lease_id(req, m)
        self.core.expiration.revoke(lease_id)
        if not get_bool(req.data, "sync", True):
            return Response(status=202)
        return None

    def revoke_prefix(self, req, m):
        self.core.expiration.revoke_prefix(m.group("lease"), force=False)
        return None

    def revoke_force(self, req, m):
        self.core.expiration.revoke_prefix(m.group("lease"), force=True)
        return None

    def lease_lookup(self, req, m):
        lease_id = get_str(req.data, "lease_id")
        if not lease_id:
            raise VaultError(400, "lease_id must be specified")
        return Response(data=self.core.expiration.lookup(lease_id))

    def lease_list(self, req, m):
        prefix = m.group("prefix")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        keys = self.core.expiration.list_prefix(prefix)
        return Response(data={"keys": keys}) if keys else None

    # --- response wrapping -----------------------------------------------------------------------

    def unwrap(self, req, m):
        return self.core.unwrap(req)

    def wrap_lookup(self, req, m):
        wt = get_str(req.data, "token") or req.query.get("token", "")
        tok = self.core.tokens.lookup(wt) if wt else None
        if tok is None or tok.wrap_info is None:
            raise VaultError(400, "wrapping token is not valid or does not exist")
        return Response(data={"creation_path": tok.wrap_info["creation_path"],
                              "creation_time": tok.wrap_info["creation_time"],
                              "creation_ttl": tok.wrap_info["ttl"]})
