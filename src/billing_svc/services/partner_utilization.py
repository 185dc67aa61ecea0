"""Partner utilization over a range of periods (issue 15, point 3): which master partners carry
the account's traffic, which sit idle in plan slots ("review partner utilization for
optimization opportunities").

Every figure comes from the per-period partner counters (``usage_partner_period``), the period
totals of ``period_snapshot`` (the invoice total, or the estimate while a period is open) and the
hourly roll-ups for the last active hour; never from raw events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import col, select

from billing_svc.domain import money, usage
from billing_svc.domain.bounds import INT64_MAX
from billing_svc.domain.errors import InvalidArgument, Unratable
from billing_svc.domain.periods import Period
from billing_svc.services.common import load_account, require_existed
from billing_svc.services.forecasting import check_charges
from billing_svc.services.terms import terms_of
from billing_svc.services.usage_reports import period_snapshot
from billing_svc.services.views import MasterPartnerView
from billing_svc.storage.db import Database
from billing_svc.storage.tables import MasterPartner, UsageHourly, UsagePartnerPeriod

DEFAULT_IDLE_PERIODS = 3
MAX_PERIODS = 36
DEFAULT_RANGE_PERIODS = 12
STEADY_SLOPE = Decimal("0.05")
"""Decision: a trend is "steady" while the least-squares slope of the partner's messages per
period stays within 5 % of its mean a period."""

RISING, STEADY, FALLING, NONE = "rising", "steady", "falling", "none"


@dataclass(frozen=True)
class PartnerPeriod:
    period: Period
    messages: int
    cost: Decimal


@dataclass(frozen=True)
class PartnerUtilization:
    partner: MasterPartnerView
    periods: list[PartnerPeriod]
    trend: str
    last_active_period: str
    last_activity: datetime | None
    idle: bool

    @property
    def messages(self) -> int:
        return sum(p.messages for p in self.periods)

    @property
    def cost(self) -> Decimal:
        return sum((p.cost for p in self.periods), money.ZERO)


@dataclass(frozen=True)
class Utilization:
    periods: list[Period]
    partners: list[PartnerUtilization]
    total: Decimal
    unpartnered_messages: int
    unpartnered_cost: Decimal
    included_master_partners: int | None
    slots_left: int | None


def trend_of(counts: list[int]) -> str:
    """The direction of ``counts`` (one per period, oldest first), exactly (no floats)."""
    total = sum(counts)
    if not total:
        return NONE
    n = len(counts)
    if n < 2:
        return STEADY
    # slope = Σ (x - x̄)(y - ȳ) / Σ (x - x̄)², compared with STEADY_SLOPE × ȳ; scaled by n² to
    # stay in integers.
    numerator = sum((2 * x - (n - 1)) * y for x, y in enumerate(counts))  # 2·Σ(x - x̄)·y
    denominator = sum((2 * x - (n - 1)) ** 2 for x in range(n))  # 4·Σ(x - x̄)²
    slope = Decimal(2 * numerator) / Decimal(denominator)  # Σ(x - x̄)y / Σ(x - x̄)²
    mean = Decimal(total) / n
    if slope > STEADY_SLOPE * mean:
        return RISING
    if slope < -STEADY_SLOPE * mean:
        return FALLING
    return STEADY


def _range(start_label: str, end_label: str, now: datetime) -> tuple[Period, Period]:
    current = Period.containing(now)
    end = current
    if end_label:
        try:
            end = Period.parse(end_label)
        except ValueError as exc:
            raise InvalidArgument("end_period", str(exc)) from exc
        if end > current:
            raise InvalidArgument("end_period", f"{end.label} has not started yet")
    if start_label:
        try:
            start = Period.parse(start_label)
        except ValueError as exc:
            raise InvalidArgument("start_period", str(exc)) from exc
        if start > end:
            raise InvalidArgument("start_period", f"{start.label} is after end_period {end.label}")
    else:
        start = end
        for _ in range(DEFAULT_RANGE_PERIODS - 1):
            if start.year == 1970 and start.month == 1:
                break
            start = start.previous()
    count = (end.year - start.year) * 12 + end.month - start.month + 1
    if count > MAX_PERIODS:
        raise InvalidArgument(
            "start_period",
            f"the range {start.label} to {end.label} has {count} periods; at most {MAX_PERIODS}",
        )
    return start, end


def partner_utilization(
    db: Database,
    account_id: str,
    *,
    start_period: str = "",
    end_period: str = "",
    idle_periods: int = 0,
    now: datetime,
) -> Utilization:
    if not 0 <= idle_periods <= MAX_PERIODS:
        raise InvalidArgument(
            "idle_periods",
            f"must be within 0..{MAX_PERIODS} (0: {DEFAULT_IDLE_PERIODS}), got {idle_periods}",
        )
    idle_periods = idle_periods or DEFAULT_IDLE_PERIODS
    start, end = _range(start_period, end_period, now)
    with db.read() as session:
        account = load_account(session, account_id)
        require_existed(account, end)
        if not start_period:  # the default range starts no earlier than the account
            start = max(start, Period.containing(account.created_at))
        periods = [start]
        while periods[-1] < end:
            periods.append(periods[-1].next())
        labels = [p.label for p in periods]
        partners = list(
            session.exec(
                select(MasterPartner)
                .where(MasterPartner.account_id == account_id)
                .order_by(MasterPartner.partner_id)
            )
        )
        counts: dict[tuple[str, str], int] = {
            (row.partner_id, row.period): row.messages
            for row in session.exec(
                select(UsagePartnerPeriod).where(
                    UsagePartnerPeriod.account_id == account_id,
                    col(UsagePartnerPeriod.period).in_(labels),
                )
            )
        }
        # The last active period may be before the range: look at every period up to its end.
        last_period = dict(
            session.exec(
                select(UsagePartnerPeriod.partner_id, func.max(UsagePartnerPeriod.period))
                .where(
                    UsagePartnerPeriod.account_id == account_id,
                    UsagePartnerPeriod.period <= end.label,
                    UsagePartnerPeriod.messages > 0,
                )
                .group_by(UsagePartnerPeriod.partner_id)
            ).all()
        )
        last_hour = dict(
            session.exec(
                select(UsageHourly.partner_id, func.max(UsageHourly.hour_us))
                .where(
                    UsageHourly.account_id == account_id,
                    UsageHourly.kind == usage.MESSAGE,
                    UsageHourly.hour_us < usage.to_us(end.end),
                    UsageHourly.messages > 0,
                )
                .group_by(UsageHourly.partner_id)
            ).all()
        )
        snapshots = {
            p.label: period_snapshot(session, account, p, min(now, p.end))
            for p in periods
            if p.end > account.created_at
        }
        limit = terms_of(account).included_master_partners
    costs: dict[tuple[str, str], Decimal] = {}
    unpartnered_messages, unpartnered_cost, total = 0, money.ZERO, money.ZERO
    for period in periods:
        snapshot = snapshots.get(period.label)
        if snapshot is None:
            continue
        weights = [counts.get((p.partner_id, period.label), 0) for p in partners]
        unpartnered = max(snapshot.messages - sum(weights), 0)
        shares = money.split_largest_remainder(snapshot.total, [*weights, unpartnered])
        for partner, share in zip(partners, shares, strict=False):
            costs[(partner.partner_id, period.label)] = share
        unpartnered_messages += unpartnered
        unpartnered_cost += shares[-1]
        total += snapshot.total
    idle_window = periods[-idle_periods:] if len(periods) >= idle_periods else None
    result = []
    for partner in partners:
        rows = [
            PartnerPeriod(
                p,
                counts.get((partner.partner_id, p.label), 0),
                costs.get((partner.partner_id, p.label), money.ZERO),
            )
            for p in periods
        ]
        # Decision: idle needs the whole window inside the range and the partner existing
        # before it; a partner added last month is new, not idle.
        idle = (
            idle_window is not None
            and partner.created_at < idle_window[0].start
            and all(row.messages == 0 for row in rows[-idle_periods:])
        )
        hour = last_hour.get(partner.partner_id)
        result.append(
            PartnerUtilization(
                MasterPartnerView.from_row(partner),
                rows,
                trend_of([row.messages for row in rows]),
                last_period.get(partner.partner_id, ""),
                usage.from_us(int(hour)) if hour is not None else None,
                idle,
            )
        )
    _check_sums(start, end, total, [unpartnered_messages, *(p.messages for p in result)])
    slots_left = None if limit is None else max(limit - len(partners), 0)
    return Utilization(
        periods, result, total, unpartnered_messages, unpartnered_cost, limit, slots_left
    )


def _check_sums(start: Period, end: Period, total: Decimal, message_counts: list[int]) -> None:
    """The range's sums fit the response's int64 counts and Money (each period's do; many
    periods of near-int64 usage do not), or the caller is told to ask for a shorter range."""
    what = f"the charges of {start.label} to {end.label}"
    check_charges(total, what, "start_period, end_period")
    largest = max(message_counts)
    if largest > INT64_MAX:
        raise Unratable(
            f"the message count of {start.label} to {end.label} comes to "
            f"{largest:,}, more than an int64 holds; ask for a shorter range "
            "(start_period, end_period)"
        )
