"""Usage reads: current period in real time, a month with breakdowns, history in buckets.

Every number comes from the counters and roll-ups ingestion keeps, never from raw events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import structlog
from sqlalchemy import func
from sqlmodel import Session, col, select

from billing_svc.domain import money, rating, storage_meter
from billing_svc.domain.errors import InvalidArgument, Unratable
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import MAX_COUNTER, MESSAGE, from_us, to_us
from billing_svc.services import carryover, paging
from billing_svc.services.common import load_account, require_existed
from billing_svc.services.terms import anniversary, plan_spans, terms_of
from billing_svc.storage.db import Database
from billing_svc.storage.tables import (
    Account,
    Invoice,
    MasterPartner,
    StorageLevel,
    Tenant,
    UsageHourly,
    UsagePartnerPeriod,
    UsagePeriod,
    UsageTenantPeriod,
)
from billing_svc.storage.usage import UsageStore

log = structlog.get_logger("billing_svc.usage_reports")

UNALLOCATED = "Unallocated"


@dataclass(frozen=True)
class TenantUsage:
    tenant_id: str
    name: str
    messages: int
    storage_gb_months: Decimal
    storage_bytes: int
    storage_byte_us: int  # the exact numerator of storage_gb_months


@dataclass(frozen=True)
class PartnerUsage:
    partner_id: str
    name: str
    department: str
    messages: int
    cost: Decimal


@dataclass(frozen=True)
class PeriodSnapshot:
    """A period's usage as of ``as_of`` (its end, for a past period)."""

    period: Period
    as_of: datetime
    messages: int
    billable_messages: int
    active_tenants: int
    storage_bytes: int
    storage_gb_months: Decimal
    billable_storage_gb_months: Decimal
    tenants: list[TenantUsage]
    lines: list[rating.InvoiceLine]
    total: Decimal
    invoiced: bool
    included_messages: int


@dataclass(frozen=True)
class CurrentUsage:
    snapshot: PeriodSnapshot
    projected_messages: int
    projected_charges: Decimal


@dataclass(frozen=True)
class MonthlyUsage:
    snapshot: PeriodSnapshot
    partners: list[PartnerUsage]
    unpartnered_messages: int
    unpartnered_cost: Decimal


def current_usage(db: Database, account_id: str, now: datetime | None = None) -> CurrentUsage:
    """The open period's usage so far and its estimated charges, as its invoice would be if it
    closed now: its own usage, and what the next invoice carries besides (other periods' late
    usage not billed yet, open credits; ``carryover``). The projection holds the run rate to
    the period's end, with the same carryover."""
    now = now or db.clock.now()
    with db.read() as session:
        account = load_account(session, account_id)
        period = Period.containing(now)
        carried = next_invoice_carryover(session, account, period)
        snapshot = period_snapshot(session, account, period, now, carried=carried)
        # The run rate so far, exactly: whole microseconds, never a float near money.
        elapsed_us = max(to_us(now) - to_us(period.start), 1)
        factor = Decimal(period.seconds * 1_000_000) / Decimal(elapsed_us)
        projected = int((Decimal(snapshot.messages) * factor).to_integral_value(ROUND_HALF_UP))
        projected = min(projected, MAX_COUNTER)  # an int64 reply field, like the counter
        extra = projected - snapshot.messages
        # Storage: today's level held to the period's end, on top of what was held so far.
        storage_to_come = storage_meter.gb_months_of(
            snapshot.storage_bytes * (to_us(period.end) - to_us(now)), period
        )
        lines = _rate(
            session,
            account,
            period,
            rating.PeriodUsage(
                messages=snapshot.billable_messages + extra,
                active_tenants=snapshot.active_tenants,
                storage_gb_months=snapshot.billable_storage_gb_months + storage_to_come,
            ),
            carried,
        )
    return CurrentUsage(snapshot, projected, rating.invoice_total(lines))


def next_invoice_carryover(
    session: Session, account: Account, period: Period
) -> carryover.Carryover | None:
    """What the invoice of the open ``period`` will carry besides its own usage (read, not
    locked), or ``None`` once the period is invoiced (its invoice says what it carried)."""
    invoiced = session.exec(
        select(Invoice.invoice_id).where(
            Invoice.account_id == account.account_id, Invoice.period == period.label
        )
    ).first()
    if invoiced is not None:
        return None
    return carryover.pending(session, [account], period)[account.account_id]


