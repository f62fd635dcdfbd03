"""The AppRole auth method: roles, role IDs, secret IDs (optionally wrapped) and login."""

import json
import time

from .durations import PastMaxTTL, calculate_ttl, field_duration, rfc3339nano
from .errors import VaultError, internal
from .framework import (Backend, Response, Route, get_bool, get_comma_list, get_int, get_str)
from .tokens import Token, new_uuid, sanitize_policies

NAME = r"(?P<name>\w(([\w-]|\.)*\w)?)"

ROLE_FIELDS = {"role_name", "bind_secret_id", "secret_id_bound_cidrs", "secret_id_num_uses",
               "secret_id_ttl", "local_secret_ids", "enable_local_secret_ids", "token_ttl",
               "token_max_ttl", "token_policies", "policies", "token_bound_cidrs",
               "token_explicit_max_ttl", "token_no_default_policy", "token_num_uses",
               "token_period", "period", "token_type", "bound_cidr_list", "role_id"}
SECRET_ID_FIELDS = {"role_name", "metadata", "cidr_list", "token_bound_cidrs", "num_uses", "ttl"}


class SecretID:
    def __init__(self, num_uses, ttl, metadata):
        now = time.time()
        self.accessor = new_uuid()
        self.num_uses = num_uses
        self.ttl = ttl
        self.creation_time = now
        self.expire_time = now + ttl if ttl > 0 else None
        self.metadata = metadata

    def valid(self, now):
        return self.expire_time is None or now < self.expire_time


class AppRole:
    def __init__(self, name):
        self.name = name
        self.role_id = new_uuid()
        self.bind_secret_id = True
        self.secret_id_bound_cidrs = []
        self.secret_id_num_uses = 0
        self.secret_id_ttl = 0
        self.local_secret_ids = False
        self.token_ttl = 0
        self.token_max_ttl = 0
        self.token_policies = []
        self.token_bound_cidrs = []
        self.token_explicit_max_ttl = 0
        self.token_no_default_policy = False
        self.token_num_uses = 0
        self.token_period = 0
        self.token_type = "default"
        self.secret_ids = {}
        self.entity_id = new_uuid()


