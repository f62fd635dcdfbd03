"""The kubernetes auth method (vault-plugin-auth-kubernetes): config, roles and login, which
checks the service-account JWT locally and then asks the Kubernetes TokenReview API at
kubernetes_host, exactly as Vault does (tests point it at tests/vault_double/kube_api_double.py).
"""

import ipaddress
import json
import ssl
import urllib.error
import urllib.request

from . import jwtutil
from .errors import VaultError, internal
from .framework import Backend, Response, Route, get_bool, get_comma_list, get_str
from .globmatch import list_contains_glob
from .tokenparams import LEGACY_FIELDS, TOKEN_FIELDS, TokenParams, issue_login_token

NAME = r"(?P<name>\w(([\w\-.]+)?\w)?)"
CONFIG_FIELDS = {"kubernetes_host", "kubernetes_ca_cert", "token_reviewer_jwt", "pem_keys",
                 "issuer", "disable_iss_validation", "disable_local_ca_jwt",
                 "use_annotations_as_alias_metadata"}
ROLE_FIELDS = {"name", "bound_service_account_names", "bound_service_account_namespaces",
               "bound_service_account_namespace_selector", "audience",
               "alias_name_source"} | TOKEN_FIELDS | set(LEGACY_FIELDS)
ALIAS_SOURCES = ("serviceaccount_uid", "serviceaccount_name")
REVIEW_TIMEOUT = 30


class KubeConfig:
    def __init__(self):
        self.host = ""
        self.ca_cert = ""
        self.token_reviewer_jwt = ""
        self.pem_keys = []
        self.public_keys = []
        self.issuer = ""
        self.disable_iss_validation = True
        self.disable_local_ca_jwt = False
        self.use_annotations_as_alias_metadata = False


class KubeRole(TokenParams):
    def __init__(self, name):
        super().__init__()
        self.name = name
        self.sa_names = []
        self.sa_namespaces = []
        self.audience = ""
        self.alias_name_source = "serviceaccount_uid"


class ServiceAccountClaims:
    """The plugin's serviceAccount: projected-token claims, or the legacy secret-token ones."""

    def __init__(self, claims):
        kube = claims.get("kubernetes.io")
        self.projected = isinstance(kube, dict)
        if self.projected:
            sa = kube.get("serviceaccount") or {}
            self.name = str(sa.get("name", "")) if isinstance(sa, dict) else ""
            self.uid_value = str(sa.get("uid", "")) if isinstance(sa, dict) else ""
            self.namespace = str(kube.get("namespace", ""))
        else:
            self.name = str(claims.get("kubernetes.io/serviceaccount/service-account.name", ""))
            self.uid_value = str(claims.get("kubernetes.io/serviceaccount/service-account.uid",
                                            ""))
            self.namespace = str(claims.get("kubernetes.io/serviceaccount/namespace", ""))
        self.secret_name = str(claims.get("kubernetes.io/serviceaccount/secret.name", ""))
        self.audience = jwtutil.audiences_of(claims)

    def uid(self):
        if not self.uid_value:
            raise internal("could not parse UID from claims")
        return self.uid_value


def _has_pem_cert(text):
    return "-----BEGIN" in text and "-----END" in text


def _remote_ok(addr, cidrs):
    try:
        ip = ipaddress.ip_address(addr)
        return any(ip in ipaddress.ip_network(c, strict=False) for c in cidrs)
    except ValueError:
        return False