def monthly_usage(
    db: Database,
    account_id: str,
    period: Period,
    *,
    field: str = "month",
    now: datetime | None = None,
) -> MonthlyUsage:
    """The period's usage, with the period's invoice total (or, while open, its estimate) split
    over partners by message count with the largest-remainder method: the costs of the partners
    and of the messages without a partner add up to the total exactly."""
    now = now or db.clock.now()
    if period.start > now:
        raise InvalidArgument(field, f"{period.label} has not started yet")
    with db.read() as session:
        account = load_account(session, account_id)
        require_existed(account, period)
        snapshot = period_snapshot(session, account, period, min(now, period.end))
        partners = session.exec(
            select(UsagePartnerPeriod, MasterPartner)
            .join(MasterPartner, col(MasterPartner.partner_id) == UsagePartnerPeriod.partner_id)
            .where(
                UsagePartnerPeriod.account_id == account_id,
                UsagePartnerPeriod.period == period.label,
            )
            .order_by(UsagePartnerPeriod.partner_id)
        ).all()
    counts = [usage.messages for usage, _ in partners]
    unpartnered = max(snapshot.messages - sum(counts), 0)
    costs = money.split_largest_remainder(snapshot.total, [*counts, unpartnered])
    return MonthlyUsage(
        snapshot,
        [
            PartnerUsage(partner.partner_id, partner.name, partner.department, usage.messages, cost)
            for (usage, partner), cost in zip(partners, costs, strict=False)
        ],
        unpartnered,
        costs[-1],
    )


@dataclass(frozen=True)
class Measured:
    """A period's usage up to a moment: all of it, and the part that is billable."""

    tenants: list[TenantUsage]
    messages: int
    storage_gb_months: Decimal
    billable: rating.PeriodUsage


def measure(
    session: Session,
    account: Account,
    period: Period,
    as_of: datetime,
    rows: PeriodRows | None = None,
) -> Measured:
    """The period's usage up to ``as_of`` from the counters and roll-ups (no raw-event scan,
    except the storage readings after a trial that ends inside the period). ``rows``: the
    account's ``load_period_rows``, when the caller loaded them for many accounts at once.

    Billable (rating's contract): when a trial ends inside the period, only the messages from
    the first whole hour after it and the GB-months held from its end on.
    """
    if rows is None:
        rows = load_period_rows(session, [account.account_id], period)[account.account_id]
    as_of = min(as_of, period.end)
    tenants = tenant_usage(session, account.account_id, period, as_of, rows)
    messages = rows.counter.messages if rows.counter else 0
    # Summed exactly, rounded once.
    gb_months = storage_meter.gb_months_of(sum(t.storage_byte_us for t in tenants), period)
    billable_messages, billable_gb_months = messages, gb_months
    trial_end = account.trial_ends_at
    if trial_end is not None and trial_end > period.start:
        billable_messages = messages_since(session, account.account_id, period, trial_end)
        billable_gb_months = storage_gb_months_held(
            session, account.account_id, period, min(trial_end, as_of), as_of
        )
    return Measured(
        tenants,
        messages,
        gb_months,
        rating.PeriodUsage(
            messages=billable_messages,
            active_tenants=len(rows.tenants),
            storage_gb_months=billable_gb_months,
        ),
    )


def storage_gb_months_held(
    session: Session, account_id: str, period: Period, since: datetime, until: datetime
) -> Decimal:
    """GB-months held over ``[since, until)``, a window of ``period``, from the raw gauge
    readings (as a share of the whole period, as rating wants it)."""
    store = UsageStore(session.connection())
    tenant_ids = session.exec(
        select(Tenant.tenant_id).where(
            Tenant.account_id == account_id, Tenant.created_at < period.end
        )
    ).all()
    readings = [
        (from_us(at_us), tenant_id, level)
        for tenant_id in tenant_ids
        for at_us, level in store.storage_readings(account_id, tenant_id, to_us(since))
    ]
    return storage_meter.gb_months(readings, since, until, period)


