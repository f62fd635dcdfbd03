"""The expiration manager: secret leases, renewal, and revocation at expiry or with the token."""

import collections
import threading
import time

from .durations import PastMaxTTL, calculate_ttl, rfc3339nano, ttl_remaining
from .errors import VaultError
from .gotemplate import random_base62

# Vault retries a failed revocation with backoff and gives up after a few attempts,
# after which the lease is "irrevocable". Shorter here than in Vault so tests see it.
MAX_REVOKE_ATTEMPTS = 6
REVOKE_RETRY_BASE = 1.0
REVOKE_RETRY_MAX = 10.0


def _plain(message):
    """The message inside a multierror text ("1 error occurred:\n\t* msg\n\n" -> "msg")."""
    if message.startswith("1 error occurred:"):
        return message.split("* ", 1)[-1].strip()
    return message.strip()


class Lease:
    """One secret lease (e.g. database credentials)."""

    def __init__(self, lease_id, backend, mount_path, internal, ttl, renewable, token):
        now = time.time()
        self.lease_id = lease_id
        self.backend = backend
        self.mount_path = mount_path
        self.internal = internal
        self.issue_time = now
        self.expire_time = now + ttl
        self.last_renewal = None
        self.ttl = ttl
        self.renewable = renewable
        self.token_id = token.id if token else None
        self.token_type = token.type if token else "service"
        self.token_accessor = token.accessor if token else ""
        self.busy = False  # a backend renew/revoke of this lease is in flight (Vault's lease lock)
        self.revoke_reason = "expired"
        self.revoke_attempts = 0
        self.next_attempt = 0.0
        self.revoke_error = ""
        self.irrevocable = False

    def renewable_error(self, now):
        """Vault's leaseEntry.renewable() check, as an error message or None."""
        if self.irrevocable:
            return "lease is expired and has failed previous revocation attempts"
        if self.token_type == "batch":
            return None
        if self.expire_time <= now:
            return "lease expired"
        if not self.renewable:
            return "lease is not renewable"
        return None

    def describe(self):
        d = {"lease_id": self.lease_id, "mount": self.mount_path,
             "issue_time": rfc3339nano(self.issue_time),
             "expire_time": rfc3339nano(self.expire_time),
             "ttl": ttl_remaining(self.expire_time), "renewable": self.renewable,
             "token_accessor": self.token_accessor, "revoke_attempts": self.revoke_attempts,
             "revoke_error": self.revoke_error, "irrevocable": self.irrevocable}
        d.update(self.backend.describe_secret(self))
        return d


