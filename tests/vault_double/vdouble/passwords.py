"""Password generation: Vault's default generator and named policies (sys/policies/password)."""

import secrets
import string

from . import hcl
from .errors import VaultError


class PasswordPolicy:
    """length plus charset rules, as in a Vault password policy's HCL."""

    def __init__(self, length, rules):
        self.length = length
        self.rules = rules  # list of (charset, min_chars)
        charset = sorted(set("".join(c for c, _ in rules)))
        self.charset = "".join(charset)

    def generate(self):
        """Draws candidates until one passes every rule, as Vault's StringGenerator does."""
        for _ in range(10000):
            cand = "".join(secrets.choice(self.charset) for _ in range(self.length))
            if all(sum(ch in cs for ch in cand) >= n for cs, n in self.rules):
                return cand
        raise VaultError(500, "unable to generate password: policy rules can't be satisfied",
                         multi=True)


# Vault's DefaultStringGenerator: 20 characters, at least one lower, upper, digit and "-".
DEFAULT_POLICY = PasswordPolicy(20, [(string.ascii_lowercase, 1), (string.ascii_uppercase, 1),
                                     (string.digits, 1), ("-", 1)])

def parse_policy(text):
    """Parses the HCL of a password policy; raises VaultError(400) like Vault on bad input."""
    text = hcl.strip_comments(text)
    rules = []
    found = hcl.blocks(text, "rule")
    for kind, body, _, _ in found:
        if kind != "charset":
            raise VaultError(400, f'invalid password policy: unrecognized rule type "{kind}"')
        charset = hcl.string_attr(body, "charset")
        if not charset:
            raise VaultError(400, "invalid password policy: charset rule needs a charset")
        rules.append((charset, hcl.int_attr(body, "min-chars") or 0))
    length = hcl.int_attr(hcl.without_blocks(text, found), "length")
    if length is None:
        raise VaultError(400, "invalid password policy: length must be specified")
    if length < 4 or length > 100:
        raise VaultError(400, "invalid password policy: length must be >= 4 and <= 100")
    if not rules:
        raise VaultError(400, "invalid password policy: no charset rules specified")
    if sum(n for _, n in rules) > length:
        raise VaultError(400, "invalid password policy: specified rules require at least "
                              f"{sum(n for _, n in rules)} characters but "
                              f"{length} is specified")
    return PasswordPolicy(length, rules)
