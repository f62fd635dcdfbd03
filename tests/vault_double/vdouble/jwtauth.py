"""The jwt auth method (vault-plugin-auth-jwt) with static validation keys: config, roles of
role_type jwt, and login with Vault's signature, claim and bound-claim checks and texts.

OIDC (role_type oidc, oidc_discovery_url) and JWKS URLs are refused with a clear message:
the double only validates with jwt_validation_pubkeys.
"""

import ipaddress

from . import jwtutil
from .durations import field_duration, parse_duration_second
from .errors import VaultError, internal
from .framework import Backend, Response, Route, get_bool, get_comma_list, get_str
from .globmatch import glob
from .tokenparams import LEGACY_FIELDS, TOKEN_FIELDS, TokenParams, issue_login_token

NAME = r"(?P<name>\w(([\w\-.]+)?\w)?)"
CONFIG_FIELDS = {"oidc_discovery_url", "oidc_discovery_ca_pem", "oidc_client_id",
                 "oidc_client_secret", "oidc_response_mode", "oidc_response_types", "jwks_url",
                 "jwks_ca_pem", "jwks_pairs", "default_role", "jwt_validation_pubkeys",
                 "jwt_supported_algs", "bound_issuer", "provider_config", "namespace_in_state",
                 "unsupported_critical_cert_extensions"}
ROLE_FIELDS = {"name", "role_type", "bound_audiences", "user_claim", "user_claim_json_pointer",
               "bound_subject", "bound_claims", "bound_claims_type", "claim_mappings",
               "groups_claim", "oidc_scopes", "allowed_redirect_uris", "verbose_oidc_logging",
               "max_age", "expiration_leeway", "not_before_leeway", "clock_skew_leeway"} \
    | TOKEN_FIELDS | set(LEGACY_FIELDS)
RESERVED_METADATA = ("role",)


class JwtConfig:
    def __init__(self):
        self.pubkeys_pem = []
        self.keys = []
        self.supported_algs = []
        self.bound_issuer = ""
        self.default_role = ""
        self.namespace_in_state = True


class JwtRole(TokenParams):
    def __init__(self, name):
        super().__init__()
        self.name = name
        self.role_type = "oidc"
        self.bound_audiences = []
        self.user_claim = ""
        self.user_claim_json_pointer = False
        self.bound_subject = ""
        self.bound_claims = {}
        self.bound_claims_type = "string"
        self.claim_mappings = {}
        self.groups_claim = ""
        self.oidc_scopes = []
        self.allowed_redirect_uris = []
        self.expiration_leeway = 0
        self.not_before_leeway = 0
        self.clock_skew_leeway = 0


class _Number(str):
    """A JSON number claim as Vault sees it (json.Number): never equal to a string value."""

    def __eq__(self, other):
        return isinstance(other, _Number) and str.__eq__(self, other)

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = str.__hash__


def get_claim(claims, name):
    """The plugin's getClaim: a top-level key, or a JSON pointer when it starts with "/"."""
    if not name.startswith("/"):
        val = claims.get(name)
    else:
        val = claims
        for part in name[1:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(val, dict) and part in val:
                val = val[part]
            elif isinstance(val, list) and part.isdigit() and int(part) < len(val):
                val = val[int(part)]
            else:
                return None
    if isinstance(val, float) or (isinstance(val, int) and not isinstance(val, bool)):
        return _Number(str(int(val)))
    return val


def normalize_list(raw):
    if isinstance(raw, list):
        return [(_Number(str(int(v))) if isinstance(v, (int, float)) and
                 not isinstance(v, bool) else v) for v in raw], True
    if isinstance(raw, (str, bool)):
        return [raw], True
    return None, False


def _go_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + " ".join(_go_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_value(x)}" for k, x in sorted(v.items())) + "]"
    return str(v)


