"""Webhook endpoints and the event log as accounts see them (spec §2; issue 4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, col, select

from billing_svc.domain import signing
from billing_svc.domain.errors import InvalidArgument, NotFound, shown
from billing_svc.domain.events import EVENT_TYPES, subscribed
from billing_svc.domain.ids import new_id
from billing_svc.net.url_guard import UnsafeURL, resolve
from billing_svc.services import paging
from billing_svc.services.common import idempotent_write, load_account, loader, visible
from billing_svc.services.context import RequestContext
from billing_svc.services.views import (
    WebhookAttemptView,
    WebhookEndpointView,
    WebhookEventView,
)
from billing_svc.storage import audit
from billing_svc.storage.db import Database
from billing_svc.storage.idempotency import IdempotencyKey
from billing_svc.storage.tables import (
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

ROTATION_GRACE = timedelta(hours=24)
ENABLED, DISABLED, DELETED = "enabled", "disabled", "deleted"


def _event_types(values: list[str]) -> tuple[str, ...]:
    for value in values:
        if value not in EVENT_TYPES:
            raise InvalidArgument(
                "event_types",
                f"{shown(value)} is not a billing event type; choose from {', '.join(EVENT_TYPES)}",
            )
    return tuple(sorted(set(values)))


def _endpoint_snapshot(endpoint: WebhookEndpoint) -> dict[str, object]:
    return {
        "endpoint_id": endpoint.endpoint_id,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason,
    }


def create_endpoint(
    db: Database,
    ctx: RequestContext,
    *,
    account_id: str,
    url: str,
    event_types: list[str],
    description: str,
    allow_private: bool,
    key: IdempotencyKey | None,
) -> WebhookEndpointView:
    """Register an endpoint; the response is the only time its secret is shown."""
    try:
        resolve(url.strip(), allow_private=allow_private)
    except UnsafeURL as exc:
        raise InvalidArgument("url", str(exc)) from exc
    types = _event_types(event_types)
    if len(description) > 500:
        raise InvalidArgument("description", "is longer than 500 characters")

    def create(session: Session) -> WebhookEndpoint:
        load_account(session, account_id)
        endpoint = WebhookEndpoint(
            endpoint_id=new_id("we"),
            account_id=account_id,
            url=url.strip(),
            event_types=types,
            description=description.strip(),
            secret=signing.new_secret(),
            created_at=ctx.now,
        )
        session.add(endpoint)
        audit.append(
            session,
            actor=ctx.caller.name,
            action="webhook_endpoint.created",
            account_id=account_id,
            before=None,
            after=_endpoint_snapshot(endpoint),
            at=ctx.now,
            request_id=ctx.request_id,
        )
        return endpoint

    return WebhookEndpointView.from_row(
        idempotent_write(db, ctx, key, create, loader(WebhookEndpoint), lambda e: e.endpoint_id)
    )


def list_endpoints(
    db: Database, *, account_id: str, page_size: int, page_token: str
) -> tuple[list[WebhookEndpointView], str]:
    size = min(page_size or 50, 500)
    query = (account_id,)
    after = paging.read_token(
        page_token, "ListWebhookEndpoints", query, (paging.resource_id("we"),)
    )
    with db.read() as session:
        load_account(session, account_id)
        statement = select(WebhookEndpoint).where(
            WebhookEndpoint.account_id == account_id, WebhookEndpoint.status != DELETED
        )
        if after:
            statement = statement.where(col(WebhookEndpoint.endpoint_id) > after[0])
        rows = list(session.exec(statement.order_by(WebhookEndpoint.endpoint_id).limit(size + 1)))
    token = (
        paging.next_token("ListWebhookEndpoints", query, (rows[size - 1].endpoint_id,))
        if len(rows) > size
        else ""
    )
    return [WebhookEndpointView.from_row(row) for row in rows[:size]], token


def _load_endpoint(session: Session, ctx: RequestContext, endpoint_id: str) -> WebhookEndpoint:
    if not endpoint_id:
        raise InvalidArgument("endpoint_id", "is required")
    missing = f"webhook endpoint {shown(endpoint_id)} does not exist"
    endpoint = visible(
        ctx.caller, session.get(WebhookEndpoint, endpoint_id, with_for_update=True), missing
    )
    if endpoint.status == DELETED:
        raise NotFound(missing)
    return endpoint


def delete_endpoint(db: Database, ctx: RequestContext, *, endpoint_id: str) -> None:
    """Stop delivering to the endpoint; its event log stays (the row is kept as deleted)."""
    with db.write() as session:
        endpoint = _load_endpoint(session, ctx, endpoint_id)
        before = _endpoint_snapshot(endpoint)
        endpoint.status = DELETED
        session.add(endpoint)
        for delivery in session.exec(
            select(WebhookDelivery).where(
                WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending"
            )
        ):
            delivery.status = "canceled"
            delivery.finished_at = db.clock.now()  # the dispatcher's (wall) time line
            session.add(delivery)
        audit.append(
            session,
            actor=ctx.caller.name,
            action="webhook_endpoint.deleted",
            account_id=endpoint.account_id,
            before=before,
            after=_endpoint_snapshot(endpoint),
            at=ctx.now,
            request_id=ctx.request_id,
        )


def rotate_secret(db: Database, ctx: RequestContext, *, endpoint_id: str) -> WebhookEndpointView:
    """A new secret; the old one keeps signing beside it for 24 hours."""
    with db.write() as session:
        endpoint = _load_endpoint(session, ctx, endpoint_id)
        endpoint.previous_secret = endpoint.secret
        # Wall time, also for a test clock's account: the dispatcher signs on wall time (the
        # webhook-timestamp header) and it is the one that lets the old secret go.
        endpoint.previous_secret_expires_at = db.clock.now() + ROTATION_GRACE
        endpoint.secret = signing.new_secret()
        session.add(endpoint)
        audit.append(
            session,
            actor=ctx.caller.name,
            action="webhook_endpoint.secret_rotated",
            account_id=endpoint.account_id,
            before=None,
            after={
                "endpoint_id": endpoint_id,
                "previous_secret_expires_at": endpoint.previous_secret_expires_at,
            },
            at=ctx.now,
            request_id=ctx.request_id,
        )
        return WebhookEndpointView.from_row(endpoint)


@dataclass(frozen=True)
class EventLog:
    event: WebhookEventView
    status: str  # pending, delivered, failed, no_endpoint
    attempts: list[WebhookAttemptView]


def _status(event: OutboxEvent, deliveries: list[WebhookDelivery]) -> str:
    """Where an event stands, from the latest delivery to each endpoint: a redelivery that
    succeeds after the schedule ran out makes the event delivered. Deliveries canceled because
    their endpoint went away do not count. An event no endpoint subscribed to is
    ``no_endpoint``: nothing is left to do for it, but it reached nobody either."""
    if not event.fanned_out:
        return "pending"
    latest: dict[str, WebhookDelivery] = {}
    for delivery in sorted(deliveries, key=lambda d: d.id or 0):
        if delivery.status != "canceled":
            latest[delivery.endpoint_id] = delivery
    statuses = {d.status for d in latest.values()}
    if not statuses:
        return "no_endpoint"
    if "pending" in statuses:
        return "pending"
    return "failed" if "failed" in statuses else "delivered"


def _event_logs(session: Session, events: list[OutboxEvent]) -> list[EventLog]:
    """Events with their statuses and attempts: two queries for the lot."""
    ids = [event.event_id for event in events]
    deliveries: dict[str, list[WebhookDelivery]] = {event_id: [] for event_id in ids}
    attempts: dict[str, list[WebhookAttempt]] = {event_id: [] for event_id in ids}
    if ids:
        for delivery in session.exec(
            select(WebhookDelivery).where(col(WebhookDelivery.event_id).in_(ids))
        ):
            deliveries[delivery.event_id].append(delivery)
        for attempt in session.exec(
            select(WebhookAttempt)
            .where(col(WebhookAttempt.event_id).in_(ids))
            .order_by(col(WebhookAttempt.id))
        ):
            attempts[attempt.event_id].append(attempt)
    return [
        EventLog(
            WebhookEventView.from_row(event),
            _status(event, deliveries[event.event_id]),
            [WebhookAttemptView.from_row(a) for a in attempts[event.event_id]],
        )
        for event in events
    ]


def list_events(
    db: Database,
    *,
    account_id: str,
    event_type: str,
    status: str | None,
    page_size: int,
    page_token: str,
) -> tuple[list[EventLog], str]:
    """The account's events, newest first, each with its delivery attempts."""
    size = min(page_size or 50, 500)
    if event_type and event_type not in EVENT_TYPES:
        raise InvalidArgument("event_type", f"{shown(event_type)} is not a billing event type")
    query = (account_id, event_type, status)
    after = paging.read_token(page_token, "ListWebhookEvents", query, (paging.resource_id("msg"),))
    found, last = _events_page(
        db, account_id, event_type, status, size, str(after[0]) if after else ""
    )
    return found, paging.next_token("ListWebhookEvents", query, (last,)) if last else ""


