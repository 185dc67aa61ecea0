"""The transactional outbox: events are inserted in the caller's transaction, never sent from it."""

from __future__ import annotations

import dataclasses

from sqlmodel import Session

from billing_svc.domain.events import BillingEvent
from billing_svc.domain.ids import new_id
from billing_svc.storage.db import clock_of
from billing_svc.storage.tables import Account, OutboxEvent


def enqueue(session: Session, event: BillingEvent) -> OutboxEvent:
    """Add ``event`` to the outbox in ``session``'s transaction; it is sent only if that commits.
    An event of a test clock's account says so in ``data.test_clock_id``."""
    account = session.get(Account, event.account_id)  # as a rule already in the session
    if account is not None and account.test_clock_id:
        event = dataclasses.replace(
            event, data={**event.data, "test_clock_id": account.test_clock_id}
        )
    row = OutboxEvent(
        event_id=new_id("msg"),
        account_id=event.account_id,
        type=event.type,
        body=event.body(),
        occurred_at=event.occurred_at,
        created_at=clock_of(session).now(),
    )
    session.add(row)
    return row
