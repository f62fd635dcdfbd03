#!/usr/bin/python3
"""A small Vault HTTP client for tests, and the operator set-up pgbouncer-vault needs.

Everything here goes through Vault's public API (sys/mounts, sys/auth, sys/policies/acl,
<mount>/config, <mount>/roles, auth/<mount>/role, ...), so the same calls configure the Vault
test double and a real Vault. Only DoubleControl talks to the double's /_double/ control API.

Library:
    c = VaultClient("http://127.0.0.1:8200", token)
    info = setup_pgbv(c, pg_url_template, "postgres", pg_password)
    secret_id = c.approle_secret_id(info["auth_mount"], info["approle"])
Command line: see `vault_client.py --help` and README.md.
"""

import argparse
import http.client
import json
import os
import ssl
import sys
import time
from urllib.parse import urlsplit

DEFAULT_CREATION_SQL = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
                        "VALID UNTIL '{{expiration}}';")


class VaultResponse:
    """Status, headers and the decoded JSON body (None for 204 or a non-JSON body)."""

    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def _get(self, key):
        return self.json.get(key) if isinstance(self.json, dict) else None

    @property
    def data(self):
        return self._get("data")

    @property
    def auth(self):
        return self._get("auth")

    @property
    def errors(self):
        return self._get("errors")

    @property
    def warnings(self):
        return self._get("warnings")

    @property
    def wrap_info(self):
        return self._get("wrap_info")


class VaultError(Exception):
    """A non-2xx answer. Never includes the request body (it may hold secrets)."""

    def __init__(self, method, path, resp):
        self.method = method
        self.path = path
        self.response = resp
        self.status = resp.status
        super().__init__(f"Vault {method} /v1/{path} answered {resp.status}: "
                         f"{resp.errors if resp.errors is not None else resp.raw[:200]!r}")


