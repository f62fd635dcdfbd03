"""What Vault's postgresql-database-plugin does in PostgreSQL: create, renew and revoke users."""

import base64
import binascii
import json
import re
import threading
from urllib.parse import quote

import psycopg

from .errors import VaultError, internal

DEFAULT_RENEW = "ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';"
CONNECT_TIMEOUT = 10


def quote_identifier(name):
    """pq.QuoteIdentifier: double quotes doubled, NUL dropped, wrapped in double quotes."""
    return '"' + name.replace("\x00", "").replace('"', '""') + '"'


def path_escape(s):
    """Go's url.PathEscape: keeps unreserved characters and $&+=:@."""
    return quote(s, safe="$&+=:@")


def parse_arbitrary_string_slice(text, sep):
    """Vault's strutil.ParseArbitraryStringSlice: base64 or JSON list, else split on sep."""
    text = text.strip()
    if not text:
        return []
    try:
        decoded = base64.b64decode(text, validate=True).decode("utf-8")
        text = decoded
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    try:
        val = json.loads(text)
        if isinstance(val, list) and all(isinstance(x, str) for x in val):
            return val
    except ValueError:
        pass
    return text.split(sep)


_END = re.compile(r"\bEND\b")


def contains_multiline_statement(stmt):
    """Vault's heuristic: a statement with the word END (outside quotes) is run as-is."""
    literals = re.findall(r'(".*?")', stmt) + re.findall(r"('.*?')", stmt)
    without = stmt
    for lit in literals:
        without = stmt.replace(lit, "")
    return bool(_END.search(without))


def substitute(query, values):
    """dbutil.QueryHelper: replaces {{key}} with the raw value (no SQL escaping)."""
    for k, v in values.items():
        query = query.replace("{{" + k + "}}", v)
    return query


def pg_error_text(e):
    """Formats a PostgreSQL error the way pgx (Vault's driver) prints it."""
    diag = getattr(e, "diag", None)
    if diag is not None and getattr(diag, "message_primary", None):
        sev = diag.severity or "ERROR"
        return f"{sev}: {diag.message_primary} (SQLSTATE {diag.sqlstate})"
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


class Connection:
    """A configured connection: the templated URL and the admin credentials."""

    def __init__(self, connection_url, username, password, disable_escaping=False, lock=None):
        self.connection_url = connection_url
        self.username = username
        self.password = password
        self.disable_escaping = disable_escaping
        self.lock = lock or threading.Lock()

    def dsn(self):
        user = self.username if self.disable_escaping else path_escape(self.username)
        pw = self.password if self.disable_escaping else path_escape(self.password)
        return substitute(self.connection_url, {"username": user, "password": pw})

    def scrub(self, text):
        """Vault's error sanitizer: the admin password never appears in an error."""
        for secret in {self.password, path_escape(self.password)}:
            if secret:
                text = text.replace(secret, "[password]")
        return text

    def connect(self, autocommit=False):
        try:
            return psycopg.connect(self.dsn(), autocommit=autocommit,
                                   connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as e:
            raise internal(self.scrub(f"failed to connect: {pg_error_text(e)}")) from None

    def verify(self):
        try:
            with self.connect(autocommit=True) as conn:
                conn.execute("SELECT 1")
        except VaultError as e:
            raise VaultError(400, "error creating database object: error verifying connection: "
                             + e.errors[0].split("* ", 1)[-1].strip()) from None
        except psycopg.Error as e:
            raise VaultError(400, self.scrub("error creating database object: error verifying "
                                             "connection: " + pg_error_text(e))) from None

    def _run_tx(self, statements, values, split_multiline, prefix):
        with self.connect() as conn:
            try:
                for stmt in statements:
                    if split_multiline and contains_multiline_statement(stmt):
                        conn.execute(substitute(stmt, values))
                        continue
                    for q in parse_arbitrary_string_slice(stmt, ";"):
                        q = q.strip()
                        if q:
                            conn.execute(substitute(q, values))
            except psycopg.Error as e:
                conn.rollback()
                raise internal(self.scrub(prefix + pg_error_text(e))) from None

    def create_user(self, statements, username, password, expiration):
        """Runs the creation statements in one transaction (NewUser)."""
        if not statements:
            raise internal("empty creation statements")
        values = {"name": username, "username": username, "password": password,
                  "expiration": expiration}
        with self.lock:
            self._run_tx(statements, values, True, "failed to execute query: ")

    def renew_user(self, statements, username, expiration):
        """Runs the renew statements, default ALTER ROLE ... VALID UNTIL, in one transaction."""
        values = {"name": username, "username": username, "expiration": expiration}
        with self.lock:
            self._run_tx(statements or [DEFAULT_RENEW], values, False, "")

    def revoke_user(self, statements, username):
        """Custom revocation statements in one transaction, or the plugin's default revocation."""
        with self.lock:
            if statements:
                self._run_tx(statements, {"name": username, "username": username}, False, "")
                return
            self._default_revoke(username)

    def _default_revoke(self, username):
        """The plugin's default: revoke privileges and CONNECT, then DROP ROLE IF EXISTS.

        Like Vault it does not terminate sessions that are already logged in.
        """
        user = quote_identifier(username)
        with self.connect(autocommit=True) as conn:
            try:
                exists = conn.execute("SELECT exists (SELECT rolname FROM pg_roles "
                                      "WHERE rolname=%s)", (username,)).fetchone()[0]
                if not exists:
                    return
                schemas = [r[0] for r in conn.execute(
                    "SELECT DISTINCT table_schema FROM information_schema.role_column_grants "
                    "WHERE grantee=%s", (username,))]
                stmts = []
                for schema in schemas:
                    s = quote_identifier(schema)
                    stmts.append(f"REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA {s} FROM {user};")
                    stmts.append(f"REVOKE USAGE ON SCHEMA {s} FROM {user};")
                stmts.append(f"REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM {user};")
                stmts.append(f"REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public "
                             f"FROM {user};")
                stmts.append(f"REVOKE USAGE ON SCHEMA public FROM {user};")
                dbname = conn.execute("SELECT current_database()").fetchone()[0]
                if dbname is not None:
                    stmts.append(f"REVOKE CONNECT ON DATABASE {quote_identifier(dbname)} "
                                 f"FROM {user};")
            except psycopg.Error as e:
                raise internal(self.scrub(pg_error_text(e))) from None
            last = None
            for q in stmts:
                try:
                    conn.execute(q)
                except psycopg.Error as e:
                    last = e
            if last is not None:
                raise internal(self.scrub("could not perform all revocation statements: "
                                          + pg_error_text(last)))
            try:
                conn.execute(f"DROP ROLE IF EXISTS {user};")
            except psycopg.Error as e:
                raise internal(self.scrub(pg_error_text(e))) from None
