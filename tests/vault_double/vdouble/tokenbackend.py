"""The auth/token/ endpoints: create, lookup, renew and revoke tokens."""

import re
import time

from .durations import PastMaxTTL, calculate_ttl, field_duration
from .errors import VaultError, internal
from .framework import Backend, Response, Route, get_bool, get_comma_list, get_int, get_str
from .tokens import Token, sanitize_policies

CREATE_FIELDS = {"id", "role_name", "policies", "meta", "no_parent", "no_default_policy",
                 "renewable", "ttl", "type", "explicit_max_ttl", "display_name", "num_uses",
                 "period", "entity_alias", "lease"}


class TokenBackend(Backend):
    type_name = "token"

    def __init__(self, core, mount):
        super().__init__()
        self.core = core
        self.mount = mount
        self.routes = [
            Route(r"create", {"update": self.create}, "create", fields=CREATE_FIELDS),
            Route(r"create-orphan", {"update": self.create_orphan}, "create-orphan",
                  fields=CREATE_FIELDS),
            Route(r"lookup-self", {"read": self.lookup_self}, "lookup-self", fields={"token"}),
            Route(r"lookup", {"update": self.lookup, "read": self.lookup}, "lookup",
                  fields={"token"}),
            Route(r"lookup-accessor", {"update": self.lookup_accessor}, "lookup-accessor",
                  fields={"accessor"}),
            Route(r"renew-self", {"update": self.renew_self}, "renew-self",
                  fields={"token", "increment"}),
            Route(r"renew", {"update": self.renew}, "renew", fields={"token", "increment"}),
            Route(r"renew-accessor", {"update": self.renew_accessor}, "renew-accessor",
                  fields={"accessor", "increment"}),
            Route(r"revoke-self", {"update": self.revoke_self}, "revoke-self", fields=set()),
            Route(r"revoke", {"update": self.revoke}, "revoke", fields={"token"}),
            Route(r"revoke-accessor", {"update": self.revoke_accessor}, "revoke-accessor",
                  fields={"accessor"}),
        ]

    # --- create --------------------------------------------------------------------------

    def create(self, req, m):
        return self._create(req, orphan=False)

    def create_orphan(self, req, m):
        return self._create(req, orphan=True)

    def _create(self, req, orphan):
        parent = req.token
        data = req.data
        if parent is None:
            raise VaultError(400, "parent token lookup failed: no parent found")
        if parent.type == "batch":
            raise VaultError(400, "batch tokens cannot create more tokens")
        if parent.num_uses > 0:
            raise VaultError(400, "restricted use token cannot generate child tokens")
        is_sudo = self.core.has_sudo(parent, req.path)
        token_type = get_str(data, "type") or "service"
        renewable = get_bool(data, "renewable", True)
        num_uses = get_int(data, "num_uses", 0)
        explicit_max = field_duration(data, "explicit_max_ttl")
        period = field_duration(data, "period")
        if token_type == "batch":
            for field, value in (("explicit_max_ttl", explicit_max), ("num_uses", num_uses),
                                 ("period", period)):
                if value:
                    raise VaultError(400, f'batch tokens cannot have "{field}" set')
            renewable = False
        elif token_type != "service":
            raise VaultError(400, "invalid 'token_type' value")
        if num_uses < 0:
            raise VaultError(400, "number of uses cannot be negative")
        meta = data.get("meta")
        if meta is not None:
            if not isinstance(meta, dict):
                raise VaultError(400, 'error converting input for field "meta": expected a map')
            meta = {str(k): str(v) for k, v in meta.items()}
        display = "token"
        if get_str(data, "display_name"):
            display = re.sub(r"[^a-zA-Z0-9-]", "-", "token-" + get_str(data, "display_name"))
            display = display.rstrip("-")
        token_id = get_str(data, "id")
        if token_id and not is_sudo:
            raise VaultError(400, "root or sudo privileges required to specify token id")
        requested = get_comma_list(data, "policies")
        no_default = get_bool(data, "no_default_policy", False)
        if not requested:
            policies = sanitize_policies(parent.policies, False)
        elif not is_sudo:
            want = sanitize_policies(requested, False)
            have = sanitize_policies(parent.policies, False)
            if not set(want) <= set(have):
                raise VaultError(400, "child policies must be subset of parent")
            add_default = "default" in parent.policies and not no_default
            policies = sanitize_policies(requested, add_default)
        else:
            policies = sanitize_policies(requested, not no_default)
        if "root" in policies:
            if "root" not in parent.policies:
                raise VaultError(400, "root tokens may not be created without parent token "
                                      "being root")
            if token_type == "batch":
                raise VaultError(400, "batch tokens cannot be root tokens")
        if get_bool(data, "no_parent", False):
            if not is_sudo:
                raise VaultError(400, "root or sudo privileges required to create orphan token")
            orphan = True
        if period and not is_sudo:
            raise VaultError(400, "root or sudo privileges required to create periodic token")
        ttl = field_duration(data, "ttl") or field_duration(data, "lease")
        now = time.time()
        warnings = []
        sysview = self.mount.sysview
        if period > 0 or ttl > 0 or "root" not in policies:
            try:
                ttl, warnings = calculate_ttl(sysview, 0, ttl, period, 0, explicit_max, int(now),
                                              now)
            except PastMaxTTL as e:
                raise internal(str(e)) from None
        if ttl == 0 and explicit_max > 0:
            ttl = explicit_max
        if ttl == 0:
            if parent.expire_time is not None:
                raise VaultError(400, "expiring root tokens cannot create non-expiring root "
                                      "tokens")
            renewable = False
        tokens = self.core.tokens
        if token_id:
            if token_id in tokens.tokens:
                raise VaultError(400, "cannot create a token with a duplicate ID")
            warnings.append("Supplying a custom ID for the token uses the weaker SHA1 hashing "
                            "instead of the more secure SHA2-256 HMAC for token obfuscation. "
                            "SHA1 hashed tokens on the wire leads to less secure lookups.")
        tok = Token(id=token_id or tokens.new_id(token_type), policies=policies,
                    path="auth/token/" + req.path.rsplit("/", 1)[-1],
                    display_name=display, meta=meta, num_uses=num_uses, type=token_type,
                    parent=None if orphan else parent.id, entity_id="" if orphan else
                    parent.entity_id, creation_time=int(now), issue_time=now, ttl=ttl,
                    explicit_max_ttl=explicit_max, period=period, renewable=renewable,
                    sysview=sysview, mount_accessor=self.mount.accessor)
        tokens.add(tok)
        for p in policies:
            if p not in ("root",) and p not in self.core.policies:
                warnings.append(f'Policy "{p}" does not exist')
        return Response(auth=tok.auth_object(), warnings=warnings,
                        wrapped_accessor=tok.accessor)

    # --- lookup ----------------------------------------------------------------------------

    def lookup_self(self, req, m):
        return Response(data=req.token.lookup_data())

    def _target(self, req, field="token"):
        value = get_str(req.data, field).strip()
        if not value:
            raise VaultError(400, f"missing {field if field == 'accessor' else 'token ID'}")
        if field == "accessor":
            tok = self.core.tokens.by_accessor(value)
            if tok is None:
                raise VaultError(400, "invalid accessor")
            return tok
        return self.core.tokens.lookup(value)

    def lookup(self, req, m):
        tok = self._target(req)
        if tok is None:
            raise VaultError(403, "bad token")
        return Response(data=tok.lookup_data())

    def lookup_accessor(self, req, m):
        data = self._target(req, "accessor").lookup_data()
        data["id"] = ""
        return Response(data=data)

    # --- renew -----------------------------------------------------------------------------

    def _renew(self, tok, req):
        increment = field_duration(req.data, "increment")
        ttl, warnings = self.core.tokens.renew(tok, increment)
        return Response(auth=tok.auth_object(ttl), warnings=warnings)

    def renew_self(self, req, m):
        return self._renew(req.token, req)

    def renew(self, req, m):
        tok = self._target(req)
        if tok is None:
            raise VaultError(400, "token not found")
        return self._renew(tok, req)

    def renew_accessor(self, req, m):
        resp = self._renew(self._target(req, "accessor"), req)
        resp.auth["client_token"] = ""
        return resp

    # --- revoke ----------------------------------------------------------------------------

    def _revoke(self, tok):
        if tok is None:
            return None
        if tok.type == "batch":
            raise VaultError(400, "batch tokens cannot be revoked")
        self.core.tokens.revoke(tok, "revoked")
        return None

    def revoke_self(self, req, m):
        return self._revoke(req.token)

    def revoke(self, req, m):
        return self._revoke(self._target(req))

    def revoke_accessor(self, req, m):
        return self._revoke(self._target(req, "accessor"))