def _events_page(
    db: Database, account_id: str, event_type: str, status: str | None, size: int, cursor: str
) -> tuple[list[EventLog], str]:
    """Up to ``size`` events older than ``cursor`` (any, when empty), and the id the next page
    starts after (empty when there is none)."""
    with db.read() as session:
        load_account(session, account_id)
        statement = select(OutboxEvent).where(OutboxEvent.account_id == account_id)
        if event_type:
            statement = statement.where(OutboxEvent.type == event_type)
        found: list[EventLog] = []
        # The status is derived from the deliveries, so a status filter reads events in
        # chunks until the page is full or the account has no more.
        while len(found) < size:
            chunk_statement = statement
            if cursor:
                chunk_statement = chunk_statement.where(OutboxEvent.event_id < cursor)
            chunk = list(
                session.exec(
                    chunk_statement.order_by(col(OutboxEvent.event_id).desc()).limit(size + 1)
                )
            )
            for log in _event_logs(session, chunk):
                if len(found) == size:
                    # One more matching event exists: the page ends at the last one found.
                    return found, found[-1].event.event_id
                if status is None or log.status == status:
                    found.append(log)
            if len(chunk) <= size:
                return found, ""
            cursor = chunk[-1].event_id
    return found, found[-1].event.event_id if found else ""


