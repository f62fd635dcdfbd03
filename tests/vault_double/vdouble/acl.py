"""ACL policies: Vault's policy HCL (path blocks with capabilities) and request checks."""

import re

from . import hcl
from .errors import VaultError

VALID_CAPS = {"create", "read", "update", "delete", "list", "sudo", "deny", "patch",
              "subscribe", "recover"}

_LEGACY = {"deny": ["deny"], "read": ["read", "list"],
           "write": ["create", "read", "update", "delete", "list"],
           "sudo": ["create", "read", "update", "delete", "list", "sudo"]}

# Vault's built-in "default" policy, minus the identity-templated paths the double lacks.
DEFAULT_POLICY = """
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/capabilities-self" { capabilities = ["update"] }
path "sys/internal/ui/resultant-acl" { capabilities = ["read"] }
path "sys/renew" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/lookup" { capabilities = ["update"] }
path "cubbyhole/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "sys/wrapping/wrap" { capabilities = ["update"] }
path "sys/wrapping/lookup" { capabilities = ["update"] }
path "sys/wrapping/unwrap" { capabilities = ["update"] }
path "sys/tools/hash" { capabilities = ["update"] }
path "sys/tools/hash/*" { capabilities = ["update"] }
"""

RESPONSE_WRAPPING_POLICY = """
path "cubbyhole/response" { capabilities = ["create", "read"] }
path "sys/wrapping/unwrap" { capabilities = ["update"] }
"""


def parse_policy(text):
    """Returns {path_pattern: set(capabilities)}; raises VaultError(400) on bad HCL."""
    text = hcl.strip_comments(text)
    rules = {}
    found = hcl.blocks(text, "path")
    for pattern, body, _, _ in found:
        caps = set()
        for cap in hcl.list_attr(body, "capabilities") or []:
            cap = cap.lower()
            if cap not in VALID_CAPS:
                raise VaultError(400, f'failed to parse policy: path "{pattern}": '
                                      f'invalid capability "{cap}"')
            caps.add(cap)
        legacy = hcl.string_attr(body, "policy")
        if legacy is not None:
            if legacy not in _LEGACY:
                raise VaultError(400, f'failed to parse policy: path "{pattern}": '
                                      f'invalid policy "{legacy}"')
            caps.update(_LEGACY[legacy])
        rules.setdefault(pattern.lstrip("/"), set()).update(caps)
    if not rules and text.strip():
        raise VaultError(400, "failed to parse policy: no path blocks found")
    return rules


def _pattern_regex(pattern):
    """A path pattern as a regex: "+" is one segment, a trailing "*" any suffix."""
    glob = pattern.endswith("*")
    body = pattern[:-1] if glob else pattern
    rx = "/".join("[^/]+" if seg == "+" else re.escape(seg) for seg in body.split("/"))
    return re.compile("^" + rx + (".*" if glob else "") + "$")


def _priority(pattern):
    """Vault's path priority: later wildcard, no trailing glob, fewer +, longer, larger."""
    wild = [i for i, c in enumerate(pattern) if c in "+*"]
    first = wild[0] if wild else len(pattern) + 1
    return (first, not pattern.endswith("*"), -pattern.count("+"), len(pattern), pattern)


class ACL:
    """The merged rules of a token's policies."""

    def __init__(self, policy_texts):
        merged = {}
        for text in policy_texts:
            for pat, caps in parse_policy(text).items():
                merged.setdefault(pat, set()).update(caps)
        self.rules = [(pat, _pattern_regex(pat), caps) for pat, caps in merged.items()]

    def capabilities(self, path):
        """Capabilities granted on path by the highest-priority matching rule."""
        best = None
        for pat, rx, caps in self.rules:
            if rx.match(path) and (best is None or _priority(pat) > _priority(best[0])):
                best = (pat, caps)
        if best is None:
            return set()
        if "deny" in best[1]:
            return {"deny"}
        return set(best[1])

    def allows(self, path, needed_any, sudo=False):
        """True when any capability in needed_any is granted (and sudo, when required)."""
        caps = self.capabilities(path)
        if "deny" in caps:
            return False
        if sudo and "sudo" not in caps:
            return False
        return bool(caps & set(needed_any))
