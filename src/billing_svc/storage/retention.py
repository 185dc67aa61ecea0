"""The purges' SQL: the purge horizon, and bounded chunks of old rows to delete.

Each ``delete_*`` method deletes at most ``limit`` rows and is meant to be the whole of one short
write transaction (services.retention measures them): SQLite has one writer, and ingestion must
never wait long behind a purge. Selecting what to delete is done before, in read transactions,
where it holds no lock at all (WAL) or none that ingestion waits for (PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, not_, or_, select, tuple_, update
from sqlalchemy.engine import Connection

from billing_svc.domain.usage import STORAGE
from billing_svc.storage.tables import (
    Account,
    IdempotencyRecord,
    Invoice,
    OutboxEvent,
    RetentionState,
    UsageHourly,
    UsagePeriod,
    UsagePurgedPeriod,
    UsageReport,
    UsageReportDue,
    UsageTenantPeriod,
    WebhookAttempt,
    WebhookDelivery,
)
from billing_svc.storage.usage import _EVENT_COLUMNS, UsageStore

USAGE_HORIZON = "usage_horizon"
LAST_PURGE = "last_purge"
EVENT_COLUMNS = tuple(column.strip() for column in _EVENT_COLUMNS.split(","))

_state = RetentionState.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
_purged = UsagePurgedPeriod.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
_event = OutboxEvent.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
_delivery = WebhookDelivery.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
_attempt = WebhookAttempt.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
_idempotency = IdempotencyRecord.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
_hourly = UsageHourly.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
_invoice = Invoice.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
_due = UsageReportDue.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
_report = UsageReport.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
_account = Account.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
_PENDING = "pending"


def usage_horizon_us(connection: Connection, *, share_lock: bool = False) -> int:
    """The purge horizon: no usage event older than it is taken. ``share_lock`` (ingestion, on
    PostgreSQL): held until the transaction ends, so a purge's advance of the horizon waits for
    the group, and the group cannot store an event the purge is deleting."""
    # Plain SQL: ingestion runs this once per group, and compiling a statement costs more.
    statement = f"SELECT value_us FROM retention_state WHERE name = '{USAGE_HORIZON}'"
    if share_lock and connection.dialect.name == "postgresql":
        statement += " FOR SHARE"
    value = connection.exec_driver_sql(statement).scalar()
    return int(value) if value is not None else 0


class RetentionStore:
    """Statements over one connection (inside the caller's transaction)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.usage = UsageStore(connection)

    # -- state ---------------------------------------------------------------------------------

    def state_us(self, name: str) -> int | None:
        value = self.connection.execute(
            select(_state.c.value_us).where(_state.c.name == name)
        ).scalar()
        return int(value) if value is not None else None

    def set_state_us(self, name: str, value_us: int, now: datetime) -> None:
        """Set a value; the horizon only ever moves forward."""
        current = self.state_us(name)
        if current is None:
            self._insert_new(_state, [{"name": name, "value_us": value_us, "updated_at": now}])
        elif name != USAGE_HORIZON or value_us > current:
            self.connection.execute(
                update(_state)
                .where(_state.c.name == name)
                .values(value_us=value_us, updated_at=now)
            )

    # -- raw usage events ----------------------------------------------------------------------

    def periods_before(self, label: str) -> set[tuple[str, str]]:
        """Every ``(account, period)`` before period ``label`` that has counters (so events)."""
        rows: set[tuple[str, str]] = set()
        for table in (UsagePeriod.__table__, UsageTenantPeriod.__table__):  # type: ignore[attr-defined]  # SQLModel table attribute
            rows.update(
                (a, p)
                for a, p in self.connection.execute(
                    select(table.c.account_id, table.c.period)
                    .distinct()
                    .where(table.c.period < label)
                )
            )
        return rows

    def clock_accounts(self) -> set[str]:
        """The test clocks' accounts: their data lives on a clock's time, never on the purge's
        (it goes with DeleteTestClock)."""
        table = Account.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
        return set(
            self.connection.execute(
                select(table.c.account_id).where(table.c.test_clock_id.is_not(None))
            ).scalars()
        )

    def invoiced(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        pairs = list(pairs)
        found: set[tuple[str, str]] = set()
        for start in range(0, len(pairs), 400):
            chunk = pairs[start : start + 400]
            found.update(
                (a, p)
                for a, p in self.connection.execute(
                    select(_invoice.c.account_id, _invoice.c.period).where(
                        tuple_(_invoice.c.account_id, _invoice.c.period).in_(chunk)
                    )
                )
            )
        return found

    def purged_periods(self) -> dict[tuple[str, str], bool]:
        """``(account, period) -> finished`` of every period a purge has started on."""
        return {
            (a, p): finished is not None
            for a, p, finished in self.connection.execute(
                select(_purged.c.account_id, _purged.c.period, _purged.c.finished_at)
            )
        }

    def period_messages(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        table = UsagePeriod.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
        pairs = list(pairs)
        found: dict[tuple[str, str], int] = {}
        for start in range(0, len(pairs), 400):
            chunk = pairs[start : start + 400]
            found.update(
                {
                    (a, p): int(m)
                    for a, p, m in self.connection.execute(
                        select(table.c.account_id, table.c.period, table.c.messages).where(
                            tuple_(table.c.account_id, table.c.period).in_(chunk)
                        )
                    )
                }
            )
        return found

    def _insert_new(self, table: Any, rows: list[dict[str, Any]]) -> None:
        """Insert rows whose key may exist already (another replica's purge): those stay."""
        if not rows:
            return
        if self.connection.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]  # same signature
        self.connection.execute(dialect_insert(table).on_conflict_do_nothing(), rows)

    def start_purging(
        self, account_id: str, periods: Iterable[str], horizon_us: int, now: datetime
    ) -> None:
        self._insert_new(
            _purged,
            [
                {
                    "account_id": account_id,
                    "period": p,
                    "horizon_us": horizon_us,
                    "started_at": now,
                    "finished_at": None,
                    "events_deleted": 0,
                }
                for p in periods
            ],
        )

    def count_deleted(self, account_id: str, deleted: dict[str, int]) -> None:
        for period, count in deleted.items():
            self.connection.execute(
                update(_purged)
                .where(_purged.c.account_id == account_id, _purged.c.period == period)
                .values(events_deleted=_purged.c.events_deleted + count)
            )

    def finish_purging(self, account_id: str, periods: Iterable[str], now: datetime) -> None:
        self.connection.execute(
            update(_purged)
            .where(
                _purged.c.account_id == account_id,
                _purged.c.period.in_(list(periods)),
                _purged.c.finished_at.is_(None),
            )
            .values(finished_at=now)
        )

    def purged_period(self, account_id: str, period: str) -> tuple[int, datetime] | None:
        """``(horizon_us, started_at)`` if a purge has started on the period's raw events."""
        row = self.connection.execute(
            select(_purged.c.horizon_us, _purged.c.started_at).where(
                _purged.c.account_id == account_id, _purged.c.period == period
            )
        ).first()
        return (int(row[0]), row[1]) if row is not None else None

    def latest_readings_before(self, account_id: str, horizon_us: int) -> dict[str, int]:
        """Each tenant's time of its last storage reading before the horizon: the level in force
        at the horizon, which every later computation starts from."""
        return {
            tenant: int(at)
            for tenant, at in self.usage._all(
                # kind literal: SQLite's partial index of storage readings (WHERE kind = 2)
                "SELECT tenant_id, MAX(occurred_at_us) FROM usage_event WHERE account_id = ? AND "
                f"kind = {STORAGE} AND occurred_at_us < ? GROUP BY tenant_id",
                [account_id, horizon_us],
            )
        }

    def usage_candidates(
        self,
        account_id: str,
        after_event_id: str,
        periods: Sequence[str],
        storage_periods: Sequence[str],
        limit: int,
        horizon_us: int = 0,
    ) -> list[tuple[str, str, int, int]]:
        """The next ``limit`` events after ``after_event_id`` (in key order) of ``periods``, or
        storage readings of ``storage_periods``: ``(event_id, tenant, kind, occurred_at_us)``.
        (SQLite's event log is read for all accounts at once instead: ``log_page``.)"""
        wanted = [f"period IN ({','.join('?' * len(periods))})"] if periods else []
        if storage_periods:
            wanted.append(
                f"(kind = {STORAGE} AND period IN ({','.join('?' * len(storage_periods))}))"
            )
        if not wanted:
            return []
        # PostgreSQL's partitions are indexed by (account, time), not by event id: all these
        # periods lie before the horizon, which bounds the index range to read.
        before = [horizon_us] if self.usage.postgres else []
        return [
            (e, t, int(k), int(at))
            for e, t, k, at in self.usage._all(
                "SELECT event_id, tenant_id, kind, occurred_at_us FROM usage_event "
                f"WHERE account_id = ? AND event_id > ? AND ({' OR '.join(wanted)}) "
                + ("AND occurred_at_us < ? " if before else "")
                + "ORDER BY event_id LIMIT ?",
                [account_id, after_event_id, *periods, *storage_periods, *before, limit],
            )
        ]

    def log_end(self) -> int:
        """SQLite: the newest log id (0: an empty log)."""
        return int(self.usage._all("SELECT COALESCE(MAX(log_id), 0) FROM usage_event", [])[0][0])

    def delete_log_marks_before(self, before_us: int, limit: int) -> int:
        """SQLite: delete up to ``limit`` of the hourly log marks (``usage_log_mark``) before
        ``before_us`` but the newest of them: a scan of the log from a time after ``before_us``
        starts from that one, as before; one from earlier starts at the log's start (no mark
        before it), which finds the same events. Without this the table grew an hour a row."""
        return int(
            self.connection.exec_driver_sql(
                "DELETE FROM usage_log_mark WHERE hour_us IN (SELECT hour_us FROM usage_log_mark "
                "WHERE hour_us < (SELECT MAX(hour_us) FROM usage_log_mark WHERE hour_us <= ?) "
                "ORDER BY hour_us LIMIT ?)",
                (before_us, limit),
            ).rowcount
        )

    def log_page(
        self, after_log_id: int, rows: int, horizon_us: int
    ) -> list[tuple[int, str, str, int, str, int]]:
        """SQLite: the events older than the horizon among the log's next ``rows`` log ids
        after ``after_log_id`` (one range of the log, read in order): ``(log_id, account_id,
        period, kind, tenant_id, occurred_at_us)``."""
        return [
            (int(log_id), a, p, int(k), t, int(at))
            for log_id, a, p, k, t, at in self.usage._all(
                "SELECT log_id, account_id, period, kind, tenant_id, occurred_at_us "
                "FROM usage_event WHERE log_id > ? AND log_id <= ? AND occurred_at_us < ? "
                "ORDER BY log_id",
                [after_log_id, after_log_id + rows, horizon_us],
            )
        ]

    def delete_log_events(self, log_ids: Sequence[int], horizon_us: int) -> list[tuple[Any, ...]]:
        """SQLite: delete these events of the log (older than the horizon, whatever the caller
        says) and return them whole, columns in ``EVENT_COLUMNS`` order."""
        if not log_ids:
            return []
        return self.usage._all(
            f"DELETE FROM usage_event WHERE log_id IN ({','.join('?' * len(log_ids))}) "
            f"AND occurred_at_us < ? RETURNING {_EVENT_COLUMNS}",
            [*log_ids, horizon_us],
        )

    def delete_usage_events(
        self, account_id: str, event_ids: Sequence[str], horizon_us: int
    ) -> list[tuple[Any, ...]]:
        """Delete these events (older than the horizon, whatever the caller says) and return
        them whole, columns in ``EVENT_COLUMNS`` order: what an export writes."""
        if not event_ids:
            return []
        return self.usage._all(
            f"DELETE FROM usage_event WHERE account_id = ? AND occurred_at_us < ? AND event_id "
            f"IN ({','.join('?' * len(event_ids))}) RETURNING {_EVENT_COLUMNS}",
            [account_id, horizon_us, *event_ids],
        )

    # -- webhook log ---------------------------------------------------------------------------

    def finished_outbox_events(
        self, before: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[datetime, str]]:
        """Outbox events created before ``before`` (oldest first, after the key ``after``) that
        are fanned out and have no delivery still pending: ``(created_at, event_id)``."""
        pending = exists().where(
            _delivery.c.event_id == _event.c.event_id, _delivery.c.status == _PENDING
        )
        statement = (
            select(_event.c.created_at, _event.c.event_id)
            .where(_event.c.created_at < before, _event.c.fanned_out.is_(True), not_(pending))
            .order_by(_event.c.created_at, _event.c.event_id)
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(
                or_(
                    _event.c.created_at > after[0],
                    and_(_event.c.created_at == after[0], _event.c.event_id > after[1]),
                )
            )
        return [(at, event_id) for at, event_id in self.connection.execute(statement)]

    def delete_webhook_log(self, event_ids: Sequence[str]) -> tuple[int, int, int]:
        """Delete these outbox events with their deliveries and attempts, all but those that
        have got a pending delivery since they were chosen (a redelivery): ``(events,
        deliveries, attempts)`` deleted."""
        if not event_ids:
            return 0, 0, 0
        pending = {
            row[0]
            for row in self.connection.execute(
                select(_delivery.c.event_id).where(
                    _delivery.c.event_id.in_(event_ids), _delivery.c.status == _PENDING
                )
            )
        }
        ids = [event_id for event_id in event_ids if event_id not in pending]
        if not ids:
            return 0, 0, 0
        attempts = self.connection.execute(
            delete(_attempt).where(_attempt.c.event_id.in_(ids))
        ).rowcount
        deliveries = self.connection.execute(
            delete(_delivery).where(_delivery.c.event_id.in_(ids))
        ).rowcount
        events = self.connection.execute(
            delete(_event).where(_event.c.event_id.in_(ids), _event.c.fanned_out.is_(True))
        ).rowcount
        return events, deliveries, attempts

    # -- idempotency records and hourly roll-ups -----------------------------------------------

    def delete_idempotency_records(self, before: datetime, limit: int) -> int:
        keys = (_idempotency.c.token_id, _idempotency.c.method, _idempotency.c.request_id)
        oldest = (
            select(*keys)
            .where(_idempotency.c.created_at < before)
            .order_by(_idempotency.c.created_at)
            .limit(limit)
        )
        return int(
            self.connection.execute(delete(_idempotency).where(tuple_(*keys).in_(oldest))).rowcount
        )

    def invoiced_periods_before(self, label: str) -> list[tuple[str, str]]:
        return [
            (a, p)
            for a, p in self.connection.execute(
                select(_invoice.c.account_id, _invoice.c.period)
                .where(_invoice.c.period < label)
                .order_by(_invoice.c.account_id, _invoice.c.period)
            )
        ]

    def has_hourly(self, account_id: str, from_us: int, to_us: int) -> bool:
        return (
            self.connection.execute(
                select(_hourly.c.hour_us)
                .where(
                    _hourly.c.account_id == account_id,
                    _hourly.c.hour_us >= from_us,
                    _hourly.c.hour_us < to_us,
                )
                .limit(1)
            ).first()
            is not None
        )

    def has_report_due(self, account_id: str, from_us: int, to_us: int) -> bool:
        """Is an hour of the account in ``[from_us, to_us)`` still to be reported?"""
        return (
            self.connection.execute(
                select(_due.c.hour_us)
                .where(
                    _due.c.account_id == account_id,
                    _due.c.hour_us >= from_us,
                    _due.c.hour_us < to_us,
                )
                .limit(1)
            ).first()
            is not None
        )

    def delete_hourly(self, account_id: str, from_us: int, to_us: int, limit: int) -> int:
        """Delete up to ``limit`` hourly roll-ups of the account in ``[from_us, to_us)``."""
        keys = (
            _hourly.c.account_id,
            _hourly.c.hour_us,
            _hourly.c.tenant_id,
            _hourly.c.partner_id,
            _hourly.c.kind,
        )
        chunk = (
            select(*keys)
            .where(
                _hourly.c.account_id == account_id,
                _hourly.c.hour_us >= from_us,
                _hourly.c.hour_us < to_us,
            )
            .limit(limit)
        )
        return int(
            self.connection.execute(delete(_hourly).where(tuple_(*keys).in_(chunk))).rowcount
        )

    # -- hourly usage reports ------------------------------------------------------------------

    @staticmethod
    def _purgeable_report(before_us: int) -> Any:
        """A report of an hour before ``before_us`` that is not the latest revision of an hour
        whose roll-ups are kept (the next revision's deltas are taken against that one's totals),
        nor a test clock account's (its hours are on the clock's time)."""
        later = _report.alias("later")
        clock_accounts = select(_account.c.account_id).where(_account.c.test_clock_id.is_not(None))
        superseded = exists().where(
            later.c.account_id == _report.c.account_id,
            later.c.hour_us == _report.c.hour_us,
            later.c.revision > _report.c.revision,
        )
        rollups_kept = exists().where(
            _hourly.c.account_id == _report.c.account_id, _hourly.c.hour_us == _report.c.hour_us
        )
        return and_(
            _report.c.hour_us < before_us,
            or_(superseded, not_(rollups_kept)),
            _report.c.account_id.not_in(clock_accounts),
        )

    def purgeable_reports(
        self, before_us: int, after_sequence: int, limit: int
    ) -> list[tuple[int, int]]:
        """The next ``limit`` reports after ``after_sequence`` that a purge may delete:
        ``(sequence, bytes of their JSON)`` (a report of 10,000 tenants holds a megabyte)."""
        stored_bytes = (
            func.length(_report.c.tenants_json)
            + func.length(_report.c.partners_json)
            + func.length(_report.c.totals_json)
        )
        return [
            (int(sequence), int(size))
            for sequence, size in self.connection.execute(
                select(_report.c.sequence, stored_bytes)
                .where(_report.c.sequence > after_sequence, self._purgeable_report(before_us))
                .order_by(_report.c.sequence)
                .limit(limit)
            )
        ]

    def delete_reports(self, sequences: Sequence[int], before_us: int) -> int:
        """Delete these reports, each only if it is still purgeable in this transaction (they
        were chosen in an earlier one)."""
        if not sequences:
            return 0
        return int(
            self.connection.execute(
                delete(_report).where(
                    _report.c.sequence.in_(list(sequences)), self._purgeable_report(before_us)
                )
            ).rowcount
        )

    def count(self, table: Any) -> int:
        return int(self.connection.execute(select(func.count()).select_from(table)).scalar() or 0)