def period_snapshot(
    session: Session,
    account: Account,
    period: Period,
    as_of: datetime,
    *,
    carried: carryover.Carryover | None = None,
) -> PeriodSnapshot:
    """The period's usage as of ``as_of``, rated: its invoice's total once invoiced, else the
    estimate of its own usage, plus ``carried`` when given (the open period's estimate; cost
    allocation leaves it out: late usage and credits are no partner's messages)."""
    measured = measure(session, account, period, as_of)
    invoice = session.exec(
        select(Invoice).where(
            Invoice.account_id == account.account_id, Invoice.period == period.label
        )
    ).first()
    lines = _rate(session, account, period, measured.billable, carried)
    total = invoice.total if invoice is not None else rating.invoice_total(lines)
    return PeriodSnapshot(
        period=period,
        as_of=as_of,
        messages=measured.messages,
        billable_messages=measured.billable.messages,
        active_tenants=measured.billable.active_tenants,
        storage_bytes=sum(t.storage_bytes for t in measured.tenants),
        storage_gb_months=measured.storage_gb_months,
        billable_storage_gb_months=measured.billable.storage_gb_months,
        tenants=measured.tenants,
        lines=lines,
        total=total,
        invoiced=invoice is not None,
        included_messages=terms_of(account).included_messages,
    )


def _rate(
    session: Session,
    account: Account,
    period: Period,
    usage: rating.PeriodUsage,
    carried: carryover.Carryover | None = None,
) -> list[rating.InvoiceLine]:
    spans = plan_spans(session, account, period)
    if not spans:
        return []
    credits = carried.rating_credits() if carried else ()
    try:
        return rating.rate_period(
            period,
            spans,
            usage,
            trial_end=account.trial_ends_at,
            subscription_start=account.created_at,
            late=carried.late if carried else (),
            credits=credits,
            anniversary=anniversary(session, account, period),
        )
    except (ValueError, Unratable) as exc:
        if not (carried and carried.late):
            raise
        # Late usage that cannot be rated (closing will refuse it, saying why) leaves the
        # estimate of the rest standing: the account's reads still answer.
        log.warning(
            "estimate_late_usage_unratable",
            account_id=account.account_id,
            period=period.label,
            reason=str(exc),
        )
        return rating.rate_period(
            period,
            spans,
            usage,
            trial_end=account.trial_ends_at,
            subscription_start=account.created_at,
            credits=credits,
            anniversary=anniversary(session, account, period),
        )


