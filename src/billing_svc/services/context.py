"""Who is asking, and under which request id: what every use case needs for audit, logs and
traces."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from opentelemetry import trace

from billing_svc.clock import SYSTEM_CLOCK, Clock
from billing_svc.tracing import NO_TRACER

# The caller id of the service's own jobs, the CLI and direct calls: no token stands behind them.
SYSTEM_TOKEN_ID = "system"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its name (for logs and the audit trail), its scopes, the stable id
    of its token (what idempotency keys belong to: a token made again under an old name is
    another caller) and, for an account-bound token, its account."""

    name: str
    scopes: frozenset[str]
    token_id: str = SYSTEM_TOKEN_ID
    account_id: str = ""

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def sees(self, account_id: str) -> bool:
        """May this caller see a resource of ``account_id``? Only an account-bound token is
        limited: to its own account."""
        return not self.account_id or self.account_id == account_id


SYSTEM = Caller("system", frozenset({"admin"}))


@dataclass(frozen=True)
class RequestContext:
    caller: Caller
    request_id: str = ""
    # The composition's clock sets it (interceptor, jobs); the default serves direct calls.
    now: datetime = field(default_factory=SYSTEM_CLOCK.now)
    # Where the use case's own spans go (the server's tracer; a no-op one when tracing is off).
    tracer: trace.Tracer = field(default=NO_TRACER, repr=False, compare=False)


def system_context(
    job: str, clock: Clock = SYSTEM_CLOCK, tracer: trace.Tracer = NO_TRACER
) -> RequestContext:
    """The context of the service's own periodic jobs (trial ends, period closing), at ``clock``'s
    time."""
    return RequestContext(
        caller=Caller(f"system:{job}", SYSTEM.scopes), now=clock.now(), tracer=tracer
    )
