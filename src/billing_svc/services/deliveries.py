"""The delivery side of the outbox: fan events out to endpoints, lease due deliveries, record
each attempt's outcome on a durable schedule (WEBHOOKS.md: durability and replicas).

Every step is a short transaction. HTTP calls happen between them, outside any transaction, and
an outcome is recorded only while the lease that claimed the delivery is still the recorder's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
import tenacity
from sqlalchemy import func
from sqlmodel import select

from billing_svc.services.context import system_context
from billing_svc.services.webhooks import DISABLED, ENABLED
from billing_svc.storage import audit
from billing_svc.storage.db import Database
from billing_svc.storage.tables import (
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

log = structlog.get_logger("billing_svc.webhooks")

SLOW_DOWN_CODES = (429, 502, 504)
SLOW_DOWN_SECONDS = 60.0
RESPONSE_BODY_LIMIT = 2048


@dataclass(frozen=True)
class Claimed:
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


def fan_out(db: Database, now: datetime, limit: int = 500) -> int:
    """Turn new outbox events into one pending delivery per subscribed, enabled endpoint."""
    with db.write() as session:
        events = session.exec(select(OutboxEvent).where(OutboxEvent.fanned_out.is_(False))  # type: ignore[attr-defined]
                              .order_by(OutboxEvent.created_at).limit(limit)
                              .with_for_update(skip_locked=True)).all()
        endpoints_of = _enabled_endpoints(session, {event.account_id for event in events})
        for event in events:
            for endpoint in endpoints_of.get(event.account_id, []):
                if endpoint.event_types and event.type not in endpoint.event_types.split(","):
                    continue
                session.add(WebhookDelivery(event_id=event.event_id,
                                            endpoint_id=endpoint.endpoint_id,
                                            next_attempt_at=now, created_at=now))
            event.fanned_out = True
            session.add(event)
        return len(events)


def claim(db: Database, owner: str, now: datetime, *, lease: timedelta, limit: int,
          busy: dict[str, int], per_endpoint: int) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries, at most ``per_endpoint`` in flight per endpoint
    (``busy`` counts this process's), so one slow endpoint cannot take every slot."""
    claimed: list[Claimed] = []
    # Endpoints with every slot taken are left out of the query itself: a dead endpoint's
    # backlog must not fill the page of due rows and starve the healthy endpoints behind it.
    full = sorted(endpoint for endpoint, count in busy.items() if count >= per_endpoint)
    with db.write() as session:
        # The database picks at most `per_endpoint` due rows per endpoint (a window function),
        # so a long backlog costs one scan in SQL, not hundreds of rows loaded here.
        rank = func.row_number().over(
            partition_by=WebhookDelivery.endpoint_id,
            order_by=(WebhookDelivery.next_attempt_at, WebhookDelivery.id)).label("rank")
        claimable = (WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now,
                     (WebhookDelivery.lease_until.is_(None))  # type: ignore[union-attr]
                     | (WebhookDelivery.lease_until < now))
        candidates = select(WebhookDelivery.id, WebhookDelivery.next_attempt_at,
                            rank).where(*claimable)
        if full:
            candidates = candidates.where(WebhookDelivery.endpoint_id.not_in(full))  # type: ignore[attr-defined]
        ranked = candidates.subquery()
        ids = session.exec(select(ranked.c.id).where(ranked.c.rank <= per_endpoint)
                           .order_by(ranked.c.next_attempt_at).limit(limit * 2)).all()
        # The claim conditions again in the locking query: PostgreSQL re-checks them against a
        # row another replica leased and committed after our ranking read it, and skips it.
        due = session.exec(select(WebhookDelivery).where(
            WebhookDelivery.id.in_(ids), *claimable)  # type: ignore[union-attr]
            .order_by(WebhookDelivery.next_attempt_at)
            .with_for_update(skip_locked=True)).all() if ids else []
        taken = dict(busy)
        endpoints = {e.endpoint_id: e for e in session.exec(select(WebhookEndpoint).where(
            WebhookEndpoint.endpoint_id.in_({d.endpoint_id for d in due})))}  # type: ignore[attr-defined]
        events = {e.event_id: e for e in session.exec(select(OutboxEvent).where(
            OutboxEvent.event_id.in_({d.event_id for d in due})))}  # type: ignore[attr-defined]
        for delivery in due:
            if len(claimed) >= limit or taken.get(delivery.endpoint_id, 0) >= per_endpoint:
                continue
            endpoint = endpoints.get(delivery.endpoint_id)
            event = events.get(delivery.event_id)
            if endpoint is None or event is None or endpoint.status != ENABLED:
                delivery.status, delivery.finished_at = "canceled", now
                session.add(delivery)
                continue
            delivery.lease_owner = owner
            delivery.lease_until = now + lease
            session.add(delivery)
            taken[delivery.endpoint_id] = taken.get(delivery.endpoint_id, 0) + 1
            signing_secrets = [endpoint.secret]
            if endpoint.previous_secret and endpoint.previous_secret_expires_at and \
                    endpoint.previous_secret_expires_at > now:
                signing_secrets.append(endpoint.previous_secret)
            claimed.append(Claimed(delivery.id or 0, event.event_id, endpoint.endpoint_id,
                                   endpoint.url, tuple(signing_secrets),
                                   event.body.encode("utf-8"), delivery.attempts + 1))
    return claimed