def redeliver(db: Database, ctx: RequestContext, *, event_id: str, endpoint_id: str) -> EventLog:
    """Deliver the event again, now, to every enabled endpoint subscribed to it (or to one).
    A delivery waiting for a retry is moved to now instead of queued twice."""
    if not event_id:
        raise InvalidArgument("event_id", "is required")
    with db.write() as session:
        event = visible(
            ctx.caller,
            session.get(OutboxEvent, event_id),
            f"webhook event {shown(event_id)} does not exist",
        )
        endpoints = subscribed_endpoints(session, event)
        if endpoint_id:
            endpoints = [e for e in endpoints if e.endpoint_id == endpoint_id]
            if not endpoints:
                raise NotFound(
                    f"endpoint {shown(endpoint_id)} is not an enabled endpoint "
                    f"subscribed to {event.type} for account {event.account_id}"
                )
        waiting = {
            d.endpoint_id: d
            for d in session.exec(
                select(WebhookDelivery).where(
                    WebhookDelivery.event_id == event_id, WebhookDelivery.status == "pending"
                )
            )
        }
        # Deliveries live on the dispatcher's wall time, also for a test clock's account (whose
        # call runs at the clock's time: the audit record's ``at``).
        wall = db.clock.now()
        for endpoint in endpoints:
            delivery = waiting.get(endpoint.endpoint_id)
            in_flight = (
                delivery is not None
                and delivery.lease_until is not None
                and delivery.lease_until > wall
            )
            if delivery is not None and not in_flight:
                delivery.next_attempt_at = wall  # waiting for a retry: now instead
                session.add(delivery)
            else:
                # None waiting, or one in flight right now (whose answer the caller has not
                # seen): a new delivery.
                session.add(
                    WebhookDelivery(
                        event_id=event_id,
                        endpoint_id=endpoint.endpoint_id,
                        next_attempt_at=wall,
                        created_at=wall,
                    )
                )
        audit.append(
            session,
            actor=ctx.caller.name,
            action="webhook_event.redelivered",
            account_id=event.account_id,
            before=None,
            after={"event_id": event_id, "endpoints": [e.endpoint_id for e in endpoints]},
            at=ctx.now,
            request_id=ctx.request_id,
        )
        session.flush()
        return _event_logs(session, [event])[0]


def subscribed_endpoints(session: Session, event: OutboxEvent) -> list[WebhookEndpoint]:
    endpoints = session.exec(
        select(WebhookEndpoint).where(
            WebhookEndpoint.account_id == event.account_id, WebhookEndpoint.status == ENABLED
        )
    ).all()
    return [e for e in endpoints if subscribed(event.type, set(e.event_types))]
