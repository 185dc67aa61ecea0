"""Hourly usage reports to billing systems ("usage is ... reported to billing systems hourly").

Once an hour has closed (plus ``BILLING_USAGE_REPORT_GRACE_SECONDS``), every account with usage
in it gets one report ``(account, hour, revision)``, built from the hourly roll-ups, never from
raw events: messages per tenant and per partner, the storage each tenant held at the hour's end,
and the period's estimated charges (informational). A later event of a reported hour makes a new
revision that carries the message deltas and the storage levels as known now, so the message
deltas of every revision of a period add up to its counters as finally recorded.

How it stays exactly once and gap-free across replicas:

- Ingestion marks ``usage_report_due (account, hour)`` in the transaction that changes the hour's
  roll-ups (``UsageStore.mark_reports_due``). The job claims marks ``FOR UPDATE SKIP LOCKED``,
  reads the roll-ups, writes the reports and their ``billing.usage_reported`` events, and deletes
  the marks, in one transaction. An ingestion that changes a claimed hour waits for the job on
  the mark and marks it anew, so what the job could not see is in a later revision.
- ``(account, hour, revision)`` is unique: a revision is never made twice.
- Each report's ``sequence`` comes from the one ``usage_report_head`` row, updated under its lock
  at the end of the job's transaction: sequences are given out in commit order, so a puller's
  cursor "after sequence N" never skips a report that commits later with a smaller number.

Retention (issue 16): reports are derived data the puller and the endpoints already received;
the purge (services.retention) deletes the reports of hours older than the roll-ups' retention,
never the latest revision of an hour whose ``usage_hourly`` rows still exist (or the next
revision's deltas would be taken against nothing), and never touches ``usage_report_head``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import delete, func, tuple_, update
from sqlmodel import Session, col, select

from billing_svc.domain import events, usage
from billing_svc.domain.errors import InvalidArgument, Unavailable
from billing_svc.domain.periods import Period
from billing_svc.services import paging
from billing_svc.services.common import load_account
from billing_svc.storage import outbox
from billing_svc.storage.db import Database
from billing_svc.storage.tables import (
    Account,
    StorageLevel,
    UsageHourly,
    UsageReport,
    UsageReportDue,
    UsageReportHead,
)

log = structlog.get_logger("billing_svc.hourly_reports")

HOUR_US = 3_600_000_000
# (account, hour) marks one job transaction takes: a short lock on the head row, and a replica
# that runs the job at the same time takes the next ones.
REPORT_BATCH = 200
MAX_PAGE_SIZE = 1000
# A page's reports together, as encoded: a quarter of the 4 MiB a gRPC client takes by default
# (grpc.max_receive_message_length), whatever BILLING_MAX_MESSAGE_BYTES lets the server send. An
# account's report lists up to 10,000 tenants (domain.bounds), about 0.9 MB at most, so 1,000 of
# them could not travel in one message. A page always holds at least one report.
MAX_PAGE_BYTES = 1024 * 1024
# A page is sized from the reports' stored JSON, which is never shorter than their protobuf
# encoding: an entry's brackets, quotes and commas outweigh its tags and lengths, and a count has
# at least as many decimal digits as its varint has bytes. Beside them, a report encodes its ids,
# times, revision, period and money in at most this:
REPORT_OVERHEAD_BYTES = 200
_RPC = "ListUsageReports"


@dataclass(frozen=True)
class TenantReport:
    tenant_id: str
    messages: int  # delta since the previous revision
    storage_bytes: int  # held at the hour's end, as known when the revision was made


@dataclass(frozen=True)
class PartnerReport:
    partner_id: str
    messages: int  # delta since the previous revision


@dataclass(frozen=True)
class HourlyReport:
    sequence: int
    account_id: str
    hour: datetime
    revision: int
    period: str
    tenants: list[TenantReport]
    partners: list[PartnerReport]
    estimated_charges: Decimal
    created_at: datetime


@dataclass(frozen=True)
class ReportPage:
    reports: list[HourlyReport]
    resume_token: str


# ---------------------------------------------------------------------------------------------
# The job


def _on_time_line(test_clock_id: str | None) -> Any:
    """The marks of one time line: the real accounts' (``None``), or a test clock's, whose hours
    close on the clock's time and whose reports are made when it is advanced."""
    clock = (
        col(Account.test_clock_id).is_(None)
        if test_clock_id is None
        else col(Account.test_clock_id) == test_clock_id
    )
    return col(UsageReportDue.account_id).in_(select(Account.account_id).where(clock))


