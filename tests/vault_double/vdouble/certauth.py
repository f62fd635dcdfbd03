"""The cert auth method (Vault's builtin/credential/cert): trusted certificate roles and login
with the TLS client certificate of the request's connection, with Vault's texts.

The transport hands over the peer's leaf certificate (req.peer_cert_der; Python's ssl does
not expose the rest of the chain), so a client certificate must be issued directly by a CA
configured in a role, or be configured itself (non-CA role). The double's listener has to
request client certificates: vault_double.py --tls-client-ca.
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import VaultError, internal
from .framework import Backend, Response, Route, get_bool, get_comma_list, get_str
from .globmatch import glob
from .httpserver import current_request
from .tokenparams import LEGACY_FIELDS, TOKEN_FIELDS, TokenParams, issue_login_token

NAME = r"(?P<name>\w(([\w\-.]+)?\w)?)"
CERT_FIELDS = {"name", "certificate", "display_name", "allowed_names", "allowed_common_names",
               "allowed_dns_sans", "allowed_email_sans", "allowed_uri_sans",
               "allowed_organizational_units", "required_extensions",
               "allowed_metadata_extensions", "ocsp_enabled", "ocsp_ca_certificates",
               "ocsp_servers_override", "ocsp_fail_open", "ocsp_query_all_servers",
               "lease"} | TOKEN_FIELDS | set(LEGACY_FIELDS)
CONFIG_FIELDS = {"disable_binding", "enable_identity_alias_metadata", "ocsp_cache_size",
                 "role_cache_size", "enable_metadata_on_failures"}
LIST_FIELDS = ("allowed_names", "allowed_common_names", "allowed_dns_sans",
               "allowed_email_sans", "allowed_uri_sans", "allowed_organizational_units",
               "required_extensions", "allowed_metadata_extensions")


def parse_pem(text):
    """Vault's parsePEM: every CERTIFICATE block that parses, in order."""
    out = []
    marker = "-----BEGIN CERTIFICATE-----"
    pos = 0
    while True:
        start = text.find(marker, pos)
        if start < 0:
            return out
        end = text.find("-----END CERTIFICATE-----", start)
        if end < 0:
            return out
        end += len("-----END CERTIFICATE-----")
        try:
            out.append(x509.load_pem_x509_certificate(text[start:end].encode()))
        except ValueError:
            pass
        pos = end


