"""The token_* role fields every auth plugin shares (Vault's sdk/helper/tokenutil), and the
token a successful login creates (Vault's LoginCreateToken)."""

from .durations import PastMaxTTL, calculate_ttl, field_duration
from .errors import VaultError, internal
from .framework import Response, get_bool, get_comma_list, get_int, get_str
from .tokens import Token, new_uuid, sanitize_policies

TOKEN_FIELDS = {"token_bound_cidrs", "token_explicit_max_ttl", "token_max_ttl",
                "token_no_default_policy", "token_period", "token_policies", "token_type",
                "token_ttl", "token_num_uses"}
# Pre-tokenutil names that the plugins still accept (tokenutil.UpgradeValue).
LEGACY_FIELDS = {"policies": "token_policies", "bound_cidrs": "token_bound_cidrs",
                 "num_uses": "token_num_uses", "ttl": "token_ttl", "max_ttl": "token_max_ttl",
                 "period": "token_period"}


class TokenParams:
    """tokenutil.TokenParams."""

    def __init__(self):
        self.token_bound_cidrs = []
        self.token_explicit_max_ttl = 0
        self.token_max_ttl = 0
        self.token_no_default_policy = False
        self.token_period = 0
        self.token_policies = []
        self.token_type = "default"
        self.token_ttl = 0
        self.token_num_uses = 0
        # Token fields last written under their legacy name: reads echo those names too.
        self.legacy = set()

    def parse_token_fields(self, data):
        """ParseTokenFields plus UpgradeValue for the legacy names; 400 with Vault's texts."""
        d = dict(data)
        for old, new in LEGACY_FIELDS.items():
            if old in d:
                self.legacy.add(new)
                d.setdefault(new, d[old])
            elif new in d:
                self.legacy.discard(new)
        if "token_bound_cidrs" in d:
            self.token_bound_cidrs = get_comma_list(d, "token_bound_cidrs")
        if "token_explicit_max_ttl" in d:
            self.token_explicit_max_ttl = field_duration(d, "token_explicit_max_ttl")
        if "token_max_ttl" in d:
            self.token_max_ttl = field_duration(d, "token_max_ttl")
        if self.token_max_ttl < 0:
            raise VaultError(400, "'token_max_ttl' cannot be negative")
        if "token_no_default_policy" in d:
            self.token_no_default_policy = get_bool(d, "token_no_default_policy")
        if "token_period" in d:
            self.token_period = field_duration(d, "token_period")
        if self.token_period < 0:
            raise VaultError(400, "'token_period' cannot be negative")
        if "token_policies" in d:
            self.token_policies = get_comma_list(d, "token_policies")
        if "token_type" in d:
            tt = get_str(d, "token_type")
            if tt in ("", "default"):
                tt = "default"
            elif tt not in ("service", "batch", "default-service", "default-batch"):
                raise VaultError(400, f"invalid 'token_type' value \"{tt}\"")
            self.token_type = tt
        if "token_num_uses" in d:
            self.token_num_uses = get_int(d, "token_num_uses")
        if self.token_num_uses < 0:
            raise VaultError(400, "'token_num_uses' cannot be negative")
        if self.token_type in ("batch", "default-batch"):
            if self.token_period:
                raise VaultError(400, "'token_type' cannot be 'batch' or 'default_batch' when "
                                      "set to generate periodic tokens")
            if self.token_num_uses:
                raise VaultError(400, "'token_type' cannot be 'batch' or 'default_batch' when "
                                      "set to generate tokens with limited use count")
        if "token_ttl" in d:
            self.token_ttl = field_duration(d, "token_ttl")
        if self.token_ttl < 0:
            raise VaultError(400, "'token_ttl' cannot be negative")
        if self.token_ttl > 0 and self.token_max_ttl > 0 and self.token_ttl > self.token_max_ttl:
            raise VaultError(400, "'token_ttl' cannot be greater than 'token_max_ttl'")

    def token_data(self):
        """PopulateTokenData, plus the legacy names the plugins echo when set."""
        d = {"token_bound_cidrs": list(self.token_bound_cidrs),
             "token_explicit_max_ttl": self.token_explicit_max_ttl,
             "token_max_ttl": self.token_max_ttl,
             "token_no_default_policy": self.token_no_default_policy,
             "token_period": self.token_period,
             "token_policies": list(self.token_policies),
             "token_type": self.token_type,
             "token_ttl": self.token_ttl,
             "token_num_uses": self.token_num_uses}
        for old, new in LEGACY_FIELDS.items():
            if new in self.legacy and d[new]:
                d[old] = d[new]
        return d


def issue_login_token(core, mount, params, display_name, metadata, renew_source, entity_key,
                      entity_ids):
    """Creates the token of a successful login and answers like Vault (auth object).

    display_name: what the plugin sets; Vault prefixes the mount path ("kubernetes-...").
    renew_source: () -> (token_ttl, token_max_ttl, token_period) of the role now, raising a
    VaultError when the role is gone (the plugin's pathLoginRenew).
    entity_ids: the backend's alias-name -> entity id map (one entity per alias, like Vault).
    """
    if any(p.strip().lower() == "root" for p in params.token_policies):
        raise VaultError(400, "auth methods cannot create root tokens")
    token_type = "batch" if params.token_type in ("batch", "default-batch") else "service"
    policies = sanitize_policies(params.token_policies, not params.token_no_default_policy)
    try:
        ttl, warnings = calculate_ttl(mount.sysview, 0, params.token_ttl, params.token_period,
                                      params.token_max_ttl, params.token_explicit_max_ttl)
    except PastMaxTTL as e:
        raise internal(str(e)) from None
    source = mount.path[len("auth/"):].replace("/", "-")
    display = (source + display_name).rstrip("-")
    entity_id = entity_ids.setdefault(entity_key, new_uuid())
    tokens = core.tokens
    tok = Token(id=tokens.new_id(token_type), policies=policies, path=f"{mount.path}login",
                display_name=display, meta=dict(metadata), num_uses=params.token_num_uses,
                type=token_type, parent=None, entity_id=entity_id, ttl=ttl,
                explicit_max_ttl=params.token_explicit_max_ttl, period=params.token_period,
                renewable=True, renew_source=renew_source, sysview=mount.sysview,
                mount_accessor=mount.accessor)
    tokens.add(tok)
    return Response(auth=tok.auth_object(), warnings=warnings, wrapped_accessor=tok.accessor)
