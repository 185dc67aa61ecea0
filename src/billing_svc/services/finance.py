"""Finance: budgets and their alerts, cost allocation, ERP journal entries, the audit trail,
reconciliation and plan comparison (spec §1.7, §1.8)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlmodel import Session, col, select

from billing_svc.domain import catalog, events, rating
from billing_svc.domain import usage as rules
from billing_svc.domain.bounds import MAX_AMOUNT
from billing_svc.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unratable,
    shown,
)
from billing_svc.domain.money import ZERO, to_cents
from billing_svc.domain.periods import Period
from billing_svc.domain.subscriptions import MONTHLY, parse_thresholds
from billing_svc.services import paging
from billing_svc.services.common import load_account, require_existed
from billing_svc.services.context import RequestContext
from billing_svc.services.invoicing import issued_invoice, view
from billing_svc.services.terms import anniversary, plan_spans
from billing_svc.services.usage_reports import (
    UNALLOCATED,
    PartnerUsage,
    monthly_usage,
    next_invoice_carryover,
    period_snapshot,
    storage_gb_months_held,
)
from billing_svc.storage import audit, notices, outbox
from billing_svc.storage.db import Database
from billing_svc.storage.retention import RetentionStore
from billing_svc.storage.tables import (
    Account,
    AuditHead,
    AuditRecord,
    Budget,
    Tenant,
)
from billing_svc.storage.usage import UsageStore

log = structlog.get_logger("billing_svc.finance")

DEFAULT_GL_ACCOUNT = "6100-AS2-MESSAGING"
MAX_BUDGET_NAME = 100


# ---------------------------------------------------------------------------------------------
# Budgets


def set_budget(db: Database, ctx: RequestContext, *, account_id: str, name: str,
               limit: Decimal, thresholds: tuple[int, ...]) -> Budget:
    name = name.strip()
    if not name or len(name) > MAX_BUDGET_NAME:
        raise InvalidArgument("name", f"is required, at most {MAX_BUDGET_NAME} characters")
    if not ZERO < limit <= MAX_AMOUNT or to_cents(limit) != limit:
        raise InvalidArgument("limit", f"must be a positive amount in whole cents, at most "
                              f"{MAX_AMOUNT:,} USD")
    parsed = parse_thresholds(thresholds, "threshold_percentages")
    with db.write() as session:
        load_account(session, account_id, for_update=True)
        budget = session.get(Budget, (account_id, name))
        before = None if budget is None else {"limit": budget.limit_amount,
                                              "thresholds": budget.thresholds}
        if budget is None:
            budget = Budget(account_id=account_id, name=name, limit_amount=limit,
                            created_at=ctx.now, updated_at=ctx.now)
        budget.limit_amount = limit
        budget.thresholds = parsed
        budget.updated_at = ctx.now
        session.add(budget)
        session.flush()
        audit.append(session, actor=ctx.caller.name, action="budget.set", account_id=account_id,
                     before=before, after={"name": name, "limit": limit,
                                           "thresholds": budget.thresholds},
                     at=ctx.now, request_id=ctx.request_id)
        check_budgets(session, account_id, ctx.now)
        return budget


def list_budgets(db: Database, account_id: str, *, page_size: int = 0,
                 page_token: str = "") -> tuple[list[Budget], str]:
    """The account's budgets by name, ``page_size`` (default 100, at most 1000) a page."""
    size = min(page_size or 100, 1000)
    query = (account_id,)
    after = paging.read_token(page_token, "ListBudgets", query,
                              (paging.matching(rf"[^\x00]{{1,{MAX_BUDGET_NAME}}}"),))
    with db.read() as session:
        load_account(session, account_id)
        statement = select(Budget).where(Budget.account_id == account_id)
        if after:
            statement = statement.where(col(Budget.name) > after[0])
        rows = list(session.exec(statement.order_by(Budget.name).limit(size + 1)).all())
    token = (paging.next_token("ListBudgets", query, (rows[size - 1].name,))
             if len(rows) > size else "")
    return rows[:size], token


