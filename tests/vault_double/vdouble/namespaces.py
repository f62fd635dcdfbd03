"""Vault Enterprise namespaces (the double's --enterprise mode), kept small.

What is modelled:
- sys/namespaces/<name> (POST create, GET read, DELETE, LIST sys/namespaces) in the request's
  namespace; answers {id, path, custom_metadata}. Namespaces nest ("ns1/ns2/").
- The request's namespace is X-Vault-Namespace joined with the longest leading part of the
  request path that names an existing namespace (so "ns1/secret/..." works like the header).
- Each namespace has its own mount table (with its own sys/ and auth/token/), its own ACL
  policies ("default" included) and its own tokens. A token created in a namespace carries
  its namespace id as a suffix ("hvs.<random>.<nsid>", as in Vault) and works only there and
  in namespaces below it; a token from a parent namespace is checked against its own
  namespace's policies with the path as seen from there ("ns1/secret/data/x"), so the root
  namespace's root token may act anywhere.
- Leases created in a child namespace get ".<nsid>" appended to their id; prefix revocation
  and listing (unmount, revoke-prefix) only touch the leases of the request's namespace.
What is not: namespace locking, identity/groups across namespaces, quotas, deletion that
waits for revocations (here deletion is immediate).
Without --enterprise the header is ignored and a namespace path prefix is just a path,
as on Vault's open-source server.
"""

import threading

from . import acl
from .errors import VaultError
from .gotemplate import random_base62
from .leases import ExpirationManager
from .tokens import TokenStore


class Namespace:
    def __init__(self, path, parent=None, custom_metadata=None):
        self.path = path  # "" for root, else "a/" or "a/b/"
        self.id = "root" if not path else random_base62(5)
        self.parent = parent
        self.mounts = {}
        self.policies = {"default": acl.DEFAULT_POLICY}
        self.custom_metadata = dict(custom_metadata or {})

    def describe(self):
        return {"custom_metadata": self.custom_metadata, "id": self.id, "path": self.path}


class NamespaceState:
    """All namespaces; which one the current thread's request runs in."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.root = Namespace("")
        self.by_path = {"": self.root}
        self._tls = threading.local()
        self.on_create = None  # the core sets up each new namespace's sys/ and auth/token/

    @property
    def current(self):
        return getattr(self._tls, "ns", self.root)

    def set_current(self, ns):
        self._tls.ns = ns

    def by_id(self, nsid):
        for ns in self.by_path.values():
            if ns.id == nsid:
                return ns
        return None

    def resolve(self, header, path):
        """(namespace, path inside it) for a request; 404-like error for an unknown header."""
        if not self.enabled:
            return self.root, path
        prefix = _canonical(header)
        if prefix and prefix not in self.by_path:
            raise VaultError(404, f'no handler for route "{prefix}{path}". route entry not '
                                  "found.")
        full = prefix + path
        best = prefix
        for p in self.by_path:
            if p and len(p) > len(best) and (full.startswith(p) or full + "/" == p):
                best = p
        return self.by_path[best], full[len(best):]

    def create(self, parent, name, custom_metadata):
        path = parent.path + name.strip("/") + "/"
        ns = self.by_path.get(path)
        if ns is None:
            ns = Namespace(path, parent, custom_metadata)
            if self.on_create is not None:
                self.on_create(ns)
            self.by_path[path] = ns
        elif custom_metadata is not None:
            ns.custom_metadata = dict(custom_metadata)
        return ns

    def children(self, parent):
        return sorted((ns for p, ns in self.by_path.items()
                       if p and ns.parent is parent), key=lambda n: n.path)

    def delete(self, ns):
        """Removes ns and every namespace below it; returns them."""
        gone = [n for p, n in self.by_path.items() if p and p.startswith(ns.path)]
        for n in gone:
            self.by_path.pop(n.path, None)
        return gone


def _canonical(header):
    h = (header or "").strip().strip("/")
    return h + "/" if h else ""


def token_usable(tok_ns_path, req_ns_path):
    """A token works in its own namespace and in the namespaces below it."""
    return req_ns_path.startswith(tok_ns_path)


class NamespacedTokenStore(TokenStore):
    """Tokens remember their namespace; ids in child namespaces end in ".<nsid>"."""

    def __init__(self, core, state):
        super().__init__(core)
        self.state = state

    def new_id(self, token_type):
        tid = super().new_id(token_type)
        ns = self.state.current
        return tid if ns is self.state.root else f"{tid}.{ns.id}"

    def add(self, token):
        if not hasattr(token, "namespace"):
            token.namespace = self.state.current.path
        return super().add(token)


class NamespacedExpirationManager(ExpirationManager):
    """Lease ids of child namespaces end in ".<nsid>"; prefix operations stay in one namespace."""

    def __init__(self, core, state):
        super().__init__(core)
        self.state = state

    def register(self, backend, mount, path, internal, ttl, max_ttl, token):
        lease = super().register(backend, mount, path, internal, ttl, max_ttl, token)
        ns = self.state.current
        lease.namespace = ns.path
        if ns is not self.state.root:
            old = lease.lease_id
            lease.lease_id = f"{old}.{ns.id}"
            self.leases[lease.lease_id] = self.leases.pop(old)
            if token is not None and old in token.leases:
                token.leases.discard(old)
                token.leases.add(lease.lease_id)
        return lease

    def _in_current(self, lease_id):
        lease = self.leases.get(lease_id)
        return lease is not None and getattr(lease, "namespace", "") == self.state.current.path

    def revoke_prefix(self, prefix, force, reason="revoke-prefix"):
        for lease_id in [i for i in self.leases if i.startswith(prefix) and
                         self._in_current(i)]:
            lease = self.leases.get(lease_id)
            if lease is None:
                continue
            lease.revoke_reason = reason
            err = self._revoke_unlocked(lease, force=force)
            if err and not force:
                raise VaultError(400, f"failed to revoke {lease_id}: {err}")

    def list_prefix(self, prefix):
        keys = set()
        for lease_id in self.leases:
            if lease_id.startswith(prefix) and self._in_current(lease_id):
                rest = lease_id[len(prefix):]
                keys.add(rest.split("/", 1)[0] + ("/" if "/" in rest else ""))
        return sorted(keys)


# --- sys/namespaces ---------------------------------------------------------------------------


def handle_sys_namespaces(state, req, rel):
    """sys/namespaces[/<name>] in the request's namespace; returns (status, data) or raises."""
    parent = state.current
    name = rel[len("namespaces"):].strip("/")
    if req.op == "list" or (not name and req.op == "read"):
        kids = state.children(parent)
        if not kids:
            return 404, None
        keys = [k.path[len(parent.path):] for k in kids]
        return 200, {"key_info": {k: n.describe() for k, n in zip(keys, kids)}, "keys": keys}
    if not name:
        raise VaultError(405, "unsupported operation", multi=True)
    path = parent.path + name + "/"
    if req.op == "read":
        ns = state.by_path.get(path)
        return (200, ns.describe()) if ns is not None else (404, None)
    if req.op == "update":
        if "/" in name:
            raise VaultError(400, "namespace names may not contain a slash; create each "
                                  "level from its parent")
        cm = req.data.get("custom_metadata")
        if cm is not None and not isinstance(cm, dict):
            raise VaultError(400, "custom_metadata must be a map of strings")
        ns = state.create(parent, name, {str(k): str(v) for k, v in (cm or {}).items()})
        return 200, ns.describe()
    if req.op == "delete":
        ns = state.by_path.get(path)
        if ns is None:
            return 204, None
        return 204, state.delete(ns)
    raise VaultError(405, "unsupported operation", multi=True)
