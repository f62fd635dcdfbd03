"""Database static roles: static-roles/, static-creds/, rotate-role/ and the rotation queue.

Modelled on Vault's builtin/logical/database (path_roles.go, path_creds_create.go,
path_rotate_credentials.go, rotation.go) and the PostgreSQL plugin's UpdateUser:
- creating a role rotates the password at once (Vault must know it), unless
  skip_import_rotation is set (Vault >= 1.18: the operator's "password" is served until the
  first rotation, which happens one rotation_period later);
- a ticker (every rotation_queue_tick_interval seconds, a mount option, default 5) rotates
  every role whose next rotation time (whole Unix seconds) has come;
- a failed rotation is retried 10 s later, again and again, like Vault's queue;
- rotate-role rotates at once and reschedules from now.
"""

import collections
import threading
import time

from .durations import field_duration, rfc3339nano
from .errors import VaultError, internal, multierror_text
from .framework import Response, Route, get_bool, get_str, get_str_list

DEFAULT_ROTATION = "ALTER ROLE \"{{username}}\" WITH PASSWORD '{{password}}';"
QUEUE_TICK_SECONDS = 5  # defaultQueueTickSeconds; also the minimum rotation_period
RETRY_SECONDS = 10  # a failed rotation is pushed back onto the queue at now + 10 s
ZERO_TIME = "0001-01-01T00:00:00Z"

STATIC_ROLE_FIELDS = {"name", "db_name", "username", "rotation_period", "rotation_schedule",
                      "rotation_window", "rotation_statements", "credential_type",
                      "credential_config", "skip_import_rotation", "password",
                      "self_managed_password"}


class StaticRole:
    """One static account: the database user whose password Vault owns."""

    def __init__(self):
        self.db_name = ""
        self.username = ""
        self.rotation_period = 0
        self.rotation_statements = []
        self.credential_type = "password"
        self.password = ""
        self.last_vault_rotation = None  # Unix time of the last rotation by Vault, or None
        self.next_rotation = 0.0  # last rotation + period (NextVaultRotation): gives the ttl
        self.due = 0.0  # when the queue tries next (the queue item's priority): retries move it
        self.skip_import_rotation = False
        self.busy = False  # a rotation is running (Vault's per-role lock)
        self.last_error = ""
        self.failures = 0

    def ttl(self, now=None):
        """Seconds until the next rotation, rounded, never negative (CredentialTTL)."""
        now = time.time() if now is None else now
        return max(0, int(round(self.next_rotation - now)))


