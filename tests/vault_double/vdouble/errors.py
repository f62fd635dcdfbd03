"""Vault error answers: status codes and the exact message shapes of {"errors":[...]}."""


def multierror_text(messages):
    """Formats messages like go-multierror, which Vault uses for errors raised inside a request.

    One message gives "1 error occurred:\\n\\t* permission denied\\n\\n".
    """
    n = len(messages)
    head = "1 error occurred:" if n == 1 else f"{n} errors occurred:"
    return head + "\n" + "\n".join("\t* " + m for m in messages) + "\n\n"


class VaultError(Exception):
    """An error answer: HTTP status and the strings of the "errors" array.

    multi=True wraps the messages the way Vault does for errors that travel through its
    request handler as Go errors rather than as error responses (internal errors,
    ACL denials, unsupported operations).
    """

    def __init__(self, status, *messages, multi=False):
        super().__init__(messages[0] if messages else "")
        self.status = status
        if multi and messages:
            self.errors = [multierror_text(list(messages))]
        else:
            self.errors = list(messages)


def permission_denied():
    """403 for a valid token that its policies do not allow on the path (ACL denial)."""
    return VaultError(403, "permission denied", multi=True)


def internal(message):
    """500 for an error a backend returns as a Go error (Vault shows it multierror-wrapped)."""
    return VaultError(500, message, multi=True)


SEALED = "Vault is sealed"