def report_closed_hours(
    db: Database, now: datetime, grace: timedelta, test_clock_id: str | None = None
) -> int:
    """Report every marked hour that closed at least ``grace`` ago; returns the reports made."""
    made = 0
    last_closed_hour_us = usage.to_us(now - grace) - HOUR_US
    line = _on_time_line(test_clock_id)
    with db.read() as session:
        # A read first: an idle job must not take SQLite's one write lock every run.
        if (
            session.execute(
                select(UsageReportDue.hour_us)
                .where(UsageReportDue.hour_us <= last_closed_hour_us, line)
                .limit(1)
            ).first()
            is None
        ):
            return 0
    while True:
        try:
            with db.write() as session:
                count, claimed = _report_batch(session, now, last_closed_hour_us, line=line)
        except Unavailable:
            raise
        except Exception:
            # One hour that cannot be reported (say, an account whose terms cannot be rated)
            # must not hold back the others: again one mark per transaction, skipping it.
            log.warning("usage_report_batch_failed", exc_info=True)
            return made + _report_one_by_one(db, now, last_closed_hour_us, line)
        made += count
        if claimed < REPORT_BATCH:
            return made


def _report_one_by_one(db: Database, now: datetime, last_closed_hour_us: int, line: Any) -> int:
    with db.read() as session:
        marks = session.execute(
            select(UsageReportDue.account_id, UsageReportDue.hour_us)
            .where(col(UsageReportDue.hour_us) <= last_closed_hour_us, line)
            .order_by(col(UsageReportDue.hour_us), col(UsageReportDue.account_id))
            .limit(REPORT_BATCH)
        ).all()
    made = 0
    for account_id, hour_us in marks:
        try:
            with db.write() as session:
                made += _report_batch(
                    session, now, last_closed_hour_us, only=(account_id, int(hour_us))
                )[0]
        except Unavailable:
            raise
        except Exception:
            log.exception(
                "usage_report_failed",
                account_id=account_id,
                hour=events.iso_utc(usage.from_us(int(hour_us))),
            )
    return made