def validate_bound_claims(bound_type, bound, claims):
    use_globs = bound_type == "glob"
    for claim, exp_value in bound.items():
        act = get_claim(claims, claim)
        if act is None:
            raise ValueError(f'claim "{claim}" is missing')
        act_vals, ok = normalize_list(act)
        if not ok:
            raise ValueError(f"received claim is not a string, bool, int or list: "
                             f"{_go_value(act)}")
        exp_vals, ok = normalize_list(exp_value)
        if not ok:
            raise ValueError(f"bound claim is not a string, bool, int or list: "
                             f"{_go_value(exp_value)}")
        found = False
        for e in exp_vals:
            for a in act_vals:
                if use_globs:
                    if not isinstance(e, str) or isinstance(e, _Number):
                        raise ValueError(f"received claim is not a glob string: {e}")
                    if not isinstance(a, str) or isinstance(a, _Number) or not glob(e, a):
                        continue
                elif type(a) is not type(e) or a != e:
                    continue
                found = True
                break
            if found:
                break
        if not found:
            raise ValueError(f'claim "{claim}" does not match any associated bound claim '
                             f'values')


def _remote_ok(addr, cidrs):
    try:
        ip = ipaddress.ip_address(addr)
        return any(ip in ipaddress.ip_network(c, strict=False) for c in cidrs)
    except ValueError:
        return False


def _signed_seconds(data, name):
    v = data.get(name)
    if isinstance(v, str) and v.strip().startswith("-"):
        try:
            return -parse_duration_second(v.strip()[1:])
        except ValueError as e:
            raise VaultError(400, f'error converting input {v} for field "{name}": {e}') \
                from None
    return field_duration(data, name)


