"""Budget alerts on the forecast (issue 15, point 4): ``billing.budget_alert`` with
``forecast: true`` when the forecast of the current period's charges reaches a threshold.

A scheduled job, never part of ingestion: a forecast fits a model (tens of milliseconds), which
the ingestion transaction must not wait for. The model is fitted in a read transaction; only the
claims and the outbox rows are written. The once-per-budget, threshold and period rule has its
own notice keys (``forecast-budget:…``), apart from the actual-usage alerts (``budget:…``): the
forecast crossing 90 % does not hold back the alert when the usage itself reaches 90 %, nor the
other way round. Two replicas running the job at once claim each key once (``notices.claim``).
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlmodel import col, select

from billing_svc.domain import events
from billing_svc.domain.errors import Unratable
from billing_svc.domain.periods import Period
from billing_svc.domain.subscriptions import CANCELED
from billing_svc.services.forecasting import forecast_account
from billing_svc.services.usage_reports import period_snapshot
from billing_svc.storage import notices, outbox
from billing_svc.storage.db import Database
from billing_svc.storage.tables import Account, Budget

log = structlog.get_logger("billing_svc.forecast_alerts")


def notice_key(budget_name: str, percentage: int) -> str:
    return f"forecast-budget:{budget_name}:{percentage}"


def send_forecast_budget_alerts(
    db: Database, now: datetime, test_clock_id: str | None = None
) -> int:
    """Check every account that has a budget; returns how many alerts were sent. One time line
    at once: the real accounts (``None``), or test clock ``test_clock_id``'s at its time."""
    clock = (
        col(Account.test_clock_id).is_(None)
        if test_clock_id is None
        else col(Account.test_clock_id) == test_clock_id
    )
    with db.read() as session:
        account_ids = sorted(
            set(
                session.exec(
                    select(Budget.account_id).where(
                        col(Budget.account_id).in_(select(Account.account_id).where(clock))
                    )
                ).all()
            )
        )
    sent = 0
    for account_id in account_ids:
        try:
            sent += _check_account(db, account_id, now)
        except Unratable as exc:  # its reads say why; the other accounts go on
            log.warning("forecast_budget_check_skipped", account_id=account_id, reason=str(exc))
    return sent


def _check_account(db: Database, account_id: str, now: datetime) -> int:
    period = Period.containing(now)
    with db.read() as session:
        account = session.get(Account, account_id)
        if account is None or account.status == CANCELED or account.created_at > now:
            return 0
        budgets = list(session.exec(select(Budget).where(Budget.account_id == account_id)))
        forecast = forecast_account(session, account, 1, now, backtest=False).months[0].total
        estimate = period_snapshot(session, account, period, now).total
    crossed = [
        (budget, percentage)
        for budget in budgets
        for percentage in budget.thresholds
        if forecast * 100 >= budget.limit_amount * percentage
    ]
    if not crossed:
        return 0
    sent = 0
    with db.write() as session:
        for budget, percentage in crossed:
            if notices.claim(
                session, account_id, period.label, notice_key(budget.name, percentage)
            ):
                outbox.enqueue(
                    session,
                    events.budget_alert(
                        account_id=account_id,
                        budget_name=budget.name,
                        threshold_percentage=percentage,
                        current_usage=estimate,
                        budget_limit=budget.limit_amount,
                        period_remaining_days=period.remaining_days(now),
                        occurred_at=now,
                        forecast_charges=forecast,
                    ),
                )
                sent += 1
    return sent