def next_delay(attempt: int, schedule: Sequence[float], outcome: Outcome) -> float | None:
    """Seconds until the next attempt after ``attempt`` failed, or ``None`` when none is left.

    tenacity computes the wait: the schedule's step with +/-20 % jitter; slow-down answers wait
    at least a minute, and a Retry-After is honoured within [step, 2 x step].
    """
    if attempt > len(schedule):
        return None
    step = schedule[attempt - 1]
    wait = tenacity.wait_fixed(step * 0.8) + tenacity.wait_random(0, step * 0.4)
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    delay = float(wait(state))
    if outcome.status_code in SLOW_DOWN_CODES or outcome.timed_out:
        delay = max(delay, SLOW_DOWN_SECONDS)
    if outcome.retry_after_seconds is not None:
        delay = min(max(outcome.retry_after_seconds, step), 2 * step)
    return delay


def record(db: Database, outcomes: Sequence[tuple[Claimed, Outcome, datetime]], owner: str, *,
           schedule: Sequence[float], disable_after: timedelta) -> int:
    """Write each attempt and move its delivery on, all in one transaction; returns how many
    were recorded (an outcome whose lease was lost meanwhile is dropped)."""
    # One lock order for every replica (endpoint, then delivery): no deadlocks between them.
    ordered = sorted(outcomes, key=lambda item: (item[0].endpoint_id, item[0].delivery_id))
    with db.write() as session:
        # Lock and load every row the outcomes touch in two statements, not two per outcome
        # (and hold on to them: the session's identity map only keeps weak references).
        endpoints = {e.endpoint_id: e for e in session.exec(
            select(WebhookEndpoint).where(WebhookEndpoint.endpoint_id.in_(  # type: ignore[attr-defined]
                sorted({c.endpoint_id for c, _, _ in ordered}))).with_for_update())}
        rows = {d.id: d for d in session.exec(
            select(WebhookDelivery).where(WebhookDelivery.id.in_(  # type: ignore[union-attr]
                sorted(c.delivery_id for c, _, _ in ordered))).with_for_update())}
        return sum(_record_one(session, rows.get(claimed.delivery_id),
                               endpoints[claimed.endpoint_id], claimed, owner, outcome, now,
                               schedule=schedule, disable_after=disable_after)
                   for claimed, outcome, now in ordered)


def _enabled_endpoints(session, account_ids: set[str]) -> dict[str, list[WebhookEndpoint]]:  # type: ignore[no-untyped-def]
    by_account: dict[str, list[WebhookEndpoint]] = {}
    for endpoint in session.exec(select(WebhookEndpoint).where(
            WebhookEndpoint.account_id.in_(account_ids),  # type: ignore[attr-defined]
            WebhookEndpoint.status == ENABLED)):
        by_account.setdefault(endpoint.account_id, []).append(endpoint)
    return by_account


def _record_one(session, delivery: WebhookDelivery | None, endpoint: WebhookEndpoint,  # type: ignore[no-untyped-def]
                claimed: Claimed, owner: str, outcome: Outcome, now: datetime, *,
                schedule: Sequence[float], disable_after: timedelta) -> bool:
    if delivery is None or delivery.status != "pending" or delivery.lease_owner != owner:
        return False
    session.add(WebhookAttempt(
        delivery_id=claimed.delivery_id, event_id=claimed.event_id,
        endpoint_id=claimed.endpoint_id, attempt_number=claimed.attempt_number,
        attempted_at=now, status_code=outcome.status_code, latency_ms=outcome.latency_ms,
        error=outcome.error[:1000], response_body=outcome.response_body[:RESPONSE_BODY_LIMIT]))
    delivery.attempts = claimed.attempt_number
    delivery.lease_owner = delivery.lease_until = None
    if outcome.delivered:
        delivery.status, delivery.finished_at = "delivered", now
        endpoint.failure_streak, endpoint.failing_since = 0, None
    else:
        endpoint.failure_streak += 1
        endpoint.failing_since = endpoint.failing_since or now
        if outcome.status_code == 410:
            _disable(session, endpoint, now, "the endpoint answered 410 Gone")
        elif now - endpoint.failing_since >= disable_after:
            _disable(session, endpoint, now,
                     f"failing continuously since {endpoint.failing_since.isoformat()}")
        delay = None if endpoint.status != ENABLED else next_delay(
            claimed.attempt_number, schedule, outcome)
        if delay is None:
            delivery.status, delivery.finished_at = "failed", now
        else:
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            log.info("webhook_retry", event_id=claimed.event_id,
                     endpoint_id=claimed.endpoint_id, attempt=claimed.attempt_number,
                     delay_seconds=round(delay, 3), status_code=outcome.status_code,
                     error=outcome.error or None)
    session.add(delivery)
    session.add(endpoint)
    return True


def _disable(session, endpoint: WebhookEndpoint, now: datetime, reason: str) -> None:  # type: ignore[no-untyped-def]
    before = {"status": endpoint.status}
    endpoint.status = DISABLED
    endpoint.disabled_reason = reason
    for other in session.exec(select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint.endpoint_id,
            WebhookDelivery.status == "pending")):
        other.status, other.finished_at = "failed", now
        session.add(other)
    ctx = system_context("webhooks")
    audit.append(session, actor=ctx.caller.name, action="webhook_endpoint.disabled",
                 account_id=endpoint.account_id, before=before,
                 after={"status": DISABLED, "reason": reason}, at=now)
    log.warning("webhook_endpoint_disabled", endpoint_id=endpoint.endpoint_id,
                account_id=endpoint.account_id, reason=reason)
