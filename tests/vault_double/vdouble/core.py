"""The core: mount table, token check, ACLs, routing to backends, response envelope and wrapping."""

import contextlib
import secrets
import threading
import time
import uuid

from . import acl, standby
from .approle import AppRoleBackend
from .certauth import CertBackend
from .database import DatabaseBackend
from .durations import SysView, parse_duration_second, rfc3339nano
from .errors import SEALED, VaultError, multierror_text, permission_denied
from .framework import Response, unknown_fields_warning
from .jwtauth import JwtBackend
from .kubernetes import KubernetesBackend
from .kv import make_kv_backend
from .namespaces import (NamespacedExpirationManager, NamespacedTokenStore, NamespaceState,
                         handle_sys_namespaces, token_usable)
from .sysbackend import SysBackend
from .tokenbackend import TokenBackend
from .tokens import Token, new_uuid

SECRET_TYPES = {"database": DatabaseBackend, "kv": make_kv_backend}
AUTH_TYPES = {"approle": AppRoleBackend, "kubernetes": KubernetesBackend, "jwt": JwtBackend,
              "cert": CertBackend}

# Paths Vault answers while sealed.
SEALED_OK = {"sys/health", "sys/seal-status", "sys/unseal", "sys/leader", "sys/init"}


class Mount:
    """A mount table entry: path, type, accessor and its lease TTL limits."""

    def __init__(self, core, path, mtype, description=""):
        self.path = path
        self.type = mtype
        self.description = description
        self.accessor = f"{'auth_' if path.startswith('auth/') else ''}{mtype}_" \
                        f"{secrets.token_hex(4)}"
        self.uuid = new_uuid()
        self.config = {"default_lease_ttl": 0, "max_lease_ttl": 0}
        self.options = {}
        self.sysview = SysView(core.default_ttl, core.max_ttl)
        self.backend = None

    def describe(self):
        return {"accessor": self.accessor, "config": {
                    "default_lease_ttl": self.config["default_lease_ttl"],
                    "max_lease_ttl": self.config["max_lease_ttl"], "force_no_cache": False},
                "deprecation_status": "supported" if self.type not in ("system", "token") else "",
                "description": self.description, "external_entropy_access": False,
                "local": False, "options": self.options or None, "plugin_version": "",
                "running_plugin_version": "", "running_sha256": "", "seal_wrap": False,
                "type": self.type, "uuid": self.uuid}


class Result:
    """What the transport sends: status, JSON body (or None), and the request's path class."""

    def __init__(self, status, body, cls="unknown", headers=None):
        self.status = status
        self.body = body
        self.cls = cls
        self.headers = headers or {}  # extra HTTP headers (Location of a standby's 307)


def error_result(e, cls="unknown"):
    return Result(e.status, {"errors": e.errors}, cls)


