"""The exception hierarchy of billing-svc.

Domain and service code raise these; the API layer maps each class to one gRPC status code in one
place (``api/errors.py``). Messages are written for a person: they say what is wrong and what to do.
"""

from __future__ import annotations

SHOWN_CHARACTERS = 64
"""How much of a caller's value an error message or rejection reason quotes: a reply is never as
big as the request (a 20 KB id echoed in a status message made it too big for its trailers)."""


def cut(text: str, limit: int = SHOWN_CHARACTERS) -> str:
    """``text``, or its first ``limit`` characters and "…" when it is longer."""
    return text if len(text) <= limit else f"{text[:limit]}…"


def shown(value: object) -> str:
    """A caller's value as an error message quotes it: in quotes, cut to ``SHOWN_CHARACTERS``
    characters, with the length said when it was cut."""
    text = str(value)
    if len(text) <= SHOWN_CHARACTERS:
        return repr(text)
    return f"{cut(text)!r} ({len(text):,} characters)"


class BillingError(Exception):
    """Base class of every error billing-svc reports to a caller."""


class InvalidArgument(BillingError):
    """A request field is malformed or out of range."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.description = message


class NotFound(BillingError):
    """The resource a request names does not exist (or is not visible to the caller)."""


class AlreadyExists(BillingError):
    """The resource a request would create exists already."""


class FailedPrecondition(BillingError):
    """The request is well-formed but the system is not in a state that allows it."""


class Unratable(FailedPrecondition):
    """An account's terms or usage cannot be priced within billing-svc's bounds (terms stored
    before the bounds existed, or charges beyond the largest amount an invoice holds)."""


class PermissionDenied(BillingError):
    """The caller is authenticated but lacks the scope the request needs."""


class Unauthenticated(BillingError):
    """The request carries no valid credentials."""


class ResourceExhausted(BillingError):
    """A size or rate limit was exceeded."""


class DeadlineExceeded(BillingError):
    """The caller's deadline passed before the work started; nothing was done."""


class Unavailable(BillingError):
    """A dependency (the database) is unreachable right now; the caller should retry."""