class StaticRoles:
    """The static-role half of a database mount; owns the rotation thread."""

    def __init__(self, backend):
        self.backend = backend
        self.core = backend.core
        self.roles = {}
        self._cond = threading.Condition(self.core.lock)
        self._thread = None
        self._stop = False
        self.history = collections.deque(maxlen=200)  # rotations done, for the stats API

    def routes(self, name):
        return [
            Route(r"static-roles/?", {"list": self.list_roles}, "static-roles"),
            Route(r"static-roles/" + name, {"update": self.write_role, "read": self.read_role,
                                            "delete": self.delete_role},
                  "static-roles", existence=True, fields=STATIC_ROLE_FIELDS),
            Route(r"static-creds/" + name, {"read": self.creds}, "static-creds"),
            Route(r"rotate-role/" + name, {"update": self.rotate_role}, "rotate-role",
                  fields={"name"}),
        ]

    # --- the ticker ------------------------------------------------------------------------

    def tick_interval(self):
        raw = (self.backend.mount.options or {}).get("rotation_queue_tick_interval")
        try:
            return max(1, int(str(raw))) if raw is not None else QUEUE_TICK_SECONDS
        except ValueError:
            return QUEUE_TICK_SECONDS

    def _ensure_thread(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="static-rotation",
                                            daemon=True)
            self._thread.start()

    def stop(self):
        """Called with the core lock held when the mount goes away."""
        self._stop = True
        self._cond.notify_all()

    def _run(self):
        # A fixed schedule, like Go's time.Ticker: writes that wake the condition do not
        # move the ticks, so a rotation lags its due time by up to one tick, as in Vault.
        next_tick = time.monotonic() + self.tick_interval()
        with self.core.lock:
            while not self._stop:
                delay = next_tick - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                while next_tick <= time.monotonic():
                    next_tick += self.tick_interval()
                if self._stop:
                    return
                if self.core.sealed:
                    continue
                # Vault pops items while their priority (whole seconds) has come.
                now = int(time.time())
                for name in sorted(self.roles, key=lambda n: self.roles[n].due):
                    role = self.roles.get(name)
                    if role is None or role.busy or int(role.due) > now:
                        continue
                    try:
                        self._rotate(name, role)
                    except VaultError:
                        role.due = time.time() + RETRY_SECONDS
                    if self._stop:
                        return

    # --- rotation ----------------------------------------------------------------------------

    def _rotate(self, name, role, check=True):
        """setStaticAccount: new password, rotation statements in one transaction, then store.

        Called with the core lock held; releases it around the SQL. Raises VaultError with
        Vault's text on failure (the role keeps its old password).
        """
        while role.busy:
            self._cond.wait()
        if check and self.roles.get(name) is not role:
            raise internal("role not found")
        role.busy = True
        password = None
        try:
            cfg = self.backend.configs.get(role.db_name)
            if cfg is None:
                raise internal("the config is currently unset")
            self.backend.check_allowed(name, cfg)
            password = self.backend.generate_password(cfg)
            conn = cfg.connection()
            statements = list(role.rotation_statements) or [DEFAULT_ROTATION]
            values = {"name": role.username, "username": role.username, "password": password}
            try:
                with self.core.unlocked():
                    with conn.lock:
                        conn._run_tx(statements, values, False, "failed to execute query: ")
            except VaultError as e:
                msg = e.errors[0].split("* ", 1)[-1].strip() if e.errors else str(e)
                raise VaultError(500, "error setting credentials: " + multierror_text([msg]),
                                 multi=True) from None
            now = time.time()
            role.password = password
            role.last_vault_rotation = now
            role.next_rotation = role.due = now + role.rotation_period
            role.failures = 0
            role.last_error = ""
            self.history.append({"role": name, "username": role.username,
                                 "time": rfc3339nano(now)})
            self._log(f'static role "{self.backend.mount.path}{name}": rotated the password '
                      f'of "{role.username}"')
        except VaultError as e:
            role.failures += 1
            text = e.errors[0] if e.errors else str(e)
            if password:
                # A syntax error may quote part of the statement: keep the new password out
                # of the log and the stats.
                text = text.replace(password, "[new password]")
            role.last_error = text
            self._log(f'static role "{self.backend.mount.path}{name}": rotation failed '
                      f'(attempt {role.failures}): ' + " ".join(role.last_error.split()))
            raise
        finally:
            role.busy = False
            self._cond.notify_all()

    def _log(self, line):
        """The request log, when the server gave the core one (errors are already scrubbed
        of the admin password; a new password never appears in them)."""
        log = getattr(self.core, "log", None)
        if log is not None:
            log.write(line)

    # --- static-roles/<name> -------------------------------------------------------------

    def write_role(self, req, m):
        name = m.group("name")
        data = req.data
        if name in self.backend.roles:
            raise VaultError(400, "Role and Static Role names must be unique")
        while name in self.roles and self.roles[name].busy:
            self._cond.wait()
        role = self.roles.get(name)
        creating = role is None
        new = StaticRole()
        if role is not None:
            new.__dict__.update({k: (list(v) if isinstance(v, list) else v)
                                 for k, v in role.__dict__.items()})
        if "db_name" in data or creating:
            new.db_name = get_str(data, "db_name")
        if not new.db_name:
            raise VaultError(400, "database name is a required field")
        username = get_str(data, "username")
        if not username and creating:
            raise VaultError(400, "username is a required field to create a static account")
        if not creating and "username" in data and username != new.username:
            raise VaultError(400, "cannot update static account username")
        if username:
            new.username = username
        if "rotation_schedule" in data or "rotation_window" in data:
            raise VaultError(400, "rotation_schedule is not modelled by the Vault test double; "
                                  "use rotation_period")
        if "rotation_period" in data:
            period = field_duration(data, "rotation_period")
            if period < QUEUE_TICK_SECONDS:
                raise VaultError(400, f"rotation_period must be {QUEUE_TICK_SECONDS} seconds "
                                      "or more")
            new.rotation_period = period
        elif creating:
            raise VaultError(400, "one of rotation_schedule or rotation_period must be "
                                  "provided to create a static account")
        if "rotation_statements" in data or creating:
            new.rotation_statements = get_str_list(data, "rotation_statements")
        if "credential_type" in data:
            ctype = get_str(data, "credential_type")
            if ctype not in ("password", "rsa_private_key", "client_certificate"):
                raise VaultError(400, f'invalid credential_type "{ctype}"')
            if ctype != "password":
                raise VaultError(400, f'credential_type "{ctype}" is not modelled by the Vault '
                                      "test double")
            new.credential_type = ctype
        skip = get_bool(data, "skip_import_rotation", False)
        if "password" in data:
            if not creating and role.last_vault_rotation is not None:
                raise VaultError(400, "updating password not allowed after rotation")
            new.password = get_str(data, "password")

        if creating:
            new.skip_import_rotation = skip
            if skip:
                new.next_rotation = new.due = time.time() + new.rotation_period
                self.roles[name] = new
            else:
                # Vault stores the role only once the first rotation has succeeded.
                self._rotate(name, new, check=False)
                self.roles[name] = new
        else:
            base = new.last_vault_rotation
            if base is None:
                base = role.next_rotation - role.rotation_period
            new.next_rotation = new.due = base + new.rotation_period
            new.busy = False
            self.roles[name] = new
        self._ensure_thread()
        self._cond.notify_all()
        return None

    def read_role(self, req, m):
        role = self.roles.get(m.group("name"))
        if role is None:
            return None
        data = {"credential_type": role.credential_type, "db_name": role.db_name,
                "rotation_statements": list(role.rotation_statements),
                "skip_import_rotation": role.skip_import_rotation,
                "username": role.username, "rotation_period": role.rotation_period}
        if role.last_vault_rotation is not None:
            data["last_vault_rotation"] = rfc3339nano(role.last_vault_rotation)
        return Response(data=data)

    def delete_role(self, req, m):
        name = m.group("name")
        while name in self.roles and self.roles[name].busy:
            self._cond.wait()
        # Like Vault: the database user stays as it is (it was defined outside Vault).
        self.roles.pop(name, None)
        return None

    def list_roles(self, req, m):
        if not self.roles:
            return None
        return Response(data={"keys": sorted(self.roles)})

    # --- static-creds/<name> ----------------------------------------------------------------

    def creds(self, req, m):
        name = m.group("name")
        role = self.roles.get(name)
        if role is None:
            raise VaultError(400, f"unknown role: {name}")
        cfg = self.backend.configs.get(role.db_name)
        if cfg is None:
            raise internal(f'failed to find entry for connection with name: "{role.db_name}"')
        self.backend.check_allowed(name, cfg)
        lvr = role.last_vault_rotation
        return Response(data={
            "last_vault_rotation": rfc3339nano(lvr) if lvr is not None else ZERO_TIME,
            "password": role.password,
            "rotation_period": role.rotation_period,
            "ttl": role.ttl(),
            "username": role.username,
        })

    # --- rotate-role/<name> ----------------------------------------------------------------

    def rotate_role(self, req, m):
        name = m.group("name")
        role = self.roles.get(name)
        if role is None:
            raise VaultError(400, "no static role found for role name")
        try:
            self._rotate(name, role)
        except VaultError as e:
            if self.roles.get(name) is role:
                role.due = time.time() + RETRY_SECONDS
            msg = e.errors[0].split("* ", 1)[-1].rstrip("\n") if e.errors else str(e)
            raise VaultError(500, "unable to finish rotating credentials; retries will "
                                  "continue in the background but it is also safe to retry "
                                  "manually: " + msg, multi=True) from None
        return None

    # --- introspection ---------------------------------------------------------------------

    def describe(self):
        return [{"role": n, "username": r.username, "db_name": r.db_name,
                 "rotation_period": r.rotation_period, "ttl": r.ttl(),
                 "last_vault_rotation": rfc3339nano(r.last_vault_rotation),
                 "failures": r.failures, "last_error": r.last_error}
                for n, r in sorted(self.roles.items())]
