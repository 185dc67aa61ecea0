"""Usage forecasts from an account's stored history (issue 15, point 4): monthly messages,
storage and charges, for GetUsageForecast, forecast budget alerts and ComparePlans' horizon.

History is read from the per-period counters (``usage_period``, ``usage_tenant_period``,
``storage_level``), never from raw events, so it reaches as far back as the counters do (an
imported history included) and not only as far as the 400-day event retention window.

Charges are the rating of the forecast quantities with ``domain.rating``: exact ``Decimal``, the
plan the account has in each month, the same code as an invoice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlmodel import Session, col, select

from billing_svc.domain import forecast as model
from billing_svc.domain import rating, storage_meter
from billing_svc.domain.bounds import MAX_AMOUNT
from billing_svc.domain.errors import InvalidArgument, Unratable
from billing_svc.domain.forecast import SeriesForecast
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import MAX_COUNTER, to_us
from billing_svc.services.common import load_account
from billing_svc.services.terms import anniversary, plan_spans
from billing_svc.services.usage_reports import PeriodRows, measure, tenant_usage
from billing_svc.storage.db import Database
from billing_svc.storage.tables import (
    Account,
    StorageLevel,
    Tenant,
    UsagePeriod,
    UsageTenantPeriod,
)

DEFAULT_FORECAST_MONTHS = 12
MAX_FORECAST_MONTHS = 36
MAX_HISTORY_MONTHS = 120
"""Decision: at most the last 10 years of history feed a forecast (older seasons say little
about next year, and the fit stays fast)."""

_GB_PLACES = Decimal(1).scaleb(-storage_meter.GB_MONTH_PLACES)
_MAX_GB_MONTHS = 1e12


@dataclass(frozen=True)
class MonthUsage:
    period: Period
    messages: int
    storage_gb_months: Decimal


@dataclass(frozen=True)
class ForecastMonth:
    """One forecast month: quantities and the charges rating gives them."""

    period: Period
    messages: int
    storage_gb_months: Decimal
    active_tenants: int
    lines: list[rating.InvoiceLine]
    total: Decimal


@dataclass(frozen=True)
class UsageForecast:
    model: str
    history: list[MonthUsage]
    messages_backtest: SeriesForecast  # not model.: the field `model` shadows the module here
    storage_backtest: SeriesForecast
    months: list[ForecastMonth]

    @property
    def total(self) -> Decimal:
        return sum((m.total for m in self.months), Decimal(0))


def check_months(months: int, field: str = "months") -> int:
    if months == 0:
        return DEFAULT_FORECAST_MONTHS
    if not 1 <= months <= MAX_FORECAST_MONTHS:
        raise InvalidArgument(
            field,
            f"must be within 1..{MAX_FORECAST_MONTHS} (0: {DEFAULT_FORECAST_MONTHS}), got {months}",
        )
    return months


def usage_forecast(db: Database, account_id: str, months: int, now: datetime) -> UsageForecast:
    """The forecast of the current period and the ``months - 1`` after it."""
    months = check_months(months)
    with db.read() as session:
        account = load_account(session, account_id)
        result = forecast_account(session, account, months, now)
    check_charges(result.total, f"the forecast charges of {months} months", "months")
    return result


def check_charges(amount: Decimal, what: str, field: str) -> None:
    """Decision: a report's sum of monthly charges larger than ``MAX_AMOUNT`` (each month stays
    below it; dozens of months of near-int64 usage do not) is refused as FAILED_PRECONDITION,
    naming the request field to shorten, rather than sent as a Money no client can hold."""
    if amount > MAX_AMOUNT:
        raise Unratable(
            f"{what} come to {amount:,.0f} USD, more than the {MAX_AMOUNT:,} USD a "
            f"Money holds; ask for a shorter range ({field})"
        )


def forecast_account(
    session: Session, account: Account, months: int, now: datetime, *, backtest: bool = True
) -> UsageForecast:
    """``usage_forecast`` inside the caller's transaction (the budget job reads many accounts;
    it needs no backtest)."""
    current = Period.containing(now)
    history = monthly_history(session, account, current)
    messages = model.forecast([m.messages for m in history], months, backtest=backtest)
    storage = model.forecast(
        [float(m.storage_gb_months) for m in history], months, messages.model, backtest=backtest
    )
    so_far = measure(session, account, current, now)
    tenants = len(
        session.exec(
            select(Tenant.tenant_id).where(
                Tenant.account_id == account.account_id, Tenant.created_at <= now
            )
        ).all()
    )
    message_values, storage_values = messages.values, storage.values
    if not history:
        # No whole month yet: the current month's run rate is all there is.
        elapsed_us = max(to_us(now) - to_us(current.start), 1)
        factor = Decimal(current.seconds * 1_000_000) / Decimal(elapsed_us)
        message_values = [float(Decimal(so_far.messages) * factor)] * months
        storage_values = [float(so_far.storage_gb_months * factor)] * months
    result = []
    period = current
    for index in range(months):
        forecast_messages = _whole(message_values[index])
        forecast_gb = _gb(storage_values[index])
        if index == 0:
            # Decision: what already happened this month is a floor; what rating bills of it
            # follows the trial rule (only usage after the trial), then the forecast's rest.
            forecast_messages = max(forecast_messages, so_far.messages)
            forecast_gb = max(forecast_gb, so_far.storage_gb_months)
            usage = rating.PeriodUsage(
                messages=so_far.billable.messages + forecast_messages - so_far.messages,
                active_tenants=max(tenants, so_far.billable.active_tenants),
                storage_gb_months=so_far.billable.storage_gb_months
                + forecast_gb
                - so_far.storage_gb_months,
            )
        else:
            usage = rating.PeriodUsage(
                messages=forecast_messages, active_tenants=tenants, storage_gb_months=forecast_gb
            )
        lines = rate_on_account_plan(session, account, period, usage)
        result.append(
            ForecastMonth(
                period,
                forecast_messages,
                forecast_gb,
                usage.active_tenants,
                lines,
                rating.invoice_total(lines),
            )
        )
        period = period.next()
    return UsageForecast(messages.model, history, messages, storage, result)


def rate_on_account_plan(
    session: Session, account: Account, period: Period, usage: rating.PeriodUsage
) -> list[rating.InvoiceLine]:
    spans = plan_spans(session, account, period)
    if not spans:
        return []
    return rating.rate_period(
        period,
        spans,
        usage,
        trial_end=account.trial_ends_at,
        subscription_start=account.created_at,
        anniversary=anniversary(session, account, period),
    )


def monthly_history(session: Session, account: Account, current: Period) -> list[MonthUsage]:
    """Every whole month of the account before ``current``, oldest first (at most
    ``MAX_HISTORY_MONTHS``), from the counters in four queries.

    Decision: the month the account started in counts only when it started on its first
    instant; a part month would read as a dip the models would take for a trend or a season.
    """
    first = Period.containing(account.created_at)
    if account.created_at > first.start:
        first = first.next()
    periods: list[Period] = []
    period = current.previous() if current > first else None
    while period is not None and period >= first and len(periods) < MAX_HISTORY_MONTHS:
        periods.append(period)
        period = period.previous() if period > first else None
    periods.reverse()
    if not periods:
        return []
    labels = [p.label for p in periods]
    account_id = account.account_id
    counters = {
        row.period: row
        for row in session.exec(
            select(UsagePeriod).where(
                UsagePeriod.account_id == account_id, col(UsagePeriod.period).in_(labels)
            )
        )
    }
    tenant_periods: dict[str, dict[str, UsageTenantPeriod]] = defaultdict(dict)
    for row in session.exec(
        select(UsageTenantPeriod).where(
            UsageTenantPeriod.account_id == account_id, col(UsageTenantPeriod.period).in_(labels)
        )
    ):
        tenant_periods[row.period][row.tenant_id] = row
    tenants = list(
        session.exec(
            select(Tenant).where(Tenant.account_id == account_id).order_by(Tenant.tenant_id)
        )
    )
    levels = {
        level.tenant_id: level
        for level in session.exec(select(StorageLevel).where(StorageLevel.account_id == account_id))
    }
    history = []
    for period in periods:
        rows = PeriodRows(
            counter=counters.get(period.label),
            tenants=[t for t in tenants if t.created_at < period.end],
            tenant_periods=tenant_periods.get(period.label, {}),
            levels=levels,
        )
        usage = tenant_usage(session, account_id, period, period.end, rows)
        history.append(
            MonthUsage(
                period,
                rows.counter.messages if rows.counter else 0,
                storage_meter.gb_months_of(sum(t.storage_byte_us for t in usage), period),
            )
        )
    return history


def _whole(value: float) -> int:
    return min(int(Decimal(repr(max(value, 0.0))).to_integral_value(ROUND_HALF_UP)), MAX_COUNTER)


def _gb(value: float) -> Decimal:
    # Bounded like the counters: a runaway trend must not make an amount no column can hold.
    value = min(max(value, 0.0), _MAX_GB_MONTHS)
    return Decimal(repr(value)).quantize(_GB_PLACES, rounding=ROUND_HALF_UP)
