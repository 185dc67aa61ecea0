"""The delivery side of the outbox: fan events out to endpoints, lease due deliveries, record
each attempt's outcome on a durable schedule (WEBHOOKS.md: durability and replicas).

The dispatcher calls ``step`` once per cycle: one short transaction that records the outcomes
of finished attempts, fans new events out and leases the next due deliveries. HTTP calls happen
between steps, outside any transaction; an outcome is recorded only while the lease that claimed
its delivery is still the recorder's. Statements are set-based (Core, a few per step whatever
the number of deliveries): this is the dispatcher's hot path.

Lock order, the same in every replica and in the endpoint RPCs: endpoint rows, then delivery
rows, then the audit head; claims and fan-out skip locked rows instead of waiting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
import tenacity
from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlmodel import Session

from billing_svc.domain.events import subscribed
from billing_svc.services.context import system_context
from billing_svc.services.webhooks import DISABLED, ENABLED
from billing_svc.storage import audit
from billing_svc.storage.db import Database, clock_of
from billing_svc.storage.tables import (
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

log = structlog.get_logger("billing_svc.webhooks")

PENDING, DELIVERED, FAILED, CANCELED = "pending", "delivered", "failed", "canceled"
SLOW_DOWN_CODES = (429, 502, 504)
SLOW_DOWN_SECONDS = 60.0
RESPONSE_BODY_LIMIT = 2048
FAN_OUT_BATCH = 500

_delivery = cast(Table, WebhookDelivery.__table__)  # type: ignore[attr-defined]  # SQLModel table attribute
_endpoint = cast(Table, WebhookEndpoint.__table__)  # type: ignore[attr-defined]  # SQLModel table attribute
_event = cast(Table, OutboxEvent.__table__)  # type: ignore[attr-defined]  # SQLModel table attribute
_attempt = cast(Table, WebhookAttempt.__table__)  # type: ignore[attr-defined]  # SQLModel table attribute


@dataclass(frozen=True)
class Claimed:
    """A leased delivery: everything one attempt needs, so the HTTP call needs no database."""

    delivery_id: int
    event_id: str
    endpoint_id: str
    url: str
    signing_secrets: tuple[str, ...]
    body: bytes
    attempt_number: int


@dataclass(frozen=True)
class Outcome:
    status_code: int  # 0: no HTTP response
    latency_ms: int
    error: str = ""
    response_body: str = ""
    retry_after_seconds: float | None = None
    timed_out: bool = False

    @property
    def delivered(self) -> bool:
        return 200 <= self.status_code < 300


@dataclass(frozen=True)
class Step:
    recorded: int
    fanned_out: int
    claimed: list[Claimed] = field(default_factory=list)


def step(
    db: Database,
    owner: str,
    outcomes: Sequence[tuple[Claimed, Outcome, datetime]],
    *,
    lease: timedelta,
    claim_limit: int,
    busy: dict[str, int],
    per_endpoint: int,
    schedule: Sequence[float],
    disable_after: timedelta,
) -> Step:
    """One dispatcher cycle in one transaction: record ``outcomes``, fan new events out, lease
    up to ``claim_limit`` due deliveries (at most ``per_endpoint`` in flight per endpoint,
    counting this process's ``busy`` ones)."""
    if not outcomes and not _work_waiting(
        db, db.clock.now(), claim=claim_limit > 0, busy=busy, per_endpoint=per_endpoint
    ):
        return Step(0, 0)
    with db.write() as session:
        recorded = _record(session, outcomes, owner, schedule=schedule, disable_after=disable_after)
        now = clock_of(session).now()
        fanned = _fan_out(session, now)
        claimed = (
            _claim(
                session,
                owner,
                now,
                lease=lease,
                limit=claim_limit,
                busy=busy,
                per_endpoint=per_endpoint,
            )
            if claim_limit > 0
            else []
        )
    return Step(recorded, fanned, claimed)


def release(db: Database, owner: str, delivery_ids: Sequence[int]) -> None:
    """Give leased deliveries back (attempts abandoned at shutdown): due again at once,
    for any replica, instead of when the lease runs out."""
    if delivery_ids:
        with db.write() as session:
            session.execute(
                update(_delivery)
                .where(
                    _delivery.c.id.in_(delivery_ids),
                    _delivery.c.lease_owner == owner,
                    _delivery.c.status == PENDING,
                )
                .values(lease_owner=None, lease_until=None)
            )


def next_delay(attempt: int, schedule: Sequence[float], outcome: Outcome) -> float | None:
    """Seconds until the next attempt after ``attempt`` failed, or ``None`` when none is left.

    tenacity computes the wait: the schedule's step with +/-20 % jitter; slow-down answers
    (429, 502, 504) and timeouts wait at least a minute; a ``Retry-After`` is honoured within
    [that delay, 2 x that delay].
    """
    if attempt > len(schedule):
        return None
    step_seconds = schedule[attempt - 1]
    wait = tenacity.wait_fixed(step_seconds * 0.8) + tenacity.wait_random(0, step_seconds * 0.4)
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]  # only the wait strategy reads this state
    state.attempt_number = attempt
    delay = float(wait(state))
    if outcome.status_code in SLOW_DOWN_CODES or outcome.timed_out:
        delay = max(delay, SLOW_DOWN_SECONDS)
    if outcome.retry_after_seconds is not None:
        delay = min(max(outcome.retry_after_seconds, delay), 2 * delay)
    return delay


