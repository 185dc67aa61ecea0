"""Bearer tokens, the scope each RPC needs, and the account an account-bound token is held to.

Tokens come from ``BILLING_AUTH_TOKENS`` (the whole set, fixed for the process's life), or, when
that is empty, from the database (``services/tokens.py``), where a first start creates an admin
token, prints it once and keeps only its SHA-256: the default is never an open door. Database
tokens are kept current while the server runs: a token created or revoked on any replica (or by
the CLI) is in force here within ``REFRESH_SECONDS`` and a bit, and a revoked or expired token's
open streams are closed. Health checking and reflection need no token.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import structlog

from billing_svc.clock import SYSTEM_CLOCK, Clock
from billing_svc.domain.errors import PermissionDenied, Unauthenticated
from billing_svc.domain.tokens import configured_token_id, hash_token
from billing_svc.services import tokens
from billing_svc.services.context import Caller
from billing_svc.services.store import Database
from billing_svc.settings import Settings, TokenSpec

log = structlog.get_logger("billing_svc.auth")

_BILLING = "/as2aas.billing.v1.BillingService/"
_USAGE = "/as2aas.billing.v1.UsageService/"

METHOD_SCOPES: dict[str, str] = {
    **{_USAGE + m: "usage:write" for m in ("StreamUsage", "RecordUsage")},
    **{
        _USAGE + m: "usage:read"
        for m in ("GetCurrentUsage", "GetMonthlyUsage", "GetUsageHistory", "ListUsageReports")
    },
    **{
        _BILLING + m: "billing:read"
        for m in (
            "ListPlans",
            "GetAccountBilling",
            "ListWebhookEndpoints",
            "ListWebhookEvents",
            "GetInvoice",
            "ListInvoices",
            "ListCredits",
            "ListBudgets",
            "GetCostAllocation",
            "ExportJournalEntries",
            "ReconcilePeriod",
            "ComparePlans",
            "ListChangeRequests",
        )
    },
    **{
        _BILLING + m: "billing:write"
        for m in (
            "CreateAccount",
            "ChangePlan",
            "CancelSubscription",
            "SetPaymentMethod",
            "SetUsageThresholds",
            "CreateTenant",
            "CreateMasterPartner",
            "UpdateMasterPartner",
            "CreateWebhookEndpoint",
            "DeleteWebhookEndpoint",
            "RotateWebhookSecret",
            "RedeliverWebhookEvent",
            "CloseBillingPeriod",
            "RecordPaymentResult",
            "SetBudget",
            "DeleteBudget",
        )
    },
    **{
        _BILLING + m: "admin"
        for m in (
            "SetCustomTerms",
            "VoidInvoice",
            "IssueCredit",
            "ListAuditEvents",
            "SetApprovalPolicy",
        )
    },
    **{_BILLING + m: "billing:approve" for m in ("ApproveChangeRequest", "RejectChangeRequest")},
    _BILLING + "GetPartnerUtilization": "billing:read",
    _USAGE + "GetUsageForecast": "usage:read",
    **{
        _BILLING + m: "sandbox"
        for m in ("CreateTestClock", "AdvanceTestClock", "GetTestClock", "DeleteTestClock")
    },
}

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# An account-bound token acts inside its account; making accounts is outside any.
_OUTSIDE_ANY_ACCOUNT = frozenset({_BILLING + "CreateAccount"})

REFRESH_SECONDS = 1.0
# Reload even without a token change now and then: a row edited by hand is seen too.
FULL_RELOAD_SECONDS = 60.0
# A token's last use is written at most this often (per token, per replica).
LAST_USED_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class _Entry:
    caller: Caller
    expires_at: datetime | None
    expires_at_s: float  # epoch seconds; inf when it never expires
    revoked: bool


_REVOKED = "the bearer token was revoked; ask an operator for a new one"


def _refusal(entry: _Entry | None, now_s: float) -> str | None:
    """Why ``entry`` may not be used at ``now_s``, or ``None`` when it may."""
    if entry is None:
        return "the bearer token is not valid"
    if entry.revoked:
        return _REVOKED
    if now_s >= entry.expires_at_s:
        expired = entry.expires_at.isoformat() if entry.expires_at else "?"
        return f"the bearer token expired at {expired}; ask an operator for a new one"
    return None


class _HeldStream:
    """An open stream of a database token, closed from outside if its token stops being valid."""

    def __init__(self, context: grpc.aio.ServicerContext, fields: dict[str, Any]) -> None:
        self.context = context
        self.fields = fields
        self.task = asyncio.current_task()
        self.closing = False
        self.abort: grpc.aio.AbortError | None = None

    async def close(self, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        self.fields.update(code=grpc.StatusCode.UNAUTHENTICATED, error=reason)
        try:
            # Sends the status now, wherever the stream's own task is waiting.
            await self.context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)
        except grpc.aio.AbortError as exc:
            self.abort = exc
        except Exception:  # the call ended meanwhile (grpc: "Abort already called")
            return
        if self.task is not None:
            self.task.cancel()  # stop its work: it may be waiting for a batch that never comes


class TokenStore:
    """Token SHA-256 -> caller, one dict lookup per call however many tokens there are (one per
    account, say). The key is the digest of what the caller sent, so whatever the lookup's timing
    could tell is about a SHA-256 digest, which takes a preimage to turn into a token."""

    def __init__(
        self, entries: dict[str, _Entry], db: Database | None = None, clock: Clock | None = None
    ) -> None:
        self._entries = entries
        self.clock = clock or (db.clock if db is not None else SYSTEM_CLOCK)
        self._db = db  # None: BILLING_AUTH_TOKENS, the same set for the process's life
        self._marker = 0
        self._loaded_at = time.monotonic()
        self._used: dict[str, float] = {}  # token id -> its last use seen here (epoch s)
        self._recorded: dict[str, float] = {}  # token id -> the last use written (or read)
        self._streams: dict[str, set[_HeldStream]] = {}

    @classmethod
    def configured(cls, specs: Iterable[TokenSpec], clock: Clock = SYSTEM_CLOCK) -> TokenStore:
        entries = {}
        for spec in specs:
            digest = (spec.token_sha256 or hash_token(spec.token or "")).lower()
            entries[digest] = _Entry(
                Caller(spec.name, frozenset(spec.scopes), token_id=configured_token_id(digest)),
                None,
                float("inf"),
                revoked=False,
            )
        return cls(entries, clock=clock)

    @classmethod
    def from_database(cls, db: Database) -> TokenStore:
        store = cls({}, db)
        store._load()
        return store

    def authenticate(self, token: str) -> Caller:
        """The caller ``token`` belongs to; ``Unauthenticated`` saying why when there is none
        (unknown, revoked, expired)."""
        entry = self._entries.get(hash_token(token))
        now_s = self.clock.now().timestamp()
        refusal = _refusal(entry, now_s)
        if refusal is not None:
            raise Unauthenticated(refusal)
        assert entry is not None
        if self._db is not None:
            self._used[entry.caller.token_id] = now_s
        return entry.caller

    @contextlib.contextmanager
    def hold_stream(
        self, caller: Caller, context: grpc.aio.ServicerContext, fields: dict[str, Any]
    ) -> Iterator[None]:
        """Around a stream: while it is open, a revoked or expired token ends it with
        ``UNAUTHENTICATED`` saying why (and ``fields``, the RPC's log line, say so too)."""
        if self._db is None:
            yield
            return
        held = _HeldStream(context, fields)
        streams = self._streams.setdefault(caller.token_id, set())
        streams.add(held)
        try:
            yield
        except asyncio.CancelledError:
            if held.abort is None:
                raise
            raise held.abort from None
        finally:
            streams.discard(held)
            if not streams and self._streams.get(caller.token_id) is streams:
                del self._streams[caller.token_id]

    async def keep_current(self, stop: asyncio.Event) -> None:
        """Until ``stop``, every ``REFRESH_SECONDS``: reload the database tokens if one was created
        or revoked, write when tokens were last used (each at most once a minute, one transaction
        for all, never in a request's or an ingestion group's), and close the streams of tokens
        no longer valid. With ``BILLING_AUTH_TOKENS`` there is nothing to do."""
        if self._db is None:
            return
        while not stop.is_set():
            due = self._due_uses()
            try:
                await asyncio.to_thread(self._refresh, due)
            except Exception:  # the database is away: the tokens known stay in force meanwhile
                log.warning("token_refresh_failed", exc_info=True)
            try:
                await self._close_invalid_streams()
            except Exception:  # a bug: logged, and the next round tries again
                log.exception("token_streams_close_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)

    def _due_uses(self) -> dict[str, datetime]:
        return {
            token_id: datetime.fromtimestamp(used_s, UTC)
            for token_id, used_s in self._used.items()
            if used_s - self._recorded.get(token_id, float("-inf")) >= LAST_USED_EVERY_SECONDS
        }

    def _refresh(self, due: dict[str, datetime]) -> None:
        """In a worker thread: the database reads and writes of ``keep_current``."""
        assert self._db is not None
        if (
            tokens.change_marker(self._db) != self._marker
            or time.monotonic() - self._loaded_at >= FULL_RELOAD_SECONDS
        ):
            self._load()
        if due:
            tokens.record_last_used(self._db, due)
            for token_id, at in due.items():
                self._recorded[token_id] = max(self._recorded.get(token_id, 0.0), at.timestamp())

    def _load(self) -> None:
        assert self._db is not None
        stored, marker = tokens.load(self._db)
        entries = {}
        for token in stored:
            info = token.info
            caller = Caller(
                info.name,
                frozenset(info.scopes),
                token_id=info.token_id,
                account_id=info.account_id,
            )
            expires_s = info.expires_at.timestamp() if info.expires_at else float("inf")
            entries[token.token_sha256] = _Entry(
                caller, info.expires_at, expires_s, revoked=info.revoked_at is not None
            )
            if info.last_used_at is not None:
                self._recorded[info.token_id] = max(
                    self._recorded.get(info.token_id, 0.0), info.last_used_at.timestamp()
                )
        self._entries = entries  # one assignment: lookups see the old set or the new one
        self._marker = marker
        self._loaded_at = time.monotonic()

    async def _close_invalid_streams(self) -> None:
        if not self._streams:
            return
        by_id = {entry.caller.token_id: entry for entry in self._entries.values()}
        now_s = self.clock.now().timestamp()
        for token_id, held in list(self._streams.items()):
            entry = by_id.get(token_id)
            # A row gone is a revoked token whose name was given to a new one.
            reason = _REVOKED if entry is None else _refusal(entry, now_s)
            if reason is None:
                continue
            log.info("token_streams_closed", token_id=token_id, streams=len(held), reason=reason)
            for stream in list(held):
                await stream.close(reason)


def load_token_store(settings: Settings, db: Database) -> TokenStore:
    """Tokens from settings if any are configured, else the database's (bootstrapped if empty)."""
    if settings.token_specs:
        return TokenStore.configured(settings.token_specs, db.clock)
    secret = tokens.ensure_first_admin(db)
    if secret is not None:
        print(
            f"billing-svc: created the first admin token (shown once, store it now): {secret}",
            file=sys.stderr,
            flush=True,
        )
    return TokenStore.from_database(db)


def check_account(caller: Caller, method: str, request: Any) -> None:
    """Hold an account-bound caller to its account: a request whose ``account_id`` is another
    account's (or empty, which would mean all accounts or none) is ``PERMISSION_DENIED``, and so
    is creating an account. Requests that name a resource by its id are checked where it is
    loaded (``services.common.visible``: another account's is ``NOT_FOUND``); usage events one by
    one, in ingestion (``UsageBatch.bound_account``)."""
    bound = caller.account_id
    if not bound:
        return
    if method in _OUTSIDE_ANY_ACCOUNT:
        raise PermissionDenied(
            f"caller {caller.name!r} is bound to account {bound} and cannot create accounts"
        )
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None or "account_id" not in descriptor.fields_by_name:
        return
    if request.account_id != bound:
        raise PermissionDenied(
            f"caller {caller.name!r} is bound to account {bound}; set account_id to {bound}"
            if not request.account_id
            else f"caller {caller.name!r} is bound to account {bound} and cannot "
            "act on another account"
        )
