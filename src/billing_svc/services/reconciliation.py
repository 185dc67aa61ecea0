"""Reconciliation (spec §1.8): a closed period re-rated from its raw usage events, line by line
against the invoice that was issued for it.

It reads the raw events, not the counters and roll-ups the invoice was rated from: a difference
means the two disagree. Once retention has purged a period's raw events it cannot be reconciled.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlmodel import Session, select

from billing_svc.domain import rating
from billing_svc.domain import usage as rules
from billing_svc.domain.errors import FailedPrecondition
from billing_svc.domain.periods import Period
from billing_svc.services.common import load_account, require_existed
from billing_svc.services.invoicing import issued_invoice, view
from billing_svc.services.terms import anniversary, plan_spans
from billing_svc.services.usage_reports import storage_gb_months_held
from billing_svc.storage.db import Database
from billing_svc.storage.retention import RetentionStore
from billing_svc.storage.tables import Account, Tenant
from billing_svc.storage.usage import UsageStore


@dataclass(frozen=True)
class LineComparison:
    type: str
    invoiced_quantity: Decimal
    rerated_quantity: Decimal
    invoiced_amount: Decimal
    rerated_amount: Decimal

    @property
    def difference(self) -> Decimal:
        return self.rerated_amount - self.invoiced_amount


@dataclass(frozen=True)
class Reconciliation:
    invoice_id: str
    lines: list[LineComparison]

    @property
    def matches(self) -> bool:
        return all(
            line.difference == 0 and line.invoiced_quantity == line.rerated_quantity
            for line in self.lines
        )


def reconcile_period(db: Database, account_id: str, period: Period) -> Reconciliation:
    """Re-rate a closed period from its raw usage events and compare with the issued invoice,
    line type by line type. ``late_usage`` lines (usage of other periods) and ``credit`` lines
    (granted, not rated) are not re-rated."""
    with db.read() as session:
        account = load_account(session, account_id)
        require_existed(account, period)
        invoice = issued_invoice(session, account_id, period, "reconciling it")
        _require_raw_events(session, account_id, period)
        usage = _usage_from_raw_events(session, account, period)
        rerated = rating.rate_period(
            period,
            plan_spans(session, account, period),
            usage,
            trial_end=account.trial_ends_at,
            subscription_start=account.created_at,
            anniversary=anniversary(session, account, period),
        )
        issued = view(invoice).lines
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)
    for line in issued:
        if line.type not in (rating.LATE_USAGE, rating.CREDIT):
            totals[line.type][0] += line.quantity
            totals[line.type][2] += line.amount
    for line in rerated:
        totals[line.type][1] += line.quantity
        totals[line.type][3] += line.amount
    order = {name: i for i, name in enumerate(rating.LINE_ORDER)}
    return Reconciliation(
        invoice.invoice_id,
        [
            LineComparison(kind, *values)
            for kind, values in sorted(totals.items(), key=lambda item: order.get(item[0], 99))
        ],
    )


def _require_raw_events(session: Session, account_id: str, period: Period) -> None:
    purged = RetentionStore(session.connection()).purged_period(account_id, period.label)
    if purged is not None:
        horizon_us, started_at = purged
        raise FailedPrecondition(
            f"period {period.label} of account {account_id} cannot be reconciled: its raw usage "
            f"events were purged on {started_at:%Y-%m-%d} (older than "
            f"{rules.from_us(horizon_us):%Y-%m-%d}, outside BILLING_USAGE_RETENTION_DAYS); "
            "its invoice stands as issued"
        )


def _usage_from_raw_events(
    session: Session, account: Account, period: Period
) -> rating.PeriodUsage:
    connection = session.connection()
    store = UsageStore(connection)
    start_us = rules.to_us(period.start)
    first_hour = start_us
    if account.trial_ends_at is not None and account.trial_ends_at > period.start:
        trial_us = rules.to_us(account.trial_ends_at)
        first_hour = max(start_us, -(-trial_us // 3_600_000_000) * 3_600_000_000)
    # SQLite's log has no index by account: it is read in log order from the first event
    # received in the period (a test clock's account: from the start, its time is its clock's).
    in_log = "" if store.postgres else "log_id > ? AND "
    after = [] if store.postgres else [0 if account.test_clock_id else store.log_start(start_us)]
    rows = store._all(
        f"SELECT COALESCE(SUM(quantity), 0) FROM usage_event WHERE {in_log}account_id = ? AND "
        "period = ? AND kind = 1 AND late = ? AND occurred_at_us >= ?",
        [*after, account.account_id, period.label, False, first_hour],
    )
    messages = int(rows[0][0])
    tenants = session.exec(
        select(Tenant).where(
            Tenant.account_id == account.account_id, Tenant.created_at < period.end
        )
    ).all()
    paid_from = period.start
    if account.trial_ends_at is not None:
        paid_from = min(max(account.trial_ends_at, period.start), period.end)
    gb_months = storage_gb_months_held(session, account.account_id, period, paid_from, period.end)
    return rating.PeriodUsage(
        messages=messages, active_tenants=len(tenants), storage_gb_months=gb_months
    )