class ExpirationManager:
    """Leases keyed by lease ID, plus the timer thread that revokes leases and tokens at expiry."""

    def __init__(self, core):
        self.core = core
        self.leases = {}
        self.history = collections.deque(maxlen=500)
        self._cond = threading.Condition(core.lock)
        self._stop = False
        self._thread = None

    # --- registration ---------------------------------------------------------------

    def register(self, backend, mount, path, internal, ttl, max_ttl, token):
        """Registers a secret lease the way Vault's request handler does; returns the Lease.

        ttl/max_ttl are the backend's (role's) values; 0 means the mount's defaults.
        """
        sysview = mount.sysview
        limit = sysview.max_ttl
        if 0 < max_ttl < limit:
            limit = max_ttl
        if ttl == 0:
            ttl = sysview.default_ttl
        ttl = min(ttl, limit)
        lease_id = f"{path}/{random_base62(24)}"
        lease = Lease(lease_id, backend, mount.path, internal, ttl, True, token)
        if token is not None and token.type == "batch" and token.expire_time is not None:
            if lease.expire_time > token.expire_time:
                lease.expire_time = token.expire_time
                lease.ttl = max(0, int(token.expire_time - time.time()))
        self.leases[lease_id] = lease
        if token is not None:
            token.leases.add(lease_id)
            if token.id not in self.core.tokens.tokens:
                # The token died while the credentials were being created: they die with it.
                lease.expire_time = time.time()
                lease.revoke_reason = "token revoked"
        self.wake()
        return lease

    # --- operations behind sys/leases ------------------------------------------------

    def lookup(self, lease_id):
        lease = self.leases.get(lease_id)
        if lease is None:
            raise VaultError(400, "invalid lease")
        now = time.time()
        return {
            "id": lease_id,
            "issue_time": rfc3339nano(lease.issue_time),
            "expire_time": rfc3339nano(lease.expire_time),
            "last_renewal": rfc3339nano(lease.last_renewal),
            "ttl": ttl_remaining(lease.expire_time, now),
            "renewable": lease.renewable_error(now) is None and lease.token_type != "batch",
        } | ({"revoke_error": lease.revoke_error} if lease.revoke_error else {})

    def renew(self, lease_id, increment):
        """Renews a secret lease: the backend's renewal, then Vault's TTL capping.

        Called with the core lock held; releases it around the backend's database work.
        Returns (lease, ttl, warnings).
        """
        lease = self.leases.get(lease_id)
        if lease is not None:
            self._wait_idle(lease)
            lease = self.leases.get(lease_id)
        now = time.time()
        if lease is None:
            raise VaultError(400, "lease not found")
        err = lease.renewable_error(now)
        if err:
            raise VaultError(400, err)
        mount = self.core.mount_for_path(lease.mount_path)
        if mount is None:
            raise VaultError(400, "failed to renew entry: resp: (*logical.Response)(nil) err: "
                                  "no handler for route")
        lease.busy = True
        try:
            backend_ttl, backend_max = lease.backend.renew_secret(lease, increment, mount)
        except PastMaxTTL as e:
            raise VaultError(400, f"failed to renew entry: resp: (*logical.Response)(nil) "
                                  f"err: {e}") from None
        except VaultError as e:
            msg = e.errors[0] if e.errors else "error"
            raise VaultError(400, f"failed to renew entry: resp: (*logical.Response)(nil) "
                                  f"err: {_plain(msg)}") from None
        finally:
            lease.busy = False
            self._cond.notify_all()
        try:
            ttl, warnings = calculate_ttl(mount.sysview, increment, backend_ttl, 0, backend_max, 0,
                                          lease.issue_time)
        except PastMaxTTL as e:
            raise VaultError(400, str(e)) from None
        if lease_id not in self.leases:
            raise VaultError(400, "lease not found")
        now = time.time()
        lease.ttl = ttl
        lease.expire_time = now + ttl
        lease.last_renewal = now
        if lease.token_type == "batch":
            tok = self.core.tokens.tokens.get(lease.token_id)
            if tok is not None and tok.expire_time is not None \
                    and lease.expire_time > tok.expire_time:
                lease.expire_time = tok.expire_time
                lease.ttl = int(tok.expire_time - now)
        self.wake()
        return lease, lease.ttl, warnings

    def revoke(self, lease_id, reason="revoked"):
        """Revokes a lease now (sys/leases/revoke, sync). Unknown leases succeed silently.

        Called with the core lock held; releases it during the backend's revocation.
        """
        lease = self.leases.get(lease_id)
        if lease is None:
            return
        lease.revoke_reason = reason
        err = self._revoke_unlocked(lease, force=False)
        if err:
            raise VaultError(400, f"failed to revoke entry: resp: (*logical.Response)(nil) "
                                  f"err: {err}")

    def revoke_prefix(self, prefix, force, reason="revoke-prefix"):
        for lease_id in [i for i in self.leases if i.startswith(prefix)]:
            lease = self.leases.get(lease_id)
            if lease is None:
                continue
            lease.revoke_reason = reason
            err = self._revoke_unlocked(lease, force=force)
            if err and not force:
                raise VaultError(400, f"failed to revoke {lease_id}: {err}")

    def revoke_by_token(self, tok, reason):
        """Marks every lease created by tok as expired now; the timer revokes them at once."""
        now = time.time()
        why = "token expired" if reason == "expired" else f"token {reason}"
        for lease_id in tok.leases:
            lease = self.leases.get(lease_id)
            if lease is not None and lease.expire_time > now:
                lease.expire_time = now
                lease.revoke_reason = why
        self.wake()

    def list_prefix(self, prefix):
        keys = set()
        for lease_id in self.leases:
            if lease_id.startswith(prefix):
                rest = lease_id[len(prefix):]
                keys.add(rest.split("/", 1)[0] + ("/" if "/" in rest else ""))
        return sorted(keys)

    # --- revocation ---------------------------------------------------------------------

    def _wait_idle(self, lease):
        while lease.busy:
            self._cond.wait(0.1)

    def _revoke_unlocked(self, lease, force):
        """Runs the backend revocation without the core lock; returns an error text or "".

        The core lock is held on entry and on return; a lease being revoked by another
        thread is waited for, never revoked twice at once.
        """
        self._wait_idle(lease)
        if self.leases.get(lease.lease_id) is not lease:
            return ""
        lease.busy = True
        try:
            with self.core.unlocked():
                try:
                    lease.backend.revoke_secret(lease)
                    err = ""
                except VaultError as e:
                    err = _plain(e.errors[0] if e.errors else "error")
                except Exception as e:  # a backend bug must not kill the timer thread
                    err = f"{type(e).__name__}: {e}"
        finally:
            lease.busy = False
            self._cond.notify_all()
        if err and not force:
            return err
        self._forget(lease, err)
        return ""

    def _forget(self, lease, err):
        self.leases.pop(lease.lease_id, None)
        tok = self.core.tokens.tokens.get(lease.token_id)
        if tok is not None:
            tok.leases.discard(lease.lease_id)
        entry = lease.describe()
        entry.update({"revoked_at": rfc3339nano(time.time()), "reason": lease.revoke_reason,
                      "error": err})
        self.history.append(entry)

    def _expire_one(self, lease):
        if lease.expire_time > time.time() or self.leases.get(lease.lease_id) is not lease:
            return  # renewed or revoked while an earlier lease of this batch was revoked
        err = self._revoke_unlocked(lease, force=False)
        if err:
            lease.revoke_attempts += 1
            lease.revoke_error = err
            if lease.revoke_attempts >= MAX_REVOKE_ATTEMPTS:
                lease.irrevocable = True
            delay = min(REVOKE_RETRY_BASE * (2 ** (lease.revoke_attempts - 1)), REVOKE_RETRY_MAX)
            lease.next_attempt = time.time() + delay

    # --- the timer --------------------------------------------------------------------

    def wake(self):
        self._cond.notify_all()

    def start(self):
        self._thread = threading.Thread(target=self._run, name="expiration", daemon=True)
        self._thread.start()

    def stop(self):
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout=5)

    def _next_deadline(self):
        times = [self.core.tokens.next_expiry()]
        for lease in self.leases.values():
            if lease.irrevocable or lease.busy:
                continue
            times.append(max(lease.expire_time, lease.next_attempt))
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def _run(self):
        with self._cond:
            while not self._stop:
                now = time.time()
                if self.core.sealed:
                    self._cond.wait(0.2)
                    continue
                for tok in self.core.tokens.expired(now):
                    self.core.tokens.revoke(tok, "expired")
                due = [l for l in self.leases.values()
                       if l.expire_time <= now and not l.irrevocable and not l.busy
                       and l.next_attempt <= now]
                for lease in due:
                    if self._stop or self.core.sealed:
                        break
                    self._expire_one(lease)
                if due:
                    continue
                deadline = self._next_deadline()
                timeout = 1.0 if deadline is None else min(max(deadline - time.time(), 0.005), 1.0)
                self._cond.wait(timeout)
