"""The exception hierarchy of billing-svc.

Domain and service code raise these; the API layer maps each class to one gRPC status code in one
place (``api/errors.py``). Messages are written for a person: they say what is wrong and what to do.
"""

from __future__ import annotations


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