class Core:
    def __init__(self, version="1.17.2", default_ttl=768 * 3600, max_ttl=768 * 3600,
                 invalid_token_style="modern", root_token=None, enterprise=False):
        self.lock = threading.Lock()
        # Mount table and policies live in the request's namespace (only the root one
        # without --enterprise); see the mounts/policies properties.
        self.namespaces = NamespaceState(enterprise)
        self.namespaces.on_create = self._init_namespace
        self.ha = None  # standby.Cluster when the double serves several HA nodes
        self.version = version
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl
        self.invalid_token_style = invalid_token_style
        self.cluster_name = "vault-cluster-" + secrets.token_hex(4)
        self.cluster_id = new_uuid()
        self.sealed = False
        self.unseal_key = secrets.token_urlsafe(32)
        self.policies = {"default": acl.DEFAULT_POLICY}
        self.password_policies = {}
        self.password_policy_texts = {}
        self.tokens = NamespacedTokenStore(self, self.namespaces)
        self.expiration = NamespacedExpirationManager(self, self.namespaces)
        self._init_namespace(self.namespaces.root)
        root = Token(id=root_token or self.tokens.new_id("service"), policies=["root"],
                     path="auth/token/root", display_name="root", ttl=0, renewable=False)
        self.tokens.tokens[root.id] = root
        self.root_token = root.id

    # --- namespaces ------------------------------------------------------------------------

    @property
    def mounts(self):
        return self.namespaces.current.mounts

    @mounts.setter
    def mounts(self, value):
        self.namespaces.current.mounts = value

    @property
    def policies(self):
        return self.namespaces.current.policies

    @policies.setter
    def policies(self, value):
        self.namespaces.current.policies = value

    def _init_namespace(self, ns):
        """Every namespace has its own sys/ and auth/token/ mounts."""
        for path, mtype, cls in (("sys/", "system", SysBackend),
                                 ("auth/token/", "token", TokenBackend)):
            mt = Mount(self, path, mtype)
            mt.backend = cls(self, mt)
            ns.mounts[path] = mt

    def _drop_namespaces(self, gone):
        """A deleted namespace takes its tokens, mounts and leases with it."""
        state = self.namespaces
        saved = state.current
        try:
            for ns in gone:
                for tok in [t for t in self.tokens.tokens.values()
                            if getattr(t, "namespace", "") == ns.path]:
                    self.tokens.revoke(tok, "revoked")
                state.set_current(ns)
                for path in [p for p in ns.mounts if p not in ("sys/", "auth/token/")]:
                    self.unmount(path)
        finally:
            state.set_current(saved)

    def _acl_path(self, tok, path):
        """The path as the token's own namespace sees it (tokens may act below their ns)."""
        prefix = self.namespaces.current.path[len(getattr(tok, "namespace", "")):]
        return prefix + path

    # --- locking ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def unlocked(self):
        """Releases the core lock around slow work (SQL) done in the middle of a request."""
        self.lock.release()
        try:
            yield
        finally:
            self.lock.acquire()

    def start(self):
        self.expiration.start()

    def stop(self):
        self.expiration.stop()

    # --- seal --------------------------------------------------------------------------------

    def is_sealed(self, req=None):
        return self.sealed or bool(req is not None and getattr(req, "fault_sealed", False))

    def seal(self):
        self.sealed = True

    def unseal(self):
        self.sealed = False
        self.expiration.wake()

    # --- mounts --------------------------------------------------------------------------------

    def mount_for_path(self, path):
        best = None
        for p, mt in self.mounts.items():
            if path.startswith(p) or path + "/" == p:
                if best is None or len(p) > len(best.path):
                    best = mt
        return best

    def apply_mount_config(self, mt, config):
        for key in ("default_lease_ttl", "max_lease_ttl"):
            if key in config:
                raw = config[key]
                if raw in ("system", "", None):
                    secs = 0
                else:
                    try:
                        secs = parse_duration_second(raw)
                    except ValueError as e:
                        raise VaultError(400, f"unable to parse {key}: {e}") from None
                mt.config[key] = secs
        mt.sysview.default_ttl = mt.config["default_lease_ttl"] or self.default_ttl
        mt.sysview.max_ttl = mt.config["max_lease_ttl"] or self.max_ttl
        if mt.sysview.default_ttl > mt.sysview.max_ttl:
            mt.sysview.default_ttl = mt.sysview.max_ttl

    def mount(self, path, mtype, description, config, options):
        is_auth = path.startswith("auth/")
        if not mtype:
            raise VaultError(400, "backend type must be specified as a string")
        # Mount options are strings in Vault (map[string]string); "kv-v2" is "kv" version 2.
        options = {str(k): str(v) for k, v in options.items()} \
            if isinstance(options, dict) else {}
        if not is_auth and mtype == "kv-v2":
            mtype = "kv"
            options["version"] = "2"
        if is_auth and mtype == "token":
            raise VaultError(400, "token credential backend cannot be instantiated")
        kinds = AUTH_TYPES if is_auth else SECRET_TYPES
        if mtype not in kinds:
            raise VaultError(400, f"plugin not found in the catalog: {mtype}")
        for reserved in ("sys/", "auth/", "cubbyhole/", "identity/"):
            if not is_auth and (path == reserved or path.startswith(reserved)):
                raise VaultError(400, f"cannot mount '{path}' of type '{mtype}' as it is "
                                      f"reserved")
        for existing in self.mounts:
            if path.startswith(existing) or existing.startswith(path):
                raise VaultError(400, f"path is already in use at {existing}")
        mt = Mount(self, path, mtype, description)
        mt.options = options
        self.apply_mount_config(mt, config if isinstance(config, dict) else {})
        mt.backend = kinds[mtype](self, mt)
        self.mounts[path] = mt

    def unmount(self, path):
        mt = self.mounts.get(path)
        if mt is None or path in ("sys/", "auth/token/"):
            return
        if path.startswith("auth/"):
            for tok in [t for t in self.tokens.tokens.values()
                        if t.mount_accessor == mt.accessor]:
                self.tokens.revoke(tok, "revoked")
        else:
            self.expiration.revoke_prefix(path, force=False, reason="unmount")
        cleanup = getattr(mt.backend, "cleanup", None)
        if cleanup is not None:
            cleanup()
        self.mounts.pop(path, None)

    # --- tokens and ACLs -------------------------------------------------------------------------

    def acl_for(self, tok):
        ns = self.namespaces.by_path.get(getattr(tok, "namespace", ""), self.namespaces.root)
        texts = [ns.policies[p] for p in tok.policies if p in ns.policies]
        if "response-wrapping" in tok.policies:
            texts.append(acl.RESPONSE_WRAPPING_POLICY)
        return acl.ACL(texts)

    def has_sudo(self, tok, path):
        if "root" in tok.policies:
            return True
        return self.acl_for(tok).allows(self._acl_path(tok, path), {"sudo"}, sudo=True)

    def _invalid_token(self):
        if self.invalid_token_style == "legacy":
            return VaultError(403, "permission denied")
        return VaultError(403, multierror_text(["permission denied", "invalid token"]))

    @staticmethod
    def request_token(headers):
        tok = headers.get("X-Vault-Token", "")
        if not tok:
            auth = headers.get("Authorization", "")
            if auth[:7].lower() == "bearer ":
                tok = auth[7:].strip()
        return tok

    # --- request handling -------------------------------------------------------------------------

    def handle(self, req):
        """Answers one /v1/ request; thread-safe."""
        with self.lock:
            try:
                return self._handle(req)
            except VaultError as e:
                return error_result(e, getattr(req, "cls", "unknown"))
            finally:
                self.namespaces.set_current(self.namespaces.root)

    def _operation(self, req):
        m = req.method
        if m in ("GET", "HEAD"):
            return "list" if req.query.get("list", "").lower() in ("true", "1") else "read"
        if m == "LIST":
            return "list"
        if m in ("POST", "PUT"):
            return "update"
        if m == "DELETE":
            return "delete"
        return None

    def _handle(self, req):
        req.request_id = str(uuid.uuid4())
        req.cls = "unknown"
        req.op = self._operation(req)
        if req.op is None:
            raise VaultError(405)
        if req.method in ("GET", "HEAD", "LIST", "DELETE") and not req.data:
            req.data = {k: v for k, v in req.query.items() if k != "list"}
        ns, req.path = self.namespaces.resolve(req.headers.get("X-Vault-Namespace", ""),
                                               req.path)
        self.namespaces.set_current(ns)
        req.namespace = ns
        if req.op == "list" and not req.path.endswith("/"):
            req.path += "/"  # Vault's HTTP layer does this for every LIST (http/logical.go)
        path = req.path
        mount = self.mount_for_path(path)
        route = m = None
        if mount is not None:
            req.rel_path = path[len(mount.path):] if path.startswith(mount.path) else ""
            route, m = mount.backend.route(req.rel_path)
            req.cls = mount.path + (route.cls if route else "other")
        if self.is_sealed(req) and path not in SEALED_OK:
            raise VaultError(503, SEALED)

        token_str = self.request_token(req.headers)
        unauth = route is not None and req.op in route.unauth
        last_use = False
        if not unauth:
            tok = self.tokens.lookup(token_str) if token_str else None
            if tok is None:
                raise self._invalid_token() if token_str else VaultError(403, "permission denied")
            if not token_usable(getattr(tok, "namespace", ""), ns.path):
                raise VaultError(403, "permission denied")
            if "root" not in tok.policies:
                needed = {"read": {"read"}, "list": {"list"}, "delete": {"delete"},
                          "update": {"update"}}[req.op]
                if req.op == "update" and route is not None and route.existence:
                    needed = {"create", "update"}
                sudo = route is not None and req.op in route.sudo
                if not self.acl_for(tok).allows(self._acl_path(tok, path), needed, sudo=sudo):
                    raise permission_denied()
            last_use = self.tokens.use(tok)
            req.token = tok
            req.display_name = tok.display_name

        special = self._special(req, path)
        if special is not None:
            return special
        if mount is None:
            raise VaultError(404, f'no handler for route "{path}". route entry not found.')
        if route is None:
            raise VaultError(404, "unsupported path", multi=True)
        handler = route.ops.get(req.op)
        if handler is None:
            raise VaultError(405, "unsupported operation", multi=True)
        req.mount = mount
        wrap_hdr = req.headers.get("X-Vault-Wrap-TTL", "")
        if wrap_hdr:
            try:
                req.wrap_ttl = parse_duration_second(wrap_hdr)
            except ValueError:
                raise VaultError(400, "error parsing wrap TTL") from None
        warning = unknown_fields_warning(route, req.data) if req.op == "update" else None
        try:
            resp = handler(req, m)
        finally:
            if last_use and req.token is not None:
                self.tokens.revoke(req.token, "revoked")
        if path in ("sys/health", "sys/leader") and resp is not None and resp.raw:
            resp = self._node_view(req, path, resp)
        if warning:
            if resp is None:
                resp = Response()
            resp.warnings.insert(0, warning)
        return self._respond(req, mount, resp)

    def _special(self, req, path):
        """sys/namespaces (--enterprise) and sys/step-down (HA): handled by the core."""
        if self.namespaces.enabled and (path == "sys/namespaces" or
                                        path.startswith("sys/namespaces/")):
            status, data = handle_sys_namespaces(self.namespaces, req, path[len("sys/"):])
            if req.op == "delete":
                if data:
                    self._drop_namespaces(data)
                return Result(204, None, req.cls)
            if data is None:
                return Result(404, {"errors": []}, req.cls)
            return Result(200, self.envelope(req, self.mounts["sys/"], Response(data=data)),
                          req.cls)
        if path == "sys/step-down" and self.ha is not None:
            if req.op != "update":
                raise VaultError(405, "unsupported operation", multi=True)
            if not self.has_sudo(req.token, path):
                raise permission_denied()
            self.ha.step_down()
            return Result(204, None, req.cls)
        return None

    def _node_view(self, req, path, resp):
        """sys/health and sys/leader as the node that received the request sees them."""
        node = getattr(req, "node", None)
        status, body = resp.raw
        if path == "sys/leader":
            return Response(raw=(200, standby.leader(node))) if node is not None else resp
        status, body = standby.health(node, req.query, status, body)
        if self.namespaces.enabled:
            body = dict(body, enterprise=True)
            if "+ent" not in str(body.get("version", "")):
                body["version"] = f"{body.get('version')}+ent"
        return Response(raw=(status, body))

    def _respond(self, req, mount, resp):
        if resp is None:
            if req.op in ("read", "list"):
                return Result(404, {"errors": []}, req.cls)
            return Result(204, None, req.cls)
        if resp.raw is not None:
            return Result(resp.raw[0], resp.raw[1], req.cls)
        if req.op == "list":
            keys = (resp.data or {}).get("keys")
            if not keys and not resp.warnings:
                return Result(404, {"errors": []}, req.cls)
        body = self.envelope(req, mount, resp)
        if req.wrap_ttl > 0:
            return Result(200, self._wrap(req, body, resp.wrapped_accessor), req.cls)
        status = resp.status if isinstance(resp.status, int) else 200
        if status == 202:
            return Result(202, None, req.cls)
        return Result(status, body, req.cls)

    @staticmethod
    def envelope(req, mount, resp):
        secret = resp.secret or {}
        body = {
            "request_id": req.request_id,
            "lease_id": secret.get("lease_id", ""),
            "renewable": bool(secret.get("renewable", False)),
            "lease_duration": int(secret.get("ttl", 0)),
            "data": resp.data,
            "wrap_info": None,
            "warnings": resp.warnings or None,
            "auth": resp.auth,
            "mount_type": mount.type,
        }
        if resp.inject and resp.data:
            injected = dict(resp.data)
            injected.update(body)
            body = injected
        return body

    # --- response wrapping ---------------------------------------------------------------------

    def _wrap(self, req, body, wrapped_accessor):
        now = time.time()
        tok = Token(id=self.tokens.new_id("service"), policies=["response-wrapping"],
                    path="sys/wrapping/wrap", display_name="response-wrapping", num_uses=1,
                    ttl=req.wrap_ttl, renewable=False, creation_time=int(now), issue_time=now)
        info = {"token": tok.id, "accessor": tok.accessor, "ttl": req.wrap_ttl,
                "creation_time": rfc3339nano(now), "creation_path": req.path}
        if wrapped_accessor:
            info["wrapped_accessor"] = wrapped_accessor
        tok.wrapped_response = body
        tok.wrap_info = info
        self.tokens.add(tok)
        return {"request_id": "", "lease_id": "", "renewable": False, "lease_duration": 0,
                "data": None, "wrap_info": info, "warnings": None, "auth": None,
                "mount_type": ""}

    def unwrap(self, req):
        """sys/wrapping/unwrap: the wrapping token comes in the body or as the client token."""
        header_token = self.request_token(req.headers)
        body_token = str(req.data.get("token") or "").strip()
        if body_token:
            requester = self.tokens.lookup(header_token) if header_token else None
            if requester is None:
                raise self._invalid_token() if header_token else VaultError(
                    403, "permission denied")
            if "root" not in requester.policies and not self.acl_for(requester).allows(
                    req.path, {"update"}):
                raise permission_denied()
            wrapping = body_token
        else:
            wrapping = header_token
        tok = self.tokens.lookup(wrapping) if wrapping else None
        if tok is None or tok.wrapped_response is None:
            raise VaultError(400, "wrapping token is not valid or does not exist")
        body = dict(tok.wrapped_response)
        self.tokens.revoke(tok, "revoked")
        body["request_id"] = req.request_id
        return Response(raw=(200, body))

    # --- introspection for the control API ------------------------------------------------------

    def snapshot(self):
        with self.lock:
            return {
                "sealed": self.sealed,
                "tokens": len(self.tokens.tokens),
                "leases": [l.describe() for l in self.expiration.leases.values()],
                "revoked": list(self.expiration.history),
                "static_roles": self._static_roles(),
            }

    def _static_roles(self):
        """Static roles of every database mount: schedule state and the rotations done."""
        out = {}
        for ns in self.namespaces.by_path.values():
            for path, mt in ns.mounts.items():
                static = getattr(mt.backend, "static", None)
                if static is not None:
                    out[ns.path + path] = {"roles": static.describe(),
                                           "rotations": list(static.history)}
        return out