def messages_since(session: Session, account_id: str, period: Period, since: datetime) -> int:
    """Messages of ``period`` in the hours starting at or after ``since`` (hour granularity:
    the hour a trial ends in counts as trial, in the customer's favour)."""
    start_us = max(to_us(since), to_us(period.start))
    first_hour = -(-start_us // 3_600_000_000) * 3_600_000_000
    total = session.exec(
        select(func.coalesce(func.sum(UsageHourly.messages), 0)).where(
            UsageHourly.account_id == account_id,
            UsageHourly.kind == MESSAGE,
            UsageHourly.hour_us >= first_hour,
            UsageHourly.hour_us < to_us(period.end),
        )
    ).one()
    return int(total)


@dataclass
class PeriodRows:
    """What ``measure`` reads of one account's period: its rows in the usage tables."""

    counter: UsagePeriod | None = None
    tenants: list[Tenant] = field(default_factory=list)
    tenant_periods: dict[str, UsageTenantPeriod] = field(default_factory=dict)
    levels: dict[str, StorageLevel] = field(default_factory=dict)


def _chunks(ids: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def load_period_rows(
    session: Session, account_ids: Sequence[str], period: Period
) -> dict[str, PeriodRows]:
    """``PeriodRows`` for many accounts in four queries per 500 accounts (the period closer
    measures thousands of accounts; one account is the same call with one id)."""
    loaded = {account_id: PeriodRows() for account_id in account_ids}
    for ids in _chunks(list(account_ids)):
        for counter in session.exec(
            select(UsagePeriod).where(
                UsagePeriod.account_id.in_(ids),  # type: ignore[attr-defined]  # SQLModel column attribute
                UsagePeriod.period == period.label,
            )
        ):
            loaded[counter.account_id].counter = counter
        for tenant in session.exec(
            select(Tenant)
            .where(
                Tenant.account_id.in_(ids),  # type: ignore[attr-defined]  # SQLModel column attribute
                Tenant.created_at < period.end,
            )
            .order_by(Tenant.tenant_id)
        ):
            loaded[tenant.account_id].tenants.append(tenant)
        for row in session.exec(
            select(UsageTenantPeriod).where(
                UsageTenantPeriod.account_id.in_(ids),  # type: ignore[attr-defined]  # SQLModel column attribute
                UsageTenantPeriod.period == period.label,
            )
        ):
            loaded[row.account_id].tenant_periods[row.tenant_id] = row
        for level in session.exec(select(StorageLevel).where(StorageLevel.account_id.in_(ids))):  # type: ignore[attr-defined]  # SQLModel column attribute
            loaded[level.account_id].levels[level.tenant_id] = level
    return loaded


def tenant_usage(
    session: Session,
    account_id: str,
    period: Period,
    as_of: datetime,
    rows: PeriodRows | None = None,
) -> list[TenantUsage]:
    """Per tenant: messages and GB-months of ``period`` up to ``as_of``, and its storage now."""
    if rows is None:
        rows = load_period_rows(session, [account_id], period)[account_id]
    start_us, end_us = to_us(period.start), to_us(period.end)
    as_of_us = min(to_us(as_of), end_us)
    result = []
    for tenant in rows.tenants:
        row = rows.tenant_periods.get(tenant.tenant_id)
        byte_us = int(row.storage_byte_us) if row else 0
        level = rows.levels.get(tenant.tenant_id)
        level_bytes = 0
        if level is not None:
            if level.reading_at_us < end_us:
                held_from = max(level.reading_at_us, start_us)
                byte_us += level.level_bytes * max(as_of_us - held_from, 0)
            level_bytes = level.level_bytes
        result.append(
            TenantUsage(
                tenant.tenant_id,
                tenant.name,
                row.messages if row else 0,
                storage_meter.gb_months_of(byte_us, period),
                level_bytes,
                byte_us,
            )
        )
    return result


# ---------------------------------------------------------------------------------------------
# History


GRANULARITIES = ("hour", "day", "month")
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class HistoryQuery:
    account_id: str
    granularity: str
    start: datetime
    end: datetime
    tenant_id: str
    page_size: int
    page_token: str


@dataclass(frozen=True)
class Bucket:
    start: datetime
    messages: int
    storage_bytes: int


@dataclass(frozen=True)
class HistoryPage:
    buckets: list[Bucket]
    next_page_token: str


def _bucket_start(moment: datetime, granularity: str) -> datetime:
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def usage_history(db: Database, query: HistoryQuery) -> HistoryPage:
    """Buckets with usage between ``start`` and ``end``, oldest first, paged by bucket start."""
    start = query.start
    # Not the end: it is often "now" (or unset, which means now), a moment later on the next
    # page. The next page starts at a bucket of this query's range.
    filters = (query.account_id, query.granularity, query.start, query.tenant_id)
    after = paging.read_token(
        query.page_token,
        "GetUsageHistory",
        filters,
        (paging.whole(to_us(_bucket_start(query.start, query.granularity)), to_us(query.end) - 1),),
    )
    if after:
        start = from_us(int(after[0]))
    page_size = min(query.page_size or 100, MAX_PAGE_SIZE)
    with db.read() as session:
        load_account(session, query.account_id)
        statement = (
            select(
                UsageHourly.hour_us,
                UsageHourly.kind,
                func.sum(UsageHourly.messages),
                func.sum(UsageHourly.storage_bytes_max),
            )
            .where(
                UsageHourly.account_id == query.account_id,
                UsageHourly.hour_us >= to_us(_bucket_start(start, "hour")),
                UsageHourly.hour_us < to_us(query.end),
            )
            .group_by(col(UsageHourly.hour_us), col(UsageHourly.kind))
            .order_by(col(UsageHourly.hour_us))
        )
        if query.tenant_id:
            statement = statement.where(UsageHourly.tenant_id == query.tenant_id)
        buckets: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
        next_token = ""
        for hour_us, kind, messages, storage in session.exec(statement):
            bucket = _bucket_start(from_us(int(hour_us)), query.granularity)
            if bucket not in buckets and len(buckets) == page_size:
                next_token = paging.next_token("GetUsageHistory", filters, (to_us(bucket),))
                break
            if kind == MESSAGE:
                buckets[bucket][0] += int(messages)
            else:
                buckets[bucket][1] = max(buckets[bucket][1], int(storage))
    return HistoryPage([Bucket(s, m, b) for s, (m, b) in sorted(buckets.items())], next_token)