# ---------------------------------------------------------------------------------------------
# Fan-out


def _fan_out(session: Session, now: datetime, limit: int = FAN_OUT_BATCH) -> int:
    """Turn new outbox events into one pending delivery per subscribed, enabled endpoint."""
    events = session.execute(
        select(_event.c.event_id, _event.c.account_id, _event.c.type)
        .where(_event.c.fanned_out.is_(False))
        .order_by(_event.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not events:
        return 0
    endpoints_of: dict[str, list[tuple[str, set[str]]]] = {}
    for endpoint_id, account_id, types in session.execute(
        select(_endpoint.c.endpoint_id, _endpoint.c.account_id, _endpoint.c.event_types).where(
            _endpoint.c.account_id.in_({e.account_id for e in events}),
            _endpoint.c.status == ENABLED,
        )
    ):
        endpoints_of.setdefault(account_id, []).append((endpoint_id, set(types)))
    rows = [
        {
            "event_id": event.event_id,
            "endpoint_id": endpoint_id,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for event in events
        for endpoint_id, types in endpoints_of.get(event.account_id, ())
        if subscribed(event.type, types)
    ]
    if rows:
        session.execute(insert(_delivery), rows)
    session.execute(
        update(_event)
        .where(_event.c.event_id.in_([e.event_id for e in events]))
        .values(fanned_out=True)
    )
    return len(events)


# ---------------------------------------------------------------------------------------------
# Claims


def _work_waiting(
    db: Database, now: datetime, *, claim: bool, busy: dict[str, int], per_endpoint: int
) -> bool:
    """Has a step anything to do besides recording outcomes: events to fan out, deliveries to
    claim? A read: an idle dispatcher must not take SQLite's one write lock every poll
    (ingestion's group commits would wait for it)."""
    with db.read() as session:
        if (
            session.execute(
                select(_event.c.event_id).where(_event.c.fanned_out.is_(False)).limit(1)
            ).first()
            is not None
        ):
            return True
        return (
            claim
            and session.execute(_due(now, busy, per_endpoint, _delivery.c.id).limit(1)).first()
            is not None
        )


def _claimable(now: datetime) -> tuple[Any, ...]:
    d = _delivery
    return (
        d.c.status == PENDING,
        d.c.next_attempt_at <= now,
        d.c.lease_until.is_(None) | (d.c.lease_until < now),
    )


def _due(now: datetime, busy: dict[str, int], per_endpoint: int, *columns: Any) -> Any:
    """``columns`` of the claimable deliveries of endpoints with a free slot."""
    query = select(*columns).where(*_claimable(now))
    # Endpoints with every slot taken are left out of the query itself: a dead endpoint's
    # backlog must not fill the page of due rows and starve the healthy endpoints behind it.
    full = sorted(endpoint for endpoint, count in busy.items() if count >= per_endpoint)
    return query.where(_delivery.c.endpoint_id.not_in(full)) if full else query


def _claim(
    session: Session,
    owner: str,
    now: datetime,
    *,
    lease: timedelta,
    limit: int,
    busy: dict[str, int],
    per_endpoint: int,
) -> list[Claimed]:
    d = _delivery
    # The database picks at most `per_endpoint` due rows per endpoint (a window function)
    # among the first due rows in the index's order: a tick costs a bounded index range, not
    # a scan of the whole backlog. If one endpoint's backlog fills that window, it gets its
    # `per_endpoint` rows now and is full, so left out, at the next tick.
    window = max(limit * per_endpoint * 2, 100)
    candidates = _due(now, busy, per_endpoint, d.c.id, d.c.endpoint_id, d.c.next_attempt_at)
    head = candidates.order_by(d.c.next_attempt_at, d.c.id).limit(window).subquery()
    rank = (
        func.row_number()
        .over(partition_by=head.c.endpoint_id, order_by=(head.c.next_attempt_at, head.c.id))
        .label("rank")
    )
    ranked = select(head.c.id, head.c.next_attempt_at, rank).subquery()
    ids = (
        session.execute(
            select(ranked.c.id)
            .where(ranked.c.rank <= per_endpoint)
            .order_by(ranked.c.next_attempt_at)
            .limit(limit * 2)
        )
        .scalars()
        .all()
    )
    if not ids:
        return []
    # The claim conditions again in the locking query: PostgreSQL re-checks them against a row
    # another replica leased and committed after our ranking read it, and skips it.
    w, e = _endpoint, _event
    due = session.execute(
        select(
            d.c.id,
            d.c.event_id,
            d.c.endpoint_id,
            d.c.attempts,
            w.c.url,
            w.c.status.label("endpoint_status"),
            w.c.secret,
            w.c.previous_secret,
            w.c.previous_secret_expires_at,
            e.c.body,
        )
        .select_from(
            d.outerjoin(w, w.c.endpoint_id == d.c.endpoint_id).outerjoin(
                e, e.c.event_id == d.c.event_id
            )
        )
        .where(d.c.id.in_(ids), *_claimable(now))
        .order_by(d.c.next_attempt_at, d.c.id)
        .with_for_update(skip_locked=True, of=d)
    ).all()
    taken = dict(busy)
    claimed: list[Claimed] = []
    canceled: list[int] = []
    for row in due:
        if len(claimed) >= limit or taken.get(row.endpoint_id, 0) >= per_endpoint:
            continue
        if row.endpoint_status != ENABLED or row.body is None:  # disabled, deleted, gone
            canceled.append(row.id)
            continue
        taken[row.endpoint_id] = taken.get(row.endpoint_id, 0) + 1
        signing_secrets = [row.secret]
        if (
            row.previous_secret
            and row.previous_secret_expires_at is not None
            and row.previous_secret_expires_at > now
        ):
            signing_secrets.append(row.previous_secret)
        claimed.append(
            Claimed(
                row.id,
                row.event_id,
                row.endpoint_id,
                row.url,
                tuple(signing_secrets),
                row.body.encode("utf-8"),
                row.attempts + 1,
            )
        )
    if claimed:
        session.execute(
            update(d)
            .where(d.c.id.in_([c.delivery_id for c in claimed]))
            .values(lease_owner=owner, lease_until=now + lease)
        )
    if canceled:
        session.execute(
            update(d).where(d.c.id.in_(canceled)).values(status=CANCELED, finished_at=now)
        )
    return claimed


# ---------------------------------------------------------------------------------------------
# Outcomes


@dataclass
class _EndpointState:
    endpoint_id: str
    account_id: str
    status: str
    failure_streak: int
    failing_since: datetime | None
    disabled_reason: str
    changed: bool = False
    disabled_now: bool = False

    def succeeded(self) -> None:
        if self.failure_streak or self.failing_since is not None:
            self.failure_streak, self.failing_since, self.changed = 0, None, True

    def failed(self, at: datetime) -> None:
        self.failure_streak += 1
        self.failing_since = self.failing_since or at
        self.changed = True

    def disable(self, reason: str) -> None:
        if self.status == ENABLED:
            self.status, self.disabled_reason = DISABLED, reason
            self.changed = self.disabled_now = True


def _record(
    session: Session,
    outcomes: Sequence[tuple[Claimed, Outcome, datetime]],
    owner: str,
    *,
    schedule: Sequence[float],
    disable_after: timedelta,
) -> int:
    """Write each attempt and move its delivery on; returns how many were recorded (an outcome
    whose lease was lost meanwhile is dropped: another replica owns that delivery now)."""
    if not outcomes:
        return 0
    ordered = sorted(outcomes, key=lambda item: (item[0].endpoint_id, item[0].delivery_id))
    w, d = _endpoint, _delivery
    endpoints = {
        row.endpoint_id: _EndpointState(*row)
        for row in session.execute(
            select(
                w.c.endpoint_id,
                w.c.account_id,
                w.c.status,
                w.c.failure_streak,
                w.c.failing_since,
                w.c.disabled_reason,
            )
            .where(w.c.endpoint_id.in_({c.endpoint_id for c, _, _ in ordered}))
            .order_by(w.c.endpoint_id)
            .with_for_update()
        )
    }
    deliveries = {
        row.id: row
        for row in session.execute(
            select(d.c.id, d.c.status, d.c.lease_owner, d.c.attempts, d.c.next_attempt_at)
            .where(d.c.id.in_([c.delivery_id for c, _, _ in ordered]))
            .order_by(d.c.id)
            .with_for_update()
        )
    }
    attempts: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    for claimed, outcome, at in ordered:
        row = deliveries.get(claimed.delivery_id)
        endpoint = endpoints.get(claimed.endpoint_id)
        if (
            row is None
            or endpoint is None
            or row.status != PENDING
            or row.lease_owner != owner
            or row.attempts != claimed.attempt_number - 1
        ):
            continue
        attempts.append(
            {
                "delivery_id": claimed.delivery_id,
                "event_id": claimed.event_id,
                "endpoint_id": claimed.endpoint_id,
                "attempt_number": claimed.attempt_number,
                "attempted_at": at,
                "status_code": outcome.status_code,
                "latency_ms": outcome.latency_ms,
                "error": outcome.error[:1000],
                "response_body": outcome.response_body[:RESPONSE_BODY_LIMIT],
            }
        )
        move = {
            "b_id": claimed.delivery_id,
            "b_attempts": claimed.attempt_number,
            "b_status": DELIVERED,
            "b_next": row.next_attempt_at,
            "b_finished": at,
        }
        moves.append(move)
        if outcome.delivered:
            endpoint.succeeded()
            continue
        endpoint.failed(at)
        if outcome.status_code == 410:
            endpoint.disable("the endpoint answered 410 Gone")
        elif endpoint.failing_since is not None and at - endpoint.failing_since >= disable_after:
            endpoint.disable(f"failing continuously since {endpoint.failing_since.isoformat()}")
        delay = (
            next_delay(claimed.attempt_number, schedule, outcome)
            if endpoint.status == ENABLED
            else None
        )
        if delay is None:
            move["b_status"] = FAILED
        else:
            move.update(b_status=PENDING, b_finished=None, b_next=at + timedelta(seconds=delay))
            log.info(
                "webhook_retry",
                event_id=claimed.event_id,
                endpoint_id=claimed.endpoint_id,
                attempt=claimed.attempt_number,
                delay_seconds=round(delay, 3),
                status_code=outcome.status_code,
                error=outcome.error or None,
            )
    if attempts:
        session.execute(insert(_attempt), attempts)
        session.execute(
            update(d)
            .where(d.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                attempts=bindparam("b_attempts"),
                next_attempt_at=bindparam("b_next"),
                finished_at=bindparam("b_finished"),
                lease_owner=None,
                lease_until=None,
            ),
            moves,
        )
    changed = [e for e in endpoints.values() if e.changed]
    if changed:
        session.execute(
            update(w)
            .where(w.c.endpoint_id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                failure_streak=bindparam("b_streak"),
                failing_since=bindparam("b_since"),
                disabled_reason=bindparam("b_reason"),
            ),
            [
                {
                    "b_id": e.endpoint_id,
                    "b_status": e.status,
                    "b_streak": e.failure_streak,
                    "b_since": e.failing_since,
                    "b_reason": e.disabled_reason,
                }
                for e in changed
            ],
        )
    for endpoint in changed:
        if endpoint.disabled_now:
            _disabled(session, endpoint, clock_of(session).now())
    return len(attempts)


def _disabled(session: Session, endpoint: _EndpointState, now: datetime) -> None:
    """Fail the endpoint's pending deliveries and audit why it was disabled."""
    session.execute(
        update(_delivery)
        .where(_delivery.c.endpoint_id == endpoint.endpoint_id, _delivery.c.status == PENDING)
        .values(status=FAILED, finished_at=now, lease_owner=None, lease_until=None)
    )
    audit.append(
        session,
        actor=system_context("webhooks").caller.name,
        action="webhook_endpoint.disabled",
        account_id=endpoint.account_id,
        before={"endpoint_id": endpoint.endpoint_id, "status": ENABLED},
        after={
            "endpoint_id": endpoint.endpoint_id,
            "status": DISABLED,
            "reason": endpoint.disabled_reason,
        },
        at=now,
    )
    log.warning(
        "webhook_endpoint_disabled",
        endpoint_id=endpoint.endpoint_id,
        account_id=endpoint.account_id,
        reason=endpoint.disabled_reason,
    )
