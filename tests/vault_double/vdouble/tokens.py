"""The token store: service/batch tokens, their TTLs, parents, renewal and revocation."""

import secrets
import time

from . import durations
from .durations import PastMaxTTL, calculate_ttl, rfc3339nano, ttl_remaining
from .errors import VaultError, internal
from .gotemplate import random_base62


class Token:
    """One Vault token and the lease Vault keeps for it."""

    def __init__(self, **kw):
        self.id = kw["id"]
        self.accessor = random_base62(24)
        self.policies = kw.get("policies", [])
        self.path = kw.get("path", "auth/token/create")
        self.display_name = kw.get("display_name", "token")
        self.meta = kw.get("meta")
        self.num_uses = kw.get("num_uses", 0)
        self.type = kw.get("type", "service")
        self.parent = kw.get("parent")
        self.entity_id = kw.get("entity_id", "")
        self.creation_time = int(kw.get("creation_time", time.time()))
        self.issue_time = kw.get("issue_time", time.time())
        self.ttl = kw.get("ttl", 0)
        self.creation_ttl = self.ttl
        self.explicit_max_ttl = kw.get("explicit_max_ttl", 0)
        self.period = kw.get("period", 0)
        self.renewable = kw.get("renewable", True) and self.type == "service" and self.ttl > 0
        self.expire_time = self.issue_time + self.ttl if self.ttl > 0 else None
        self.last_renewal = None
        # Backend renewal parameters: the auth method's TTL/max TTL (approle role) or None
        # for tokens of the token store, whose renewal reuses the token's own last TTL.
        self.renew_source = kw.get("renew_source")
        self.mount_accessor = kw.get("mount_accessor", "")
        self.sysview = kw.get("sysview") or durations.SysView()
        self.children = set()
        self.leases = set()
        self.wrapped_response = kw.get("wrapped_response")
        self.wrap_info = kw.get("wrap_info")

    def valid(self, now=None):
        """Vault treats a token past its expiry as gone even before the timer revokes it."""
        now = time.time() if now is None else now
        return self.expire_time is None or now < self.expire_time

    def auth_object(self, ttl=None):
        """The "auth" object of a login/create/renew response."""
        return {
            "client_token": self.id,
            "accessor": self.accessor,
            "policies": list(self.policies),
            "token_policies": list(self.policies),
            "metadata": self.meta,
            "lease_duration": self.ttl if ttl is None else ttl,
            "renewable": self.renewable,
            "entity_id": self.entity_id,
            "token_type": self.type,
            "orphan": self.parent is None,
            "mfa_requirement": None,
            "num_uses": self.num_uses,
        }

    def lookup_data(self):
        """The data of auth/token/lookup-self."""
        data = {
            "accessor": self.accessor,
            "creation_time": self.creation_time,
            "creation_ttl": self.creation_ttl,
            "display_name": self.display_name,
            "entity_id": self.entity_id,
            "expire_time": rfc3339nano(self.expire_time),
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": self.id,
            "meta": self.meta,
            "num_uses": self.num_uses,
            "orphan": self.parent is None,
            "path": self.path,
            "policies": list(self.policies),
            "ttl": ttl_remaining(self.expire_time),
            "type": self.type,
        }
        if self.expire_time is not None:
            data["issue_time"] = rfc3339nano(self.issue_time)
            data["renewable"] = self.renewable
        if self.period:
            data["period"] = self.period
        if self.last_renewal is not None:
            data["last_renewal_time"] = int(self.last_renewal)
            data["last_renewal"] = rfc3339nano(self.last_renewal)
        return data


def sanitize_policies(policies, add_default):
    """Vault's policyutil.SanitizePolicies: trimmed, lower-cased, unique, sorted, +default."""
    out = {p.strip().lower() for p in policies if p.strip()}
    if add_default and "root" not in out:
        out.add("default")
    if "root" in out:
        out = {"root"}
    return sorted(out)


class TokenStore:
    """All tokens; the core's lock guards every method."""

    def __init__(self, core):
        self.core = core
        self.tokens = {}

    def new_id(self, token_type):
        prefix = "hvb." if token_type == "batch" else "hvs."
        length = 120 if token_type == "batch" else 24
        while True:
            tid = prefix + random_base62(length)
            if tid not in self.tokens:
                return tid

    def add(self, token):
        self.tokens[token.id] = token
        if token.parent and token.parent in self.tokens:
            self.tokens[token.parent].children.add(token.id)
        self.core.expiration.wake()
        return token

    def lookup(self, token_id):
        """The valid token with this id, or None (unknown, revoked or expired)."""
        tok = self.tokens.get(token_id)
        if tok is None or not tok.valid():
            return None
        return tok

    def by_accessor(self, accessor):
        for tok in self.tokens.values():
            if tok.accessor == accessor and tok.valid():
                return tok
        return None

    def use(self, tok):
        """Counts one use of a limited-use token; returns True when that was its last use."""
        if tok.num_uses <= 0:
            return False
        tok.num_uses -= 1
        return tok.num_uses == 0

    def revoke(self, tok, reason):
        """Revokes a token, its child tokens, and (through the expiration manager) its leases."""
        if tok.id not in self.tokens:
            return
        del self.tokens[tok.id]
        for child_id in list(tok.children):
            child = self.tokens.get(child_id)
            if child is not None:
                self.revoke(child, reason)
        if tok.parent and tok.parent in self.tokens:
            self.tokens[tok.parent].children.discard(tok.id)
        self.core.expiration.revoke_by_token(tok, reason)

    def expired(self, now):
        return [t for t in self.tokens.values()
                if t.expire_time is not None and t.expire_time <= now]

    def next_expiry(self):
        times = [t.expire_time for t in self.tokens.values() if t.expire_time is not None]
        return min(times) if times else None

    def renew(self, tok, increment):
        """Renews a token like Vault's RenewToken; returns (ttl, warnings)."""
        if tok.type == "batch":
            raise VaultError(400, "batch tokens cannot be renewed")
        if tok.expire_time is None or not tok.renewable:
            raise VaultError(400, "lease is not renewable")
        if tok.renew_source is not None:
            backend_ttl, backend_max, period = tok.renew_source()
        else:
            backend_ttl, backend_max, period = tok.ttl, 0, tok.period
        try:
            ttl, warnings = calculate_ttl(tok.sysview, increment, backend_ttl, period, backend_max,
                                          tok.explicit_max_ttl, tok.issue_time)
        except PastMaxTTL as e:
            raise internal(str(e)) from None
        now = time.time()
        tok.ttl = ttl
        tok.expire_time = now + ttl
        tok.last_renewal = now
        self.core.expiration.wake()
        return ttl, warnings


def new_uuid():
    """A random UUID string, the shape Vault uses for secret IDs, accessors and entity IDs."""
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
