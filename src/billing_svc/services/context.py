"""Who is asking, and under which request id: what every use case needs for audit and logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from billing_svc.domain.periods import utcnow

SCOPES = ("usage:write", "usage:read", "billing:read", "billing:write", "admin")


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its name (for logs and the audit trail) and its scopes."""

    name: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


SYSTEM = Caller("system", frozenset({"admin"}))


@dataclass(frozen=True)
class RequestContext:
    caller: Caller
    request_id: str = ""
    now: datetime = field(default_factory=utcnow)


def system_context(job: str) -> RequestContext:
    """The context of the service's own periodic jobs (trial ends, period closing)."""
    return RequestContext(caller=Caller(f"system:{job}", SYSTEM.scopes))