def delete_budget(db: Database, ctx: RequestContext, *, account_id: str, name: str) -> None:
    with db.write() as session:
        budget = session.get(Budget, (account_id, name.strip()))
        if budget is None:
            raise NotFound(f"account {shown(account_id)} has no budget named {shown(name)}")
        session.delete(budget)
        audit.append(session, actor=ctx.caller.name, action="budget.deleted",
                     account_id=account_id, before={"name": budget.name,
                                                    "limit": budget.limit_amount},
                     after=None, at=ctx.now, request_id=ctx.request_id)


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
        estimate = period_snapshot(session, account, period, now, carried=next_invoice_carryover(
            session, account, period)).total
    except Unratable as exc:
        # The usage that got here is stored all the same; reads of the account say why.
        log.warning("budget_check_skipped", account_id=account_id, reason=str(exc))
        return 0
    sent = 0
    for budget in budgets:
        for percentage in budget.thresholds:
            if estimate * 100 < budget.limit_amount * percentage:
                continue
            if notices.claim(session, account_id, period.label,
                             f"budget:{budget.name}:{percentage}"):
                outbox.enqueue(session, events.budget_alert(
                    account_id=account_id, budget_name=budget.name,
                    threshold_percentage=percentage, current_usage=estimate,
                    budget_limit=budget.limit_amount,
                    period_remaining_days=period.remaining_days(now), occurred_at=now))
                sent += 1
    return sent


# ---------------------------------------------------------------------------------------------
# Cost allocation and journal entries


@dataclass(frozen=True)
class DepartmentCost:
    department: str
    messages: int
    cost: Decimal
    partners: list[PartnerUsage]


@dataclass(frozen=True)
class Allocation:
    period: Period
    total: Decimal
    invoiced: bool
    departments: list[DepartmentCost]


def cost_allocation(db: Database, account_id: str, period: Period) -> Allocation:
    """The period's costs per department: the partner split of ``monthly_usage`` summed by each
    partner's department; partners without one, and messages without a partner, fall under
    ``Unallocated``. The departments add up to the total exactly."""
    usage = monthly_usage(db, account_id, period, field="period")
    by_department: dict[str, list[PartnerUsage]] = defaultdict(list)
    for partner in usage.partners:
        by_department[partner.department or UNALLOCATED].append(partner)
    totals: dict[str, list[Any]] = {
        name: [sum(p.messages for p in members), sum((p.cost for p in members), ZERO)]
        for name, members in by_department.items()}
    if usage.unpartnered_messages or usage.unpartnered_cost:
        unallocated = totals.setdefault(UNALLOCATED, [0, ZERO])
        unallocated[0] += usage.unpartnered_messages
        unallocated[1] += usage.unpartnered_cost
    departments = [DepartmentCost(name, int(messages), cost, by_department.get(name, []))
                   for name, (messages, cost) in sorted(totals.items())]
    return Allocation(period, usage.snapshot.total, usage.snapshot.invoiced, departments)


@dataclass(frozen=True)
class JournalEntry:
    gl_account: str
    department: str
    amount: Decimal
    description: str
    reference: str


def journal_entries(db: Database, account_id: str, period: Period,
                    gl_account: str = DEFAULT_GL_ACCOUNT) -> list[JournalEntry]:
    """One ERP entry per department, summing to the period's invoice total."""
    with db.read() as session:
        require_existed(load_account(session, account_id), period)
        issued_invoice(session, account_id, period, "exporting journal entries")
    allocation = cost_allocation(db, account_id, period)
    return [JournalEntry(gl_account, d.department, d.cost, f"AS2 messaging - {d.department}",
                         f"AS2-{period.label}") for d in allocation.departments if d.cost]


# ---------------------------------------------------------------------------------------------
# Audit trail


def list_audit_events(db: Database, *, account_id: str, action: str, start: datetime | None,
                      end: datetime | None, page_size: int,
                      page_token: str) -> tuple[list[AuditRecord], str]:
    size = min(page_size or 100, 1000)
    statement = select(AuditRecord)
    if account_id:
        statement = statement.where(AuditRecord.account_id == account_id)
    if action:
        statement = statement.where(AuditRecord.action == action)
    if start:
        statement = statement.where(AuditRecord.at >= start)
    if end:
        statement = statement.where(AuditRecord.at < end)
    query = (account_id, action, start, end)
    after = paging.read_token(page_token, "ListAuditEvents", query, (paging.whole(1),))
    if after:
        statement = statement.where(col(AuditRecord.sequence) > after[0])
    with db.read() as session:
        rows = list(session.exec(statement.order_by(col(AuditRecord.sequence)).limit(size + 1)))
    token = (paging.next_token("ListAuditEvents", query, (rows[size - 1].sequence,))
             if len(rows) > size else "")
    return rows[:size], token


