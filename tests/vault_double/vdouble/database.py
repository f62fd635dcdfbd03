"""The database secrets engine (dynamic and static roles) with the PostgreSQL plugin."""

import fnmatch
import threading
import time

from . import gotemplate, passwords
from .durations import calculate_ttl, field_duration, pg_expiration
from .errors import VaultError, internal
from .framework import (Backend, Response, Route, get_bool, get_comma_list, get_str,
                        get_str_list)
from .gotemplate import TemplateError
from .postgres import Connection
from .staticroles import StaticRoles

PLUGINS = {"postgresql-database-plugin"}
NAME = r"(?P<name>\w(([\w-]|\.)*\w)?)"

CONFIG_FIELDS = {"name", "plugin_name", "plugin_version", "verify_connection", "allowed_roles",
                 "root_rotation_statements", "password_policy", "connection_url", "username",
                 "password", "disable_escaping", "max_open_connections",
                 "max_idle_connections", "max_connection_lifetime", "username_template",
                 "password_authentication", "tls_ca", "tls_certificate", "private_key",
                 "verify_ca", "skip_import_rotation", "rotation_period", "rotation_schedule",
                 "rotation_window", "disable_automated_rotation"}
ROLE_FIELDS = {"name", "db_name", "creation_statements", "revocation_statements",
               "renew_statements", "rollback_statements", "default_ttl", "max_ttl",
               "credential_type", "credential_config"}


class DBConfig:
    def __init__(self):
        self.plugin_name = ""
        self.allowed_roles = []
        self.password_policy = ""
        self.root_rotation_statements = []
        self.details = {}
        self.verify_connection = True
        # Vault's plugin holds one lock per connection config around every user operation,
        # so operations on one database never run concurrently (PostgreSQL would otherwise
        # fail concurrent REVOKE CONNECT with "tuple concurrently updated").
        self.lock = threading.Lock()

    def connection(self):
        d = self.details
        return Connection(str(d.get("connection_url", "")), str(d.get("username", "")),
                          str(d.get("password", "")), bool(d.get("disable_escaping", False)),
                          self.lock)


class DBRole:
    def __init__(self):
        self.db_name = ""
        self.creation = []
        self.revocation = []
        self.renewal = []
        self.rollback = []
        self.default_ttl = 0
        self.max_ttl = 0


