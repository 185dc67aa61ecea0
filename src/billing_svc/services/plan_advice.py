"""ComparePlans over a horizon (issue 15, point 5): every catalog plan billed monthly and
annually over the months from ``period`` on, and the cheapest choice beside the account's own,
so that "factor in business growth when selecting plans" and "consider annual plans for cost
savings" are one call.

Months that have ended are priced at their usage (from the counters, as ``compare_plans``); the
current month and the months after it at the forecast of ``services.forecasting``. Like
``compare_plans``, no trial: the comparison is about the plan, not the first weeks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlmodel import Session

from billing_svc.domain import catalog, rating
from billing_svc.domain.errors import InvalidArgument
from billing_svc.domain.money import ZERO
from billing_svc.domain.periods import Period
from billing_svc.domain.subscriptions import ANNUAL, MONTHLY
from billing_svc.services import finance
from billing_svc.services.common import load_account, require_existed
from billing_svc.services.forecasting import (
    MAX_FORECAST_MONTHS,
    check_charges,
    forecast_account,
)
from billing_svc.services.terms import anniversary, plan_spans
from billing_svc.services.usage_reports import period_snapshot
from billing_svc.storage.db import Database
from billing_svc.storage.tables import Account

MAX_HORIZON_MONTHS = MAX_FORECAST_MONTHS


@dataclass(frozen=True)
class HorizonCost:
    plan_id: str
    monthly_total: Decimal
    annual_total: Decimal


@dataclass(frozen=True)
class Recommendation:
    plan_id: str
    billing_interval: str
    total: Decimal
    current_plan_id: str
    current_billing_interval: str
    current_total: Decimal
    forecast_model: str

    @property
    def saving(self) -> Decimal:
        return self.current_total - self.total


@dataclass(frozen=True)
class HorizonComparison:
    plan_costs: list[finance.PlanCost]
    horizon: dict[str, HorizonCost]
    recommendation: Recommendation


def check_horizon(months: int) -> int:
    if not 0 <= months <= MAX_HORIZON_MONTHS:
        raise InvalidArgument(
            "horizon_months",
            f"must be within 0..{MAX_HORIZON_MONTHS} (0: the period alone), got {months}",
        )
    return months


def compare_over_horizon(
    db: Database, account_id: str, period: Period, horizon_months: int, now: datetime
) -> HorizonComparison:
    check_horizon(horizon_months)
    plan_costs = finance.compare_plans(db, account_id, period, now)
    with db.read() as session:
        account = load_account(session, account_id)
        require_existed(account, period)
        months, model = _horizon_usage(session, account, period, horizon_months, now)
        start = max(period.start, account.created_at)
        horizon: dict[str, HorizonCost] = {}
        for terms in catalog.catalog():
            if terms.plan_id == "custom":
                continue
            monthly = sum(
                (
                    _total(
                        p,
                        [rating.PlanSpan(start, p.end, terms, MONTHLY)],
                        usage,
                        account.created_at,
                        None,
                    )
                    for p, usage in months
                ),
                ZERO,
            )
            yearly_span = [rating.PlanSpan(start, months[-1][0].end, terms, ANNUAL)]
            annual = sum(
                (_total(p, yearly_span, usage, account.created_at, start) for p, usage in months),
                ZERO,
            )
            horizon[terms.plan_id] = HorizonCost(terms.plan_id, monthly, annual)
        # The account's own plan as it is (its custom terms, its subscription years), without
        # the trial like the others.
        paid_from = max(account.created_at, account.trial_ends_at or account.created_at)
        current_total = sum(
            (
                _total(
                    p,
                    plan_spans(session, account, p),
                    usage,
                    account.created_at,
                    anniversary(session, account, p) or paid_from,
                )
                for p, usage in months
            ),
            ZERO,
        )
    for what, amount in [
        ("the current plan", current_total),
        *((f"plan {c.plan_id}", max(c.monthly_total, c.annual_total)) for c in horizon.values()),
    ]:
        check_charges(
            amount, f"the charges of {what} over {horizon_months} months", "horizon_months"
        )
    current_plan, current_interval = account.plan_id, account.billing_interval
    candidates = [(current_total, 0, current_plan, current_interval)]
    for rank, cost in enumerate(horizon.values(), start=1):
        for interval, total in ((MONTHLY, cost.monthly_total), (ANNUAL, cost.annual_total)):
            if (cost.plan_id, interval) != (current_plan, current_interval):
                candidates.append((total, rank, cost.plan_id, interval))
    # Cheapest first; on a tie the account's own plan, then catalog order, monthly first.
    total, _, plan_id, interval = min(candidates, key=lambda c: (c[0], c[1], c[3] != MONTHLY))
    return HorizonComparison(
        plan_costs,
        horizon,
        Recommendation(
            plan_id, interval, total, current_plan, current_interval, current_total, model
        ),
    )


def _horizon_usage(
    session: Session, account: Account, first: Period, months: int, now: datetime
) -> tuple[list[tuple[Period, rating.PeriodUsage]], str]:
    current = Period.containing(now)
    periods = [first]
    while len(periods) < months:
        periods.append(periods[-1].next())
    ahead = sum(1 for p in periods if p >= current)
    forecast, model = {}, ""
    if ahead:
        made = forecast_account(session, account, ahead, now, backtest=False)
        forecast, model = {m.period: m for m in made.months}, made.model
    result = []
    for period in periods:
        if period < current:
            snapshot = period_snapshot(session, account, period, period.end)
            usage = rating.PeriodUsage(
                messages=snapshot.messages,
                active_tenants=snapshot.active_tenants,
                storage_gb_months=snapshot.storage_gb_months,
            )
        else:
            month = forecast[period]
            usage = rating.PeriodUsage(
                messages=month.messages,
                active_tenants=month.active_tenants,
                storage_gb_months=month.storage_gb_months,
            )
        result.append((period, usage))
    return result, model


def _total(
    period: Period,
    spans: list[rating.PlanSpan],
    usage: rating.PeriodUsage,
    subscription_start: datetime,
    anniversary: datetime | None,
) -> Decimal:
    if not spans:
        return ZERO
    return rating.invoice_total(
        rating.rate_period(
            period, spans, usage, subscription_start=subscription_start, anniversary=anniversary
        )
    )