class KubernetesBackend(Backend):
    type_name = "kubernetes"

    def __init__(self, core, mount):
        super().__init__()
        self.core = core
        self.mount = mount
        self.config = None
        self.roles = {}
        self.entities = {}
        self.routes = [
            Route(r"login", {"update": self.login}, "login", fields={"role", "jwt"},
                  unauth={"update"}),
            Route(r"config", {"update": self.write_config, "read": self.read_config},
                  "config", fields=CONFIG_FIELDS),
            Route(r"role/?", {"list": self.list_roles}, "role"),
            Route(r"role/" + NAME, {"update": self.write_role, "read": self.read_role,
                                    "delete": self.delete_role},
                  "role", existence=True, fields=ROLE_FIELDS),
        ]

    # --- config ------------------------------------------------------------------------------

    def write_config(self, req, m):
        d = req.data
        host = get_str(d, "kubernetes_host")
        if not host:
            raise VaultError(400, "no host provided")
        cfg = KubeConfig()
        cfg.host = host
        cfg.ca_cert = get_str(d, "kubernetes_ca_cert")
        cfg.token_reviewer_jwt = get_str(d, "token_reviewer_jwt")
        cfg.pem_keys = get_comma_list(d, "pem_keys") if isinstance(d.get("pem_keys"), str) \
            else [str(k) for k in (d.get("pem_keys") or [])]
        cfg.issuer = get_str(d, "issuer")
        cfg.disable_iss_validation = get_bool(d, "disable_iss_validation", True)
        cfg.disable_local_ca_jwt = get_bool(d, "disable_local_ca_jwt", False)
        cfg.use_annotations_as_alias_metadata = get_bool(d, "use_annotations_as_alias_metadata")
        if cfg.use_annotations_as_alias_metadata:
            raise VaultError(400, "use_annotations_as_alias_metadata is not supported by the "
                                  "Vault double (it does not read service accounts)")
        if cfg.ca_cert and not _has_pem_cert(cfg.ca_cert):
            raise VaultError(400, "The provided CA PEM data contains no valid certificates")
        for pem in cfg.pem_keys:
            try:
                cfg.public_keys.append(jwtutil.parse_public_key_pem(pem))
            except ValueError as e:
                raise VaultError(400, str(e)) from None
        if cfg.ca_cert:
            try:
                ssl.create_default_context(cadata=cfg.ca_cert)
            except (ssl.SSLError, ValueError):
                raise VaultError(400, "The provided CA PEM data contains no valid "
                                      "certificates") from None
        self.config = cfg
        return None

    def read_config(self, req, m):
        c = self.config
        if c is None:
            return None
        return Response(data={"kubernetes_host": c.host, "kubernetes_ca_cert": c.ca_cert,
                              "pem_keys": c.pem_keys, "issuer": c.issuer,
                              "disable_iss_validation": c.disable_iss_validation,
                              "disable_local_ca_jwt": c.disable_local_ca_jwt,
                              "token_reviewer_jwt_set": c.token_reviewer_jwt != "",
                              "use_annotations_as_alias_metadata":
                                  c.use_annotations_as_alias_metadata})

    # --- roles -------------------------------------------------------------------------------

    def write_role(self, req, m):
        name = m.group("name")
        d = req.data
        role = self.roles.get(name.lower()) or KubeRole(name)
        role.parse_token_fields(d)
        if role.token_period > self.mount.sysview.max_ttl:
            raise VaultError(400, f"token period of '\"{role.token_period}s\"' is greater than "
                                  f"the backend's maximum lease TTL of "
                                  f"'\"{self.mount.sysview.max_ttl}s\"'")
        if role.token_max_ttl > 0 and role.token_ttl > role.token_max_ttl:
            raise VaultError(400, "token ttl should not be greater than token max ttl")
        warnings = []
        if role.token_max_ttl > self.mount.sysview.max_ttl:
            warnings.append("max_ttl is greater than the system or backend mount's maximum TTL "
                            "value; issued tokens' max TTL value will be truncated")
        if "bound_service_account_names" in d:
            role.sa_names = get_comma_list(d, "bound_service_account_names")
        if not role.sa_names:
            raise VaultError(400, '"bound_service_account_names" can not be empty')
        if len(role.sa_names) > 1 and "*" in role.sa_names:
            raise VaultError(400, 'can not mix "*" with values')
        if "bound_service_account_namespaces" in d:
            role.sa_namespaces = get_comma_list(d, "bound_service_account_namespaces")
        if get_str(d, "bound_service_account_namespace_selector"):
            raise VaultError(400, "bound_service_account_namespace_selector is not supported "
                                  "by the Vault double (it does not read namespaces)")
        if not role.sa_namespaces:
            raise VaultError(400, '"bound_service_account_namespaces" can not be empty if '
                                  '"bound_service_account_namespace_selector" is not set')
        if len(role.sa_namespaces) > 1 and "*" in role.sa_namespaces:
            raise VaultError(400, 'can not mix "*" with values')
        if "audience" in d:
            role.audience = get_str(d, "audience")
        if not role.audience.strip():
            warnings.append(f"Role {name} does not have an audience configured. While "
                            f"audiences are not required, consider specifying one if your use "
                            f"case would benefit from additional JWT claim verification.")
        if "alias_name_source" in d:
            src = get_str(d, "alias_name_source") or "serviceaccount_uid"
            if src not in ALIAS_SOURCES:
                raise VaultError(400, f'invalid alias_name_source "{src}", must be one of: '
                                      f'{", ".join(ALIAS_SOURCES)}')
            role.alias_name_source = src
        self.roles[name.lower()] = role
        return Response(warnings=warnings) if warnings else None

    def read_role(self, req, m):
        role = self.roles.get(m.group("name").lower())
        if role is None:
            return None
        data = {"bound_service_account_names": role.sa_names,
                "bound_service_account_namespaces": role.sa_namespaces,
                "bound_service_account_namespace_selector": ""}
        if role.audience:
            data["audience"] = role.audience
        data.update(role.token_data())
        data["alias_name_source"] = role.alias_name_source
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
        role_name = get_str(req.data, "role")
        if not role_name:
            raise VaultError(400, "missing role")
        token = get_str(req.data, "jwt")
        if not token:
            raise VaultError(400, "missing jwt")
        role = self.roles.get(role_name.lower())
        if role is None:
            raise VaultError(400, f'invalid role name "{role_name}"')
        if role.token_bound_cidrs and not _remote_ok(req.remote_addr, role.token_bound_cidrs):
            raise VaultError(403, "permission denied")
        cfg = self.config
        if cfg is None:
            raise VaultError(500, "could not load backend configuration")
        sa = self._parse_and_validate(token, role, cfg)
        alias = sa.uid() if role.alias_name_source == "serviceaccount_uid" \
            else f"{sa.namespace}/{sa.name}"
        want_aud = [role.audience] if role.audience else sa.audience
        # The TokenReview call may take a while: other requests go on meanwhile, as in Vault.
        with self.core.unlocked():
            ok = self._review(cfg, token, want_aud, sa)
        if not ok:
            raise VaultError(403, "permission denied")
        uid = sa.uid()
        metadata = {"service_account_uid": uid, "service_account_name": sa.name,
                    "service_account_namespace": sa.namespace,
                    "service_account_secret_name": sa.secret_name, "role": role_name}

        def renew_source():
            current = self.roles.get(role_name.lower())
            if current is None:
                raise internal(f"role {role_name} does not exist during renewal")
            return current.token_ttl, current.token_max_ttl, current.token_period

        return issue_login_token(self.core, self.mount, role, f"{sa.namespace}-{sa.name}",
                                 metadata, renew_source, alias, self.entities)

    def _parse_and_validate(self, token, role, cfg):
        expected = jwtutil.Expected(algorithms=jwtutil.K8S_ALGS)
        if not cfg.disable_iss_validation and cfg.issuer:
            expected.issuer = cfg.issuer
        if role.audience:
            expected.audiences = [role.audience]
        try:
            claims = jwtutil.validate(token, cfg.public_keys or None, expected,
                                      allow_missing_times=True)
        except jwtutil.JWTError as e:
            if "verifying token signature" in str(e):
                raise VaultError(403, "permission denied") from None
            raise VaultError(403, str(e)) from None
        try:
            sa = ServiceAccountClaims(claims)
        except jwtutil.JWTError as e:
            raise internal(str(e)) from None
        if len(role.sa_names) > 1 or role.sa_names[0] != "*":
            if not list_contains_glob(role.sa_names, sa.name):
                raise VaultError(403, "service account name not authorized")
        if not (role.sa_namespaces and (role.sa_namespaces[0] == "*" or
                                        list_contains_glob(role.sa_namespaces, sa.namespace))):
            raise VaultError(403, "namespace not authorized")
        return sa

    @staticmethod
    def _review(cfg, token, audiences, sa):
        """POST tokenreviews like the plugin's tokenReviewAPI; False on any failure (Vault
        logs the reason at debug level and answers "permission denied")."""
        url = cfg.host.rstrip("/") + "/apis/authentication.k8s.io/v1/tokenreviews"
        body = json.dumps({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                           "metadata": {"creationTimestamp": None},
                           "spec": {"token": token, "audiences": audiences or None},
                           "status": {"user": {}}}).encode()
        bearer = cfg.token_reviewer_jwt or token
        hdrs = {"Authorization": "Bearer " + bearer, "Content-Type": "application/json",
                "Accept": "application/json"}
        ctx = None
        if url.startswith("https://"):
            ctx = ssl.create_default_context(cadata=cfg.ca_cert) if cfg.ca_cert \
                else ssl.create_default_context()
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # No proxies from the environment: Go's client never proxies loopback addresses.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=ctx))
        try:
            r = opener.open(urllib.request.Request(url, body, hdrs, method="POST"),
                            timeout=REVIEW_TIMEOUT)
            with r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError:
            return False  # 401 "service account unauthorized" and every other API error
        except (OSError, ValueError):
            return False
        if status < 200 or status > 206:
            return False
        try:
            out = json.loads(raw)
            st = out.get("status")
            if isinstance(st, str) and st != "Success":
                return False
            st = st or {}
            if st.get("error") or not st.get("authenticated"):
                return False
            if audiences and not any(a in (st.get("audiences") or []) for a in audiences):
                return False
            user = st.get("user") or {}
            parts = str(user.get("username", "")).split(":")
        except (ValueError, AttributeError):
            return False
        if len(parts) != 4 or parts[0] != "system" or parts[1] != "serviceaccount":
            return False
        return (parts[3] == sa.name and str(user.get("uid", "")) == sa.uid_value
                and parts[2] == sa.namespace)