class VaultClient:
    """HTTP client for one Vault address and token.

    addr: "http://127.0.0.1:8200" or "https://..."; cacert: PEM file to verify HTTPS.
    """

    def __init__(self, addr, token=None, cacert=None, namespace=None, timeout=15.0,
                 request_header=True):
        self.addr = addr.rstrip("/")
        self.token = token
        self.cacert = cacert
        self.namespace = namespace
        self.timeout = timeout
        self.request_header = request_header
        u = urlsplit(self.addr)
        self._https = u.scheme == "https"
        self._host = u.hostname
        self._port = u.port or (443 if self._https else 80)
        self._ssl = None
        if self._https:
            self._ssl = ssl.create_default_context(cafile=cacert)

    def with_token(self, token):
        return VaultClient(self.addr, token, self.cacert, self.namespace, self.timeout,
                           self.request_header)

    # --- raw requests ------------------------------------------------------------------------

    def request(self, method, path, body=None, *, token=..., headers=None, wrap_ttl=None,
                check=True, timeout=None):
        """Sends one request to /v1/<path>; raises VaultError on >= 400 when check is set."""
        path = path.lstrip("/")
        hdrs = {"Accept": "application/json"}
        tok = self.token if token is ... else token
        if tok:
            hdrs["X-Vault-Token"] = tok
        if self.request_header:
            hdrs["X-Vault-Request"] = "true"
        if self.namespace:
            hdrs["X-Vault-Namespace"] = self.namespace
        if wrap_ttl:
            hdrs["X-Vault-Wrap-TTL"] = str(wrap_ttl)
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        resp = self.raw(method, "/v1/" + path, payload, hdrs, timeout)
        if check and resp.status >= 400:
            raise VaultError(method, path, resp)
        return resp

    def raw(self, method, url_path, payload=None, headers=None, timeout=None):
        """One HTTP exchange on a fresh connection (faults may break connections)."""
        t = self.timeout if timeout is None else timeout
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=t,
                                               context=self._ssl)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=t)
        try:
            conn.request(method, url_path, body=payload, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return VaultResponse(r.status, dict(r.getheaders()), data)
        finally:
            conn.close()

    def read(self, path, **kw):
        return self.request("GET", path, **kw)

    def write(self, path, body=None, **kw):
        return self.request("POST", path, body if body is not None else {}, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def list(self, path, **kw):
        return self.request("LIST", path, **kw)

    # --- operator set-up ---------------------------------------------------------------------

    def enable_secrets_engine(self, path, engine_type, default_lease_ttl=None,
                              max_lease_ttl=None):
        config = {}
        if default_lease_ttl is not None:
            config["default_lease_ttl"] = default_lease_ttl
        if max_lease_ttl is not None:
            config["max_lease_ttl"] = max_lease_ttl
        body = {"type": engine_type}
        if config:
            body["config"] = config
        return self.write(f"sys/mounts/{path}", body)

    def disable_secrets_engine(self, path):
        return self.delete(f"sys/mounts/{path}")

    def enable_auth(self, path, method_type):
        return self.write(f"sys/auth/{path}", {"type": method_type})

    def disable_auth(self, path):
        return self.delete(f"sys/auth/{path}")

    def put_policy(self, name, hcl):
        return self.write(f"sys/policies/acl/{name}", {"policy": hcl})

    def delete_policy(self, name):
        return self.delete(f"sys/policies/acl/{name}")

    def configure_postgres(self, mount, name, connection_url, username, password,
                           allowed_roles, verify_connection=True, check=True, **extra):
        """database/config/<name> for PostgreSQL; extra: password_policy, username_template..."""
        body = {"plugin_name": "postgresql-database-plugin", "connection_url": connection_url,
                "username": username, "password": password, "allowed_roles": allowed_roles,
                "verify_connection": verify_connection}
        body.update(extra)
        return self.write(f"{mount}/config/{name}", body, check=check)

    def write_db_role(self, mount, name, db_name, creation_statements, default_ttl, max_ttl,
                      revocation_statements=None, renew_statements=None):
        body = {"db_name": db_name, "creation_statements": creation_statements,
                "default_ttl": default_ttl, "max_ttl": max_ttl}
        if revocation_statements is not None:
            body["revocation_statements"] = revocation_statements
        if renew_statements is not None:
            body["renew_statements"] = renew_statements
        return self.write(f"{mount}/roles/{name}", body)

    def write_approle(self, mount, name, **fields):
        return self.write(f"auth/{mount}/role/{name}", fields)

    def approle_role_id(self, mount, name):
        return self.read(f"auth/{mount}/role/{name}/role-id").data["role_id"]

    def approle_secret_id(self, mount, name, wrap_ttl=None, **fields):
        """The secret_id, or with wrap_ttl the wrapping token that unwraps to it."""
        r = self.write(f"auth/{mount}/role/{name}/secret-id", fields, wrap_ttl=wrap_ttl)
        if wrap_ttl:
            return r.wrap_info["token"]
        return r.data["secret_id"]

    def approle_login(self, mount, role_id, secret_id, check=True):
        return self.request("POST", f"auth/{mount}/login",
                            {"role_id": role_id, "secret_id": secret_id}, token=None,
                            check=check)

    def create_token(self, **fields):
        return self.write("auth/token/create", fields)

    # --- what a controller does ----------------------------------------------------------------

    def lookup_self(self, **kw):
        return self.read("auth/token/lookup-self", **kw)

    def renew_self(self, increment=None, **kw):
        body = {} if increment is None else {"increment": increment}
        return self.write("auth/token/renew-self", body, **kw)

    def revoke_self(self, **kw):
        return self.write("auth/token/revoke-self", {}, **kw)

    def creds(self, mount, role, **kw):
        return self.read(f"{mount}/creds/{role}", **kw)

    def renew_lease(self, lease_id, increment=None, **kw):
        body = {"lease_id": lease_id}
        if increment is not None:
            body["increment"] = increment
        return self.request("PUT", "sys/leases/renew", body, **kw)

    def revoke_lease(self, lease_id, **kw):
        return self.request("PUT", "sys/leases/revoke", {"lease_id": lease_id}, **kw)

    def lookup_lease(self, lease_id, **kw):
        return self.request("PUT", "sys/leases/lookup", {"lease_id": lease_id}, **kw)

    def unwrap(self, wrapping_token, **kw):
        return self.request("POST", "sys/wrapping/unwrap", {}, token=wrapping_token, **kw)

    def health(self, **kw):
        return self.request("GET", "sys/health", token=None, check=False, **kw)

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                r = self.health(timeout=2)
                if r.status == 200:
                    return r
                last = f"status {r.status}"
            except OSError as e:
                last = str(e)
            time.sleep(0.05)
        raise TimeoutError(f"Vault at {self.addr} not ready after {timeout}s: {last}")


class DoubleControl:
    """The double's fault-injection and statistics API (/_double/, root token). Not Vault."""

    def __init__(self, client):
        self.c = client

    def _call(self, method, name, body=None, query=""):
        hdrs = {"X-Vault-Token": self.c.token}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        r = self.c.raw(method, f"/_double/{name}{query}", payload, hdrs)
        if r.status >= 400:
            raise VaultError(method, f"_double/{name}", r)
        return r.json

    def fault(self, mode, **kw):
        """Injects a fault: mode down|reset|slow|error|garbage|truncated|huge|sealed.

        Keywords: status, errors (list), delay_ms, count, for_ms, path (Vault path prefix),
        method, size (bytes, for huge).
        """
        spec = {"mode": mode}
        spec.update(kw)
        return self._call("POST", "fault", spec)

    def clear(self, stats=False):
        self._call("POST", "clear", {"stats": bool(stats)})

    def faults(self):
        return self._call("GET", "faults")["faults"]

    def stats(self, reset=False):
        return self._call("GET", "stats", query="?reset=true" if reset else "")


def controller_policy(db_mount, role):
    """The ACL policy a pgbv-controller token needs for one database role."""
    return (f'# pgbv-controller: fetch, renew and revoke credentials of {db_mount}/{role}.\n'
            f'path "{db_mount}/creds/{role}" {{\n  capabilities = ["read"]\n}}\n'
            'path "sys/leases/renew" {\n  capabilities = ["update"]\n}\n'
            'path "sys/leases/revoke" {\n  capabilities = ["update"]\n}\n'
            'path "sys/leases/lookup" {\n  capabilities = ["update"]\n}\n'
            'path "auth/token/lookup-self" {\n  capabilities = ["read"]\n}\n'
            'path "auth/token/renew-self" {\n  capabilities = ["update"]\n}\n'
            'path "auth/token/revoke-self" {\n  capabilities = ["update"]\n}\n')


def setup_pgbv(client, pg_url_template, pg_user, pg_password, *, db_mount="database",
               db_name="pg", role="app", default_ttl="1m", max_ttl="10m",
               creation_statements=None, revocation_statements=None, renew_statements=None,
               grant_roles=(), auth_mount="approle", approle="pgbv",
               policy="pgbv-controller", token_ttl="1h", token_max_ttl="24h",
               secret_id_num_uses=0, secret_id_ttl=0, enable=True, password_policy=None,
               username_template=None):
    """Configures Vault for pgbouncer-vault as an operator would; returns a summary dict.

    Mounts the database engine and AppRole (unless enable=False), configures the
    PostgreSQL connection and one dynamic role, writes the controller policy and an AppRole
    role bound to it. The summary has no secrets: role_id only (fetch a secret_id with
    client.approle_secret_id()).
    """
    creation = list(creation_statements or [DEFAULT_CREATION_SQL])
    for g in grant_roles:
        creation.append(f'GRANT "{g}" TO "{{{{name}}}}";')
    if enable:
        client.enable_secrets_engine(db_mount, "database")
        client.enable_auth(auth_mount, "approle")
    extra = {}
    if password_policy:
        extra["password_policy"] = password_policy
    if username_template:
        extra["username_template"] = username_template
    client.configure_postgres(db_mount, db_name, pg_url_template, pg_user, pg_password,
                              [role], **extra)
    client.write_db_role(db_mount, role, db_name, creation, default_ttl, max_ttl,
                         revocation_statements, renew_statements)
    hcl = controller_policy(db_mount, role)
    client.put_policy(policy, hcl)
    client.write_approle(auth_mount, approle, token_policies=[policy], token_ttl=token_ttl,
                         token_max_ttl=token_max_ttl, secret_id_num_uses=secret_id_num_uses,
                         secret_id_ttl=secret_id_ttl)
    return {"addr": client.addr, "db_mount": db_mount, "db_name": db_name, "role": role,
            "auth_mount": auth_mount, "approle": approle, "policy": policy,
            "role_id": client.approle_role_id(auth_mount, approle),
            "creds_path": f"{db_mount}/creds/{role}", "policy_hcl": hcl}


# --- static roles, KV v2, namespaces, HA (operator set-up; same calls as for Vault) -------------

DEFAULT_ROTATION_SQL = "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}';"

TOKEN_SELF_POLICY = ('path "auth/token/lookup-self" {\n  capabilities = ["read"]\n}\n'
                     'path "auth/token/renew-self" {\n  capabilities = ["update"]\n}\n'
                     'path "auth/token/revoke-self" {\n  capabilities = ["update"]\n}\n')


def static_role_policy(db_mount, role, token_self=True):
    """ACL policy to read one static role's credentials (and, by default, token self-service)."""
    hcl = (f'# pgbv-controller: read the static role {db_mount}/{role}.\n'
           f'path "{db_mount}/static-creds/{role}" {{\n  capabilities = ["read"]\n}}\n')
    return hcl + (TOKEN_SELF_POLICY if token_self else "")


def kv_policy(kv_mount, path, token_self=True):
    """ACL policy to read one KV v2 secret (data and metadata) and, by default, token self."""
    hcl = (f'# pgbv-controller: read the KV v2 secret {kv_mount}/{path}.\n'
           f'path "{kv_mount}/data/{path}" {{\n  capabilities = ["read"]\n}}\n'
           f'path "{kv_mount}/metadata/{path}" {{\n  capabilities = ["read"]\n}}\n')
    return hcl + (TOKEN_SELF_POLICY if token_self else "")


def enable_database(client, mount="database", tick_interval=None):
    """Mounts the database engine. tick_interval (seconds) sets the mount option
    rotation_queue_tick_interval: how often Vault checks for static roles due (default 5)."""
    body = {"type": "database"}
    if tick_interval is not None:
        body["options"] = {"rotation_queue_tick_interval": str(int(tick_interval))}
    return client.write(f"sys/mounts/{mount}", body)


def write_static_role(client, db_mount, role, db_name, username, rotation_period,
                      rotation_statements=None, check=True, **extra):
    """<mount>/static-roles/<role>. Vault rotates the user's password at once (unless
    extra has skip_import_rotation=True). extra: credential_type, password, ..."""
    body = {"db_name": db_name, "username": username, "rotation_period": rotation_period}
    if rotation_statements is not None:
        body["rotation_statements"] = list(rotation_statements)
    body.update(extra)
    return client.write(f"{db_mount}/static-roles/{role}", body, check=check)


def static_creds(client, db_mount, role, check=True):
    """GET <mount>/static-creds/<role>: data{username, password, ttl, last_vault_rotation,
    rotation_period}; no lease."""
    return client.read(f"{db_mount}/static-creds/{role}", check=check)


def rotate_static_role(client, db_mount, role, check=True):
    """POST <mount>/rotate-role/<role>: rotate now (204); the schedule restarts from now."""
    return client.write(f"{db_mount}/rotate-role/{role}", {}, check=check)


def setup_static_role(client, pg_url_template, pg_user, pg_password, username, *,
                      db_mount="database", db_name="pg", role="static-app",
                      rotation_period="1h", rotation_statements=None, enable=True,
                      tick_interval=None, configure=True, policy=None, auth_mount=None,
                      approle=None, token_ttl="1h", token_max_ttl="24h", **extra):
    """Configures a static role as an operator would; returns a summary dict (no secrets).

    The PostgreSQL user `username` must already exist (Vault never creates it). Mounts the
    database engine (enable; tick_interval as in enable_database), writes
    <db_mount>/config/<db_name> (configure) allowing `role`, then the static role, which
    rotates the password at once. With policy: writes static_role_policy() under that name;
    with auth_mount and approle too: mounts AppRole there (when enable) and writes the
    AppRole role bound to the policy.
    """
    if enable:
        enable_database(client, db_mount, tick_interval)
    if configure:
        client.configure_postgres(db_mount, db_name, pg_url_template, pg_user, pg_password,
                                  [role])
    write_static_role(client, db_mount, role, db_name, username, rotation_period,
                      rotation_statements, **extra)
    info = {"addr": client.addr, "db_mount": db_mount, "db_name": db_name, "role": role,
            "username": username, "creds_path": f"{db_mount}/static-creds/{role}"}
    if policy:
        hcl = static_role_policy(db_mount, role)
        client.put_policy(policy, hcl)
        info.update(policy=policy, policy_hcl=hcl)
        if auth_mount and approle:
            if enable:
                client.enable_auth(auth_mount, "approle")
            client.write_approle(auth_mount, approle, token_policies=[policy],
                                 token_ttl=token_ttl, token_max_ttl=token_max_ttl)
            info.update(auth_mount=auth_mount, approle=approle,
                        role_id=client.approle_role_id(auth_mount, approle))
    return info


def enable_kv2(client, mount="secret", wait=10.0, **config):
    """Mounts KV version 2 (type kv, options version=2) and waits until it answers, since
    a real Vault sets a new KV v2 mount up in the background. config: max_versions,
    cas_required, delete_version_after (written to <mount>/config)."""
    client.write(f"sys/mounts/{mount}", {"type": "kv", "options": {"version": "2"}})
    deadline = time.monotonic() + wait
    while True:
        r = client.read(f"{mount}/config", check=False)
        if r.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if config:
        client.write(f"{mount}/config", config)
    return r


def write_kv(client, mount, path, data, cas=None, check=True):
    """POST <mount>/data/<path> {data[, options{cas}]}; returns the new version (int), or the
    VaultResponse when check=False."""
    body = {"data": dict(data)}
    if cas is not None:
        body["options"] = {"cas": cas}
    r = client.write(f"{mount}/data/{path}", body, check=check)
    if not check:
        return r
    return r.data["version"]


def read_kv(client, mount, path, version=None, check=True):
    """GET <mount>/data/<path>[?version=N]: data{data{...}, metadata{version, ...}}."""
    q = f"?version={int(version)}" if version is not None else ""
    return client.read(f"{mount}/data/{path}{q}", check=check)


def delete_kv(client, mount, path, check=True):
    """DELETE <mount>/data/<path>: soft-deletes the latest version (reads then answer 404)."""
    return client.delete(f"{mount}/data/{path}", check=check)


def destroy_kv_metadata(client, mount, path, check=True):
    """DELETE <mount>/metadata/<path>: removes the key and every version."""
    return client.delete(f"{mount}/metadata/{path}", check=check)


def create_namespace(client, ns, check=True):
    """(Enterprise) POST sys/namespaces/<ns>, in client's namespace. The double needs
    --enterprise; Vault OSS answers 404."""
    return client.write(f"sys/namespaces/{ns}", {}, check=check)


def in_namespace(client, namespace):
    """A copy of client that sends X-Vault-Namespace: namespace."""
    c = client.with_token(client.token)
    c.namespace = namespace
    return c


def fault_rate_limited(control, path, **kw):
    """(double only) Makes requests under path answer 429 with Vault's rate-limit quota
    error text. kw: count, for_ms, method."""
    msg = 'request path "' + path + '": rate limit quota exceeded'
    return control.fault("error", status=429, errors=[msg], path=path, **kw)


def set_active_node(control, index):
    """(double with --standby-listen) Makes node index (0: --listen, 1: the standby
    listener) active; None: no active node (API requests then answer 503)."""
    return control._call("POST", "ha", {"active": index})


def ha_state(control):
    """(double with --standby-listen) {"active", "nodes": [addresses], "self"}."""
    return control._call("GET", "ha")


def fault_sealed(control, **kw):
    """(double only) Makes this node answer like a sealed Vault (503 Vault is sealed;
    sys/health 503 sealed:true). kw: count, for_ms, path, method."""
    return control.fault("sealed", **kw)


# --- kubernetes, jwt and cert auth methods (operator set-up; same calls as for Vault) ----------


class CertVaultClient(VaultClient):
    """A VaultClient that presents a TLS client certificate on every connection (cert auth)."""

    def __init__(self, addr, token=None, cacert=None, namespace=None, timeout=15.0,
                 request_header=True, client_cert=None, client_key=None):
        super().__init__(addr, token, cacert, namespace, timeout, request_header)
        self.client_cert = client_cert
        self.client_key = client_key
        if self._ssl is not None and client_cert:
            self._ssl.load_cert_chain(client_cert, client_key)

    def with_token(self, token):
        c = CertVaultClient(self.addr, token, self.cacert, self.namespace, self.timeout,
                            self.request_header, self.client_cert, self.client_key)
        return c


def with_client_cert(client, cert_file, key_file):
    """A copy of client (https) that presents cert_file/key_file as its TLS client cert."""
    return CertVaultClient(client.addr, client.token, client.cacert, client.namespace,
                           client.timeout, client.request_header, cert_file, key_file)


def _token_fields(policies, token_ttl, token_max_ttl, token_type, extra):
    body = {"token_policies": list(policies)}
    if token_ttl is not None:
        body["token_ttl"] = token_ttl
    if token_max_ttl is not None:
        body["token_max_ttl"] = token_max_ttl
    if token_type is not None:
        body["token_type"] = token_type
    body.update(extra)
    return body


def setup_kubernetes_auth(client, kube_host, *, mount="kubernetes", ca_pem=None,
                          token_reviewer_jwt=None, role="pgbv", sa_names=("pgbv",),
                          namespaces=("default",), audience=None,
                          policies=("pgbv-controller",), token_ttl="1h", token_max_ttl="24h",
                          token_type=None, pem_keys=None, issuer=None, enable=True,
                          **role_fields):
    """Enables the kubernetes auth method at auth/<mount> (unless enable=False), writes
    auth/<mount>/config (kubernetes_host, kubernetes_ca_cert, token_reviewer_jwt,
    disable_local_ca_jwt=true[, pem_keys, issuer]) and the role (bound service-account names
    and namespaces, audience, token_* fields; role_fields: any other role parameter).
    Returns a summary dict without secrets."""
    if enable:
        client.enable_auth(mount, "kubernetes")
    cfg = {"kubernetes_host": kube_host, "disable_local_ca_jwt": True}
    if ca_pem:
        cfg["kubernetes_ca_cert"] = ca_pem
    if token_reviewer_jwt:
        cfg["token_reviewer_jwt"] = token_reviewer_jwt
    if pem_keys:
        cfg["pem_keys"] = list(pem_keys)
    if issuer:
        cfg["issuer"] = issuer
        cfg["disable_iss_validation"] = False
    client.write(f"auth/{mount}/config", cfg)
    body = _token_fields(policies, token_ttl, token_max_ttl, token_type, role_fields)
    body["bound_service_account_names"] = list(sa_names)
    body["bound_service_account_namespaces"] = list(namespaces)
    if audience:
        body["audience"] = audience
    r = client.write(f"auth/{mount}/role/{role}", body)
    return {"addr": client.addr, "auth_mount": mount, "auth_method": "kubernetes",
            "role": role, "kube_host": kube_host, "warnings": r.warnings}


def setup_jwt_auth(client, pubkeys_pem, *, mount="jwt", bound_issuer=None, role="pgbv",
                   bound_audiences=("pgbv",), user_claim="sub", bound_subject=None,
                   bound_claims=None, claim_mappings=None, policies=("pgbv-controller",),
                   token_ttl="1h", token_max_ttl="24h", token_type=None,
                   jwt_supported_algs=None, enable=True, **role_fields):
    """Enables the jwt auth method at auth/<mount> (unless enable=False), writes
    auth/<mount>/config with static jwt_validation_pubkeys (PEM strings; [bound_issuer,
    jwt_supported_algs]) and a role_type=jwt role (bound_audiences, user_claim, bound_subject,
    bound_claims, claim_mappings, token_* fields; role_fields: any other role parameter).
    Returns a summary dict."""
    if enable:
        client.enable_auth(mount, "jwt")
    if isinstance(pubkeys_pem, str):
        pubkeys_pem = [pubkeys_pem]
    cfg = {"jwt_validation_pubkeys": list(pubkeys_pem)}
    if bound_issuer:
        cfg["bound_issuer"] = bound_issuer
    if jwt_supported_algs:
        cfg["jwt_supported_algs"] = list(jwt_supported_algs)
    client.write(f"auth/{mount}/config", cfg)
    body = _token_fields(policies, token_ttl, token_max_ttl, token_type, role_fields)
    body.update(role_type="jwt", user_claim=user_claim)
    if bound_audiences:
        body["bound_audiences"] = list(bound_audiences)
    if bound_subject:
        body["bound_subject"] = bound_subject
    if bound_claims:
        body["bound_claims"] = dict(bound_claims)
    if claim_mappings:
        body["claim_mappings"] = dict(claim_mappings)
    client.write(f"auth/{mount}/role/{role}", body)
    return {"addr": client.addr, "auth_mount": mount, "auth_method": "jwt", "role": role}


def setup_cert_auth(client, certificate_pem, *, mount="cert", name="pgbv",
                    allowed_common_names=None, allowed_dns_sans=None,
                    policies=("pgbv-controller",), token_ttl="1h", token_max_ttl="24h",
                    token_type=None, display_name=None, enable=True, **fields):
    """Enables the cert auth method at auth/<mount> (unless enable=False) and writes the
    trusted certificate role auth/<mount>/certs/<name>: certificate_pem is the CA (or the
    client certificate itself) that logins must chain to; allowed_common_names /
    allowed_dns_sans restrict them; token_* fields; fields: any other certs parameter.
    Vault only sees client certificates if its listener requests them (the double:
    --tls-client-ca). Returns a summary dict."""
    if enable:
        client.enable_auth(mount, "cert")
    body = _token_fields(policies, token_ttl, token_max_ttl, token_type, fields)
    body["certificate"] = certificate_pem
    if allowed_common_names:
        body["allowed_common_names"] = list(allowed_common_names)
    if allowed_dns_sans:
        body["allowed_dns_sans"] = list(allowed_dns_sans)
    if display_name:
        body["display_name"] = display_name
    r = client.write(f"auth/{mount}/certs/{name}", body)
    return {"addr": client.addr, "auth_mount": mount, "auth_method": "cert", "name": name,
            "warnings": r.warnings}


def kubernetes_login(client, role, jwt, mount="kubernetes", check=True):
    """POST auth/<mount>/login {role, jwt} without a token; the VaultResponse."""
    return client.request("POST", f"auth/{mount}/login", {"role": role, "jwt": jwt},
                          token=None, check=check)


def jwt_login(client, role, jwt, mount="jwt", check=True):
    """POST auth/<mount>/login {role, jwt} without a token; the VaultResponse."""
    return client.request("POST", f"auth/{mount}/login", {"role": role, "jwt": jwt},
                          token=None, check=check)


def cert_login(client, mount="cert", name=None, check=True):
    """POST auth/<mount>/login [{name}] without a token; client must present the client
    certificate (with_client_cert()). The VaultResponse."""
    return client.request("POST", f"auth/{mount}/login", {"name": name} if name else {},
                          token=None, check=check)


# --- command line ---------------------------------------------------------------------------


def _write_secret(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def _read_file(path):
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def _client_from_args(a):
    addr = a.addr
    if a.port_file:
        if a.cmd == "wait-ready":
            deadline = time.monotonic() + a.wait
            while not (os.path.exists(a.port_file) and _read_file(a.port_file)):
                if time.monotonic() > deadline:
                    sys.exit(f"vault_client: no port in {a.port_file} after {a.wait}s")
                time.sleep(0.05)
        addr = f"{'https' if a.tls else 'http'}://127.0.0.1:{_read_file(a.port_file)}"
    if not addr:
        sys.exit("vault_client: give --addr, --port-file or VAULT_ADDR")
    token = a.token
    if a.token_file:
        token = _read_file(a.token_file)
    return VaultClient(addr, token, cacert=a.cacert, timeout=a.timeout)


def _cmd_setup(c, a):
    info = setup_pgbv(c, a.pg_url, a.pg_user, _read_file(a.pg_password_file),
                      db_mount=a.db_mount, db_name=a.db_name, role=a.role,
                      default_ttl=a.default_ttl, max_ttl=a.max_ttl,
                      creation_statements=a.creation_sql or None, grant_roles=a.grant or (),
                      auth_mount=a.auth_mount, approle=a.approle, policy=a.policy,
                      token_ttl=a.token_ttl, token_max_ttl=a.token_max_ttl,
                      secret_id_num_uses=a.secret_id_num_uses, enable=not a.no_enable)
    if a.out_dir:
        os.makedirs(a.out_dir, exist_ok=True)
        _write_secret(os.path.join(a.out_dir, "role_id"), info["role_id"])
        secret = c.approle_secret_id(a.auth_mount, a.approle, wrap_ttl=a.wrap_ttl)
        _write_secret(os.path.join(a.out_dir, "secret_id.wrapped" if a.wrap_ttl
                                   else "secret_id"), secret)
        with open(os.path.join(a.out_dir, "policy.hcl"), "w", encoding="utf-8") as f:
            f.write(info["policy_hcl"])
    print(json.dumps({k: v for k, v in info.items() if k != "policy_hcl"}, indent=1))


def _cmd_secret_id(c, a):
    fields = {}
    if a.num_uses is not None:
        fields["num_uses"] = a.num_uses
    if a.ttl:
        fields["ttl"] = a.ttl
    _write_secret(a.out, c.approle_secret_id(a.auth_mount, a.approle, wrap_ttl=a.wrap_ttl,
                                             **fields))


def _cmd_token_create(c, a):
    fields = {"policies": a.policy or [], "renewable": not a.no_renewable, "type": a.type}
    for key in ("ttl", "explicit_max_ttl", "period", "display_name"):
        if getattr(a, key):
            fields[key] = getattr(a, key)
    r = c.create_token(**fields)
    _write_secret(a.out, r.auth["client_token"])
    print(json.dumps({"accessor": r.auth["accessor"], "lease_duration":
                      r.auth["lease_duration"], "policies": r.auth["policies"],
                      "warnings": r.warnings}))


def _cmd_login(c, a):
    r = c.approle_login(a.auth_mount, _read_file(a.role_id_file), _read_file(a.secret_id_file))
    _write_secret(a.out, r.auth["client_token"])
    print(json.dumps({"accessor": r.auth["accessor"], "lease_duration":
                      r.auth["lease_duration"], "policies": r.auth["policies"]}))


def _cmd_fault(c, a):
    kw = {}
    for key in ("status", "delay_ms", "count", "for_ms", "path", "method", "size"):
        if getattr(a, key) is not None:
            kw[key] = getattr(a, key)
    if a.error:
        kw["errors"] = a.error
    print(json.dumps(DoubleControl(c).fault(a.mode, **kw)))


def _cmd_request(c, a):
    body = json.loads(a.data) if a.data else None
    r = c.request(a.method.upper(), a.path, body, check=False, wrap_ttl=a.wrap_ttl)
    print(r.status)
    if r.raw:
        print(r.raw.decode("utf-8", "replace").rstrip())
    return 0 if r.status < 400 else 1


def main(argv=None):
    p = argparse.ArgumentParser(description="Configure and drive Vault (or the Vault double).")
    p.add_argument("--addr", default=os.environ.get("VAULT_ADDR"),
                   help="Vault address (default $VAULT_ADDR)")
    p.add_argument("--port-file", help="the double's port file; addr becomes 127.0.0.1:PORT")
    p.add_argument("--tls", action="store_true", help="with --port-file: use https")
    p.add_argument("--token", default=os.environ.get("VAULT_TOKEN"),
                   help="token (default $VAULT_TOKEN); prefer --token-file")
    p.add_argument("--token-file", help="read the token from this file")
    p.add_argument("--cacert", default=os.environ.get("VAULT_CACERT"),
                   help="CA bundle for HTTPS (default $VAULT_CACERT)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("wait-ready", help="wait until sys/health answers 200")
    s.add_argument("--wait", type=float, default=10.0, help="seconds to wait")

    sub.add_parser("health", help="print sys/health")

    s = sub.add_parser("setup-pgbv", help="mount, configure and write policy + AppRole")
    s.add_argument("--pg-url", required=True,
                   help="connection_url with {{username}}/{{password}}")
    s.add_argument("--pg-user", required=True, help="PostgreSQL admin user Vault uses")
    s.add_argument("--pg-password-file", required=True, help="file with that user's password")
    s.add_argument("--db-mount", default="database")
    s.add_argument("--db-name", default="pg", help="name of the connection config")
    s.add_argument("--role", default="app", help="dynamic role name")
    s.add_argument("--default-ttl", default="1m")
    s.add_argument("--max-ttl", default="10m")
    s.add_argument("--creation-sql", action="append",
                   help="creation statement (repeatable; default CREATE ROLE ... VALID UNTIL)")
    s.add_argument("--grant", action="append",
                   help="also GRANT this existing role to each new user (repeatable)")
    s.add_argument("--auth-mount", default="approle")
    s.add_argument("--approle", default="pgbv")
    s.add_argument("--policy", default="pgbv-controller")
    s.add_argument("--token-ttl", default="1h")
    s.add_argument("--token-max-ttl", default="24h")
    s.add_argument("--secret-id-num-uses", type=int, default=0)
    s.add_argument("--no-enable", action="store_true",
                   help="the engines are already mounted; only configure")
    s.add_argument("--out-dir", help="write role_id, secret_id (or secret_id.wrapped with "
                                     "--wrap-ttl) and policy.hcl here (files 0600)")
    s.add_argument("--wrap-ttl", help="deliver the secret_id response-wrapped, e.g. 60s")

    s = sub.add_parser("secret-id", help="generate an AppRole secret_id into a file")
    s.add_argument("--auth-mount", default="approle")
    s.add_argument("--approle", default="pgbv")
    s.add_argument("--out", required=True)
    s.add_argument("--wrap-ttl")
    s.add_argument("--num-uses", type=int)
    s.add_argument("--ttl")

    s = sub.add_parser("token-create", help="create a token into a file")
    s.add_argument("--out", required=True)
    s.add_argument("--policy", action="append")
    s.add_argument("--ttl")
    s.add_argument("--explicit-max-ttl")
    s.add_argument("--period")
    s.add_argument("--display-name")
    s.add_argument("--type", default="service", choices=("service", "batch"))
    s.add_argument("--no-renewable", action="store_true")

    s = sub.add_parser("login-approle", help="AppRole login; writes the client token")
    s.add_argument("--auth-mount", default="approle")
    s.add_argument("--role-id-file", required=True)
    s.add_argument("--secret-id-file", required=True)
    s.add_argument("--out", required=True)

    s = sub.add_parser("fault", help="(double only) inject a fault")
    s.add_argument("--mode", required=True,
                   choices=("down", "reset", "slow", "error", "garbage", "truncated", "huge",
                            "sealed"))
    s.add_argument("--status", type=int)
    s.add_argument("--error", action="append", help="error message (repeatable)")
    s.add_argument("--delay-ms", type=int)
    s.add_argument("--count", type=int)
    s.add_argument("--for-ms", type=int)
    s.add_argument("--path", help="only Vault paths with this prefix, e.g. sys/leases/renew")
    s.add_argument("--method")
    s.add_argument("--size", type=int, help="body size in bytes for huge")

    s = sub.add_parser("clear", help="(double only) remove all faults")
    s.add_argument("--stats", action="store_true", help="also reset the counters")

    s = sub.add_parser("stats", help="(double only) print counters and live leases")
    s.add_argument("--reset", action="store_true")

    s = sub.add_parser("setup-static-role",
                       help="mount database (unless --no-enable), configure PostgreSQL and write "
                            "a static role for an existing user (Vault rotates it at once)")
    s.add_argument("--pg-url", required=True,
                   help="connection_url with {{username}}/{{password}}")
    s.add_argument("--pg-user", required=True, help="PostgreSQL admin user Vault uses")
    s.add_argument("--pg-password-file", required=True, help="file with that user's password")
    s.add_argument("--username", required=True, help="the existing PostgreSQL user to manage")
    s.add_argument("--db-mount", default="database")
    s.add_argument("--db-name", default="pg")
    s.add_argument("--role", default="static-app")
    s.add_argument("--rotation-period", default="1h")
    s.add_argument("--rotation-sql", action="append", help="rotation statement (repeatable)")
    s.add_argument("--tick-interval", type=int,
                   help="mount option rotation_queue_tick_interval in seconds (default 5)")
    s.add_argument("--policy", help="also write static_role_policy() under this name")
    s.add_argument("--no-enable", action="store_true")
    s.add_argument("--no-configure", action="store_true",
                   help="the connection config exists; only write the role")

    s = sub.add_parser("kv-put", help="write a KV v2 secret; prints the new version")
    s.add_argument("--mount", default="secret")
    s.add_argument("--path", required=True)
    s.add_argument("--enable", action="store_true", help="mount KV v2 there first")
    s.add_argument("--cas", type=int)
    s.add_argument("fields", nargs="+", metavar="KEY=VALUE|KEY=@FILE",
                   help="fields; @FILE reads the value from a file (for passwords)")

    s = sub.add_parser("request", help="send any request; prints status and body")
    s.add_argument("method")
    s.add_argument("path", help="Vault path without /v1/")
    s.add_argument("--data", help="JSON body")
    s.add_argument("--wrap-ttl")

    a = p.parse_args(argv)
    c = _client_from_args(a)
    try:
        if a.cmd == "wait-ready":
            c.wait_ready(a.wait)
        elif a.cmd == "health":
            print(c.health().raw.decode().rstrip())
        elif a.cmd == "setup-pgbv":
            _cmd_setup(c, a)
        elif a.cmd == "secret-id":
            _cmd_secret_id(c, a)
        elif a.cmd == "token-create":
            _cmd_token_create(c, a)
        elif a.cmd == "login-approle":
            _cmd_login(c, a)
        elif a.cmd == "fault":
            _cmd_fault(c, a)
        elif a.cmd == "clear":
            DoubleControl(c).clear(a.stats)
        elif a.cmd == "stats":
            print(json.dumps(DoubleControl(c).stats(a.reset), indent=1))
        elif a.cmd == "setup-static-role":
            info = setup_static_role(
                c, a.pg_url, a.pg_user, _read_file(a.pg_password_file), a.username,
                db_mount=a.db_mount, db_name=a.db_name, role=a.role,
                rotation_period=a.rotation_period, rotation_statements=a.rotation_sql,
                enable=not a.no_enable, tick_interval=a.tick_interval,
                configure=not a.no_configure, policy=a.policy)
            print(json.dumps({k: v for k, v in info.items() if k != "policy_hcl"}, indent=1))
        elif a.cmd == "kv-put":
            if a.enable:
                enable_kv2(c, a.mount)
            data = {}
            for item in a.fields:
                key, sep, value = item.partition("=")
                if not sep:
                    sys.exit(f"vault_client: kv-put field {item!r} is not KEY=VALUE")
                data[key] = _read_file(value[1:]) if value.startswith("@") else value
            print(write_kv(c, a.mount, a.path, data, cas=a.cas))
        elif a.cmd == "request":
            return _cmd_request(c, a)
    except (VaultError, OSError, TimeoutError) as e:
        print(f"vault_client: {a.cmd} failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