class DatabaseBackend(Backend):
    type_name = "database"

    def __init__(self, core, mount):
        super().__init__()
        self.core = core
        self.mount = mount
        self.configs = {}
        self.roles = {}
        self.static = StaticRoles(self)
        self.routes = self.static.routes(NAME) + [
            Route(r"config/?", {"list": self.list_configs}, "config"),
            Route(r"config/" + NAME, {"update": self.write_config, "read": self.read_config,
                                      "delete": self.delete_config},
                  "config", existence=True, fields=CONFIG_FIELDS),
            Route(r"reset/" + NAME, {"update": self.reset}, "reset", fields={"name"}),
            Route(r"roles/?", {"list": self.list_roles}, "roles"),
            Route(r"roles/" + NAME, {"update": self.write_role, "read": self.read_role,
                                     "delete": self.delete_role},
                  "roles", existence=True, fields=ROLE_FIELDS),
            Route(r"creds/" + NAME, {"read": self.creds}, "creds"),
        ]

    # --- config/<name> -----------------------------------------------------------------

    def write_config(self, req, m):
        name = m.group("name")
        data = req.data
        cfg = self.configs.get(name)
        creating = cfg is None
        new = DBConfig()
        if cfg is not None:
            new.__dict__.update({k: (dict(v) if isinstance(v, dict) else v)
                                 for k, v in cfg.__dict__.items()})
        if "plugin_name" in data or creating:
            new.plugin_name = get_str(data, "plugin_name")
        if not new.plugin_name:
            raise VaultError(400, "empty plugin name")
        if new.plugin_name not in PLUGINS:
            raise VaultError(400, "error creating database object: unable to create database "
                                  f"instance: plugin not found in the catalog: {new.plugin_name}")
        if "allowed_roles" in data or creating:
            new.allowed_roles = get_comma_list(data, "allowed_roles")
        if "root_rotation_statements" in data or creating:
            new.root_rotation_statements = get_str_list(data, "root_rotation_statements")
        if "password_policy" in data:
            new.password_policy = get_str(data, "password_policy")
        verify = get_bool(data, "verify_connection", True)
        skip = {"name", "plugin_name", "plugin_version", "allowed_roles", "verify_connection",
                "root_rotation_statements", "password_policy"}
        details = {k: v for k, v in data.items() if k not in skip}
        if creating:
            new.details = details
        else:
            new.details.update(details)
        conn = new.connection()
        if not conn.connection_url:
            raise VaultError(400, "error creating database object: connection_url cannot be "
                                  "empty")
        for field in (conn.username, conn.password):
            if "{{username}}" in field or "{{password}}" in field:
                raise VaultError(400, "error creating database object: username and/or "
                                      "password cannot contain the template variables")
        template = new.details.get("username_template")
        if template:
            try:
                gotemplate.render(str(template), {"DisplayName": "display", "RoleName": "role"})
            except TemplateError as e:
                raise VaultError(400, "error creating database object: invalid username "
                                      f"template: {e}") from None
        if verify:
            with self.core.unlocked():
                conn.verify()
        self.configs[name] = new
        resp = Response()
        url = str(new.details.get("connection_url", ""))
        if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
            userinfo = url.split("://", 1)[1].split("@", 1)[0]
            if ":" in userinfo and "{{password}}" not in userinfo:
                resp.warnings.append("Password found in connection_url, use a templated url to "
                                     "enable root rotation and prevent read access to password "
                                     "information.")
        return resp if resp.warnings else None

    def read_config(self, req, m):
        cfg = self.configs.get(m.group("name"))
        if cfg is None:
            return None
        details = {k: v for k, v in cfg.details.items() if k not in ("password", "private_key")}
        return Response(data={
            "allowed_roles": cfg.allowed_roles,
            "connection_details": details,
            "password_policy": cfg.password_policy,
            "plugin_name": cfg.plugin_name,
            "plugin_version": "",
            "root_credentials_rotate_statements": cfg.root_rotation_statements,
            "verify_connection": cfg.verify_connection,
        })

    def delete_config(self, req, m):
        self.configs.pop(m.group("name"), None)
        return None

    def list_configs(self, req, m):
        if not self.configs:
            return None
        return Response(data={"keys": sorted(self.configs)})

    def reset(self, req, m):
        if m.group("name") not in self.configs:
            raise internal(f'failed to find entry for connection with name: "{m.group("name")}"')
        return None

    # --- roles/<name> ------------------------------------------------------------------

    def write_role(self, req, m):
        name = m.group("name")
        data = req.data
        if name in self.static.roles:
            raise VaultError(400, "Role and Static Role names must be unique")
        role = self.roles.get(name)
        creating = role is None
        new = DBRole()
        if role is not None:
            new.__dict__.update({k: (list(v) if isinstance(v, list) else v)
                                 for k, v in role.__dict__.items()})
        if "db_name" in data or creating:
            new.db_name = get_str(data, "db_name")
        if not new.db_name:
            raise VaultError(400, "database name is required")
        for field, attr in (("creation_statements", "creation"),
                            ("revocation_statements", "revocation"),
                            ("renew_statements", "renewal"),
                            ("rollback_statements", "rollback")):
            if field in data or creating:
                setattr(new, attr, get_str_list(data, field))
        new.revocation = [s for s in new.revocation if s]
        if "default_ttl" in data or creating:
            new.default_ttl = field_duration(data, "default_ttl")
        if "max_ttl" in data or creating:
            new.max_ttl = field_duration(data, "max_ttl")
        self.roles[name] = new
        return None

    def read_role(self, req, m):
        role = self.roles.get(m.group("name"))
        if role is None:
            return None
        return Response(data={
            "creation_statements": role.creation,
            "credential_type": "password",
            "db_name": role.db_name,
            "default_ttl": role.default_ttl,
            "max_ttl": role.max_ttl,
            "renew_statements": role.renewal,
            "revocation_statements": role.revocation,
            "rollback_statements": role.rollback,
        })

    def delete_role(self, req, m):
        self.roles.pop(m.group("name"), None)
        return None

    def list_roles(self, req, m):
        if not self.roles:
            return None
        return Response(data={"keys": sorted(self.roles)})

    # --- creds/<name> ------------------------------------------------------------------

    def _config_for(self, role_name, db_name):
        cfg = self.configs.get(db_name)
        if cfg is None:
            raise internal(f'failed to find entry for connection with name: "{db_name}"')
        self.check_allowed(role_name, cfg)
        return cfg

    @staticmethod
    def check_allowed(role_name, cfg):
        allowed = cfg.allowed_roles
        if "*" not in allowed and not any(fnmatch.fnmatchcase(role_name, p) for p in allowed):
            raise internal(f'"{role_name}" is not an allowed role')

    def generate_password(self, cfg):
        """The plugin's GeneratePassword: the config's password_policy, or Vault's default."""
        if cfg.password_policy:
            policy = self.core.password_policies.get(cfg.password_policy)
            if policy is None:
                raise internal("unable to generate password: policy does not exist")
            return policy.generate()
        return passwords.DEFAULT_POLICY.generate()

    def cleanup(self):
        """The mount is going away: stop the static rotation ticker."""
        self.static.stop()

    def creds(self, req, m):
        name = m.group("name")
        role = self.roles.get(name)
        if role is None:
            raise VaultError(400, f"unknown role: {name}")
        cfg = self._config_for(name, role.db_name)
        ttl, _ = calculate_ttl(self.mount.sysview, 0, role.default_ttl, 0, role.max_ttl, 0)
        expiration = pg_expiration(time.time() + ttl + 5)
        password = self.generate_password(cfg)
        template = str(cfg.details.get("username_template") or
                       gotemplate.DEFAULT_USERNAME_TEMPLATE)
        try:
            username = gotemplate.render(template, {"DisplayName": req.display_name,
                                                    "RoleName": name})
        except TemplateError as e:
            raise internal(f"unable to generate username: {e}") from None
        conn = cfg.connection()
        statements = list(role.creation)
        with self.core.unlocked():
            conn.create_user(statements, username, password, expiration)
        internal_data = {"username": username, "role": name, "db_name": role.db_name,
                         "revocation_statements": list(role.revocation)}
        lease = self.core.expiration.register(self, self.mount, req.path, internal_data,
                                              role.default_ttl, role.max_ttl, req.token)
        return Response(data={"username": username, "password": password},
                        secret={"lease_id": lease.lease_id, "ttl": lease.ttl,
                                "renewable": lease.renewable})

    # --- lease callbacks -----------------------------------------------------------------

    def describe_secret(self, lease):
        return {"username": lease.internal["username"], "role": lease.internal["role"],
                "db_name": lease.internal["db_name"]}

    def renew_secret(self, lease, increment, mount):
        role_name = lease.internal["role"]
        role = self.roles.get(role_name)
        if role is None:
            raise internal(f'error during renew: could not find role with name "{role_name}"')
        cfg = self.configs.get(role.db_name)
        if cfg is None:
            raise internal(f'failed to find entry for connection with name: "{role.db_name}"')
        ttl, _ = calculate_ttl(mount.sysview, increment, role.default_ttl, 0, role.max_ttl, 0,
                               lease.issue_time)
        if ttl > 0:
            expiration = pg_expiration(time.time() + ttl + 5)
            conn = cfg.connection()
            statements = list(role.renewal)
            with self.core.unlocked():
                conn.renew_user(statements, lease.internal["username"], expiration)
        return role.default_ttl, role.max_ttl

    def revoke_secret(self, lease):
        """Runs without the core lock (the expiration manager released it)."""
        with self.core.lock:
            role = self.roles.get(lease.internal["role"])
            if role is not None:
                db_name, statements = role.db_name, list(role.revocation)
            else:
                db_name = lease.internal["db_name"]
                statements = list(lease.internal.get("revocation_statements") or [])
            cfg = self.configs.get(db_name)
            conn = cfg.connection() if cfg is not None else None
        if conn is None:
            raise internal(f'failed to find entry for connection with name: "{db_name}"')
        conn.revoke_user(statements, lease.internal["username"])