def _report_batch(
    session: Session,
    now: datetime,
    last_closed_hour_us: int,
    only: tuple[str, int] | None = None,
    line: Any = True,
) -> tuple[int, int]:
    """One transaction: claim up to REPORT_BATCH closed marks (or just ``only``), report them,
    delete the marks."""
    claim = select(UsageReportDue.account_id, UsageReportDue.hour_us).where(
        UsageReportDue.hour_us <= last_closed_hour_us, line
    )
    if only is not None:
        claim = claim.where(UsageReportDue.account_id == only[0], UsageReportDue.hour_us == only[1])
    due = session.execute(
        claim.order_by(col(UsageReportDue.hour_us), col(UsageReportDue.account_id))
        .limit(REPORT_BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    if not due:
        return 0, 0
    drafts = [
        draft
        for account_id, hour_us in due
        if (draft := _draft(session, account_id, int(hour_us))) is not None
    ]
    charges: dict[tuple[str, str], Decimal] = {}
    for draft in drafts:
        key = (draft.account_id, draft.period)
        if key not in charges:
            charges[key] = _estimated_charges(session, draft.account_id, draft.period, now)
        draft.estimated_charges = charges[key]
        draft.created_at = now
    if drafts:
        # Last: the head row's lock is held from here to the commit (see the module docstring).
        head = session.execute(
            update(UsageReportHead)
            .where(col(UsageReportHead.id) == 1)
            .values(sequence=UsageReportHead.sequence + len(drafts))
            .returning(col(UsageReportHead.sequence))
        ).scalar_one()
        for offset, draft in enumerate(drafts):
            draft.sequence = head - len(drafts) + 1 + offset
            session.add(draft)
            outbox.enqueue(session, _event(draft))
    session.execute(
        delete(UsageReportDue).where(
            tuple_(UsageReportDue.account_id, UsageReportDue.hour_us).in_(
                [(account_id, hour_us) for account_id, hour_us in due]
            )
        )
    )
    return len(drafts), len(due)


def _draft(session: Session, account_id: str, hour_us: int) -> UsageReport | None:
    """The next revision of the hour from its roll-ups, or ``None`` when nothing changed since the
    last one (a duplicate storage reading, an older reading inside the hour)."""
    tenant_messages: dict[str, int] = {}
    partner_messages: dict[str, int] = {}
    for tenant_id, partner_id, messages in session.execute(
        select(UsageHourly.tenant_id, UsageHourly.partner_id, UsageHourly.messages).where(
            UsageHourly.account_id == account_id,
            UsageHourly.hour_us == hour_us,
            UsageHourly.kind == usage.MESSAGE,
        )
    ):
        tenant_messages[tenant_id] = tenant_messages.get(tenant_id, 0) + int(messages)
        if partner_id:
            partner_messages[partner_id] = partner_messages.get(partner_id, 0) + int(messages)
    storage = _storage_at_hour_end(session, account_id, hour_us)
    previous = session.execute(
        select(UsageReport.revision, UsageReport.totals_json)
        .where(UsageReport.account_id == account_id, UsageReport.hour_us == hour_us)
        .order_by(col(UsageReport.revision).desc())
        .limit(1)
    ).first()
    revision, before = (previous[0], json.loads(previous[1])) if previous else (0, {})
    tenants_before: dict[str, int] = before.get("tenants", {})
    partners_before: dict[str, int] = before.get("partners", {})
    tenant_deltas = {
        tenant_id: tenant_messages.get(tenant_id, 0) - tenants_before.get(tenant_id, 0)
        for tenant_id in tenant_messages.keys() | tenants_before.keys()
    }
    partner_deltas = {
        partner_id: partner_messages.get(partner_id, 0) - partners_before.get(partner_id, 0)
        for partner_id in partner_messages.keys() | partners_before.keys()
    }
    if (
        previous is not None
        and not any(tenant_deltas.values())
        and not any(partner_deltas.values())
        and storage == before.get("storage", {})
    ):
        return None
    # A tenant is listed when its messages changed or it holds storage; a partner when its
    # messages changed.
    tenants = [
        [tenant_id, tenant_deltas.get(tenant_id, 0), storage.get(tenant_id, 0)]
        for tenant_id in sorted(tenant_deltas.keys() | storage.keys())
        if tenant_deltas.get(tenant_id, 0) or tenant_id in storage
    ]
    partners = [
        [partner_id, delta] for partner_id, delta in sorted(partner_deltas.items()) if delta
    ]
    return UsageReport(
        sequence=0,
        account_id=account_id,
        hour_us=hour_us,
        revision=revision + 1,
        period=usage.period_label_of(hour_us),
        tenants_json=json.dumps(tenants),
        partners_json=json.dumps(partners),
        totals_json=json.dumps(
            {"tenants": tenant_messages, "partners": partner_messages, "storage": storage},
            sort_keys=True,
        ),
        estimated_charges=Decimal(0),
        created_at=usage.from_us(hour_us),
    )


def _storage_at_hour_end(session: Session, account_id: str, hour_us: int) -> dict[str, int]:
    """Each tenant's storage level at the hour's end: its latest reading up to then (a level
    holds until the next reading). A tenant whose latest reading of all is before the hour's end
    still holds it (``storage_level``); for the others, the last reading of the latest hour up to
    this one in which they sent one."""
    end_us = hour_us + HOUR_US
    levels: dict[str, int] = {}
    for level in session.exec(select(StorageLevel).where(StorageLevel.account_id == account_id)):
        if level.reading_at_us < end_us:
            levels[level.tenant_id] = level.level_bytes
            continue
        row = session.execute(
            select(UsageHourly.storage_bytes_last)
            .where(
                UsageHourly.account_id == account_id,
                UsageHourly.tenant_id == level.tenant_id,
                UsageHourly.kind == usage.STORAGE,
                UsageHourly.hour_us <= hour_us,
            )
            # Rows of one hour differ by partner: the latest reading among them holds.
            .order_by(
                UsageHourly.hour_us.desc(),  # type: ignore[attr-defined]  # SQLModel column attribute
                col(UsageHourly.storage_last_at_us).desc(),
            )
            .limit(1)
        ).first()
        if row is not None:
            levels[level.tenant_id] = int(row[0])
    return dict(sorted(levels.items()))


def _estimated_charges(
    session: Session, account_id: str, period_label: str, now: datetime
) -> Decimal:
    """The period's invoice total, or while it is open its estimate so far (GetCurrentUsage's):
    informational, never to be summed."""
    from billing_svc.services.usage_reports import period_snapshot  # a cycle at import time

    account = session.get(Account, account_id)
    if account is None:  # pragma: no cover - usage refers to an existing account
        return Decimal(0)
    period = Period.parse(period_label)
    return period_snapshot(session, account, period, min(now, period.end)).total


def _event(report: UsageReport) -> events.BillingEvent:
    view = _view(report)
    return events.usage_reported(
        account_id=view.account_id,
        hour=view.hour,
        revision=view.revision,
        sequence=view.sequence,
        period=view.period,
        tenants=[(t.tenant_id, t.messages, t.storage_bytes) for t in view.tenants],
        partners=[(p.partner_id, p.messages) for p in view.partners],
        estimated_charges_to_date=view.estimated_charges,
        occurred_at=view.created_at,
    )


def _view(report: UsageReport) -> HourlyReport:
    return HourlyReport(
        sequence=report.sequence,
        account_id=report.account_id,
        hour=usage.from_us(report.hour_us),
        revision=report.revision,
        period=report.period,
        tenants=[TenantReport(t, m, s) for t, m, s in json.loads(report.tenants_json)],
        partners=[PartnerReport(p, m) for p, m in json.loads(report.partners_json)],
        estimated_charges=report.estimated_charges,
        created_at=report.created_at,
    )


# ---------------------------------------------------------------------------------------------
# The cursor


def list_usage_reports(
    db: Database,
    *,
    account_id: str,
    page_size: int,
    resume_token: str,
    max_bytes: int = MAX_PAGE_BYTES,
) -> ReportPage:
    """The account's reports after the token's position, in sequence (= commit) order, as many as
    ``page_size`` and ``max_bytes`` (encoded, estimated from above) allow, at least one. The
    returned token is always set: sent back, it yields only reports made since."""
    if page_size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    if not account_id:
        raise InvalidArgument("account_id", "is required")
    after = paging.read_token(
        resume_token, _RPC, (account_id,), (paging.whole(0),), field="resume_token"
    )
    after_sequence = int(after[0]) if after else 0
    size = min(page_size or 100, MAX_PAGE_SIZE)
    with db.read() as session:
        load_account(session, account_id)
        # The sizes first, so that no more rows are read than the page holds.
        sizes = session.execute(
            select(
                UsageReport.sequence,
                func.length(UsageReport.tenants_json) + func.length(UsageReport.partners_json),
            )
            .where(UsageReport.account_id == account_id, UsageReport.sequence > after_sequence)
            .order_by(col(UsageReport.sequence))
            .limit(size)
        ).all()
        last_sequence = after_sequence
        total_bytes = 0
        for sequence, stored_bytes in sizes:
            total_bytes += int(stored_bytes) + REPORT_OVERHEAD_BYTES
            if last_sequence != after_sequence and total_bytes > max_bytes:
                break
            last_sequence = int(sequence)
        rows = session.exec(
            select(UsageReport)
            .where(
                UsageReport.account_id == account_id,
                UsageReport.sequence > after_sequence,
                UsageReport.sequence <= last_sequence,
            )
            .order_by(col(UsageReport.sequence))
        ).all()
    last = rows[-1].sequence if rows else after_sequence
    return ReportPage([_view(row) for row in rows], paging.next_token(_RPC, (account_id,), (last,)))