def _is_ca(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _eku(cert):
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def _sans(cert, kind):
    try:
        return cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(kind)
    except x509.ExtensionNotFound:
        return []


def _key_id(cert, cls):
    try:
        v = cert.extensions.get_extension_for_class(cls).value
        return (v.digest if cls is x509.SubjectKeyIdentifier else v.key_identifier) or b""
    except x509.ExtensionNotFound:
        return b""


def _hex(buf):
    """certutil.GetHexFormatted(buf, ":")."""
    return ":".join(f"{b:02x}" for b in buf)


def _cn(cert):
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else ""


def _signed_by(leaf, ca):
    if leaf.issuer != ca.subject:
        return False
    key = ca.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(),
                       leaf.signature_hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(leaf.signature, leaf.tbs_certificate_bytes,
                       ec.ECDSA(leaf.signature_hash_algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(leaf.signature, leaf.tbs_certificate_bytes)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _der_string(raw):
    """asn1.Unmarshal into a Go string: the content of a DER string type, else ""."""
    if len(raw) < 2 or raw[0] not in (0x0C, 0x13, 0x16, 0x14, 0x1A, 0x1E):
        return ""
    n, i = raw[1], 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(raw[2:2 + k], "big")
        i = 2 + k
    try:
        return raw[i:i + n].decode("utf-8")
    except UnicodeDecodeError:
        return ""


def _ext_values(cert):
    out = {}
    for ext in cert.extensions:
        raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
        out[ext.oid.dotted_string] = _der_string(raw)
    return out


class CertEntry(TokenParams):
    def __init__(self, name):
        super().__init__()
        self.name = name
        self.certificate = ""
        self.display_name = ""
        for f in LIST_FIELDS:
            setattr(self, f, [])
        self.ocsp_enabled = False


class CertBackend(Backend):
    type_name = "cert"

    def __init__(self, core, mount):
        super().__init__()
        self.core = core
        self.mount = mount
        self.certs = {}
        self.entities = {}
        self.disable_binding = False
        self.enable_identity_alias_metadata = False
        self.routes = [
            Route(r"login", {"update": self.login}, "login", fields={"name"},
                  unauth={"update"}),
            Route(r"config", {"update": self.write_config, "read": self.read_config},
                  "config", fields=CONFIG_FIELDS),
            Route(r"certs/?", {"list": self.list_certs}, "certs"),
            Route(r"certs/" + NAME, {"update": self.write_cert, "read": self.read_cert,
                                     "delete": self.delete_cert},
                  "certs", existence=True, fields=CERT_FIELDS),
        ]

    # --- config ------------------------------------------------------------------------------

    def write_config(self, req, m):
        d = req.data
        if "disable_binding" in d:
            self.disable_binding = get_bool(d, "disable_binding")
        if "enable_identity_alias_metadata" in d:
            self.enable_identity_alias_metadata = get_bool(d, "enable_identity_alias_metadata")
        return None

    def read_config(self, req, m):
        return Response(data={"disable_binding": self.disable_binding,
                              "enable_identity_alias_metadata":
                                  self.enable_identity_alias_metadata,
                              "ocsp_cache_size": 100, "role_cache_size": 200,
                              "enable_metadata_on_failures": False})

    # --- trusted certificates ------------------------------------------------------------------

    def write_cert(self, req, m):
        name = m.group("name").lower()
        d = req.data
        entry = self.certs.get(name) or CertEntry(name)
        if "certificate" in d:
            entry.certificate = get_str(d, "certificate")
        if "display_name" in d:
            entry.display_name = get_str(d, "display_name")
        for f in LIST_FIELDS:
            if f in d:
                setattr(entry, f, get_comma_list(d, f))
        if "ocsp_enabled" in d:
            entry.ocsp_enabled = get_bool(d, "ocsp_enabled")
            if entry.ocsp_enabled:
                raise VaultError(400, "ocsp_enabled is not supported by the Vault double")
        data = dict(d)
        if "token_ttl" not in data and "ttl" not in data and "lease" in data:
            data["token_ttl"] = data["lease"]
        entry.parse_token_fields(data)
        warnings = []
        sv = self.mount.sysview
        if entry.token_ttl > sv.default_ttl:
            warnings.append(f"Given ttl of {entry.token_ttl} seconds is greater than current "
                            f"mount/system default of {sv.default_ttl} seconds")
        if entry.token_max_ttl > sv.max_ttl:
            warnings.append(f"Given max_ttl of {entry.token_max_ttl} seconds is greater than "
                            f"current mount/system default of {sv.max_ttl} seconds")
        if entry.token_max_ttl and entry.token_ttl > entry.token_max_ttl:
            raise VaultError(400, "ttl should be shorter than max_ttl")
        if entry.token_period > sv.max_ttl:
            warnings.append(f"Given period of {entry.token_period} seconds is greater than the "
                            f"backend's maximum TTL of {sv.max_ttl} seconds")
        if not entry.display_name:
            entry.display_name = name
        parsed = parse_pem(entry.certificate)
        if not parsed:
            raise VaultError(400, "failed to parse certificate")
        eku = _eku(parsed[0])
        if not _is_ca(parsed[0]) and eku is not None and not (
                ExtendedKeyUsageOID.CLIENT_AUTH in eku or
                ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku):
            raise VaultError(400, "nonCA certificates should have TLS client authentication set "
                                  "as an extended key usage")
        self.certs[name] = entry
        return Response(warnings=warnings) if warnings else None

    def read_cert(self, req, m):
        e = self.certs.get(m.group("name").lower())
        if e is None:
            return None
        data = {"certificate": e.certificate, "display_name": e.display_name,
                "ocsp_enabled": e.ocsp_enabled, "ocsp_ca_certificates": "",
                "ocsp_servers_override": [], "ocsp_fail_open": False,
                "ocsp_query_all_servers": False}
        for f in LIST_FIELDS:
            data[f] = getattr(e, f)
        data.update(e.token_data())
        return Response(data=data)

    def delete_cert(self, req, m):
        self.certs.pop(m.group("name").lower(), None)
        return None

    def list_certs(self, req, m):
        if not self.certs:
            return None
        return Response(data={"keys": sorted(self.certs)})

    # --- login -------------------------------------------------------------------------------

    def _matches(self, leaf, e):
        cn = _cn(leaf)
        dns = _sans(leaf, x509.DNSName)
        emails = _sans(leaf, x509.RFC822Name)
        uris = _sans(leaf, x509.UniformResourceIdentifier)
        ous = [a.value for a in leaf.subject.get_attributes_for_oid(
            NameOID.ORGANIZATIONAL_UNIT_NAME)]
        if e.allowed_names and not any(glob(p, n) for p in e.allowed_names
                                       for n in [cn, *dns, *emails]):
            return False
        if e.allowed_common_names and not any(glob(p, cn) for p in e.allowed_common_names):
            return False
        for patterns, values in ((e.allowed_dns_sans, dns), (e.allowed_email_sans, emails),
                                 (e.allowed_uri_sans, uris),
                                 (e.allowed_organizational_units, ous)):
            if patterns and not any(glob(p, v) for p in patterns for v in values):
                return False
        if e.required_extensions:
            exts = _ext_values(leaf)
            for req_ext in e.required_extensions:
                oid, _, pattern = req_ext.partition(":")
                if oid not in exts or not glob(pattern, exts[oid]):
                    return False
        return True

    def verify(self, req, cert_name):
        """verifyCredentials: the matching CertEntry, or a VaultError with Vault's text."""
        if not getattr(req, "tls", False):
            raise VaultError(400, "tls connection required")
        der = getattr(req, "peer_cert_der", None)
        if not der:
            raise VaultError(400, "client certificate must be supplied")
        leaf = x509.load_der_x509_certificate(der)
        names = [cert_name.lower()] if cert_name else sorted(self.certs)
        trusted, non_ca = [], []
        for n in names:
            e = self.certs.get(n)
            parsed = parse_pem(e.certificate) if e is not None else []
            if not parsed:
                continue
            (trusted if _is_ca(parsed[0]) else non_ca).append((e, parsed))
        for e, parsed in non_ca:
            t = parsed[0]
            if t.serial_number == leaf.serial_number and \
                    _key_id(t, x509.AuthorityKeyIdentifier) == \
                    _key_id(leaf, x509.AuthorityKeyIdentifier) and self._matches(leaf, e):
                return e
        # x509 Verify with ExtKeyUsageClientAuth: a chain leaf -> configured CA.
        now = datetime.datetime.utcnow()
        eku = _eku(leaf)
        usable = eku is None or ExtendedKeyUsageOID.CLIENT_AUTH in eku or \
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku
        chains = []
        for e, parsed in trusted:
            for ca in parsed:
                if _signed_by(leaf, ca):
                    chains.append(ca)
        if chains and not (leaf.not_valid_before <= now <= leaf.not_valid_after):
            raise internal(f"failed to verify client's certificate: x509: certificate has "
                           f"expired or is not yet valid: current time "
                           f"{now.strftime('%Y-%m-%dT%H:%M:%SZ')} is after "
                           f"{leaf.not_valid_after.strftime('%Y-%m-%dT%H:%M:%SZ')}")
        if chains and not usable:
            raise internal("failed to verify client's certificate: x509: certificate specifies "
                           "an incompatible key usage")
        if not chains:
            raise VaultError(400, "invalid certificate or no client certificate supplied")
        for e, parsed in trusted:
            if any(ca in chains for ca in parsed) and self._matches(leaf, e):
                return e
        raise VaultError(400, "no chain matching all constraints could be found for this "
                              "login certificate")

    def login(self, req, m):
        entry = self.verify(req, get_str(req.data, "name"))
        if entry.token_bound_cidrs:
            try:
                ip = ipaddress.ip_address(req.remote_addr)
                ok = any(ip in ipaddress.ip_network(c, strict=False)
                         for c in entry.token_bound_cidrs)
            except ValueError:
                ok = False
            if not ok:
                raise VaultError(403, "permission denied")
        leaf = x509.load_der_x509_certificate(req.peer_cert_der)
        metadata = {"cert_name": entry.name, "common_name": _cn(leaf),
                    "serial_number": str(leaf.serial_number),
                    "subject_key_id": _hex(_key_id(leaf, x509.SubjectKeyIdentifier)),
                    "authority_key_id": _hex(_key_id(leaf, x509.AuthorityKeyIdentifier))}
        exts = _ext_values(leaf)
        for oid in entry.allowed_metadata_extensions:
            if oid in exts:
                metadata[oid.replace(".", "-")] = exts[oid]
        name = entry.name
        policies = list(entry.token_policies)
        skid, akid = metadata["subject_key_id"], metadata["authority_key_id"]

        def renew_source():
            # pathLoginRenew: the renewing connection must present a matching certificate of
            # the same identity, unless the method's config has disable_binding.
            if not self.disable_binding:
                req_now = current_request()
                if req_now is None:
                    raise VaultError(400, "tls connection required")
                self.verify(req_now, name)
                now_leaf = x509.load_der_x509_certificate(req_now.peer_cert_der)
                if _hex(_key_id(now_leaf, x509.SubjectKeyIdentifier)) != skid and \
                        _hex(_key_id(now_leaf, x509.AuthorityKeyIdentifier)) != akid:
                    raise internal("client identity during renewal not matching client "
                                   "identity used during login")
            current = self.certs.get(name)
            if current is None:
                raise internal(f'certificate role "{name}" no longer exists; not renewing')
            if sorted(current.token_policies) != sorted(policies):
                raise internal("policies have changed, not renewing")
            return current.token_ttl, current.token_max_ttl, current.token_period

        return issue_login_token(self.core, self.mount, entry, entry.display_name, metadata,
                                 renew_source, _cn(leaf), self.entities)