def verify_audit_chain(db: Database, batch: int = 5000) -> audit.ChainBreak | None:
    """Walk the whole chain in order; the first record that does not hold, or ``None``."""
    with db.read() as session:
        head = session.get(AuditHead, 1)

        def records() -> Iterator[AuditRecord]:
            last = 0
            while True:
                rows = session.exec(select(AuditRecord).where(AuditRecord.sequence > last)
                                    .order_by(col(AuditRecord.sequence)).limit(batch)).all()
                if not rows:
                    return
                yield from rows
                last = rows[-1].sequence

        return audit.verify(records(), head)


# ---------------------------------------------------------------------------------------------
# Reconciliation and plan comparison


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
        return all(line.difference == 0 and line.invoiced_quantity == line.rerated_quantity
                   for line in self.lines)


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
        rerated = rating.rate_period(period, plan_spans(session, account, period), usage,
                                     trial_end=account.trial_ends_at,
                                     subscription_start=account.created_at,
                                     anniversary=anniversary(session, account, period))
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
    return Reconciliation(invoice.invoice_id, [
        LineComparison(kind, *values) for kind, values in
        sorted(totals.items(), key=lambda item: order.get(item[0], 99))])


def _require_raw_events(session: Session, account_id: str, period: Period) -> None:
    purged = RetentionStore(session.connection()).purged_period(account_id, period.label)
    if purged is not None:
        horizon_us, started_at = purged
        raise FailedPrecondition(
            f"period {period.label} of account {account_id} cannot be reconciled: its raw usage "
            f"events were purged on {started_at:%Y-%m-%d} (older than "
            f"{rules.from_us(horizon_us):%Y-%m-%d}, outside BILLING_USAGE_RETENTION_DAYS); "
            "its invoice stands as issued")


def _usage_from_raw_events(session: Session, account: Account,
                           period: Period) -> rating.PeriodUsage:
    connection = session.connection()
    store = UsageStore(connection)
    start_us = rules.to_us(period.start)
    first_hour = start_us
    if account.trial_ends_at is not None and account.trial_ends_at > period.start:
        trial_us = rules.to_us(account.trial_ends_at)
        first_hour = max(start_us, -(-trial_us // 3_600_000_000) * 3_600_000_000)
    rows = store._all(
        "SELECT COALESCE(SUM(quantity), 0) FROM usage_event WHERE account_id = ? AND "
        "period = ? AND kind = 1 AND late = ? AND occurred_at_us >= ?",
        [account.account_id, period.label, False, first_hour])
    messages = int(rows[0][0])
    tenants = session.exec(select(Tenant).where(Tenant.account_id == account.account_id,
                                                Tenant.created_at < period.end)).all()
    paid_from = period.start
    if account.trial_ends_at is not None:
        paid_from = min(max(account.trial_ends_at, period.start), period.end)
    gb_months = storage_gb_months_held(session, account.account_id, period, paid_from,
                                       period.end)
    return rating.PeriodUsage(messages=messages, active_tenants=len(tenants),
                              storage_gb_months=gb_months)


@dataclass(frozen=True)
class PlanCost:
    plan_id: str
    name: str
    total: Decimal
    lines: list[rating.InvoiceLine]


def compare_plans(db: Database, account_id: str, period: Period, now: datetime) -> list[PlanCost]:
    """What ``period``'s usage would have cost on each catalog plan (monthly, no trial)."""
    if period.start > now:
        raise InvalidArgument("period", f"{period.label} has not started yet")
    with db.read() as session:
        account = load_account(session, account_id)
        require_existed(account, period)
        snapshot = period_snapshot(session, account, period, min(now, period.end))
    usage = rating.PeriodUsage(messages=snapshot.messages, active_tenants=snapshot.active_tenants,
                               storage_gb_months=snapshot.storage_gb_months)
    start = max(period.start, account.created_at)
    costs = []
    for terms in catalog.catalog():
        if terms.plan_id == "custom":
            continue
        lines = rating.rate_period(period, [rating.PlanSpan(start, period.end, terms, MONTHLY)],
                                   usage, subscription_start=account.created_at)
        costs.append(PlanCost(terms.plan_id, terms.name, rating.invoice_total(lines), lines))
    return costs


