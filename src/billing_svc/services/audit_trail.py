"""The audit trail's reads (spec §1.8): listing records, and verifying the hash chain whole.

Its writes are ``storage.audit.append``, inside each change's own transaction; this module is
what a finance team or an auditor asks of the trail afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlmodel import col, select

from billing_svc.services import paging
from billing_svc.services.views import AuditEventView
from billing_svc.storage import audit
from billing_svc.storage.db import Database
from billing_svc.storage.tables import AuditHead, AuditRecord


def list_audit_events(
    db: Database,
    *,
    account_id: str,
    action: str,
    start: datetime | None,
    end: datetime | None,
    page_size: int,
    page_token: str,
) -> tuple[list[AuditEventView], str]:
    size = min(page_size or 100, 1000)
    statement = select(AuditRecord)
    if account_id:
        statement = statement.where(AuditRecord.account_id == account_id)
    if action:
        statement = statement.where(AuditRecord.action == action)
    if start:
        statement = statement.where(AuditRecord.at >= start)
    if end:
        statement = statement.where(AuditRecord.at < end)
    query = (account_id, action, start, end)
    after = paging.read_token(page_token, "ListAuditEvents", query, (paging.whole(1),))
    if after:
        statement = statement.where(col(AuditRecord.sequence) > after[0])
    with db.read() as session:
        rows = list(session.exec(statement.order_by(col(AuditRecord.sequence)).limit(size + 1)))
    token = (
        paging.next_token("ListAuditEvents", query, (rows[size - 1].sequence,))
        if len(rows) > size
        else ""
    )
    return [AuditEventView.from_row(row) for row in rows[:size]], token


def verify_audit_chain(db: Database, batch: int = 5000) -> audit.ChainBreak | None:
    """Walk the whole chain in order; the first record that does not hold, or ``None``."""
    with db.read() as session:
        head = session.get(AuditHead, 1)

        def records() -> Iterator[AuditRecord]:
            last = 0
            while True:
                rows = session.exec(
                    select(AuditRecord)
                    .where(AuditRecord.sequence > last)
                    .order_by(col(AuditRecord.sequence))
                    .limit(batch)
                ).all()
                if not rows:
                    return
                yield from rows
                last = rows[-1].sequence

        return audit.verify(records(), head)
