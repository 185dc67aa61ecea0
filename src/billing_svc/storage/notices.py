"""Once-per-period notices: the first transaction to claim a key sends the event, no other does."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from billing_svc.storage.db import clock_of
from billing_svc.storage.tables import PeriodNotice


def claim(session: Session, account_id: str, period: str, notice_key: str) -> bool:
    """Claim ``notice_key`` for the account's period; ``True`` only for the first claim ever."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(PeriodNotice)
        .values(
            account_id=account_id,
            period=period,
            notice_key=notice_key,
            created_at=clock_of(session).now(),
        )
        .on_conflict_do_nothing()
        .returning(col(PeriodNotice.notice_key))
    )
    return session.execute(statement).first() is not None