class JwtBackend(Backend):
    type_name = "jwt"

    def __init__(self, core, mount):
        super().__init__()
        self.core = core
        self.mount = mount
        self.config = None
        self.roles = {}
        self.entities = {}
        self.routes = [
            Route(r"login", {"update": self.login}, "login",
                  fields={"role", "jwt", "distributed_claim_access_token"}, unauth={"update"}),
            Route(r"config", {"update": self.write_config, "read": self.read_config},
                  "config", fields=CONFIG_FIELDS),
            Route(r"role/?", {"list": self.list_roles}, "role"),
            Route(r"role/" + NAME, {"update": self.write_role, "read": self.read_role,
                                    "delete": self.delete_role},
                  "role", existence=True, fields=ROLE_FIELDS),
            Route(r"oidc/.*", {"update": self._no_oidc, "read": self._no_oidc}, "oidc",
                  unauth={"update", "read"}),
        ]

    @staticmethod
    def _no_oidc(req, m):
        raise VaultError(400, "OIDC is not supported by the Vault double (only JWT login "
                              "with jwt_validation_pubkeys)")

    # --- config ------------------------------------------------------------------------------

    def write_config(self, req, m):
        d = req.data
        pubkeys = get_comma_list(d, "jwt_validation_pubkeys")
        methods = sum(1 for x in (get_str(d, "oidc_discovery_url"), pubkeys,
                                  get_str(d, "jwks_url"), d.get("jwks_pairs")) if x)
        if methods != 1:
            raise VaultError(400, "exactly one of 'jwt_validation_pubkeys', 'jwks_url', "
                                  "'jwks_pairs' or 'oidc_discovery_url' must be set")
        for unsupported in ("oidc_discovery_url", "jwks_url", "jwks_pairs"):
            if d.get(unsupported):
                raise VaultError(400, f"'{unsupported}' is not supported by the Vault double: "
                                      f"configure 'jwt_validation_pubkeys' instead")
        cfg = JwtConfig()
        for pem in pubkeys:
            try:
                cfg.keys.append(jwtutil.parse_public_key_pem(pem))
            except ValueError as e:
                raise VaultError(400, f"error parsing public key: {e}") from None
        cfg.pubkeys_pem = pubkeys
        cfg.supported_algs = get_comma_list(d, "jwt_supported_algs")
        for alg in cfg.supported_algs:
            if alg not in jwtutil.ALL_ALGS:
                raise VaultError(400, f'invalid jwt_supported_algs: unsupported signing '
                                      f'algorithm "{alg}"')
        cfg.bound_issuer = get_str(d, "bound_issuer")
        cfg.default_role = get_str(d, "default_role")
        if "namespace_in_state" in d:
            cfg.namespace_in_state = get_bool(d, "namespace_in_state")
        self.config = cfg
        return None

    def read_config(self, req, m):
        c = self.config
        if c is None:
            return None
        return Response(data={
            "oidc_discovery_url": "", "oidc_discovery_ca_pem": "", "oidc_client_id": "",
            "oidc_response_mode": "", "oidc_response_types": [], "default_role": c.default_role,
            "jwt_validation_pubkeys": c.pubkeys_pem, "jwt_supported_algs": c.supported_algs,
            "jwks_url": "", "jwks_ca_pem": "", "jwks_pairs": [], "bound_issuer": c.bound_issuer,
            "provider_config": {}, "namespace_in_state": c.namespace_in_state,
            "unsupported_critical_cert_extensions": []})

    # --- roles -------------------------------------------------------------------------------

    def write_role(self, req, m):
        name = m.group("name").lower()
        d = req.data
        role = self.roles.get(name) or JwtRole(name)
        role_type = get_str(d, "role_type") or "oidc"
        if role_type not in ("jwt", "oidc"):
            raise VaultError(400, f"invalid 'role_type': {role_type}")
        if role_type == "oidc":
            raise VaultError(400, "role_type oidc is not supported by the Vault double: "
                                  "use role_type jwt")
        role.role_type = role_type
        role.parse_token_fields(d)
        if role.token_period > self.mount.sysview.max_ttl:
            raise VaultError(400, f"'period' of '\"{role.token_period}s\"' is greater than the "
                                  f"backend's maximum lease TTL of "
                                  f"'\"{self.mount.sysview.max_ttl}s\"'")
        for key in ("expiration_leeway", "not_before_leeway", "clock_skew_leeway"):
            if key in d:
                setattr(role, key, _signed_seconds(d, key))
        if "bound_audiences" in d:
            role.bound_audiences = get_comma_list(d, "bound_audiences")
        if "bound_subject" in d:
            role.bound_subject = get_str(d, "bound_subject")
        bound_type = get_str(d, "bound_claims_type") or "string"
        if bound_type not in ("string", "glob"):
            raise VaultError(400, f"invalid 'bound_claims_type': {bound_type}")
        role.bound_claims_type = bound_type
        if "bound_claims" in d:
            bc = d.get("bound_claims") or {}
            if not isinstance(bc, dict):
                raise VaultError(400, f'error converting input {bc} for field "bound_claims": '
                                      f'expected a map')
            if bound_type == "glob":
                for values in bc.values():
                    vals, ok = normalize_list(values)
                    if not ok:
                        raise VaultError(400, f"claim is not a string or list: "
                                              f"{_go_value(values)}")
                    for v in vals:
                        if not isinstance(v, str) or isinstance(v, _Number):
                            raise VaultError(400, f"claim is not a string: {_go_value(v)}")
            role.bound_claims = dict(bc)
        if "claim_mappings" in d:
            cm = d.get("claim_mappings") or {}
            if not isinstance(cm, dict):
                raise VaultError(400, f'error converting input {cm} for field '
                                      f'"claim_mappings": expected a map')
            targets = set()
            for target in cm.values():
                target = str(target)
                if target in RESERVED_METADATA:
                    raise VaultError(400, f'metadata key "{target}" is reserved and may not be '
                                          f'a mapping destination')
                if target in targets:
                    raise VaultError(400, f'multiple keys are mapped to metadata key '
                                          f'"{target}"')
                targets.add(target)
            role.claim_mappings = {str(k): str(v) for k, v in cm.items()}
        if "user_claim" in d:
            role.user_claim = get_str(d, "user_claim")
        if not role.user_claim:
            raise VaultError(400, "a user claim must be defined on the role")
        if "user_claim_json_pointer" in d:
            role.user_claim_json_pointer = get_bool(d, "user_claim_json_pointer")
        if "groups_claim" in d:
            role.groups_claim = get_str(d, "groups_claim")
        if "oidc_scopes" in d:
            role.oidc_scopes = get_comma_list(d, "oidc_scopes")
        if "allowed_redirect_uris" in d:
            role.allowed_redirect_uris = get_comma_list(d, "allowed_redirect_uris")
        if not (role.bound_audiences or role.token_bound_cidrs or role.bound_subject
                or role.bound_claims):
            raise VaultError(400, "must have at least one bound constraint when "
                                  "creating/updating a role")
        if role.token_max_ttl > 0 and role.token_ttl > role.token_max_ttl:
            raise VaultError(400, "ttl should not be greater than max ttl")
        warnings = []
        if role.token_max_ttl > self.mount.sysview.max_ttl:
            warnings.append("token max ttl is greater than the system or backend mount's "
                            "maximum TTL value; issued tokens' max TTL value will be truncated")
        self.roles[name] = role
        return Response(warnings=warnings) if warnings else None

    def read_role(self, req, m):
        role = self.roles.get(m.group("name").lower())
        if role is None:
            return None
        data = {"role_type": role.role_type, "bound_audiences": role.bound_audiences,
                "bound_subject": role.bound_subject, "bound_claims_type": role.bound_claims_type,
                "bound_claims": role.bound_claims or None,
                "claim_mappings": role.claim_mappings or None, "user_claim": role.user_claim,
                "user_claim_json_pointer": role.user_claim_json_pointer,
                "groups_claim": role.groups_claim, "oidc_scopes": role.oidc_scopes,
                "allowed_redirect_uris": role.allowed_redirect_uris,
                "verbose_oidc_logging": False, "max_age": 0,
                "expiration_leeway": role.expiration_leeway,
                "not_before_leeway": role.not_before_leeway,
                "clock_skew_leeway": role.clock_skew_leeway}
        data.update(role.token_data())
        return Response(data=data)

    def delete_role(self, req, m):
        self.roles.pop(m.group("name").lower(), None)
        return None

    def list_roles(self, req, m):
        if not self.roles:
            return None
        return Response(data={"keys": sorted(self.roles)})

    # --- login -------------------------------------------------------------------------------

    def login(self, req, m):
        cfg = self.config
        if cfg is None:
            raise VaultError(400, "could not load configuration")
        role_name = get_str(req.data, "role").lower() or cfg.default_role
        if not role_name:
            raise VaultError(400, "missing role")
        role = self.roles.get(role_name)
        if role is None:
            raise VaultError(400, f'role "{role_name}" could not be found')
        if role.role_type == "oidc":
            raise VaultError(400, "role with oidc role_type is not allowed")
        token = get_str(req.data, "jwt")
        if not token:
            raise VaultError(400, "missing token")
        if role.token_bound_cidrs and not _remote_ok(req.remote_addr, role.token_bound_cidrs):
            raise VaultError(403, "permission denied")
        expected = jwtutil.Expected(
            issuer=cfg.bound_issuer, subject=role.bound_subject,
            audiences=role.bound_audiences,
            algorithms=cfg.supported_algs or jwtutil.ALL_ALGS,
            not_before_leeway=role.not_before_leeway,
            expiration_leeway=role.expiration_leeway,
            clock_skew_leeway=role.clock_skew_leeway)
        try:
            claims = jwtutil.validate(token, cfg.keys, expected)
        except jwtutil.JWTError as e:
            raise VaultError(400, f"error validating token: {e}") from None
        if not role.bound_audiences:
            aud = claims.get("aud")
            if (isinstance(aud, list) and aud) or (isinstance(aud, str) and aud):
                raise VaultError(400, "audience claim found in JWT but no audiences bound to "
                                      "the role")
        user_raw = get_claim(claims, role.user_claim) if role.user_claim_json_pointer \
            else claims.get(role.user_claim)
        if user_raw is None:
            raise VaultError(400, f'claim "{role.user_claim}" not found in token')
        if not isinstance(user_raw, str) or isinstance(user_raw, _Number):
            raise VaultError(400, f'claim "{role.user_claim}" could not be converted to string')
        metadata = {}
        for source, target in role.claim_mappings.items():
            value = get_claim(claims, source)
            if value is not None:
                if not isinstance(value, str) or isinstance(value, _Number):
                    raise VaultError(400, f"error converting claim '{source}' to string")
                metadata[target] = str(value)
        metadata["role"] = role_name
        if role.groups_claim:
            groups = get_claim(claims, role.groups_claim)
            if groups is None:
                raise VaultError(400, f'failed to fetch groups: "{role.groups_claim}" claim '
                                      f'not found in token')
            _, ok = normalize_list(groups)
            if not ok:
                raise VaultError(400, f'"{role.groups_claim}" claim could not be converted to '
                                      f'string list')
        try:
            validate_bound_claims(role.bound_claims_type, role.bound_claims, claims)
        except ValueError as e:
            raise VaultError(400, f"error validating claims: {e}") from None

        def renew_source():
            current = self.roles.get(role_name)
            if current is None:
                raise internal(f"role {role_name} does not exist during renewal")
            return current.token_ttl, current.token_max_ttl, current.token_period

        return issue_login_token(self.core, self.mount, role, str(user_raw), metadata,
                                 renew_source, str(user_raw), self.entities)