class AppRoleBackend(Backend):
    type_name = "approle"

    def __init__(self, core, mount):
        super().__init__()
        self.core = core
        self.mount = mount
        self.roles = {}
        self.routes = [
            Route(r"login", {"update": self.login}, "login",
                  fields={"role_id", "secret_id"}, unauth={"update"}),
            Route(r"role/?", {"list": self.list_roles}, "role"),
            Route(r"role/" + NAME, {"update": self.write_role, "read": self.read_role,
                                    "delete": self.delete_role},
                  "role", existence=True, fields=ROLE_FIELDS),
            Route(r"role/" + NAME + r"/role-id", {"read": self.read_role_id,
                                                  "update": self.write_role_id},
                  "role/role-id", fields={"role_name", "role_id"}),
            Route(r"role/" + NAME + r"/secret-id/?", {"update": self.new_secret_id,
                                                      "list": self.list_secret_ids},
                  "role/secret-id", fields=SECRET_ID_FIELDS),
            Route(r"role/" + NAME + r"/secret-id/destroy", {"update": self.destroy_secret_id,
                                                            "delete": self.destroy_secret_id},
                  "role/secret-id/destroy", fields={"role_name", "secret_id"}),
            Route(r"role/" + NAME + r"/secret-id/lookup", {"update": self.lookup_secret_id},
                  "role/secret-id/lookup", fields={"role_name", "secret_id"}),
        ]

    # --- roles -------------------------------------------------------------------------

    def _role(self, name):
        return self.roles.get(name.lower())

    def write_role(self, req, m):
        name = m.group("name")
        data = req.data
        role = self._role(name) or AppRole(name)
        warnings = []
        if "role_id" in data:
            rid = get_str(data, "role_id").strip()
            if not rid:
                raise VaultError(400, "invalid role_id supplied, or failed to fetch role_id")
            role.role_id = rid
        if "bind_secret_id" in data:
            role.bind_secret_id = get_bool(data, "bind_secret_id")
        if "secret_id_bound_cidrs" in data or "bound_cidr_list" in data:
            role.secret_id_bound_cidrs = get_comma_list(
                data, "secret_id_bound_cidrs" if "secret_id_bound_cidrs" in data else
                "bound_cidr_list")
        if "secret_id_num_uses" in data:
            role.secret_id_num_uses = get_int(data, "secret_id_num_uses")
            if role.secret_id_num_uses < 0:
                raise VaultError(400, "secret_id_num_uses cannot be negative")
        if "secret_id_ttl" in data:
            role.secret_id_ttl = field_duration(data, "secret_id_ttl")
        for key in ("local_secret_ids", "enable_local_secret_ids"):
            if key in data:
                role.local_secret_ids = get_bool(data, key)
        if "token_ttl" in data:
            role.token_ttl = field_duration(data, "token_ttl")
        if "token_max_ttl" in data:
            role.token_max_ttl = field_duration(data, "token_max_ttl")
        if "token_policies" in data:
            role.token_policies = get_comma_list(data, "token_policies")
        elif "policies" in data:
            role.token_policies = get_comma_list(data, "policies")
        if "token_bound_cidrs" in data:
            role.token_bound_cidrs = get_comma_list(data, "token_bound_cidrs")
        if "token_explicit_max_ttl" in data:
            role.token_explicit_max_ttl = field_duration(data, "token_explicit_max_ttl")
        if "token_no_default_policy" in data:
            role.token_no_default_policy = get_bool(data, "token_no_default_policy")
        if "token_num_uses" in data:
            role.token_num_uses = get_int(data, "token_num_uses")
        if "token_period" in data:
            role.token_period = field_duration(data, "token_period")
        elif "period" in data:
            role.token_period = field_duration(data, "period")
        if "token_type" in data:
            tt = get_str(data, "token_type")
            if tt == "default-service":
                tt = "service"
                warnings.append("default-service has no useful meaning; adjusting to service")
            elif tt == "default-batch":
                tt = "batch"
                warnings.append("default-batch has no useful meaning; adjusting to batch")
            if tt not in ("default", "service", "batch"):
                raise VaultError(400, "invalid 'token_type' value")
            role.token_type = tt
        if 0 < role.token_max_ttl < role.token_ttl:
            raise VaultError(400, "token_ttl should not be greater than token_max_ttl")
        if not role.bind_secret_id and not role.secret_id_bound_cidrs \
                and not role.token_bound_cidrs:
            raise VaultError(400, "at least one constraint should be enabled on the role")
        self.roles[name.lower()] = role
        return Response(warnings=warnings) if warnings else None

    def read_role(self, req, m):
        role = self._role(m.group("name"))
        if role is None:
            return None
        return Response(data={
            "bind_secret_id": role.bind_secret_id,
            "local_secret_ids": role.local_secret_ids,
            "secret_id_bound_cidrs": role.secret_id_bound_cidrs,
            "secret_id_num_uses": role.secret_id_num_uses,
            "secret_id_ttl": role.secret_id_ttl,
            "token_bound_cidrs": role.token_bound_cidrs,
            "token_explicit_max_ttl": role.token_explicit_max_ttl,
            "token_max_ttl": role.token_max_ttl,
            "token_no_default_policy": role.token_no_default_policy,
            "token_num_uses": role.token_num_uses,
            "token_period": role.token_period,
            "token_policies": role.token_policies,
            "policies": role.token_policies,
            "period": role.token_period,
            "token_ttl": role.token_ttl,
            "token_type": role.token_type,
        })

    def delete_role(self, req, m):
        self.roles.pop(m.group("name").lower(), None)
        return None

    def list_roles(self, req, m):
        if not self.roles:
            return None
        return Response(data={"keys": sorted(r.name for r in self.roles.values())})

    def read_role_id(self, req, m):
        role = self._role(m.group("name"))
        if role is None:
            return None
        return Response(data={"role_id": role.role_id})

    def write_role_id(self, req, m):
        role = self._role(m.group("name"))
        if role is None:
            raise VaultError(404, f'role "{m.group("name")}" does not exist')
        rid = get_str(req.data, "role_id").strip()
        if not rid:
            raise VaultError(400, "missing role_id")
        role.role_id = rid
        return None

    # --- secret IDs ----------------------------------------------------------------------

    def new_secret_id(self, req, m):
        name = m.group("name")
        role = self._role(name)
        if role is None:
            raise VaultError(404, f'role "{name}" does not exist')
        if not role.bind_secret_id:
            raise VaultError(400, "bind_secret_id is not set on the role")
        data = req.data
        if "num_uses" in data:
            num_uses = get_int(data, "num_uses")
            if num_uses < 0:
                raise VaultError(400, "num_uses cannot be negative")
            if (num_uses == 0 and role.secret_id_num_uses > 0) or \
                    (role.secret_id_num_uses > 0 and num_uses > role.secret_id_num_uses):
                raise VaultError(400, "num_uses cannot be higher than the role's "
                                      "secret_id_num_uses")
        else:
            num_uses = role.secret_id_num_uses
        if "ttl" in data:
            ttl = field_duration(data, "ttl")
            if (ttl == 0 and role.secret_id_ttl > 0) or \
                    (role.secret_id_ttl > 0 and ttl > role.secret_id_ttl):
                raise VaultError(400, "ttl cannot be longer than the role's secret_id_ttl")
        else:
            ttl = role.secret_id_ttl
        metadata = data.get("metadata") or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata) if metadata else {}
            except ValueError:
                raise VaultError(400, "failed to parse metadata: invalid JSON") from None
        secret = new_uuid()
        sid = SecretID(num_uses, ttl, {str(k): str(v) for k, v in metadata.items()})
        role.secret_ids[secret] = sid
        return Response(data={"secret_id": secret, "secret_id_accessor": sid.accessor,
                              "secret_id_ttl": ttl, "secret_id_num_uses": num_uses},
                        wrapped_accessor=sid.accessor)

    def list_secret_ids(self, req, m):
        role = self._role(m.group("name"))
        if role is None or not role.secret_ids:
            return None
        return Response(data={"keys": sorted(s.accessor for s in role.secret_ids.values())})

    def destroy_secret_id(self, req, m):
        role = self._role(m.group("name"))
        if role is not None:
            role.secret_ids.pop(get_str(req.data, "secret_id").strip(), None)
        return None

    def lookup_secret_id(self, req, m):
        role = self._role(m.group("name"))
        if role is None:
            raise VaultError(404, f'role "{m.group("name")}" does not exist')
        sid = role.secret_ids.get(get_str(req.data, "secret_id").strip())
        if sid is None or not sid.valid(time.time()):
            return None
        return Response(data={
            "cidr_list": [], "creation_time": rfc3339nano(sid.creation_time),
            "expiration_time": rfc3339nano(sid.expire_time) or "0001-01-01T00:00:00Z",
            "last_updated_time": rfc3339nano(sid.creation_time), "metadata": sid.metadata,
            "secret_id_accessor": sid.accessor, "secret_id_num_uses": sid.num_uses,
            "secret_id_ttl": sid.ttl, "token_bound_cidrs": []})

    # --- login -----------------------------------------------------------------------------

    def _find_by_role_id(self, role_id):
        for role in self.roles.values():
            if role.role_id == role_id:
                return role
        return None

    def login(self, req, m):
        role_id = get_str(req.data, "role_id").strip()
        if not role_id:
            raise VaultError(400, "missing role_id")
        role = self._find_by_role_id(role_id)
        if role is None:
            raise VaultError(400, "invalid role or secret ID")
        metadata = {}
        if role.bind_secret_id:
            secret = get_str(req.data, "secret_id").strip()
            if not secret:
                raise VaultError(400, "missing secret_id")
            sid = role.secret_ids.get(secret)
            if sid is None or not sid.valid(time.time()):
                role.secret_ids.pop(secret, None)
                raise VaultError(400, "invalid role or secret ID")
            if sid.num_uses > 0:
                sid.num_uses -= 1
                if sid.num_uses == 0:
                    del role.secret_ids[secret]
            metadata = dict(sid.metadata)
        metadata["role_name"] = role.name
        token_type = "batch" if role.token_type == "batch" else "service"
        policies = sanitize_policies(role.token_policies, not role.token_no_default_policy)
        try:
            ttl, warnings = calculate_ttl(self.mount.sysview, 0, role.token_ttl, role.token_period,
                                          role.token_max_ttl, role.token_explicit_max_ttl)
        except PastMaxTTL as e:
            raise internal(str(e)) from None
        display = self.mount.path[len("auth/"):].replace("/", "-").rstrip("-")
        role_name = role.name

        def renew_source():
            current = self._role(role_name)
            if current is None:
                raise internal(f'failed to renew entry: role "{role_name}" does not exist '
                               f'during renewal')
            return current.token_ttl, current.token_max_ttl, current.token_period

        tokens = self.core.tokens
        tok = Token(id=tokens.new_id(token_type), policies=policies,
                    path=f"{self.mount.path}login", display_name=display, meta=metadata,
                    num_uses=role.token_num_uses, type=token_type, parent=None,
                    entity_id=role.entity_id, ttl=ttl,
                    explicit_max_ttl=role.token_explicit_max_ttl, period=role.token_period,
                    renewable=True, renew_source=renew_source, sysview=self.mount.sysview,
                    mount_accessor=self.mount.accessor)
        tokens.add(tok)
        return Response(auth=tok.auth_object(), warnings=warnings,
                        wrapped_accessor=tok.accessor)
