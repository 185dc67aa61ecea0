"""Budget alerts on the period's estimate: ``billing.budget_alert`` once per budget, threshold
and period (spec §1.7).

Its own module because ingestion checks the budgets of every account whose usage a group of
batches moved: the hot path imports this and what the estimate needs (``usage_reports``), not
the rest of finance (cost allocation, journal, audit, reconciliation) and what that imports.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlmodel import Session, select

from billing_svc.domain import events
from billing_svc.domain.errors import Unratable
from billing_svc.domain.periods import Period
from billing_svc.services.usage_reports import next_invoice_carryover, period_snapshot
from billing_svc.storage import notices, outbox
from billing_svc.storage.tables import Account, Budget

# The logger budget_check_skipped was logged on before this module had its own.
log = structlog.get_logger("billing_svc.finance")


def check_budgets(session: Session, account_id: str, now: datetime) -> int:
    """Send ``billing.budget_alert`` for every threshold the period's estimated charges have
    reached, once per budget, threshold and period; returns how many were sent."""
    budgets = session.exec(select(Budget).where(Budget.account_id == account_id)).all()
    if not budgets:
        return 0
    account = session.get(Account, account_id)
    assert account is not None
    period = Period.containing(now)
    try:
        # The estimate GetCurrentUsage shows: what the invoice would be if the period closed now.
        estimate = period_snapshot(
            session, account, period, now, carried=next_invoice_carryover(session, account, period)
        ).total
    except Unratable as exc:
        # The usage that got here is stored all the same; reads of the account say why.
        log.warning("budget_check_skipped", account_id=account_id, reason=str(exc))
        return 0
    sent = 0
    for budget in budgets:
        for percentage in budget.thresholds:
            if estimate * 100 < budget.limit_amount * percentage:
                continue
            if notices.claim(
                session, account_id, period.label, f"budget:{budget.name}:{percentage}"
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
                    ),
                )
                sent += 1
    return sent
