"""Finance: budgets and their alerts, cost allocation, ERP journal entries and plan comparison
(spec §1.7, §1.8). The audit trail's reads are in ``services.audit_trail``, reconciliation in
``services.reconciliation``."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import col, select

from billing_svc.domain import catalog, rating
from billing_svc.domain.bounds import MAX_AMOUNT
from billing_svc.domain.errors import InvalidArgument, NotFound, shown
from billing_svc.domain.money import ZERO, to_cents
from billing_svc.domain.periods import Period
from billing_svc.domain.subscriptions import MONTHLY, parse_thresholds
from billing_svc.services import paging
from billing_svc.services.budget_alerts import check_budgets
from billing_svc.services.common import load_account, require_existed
from billing_svc.services.context import RequestContext
from billing_svc.services.invoicing import issued_invoice
from billing_svc.services.usage_reports import (
    UNALLOCATED,
    PartnerUsage,
    monthly_usage,
    period_snapshot,
)
from billing_svc.services.views import BudgetView
from billing_svc.storage import audit
from billing_svc.storage.db import Database
from billing_svc.storage.tables import Budget

DEFAULT_GL_ACCOUNT = "6100-AS2-MESSAGING"
MAX_BUDGET_NAME = 100


# ---------------------------------------------------------------------------------------------
# Budgets


def set_budget(
    db: Database,
    ctx: RequestContext,
    *,
    account_id: str,
    name: str,
    limit: Decimal,
    thresholds: tuple[int, ...],
) -> BudgetView:
    name = name.strip()
    if not name or len(name) > MAX_BUDGET_NAME:
        raise InvalidArgument("name", f"is required, at most {MAX_BUDGET_NAME} characters")
    if not ZERO < limit <= MAX_AMOUNT or to_cents(limit) != limit:
        raise InvalidArgument(
            "limit", f"must be a positive amount in whole cents, at most {MAX_AMOUNT:,} USD"
        )
    parsed = parse_thresholds(thresholds, "threshold_percentages")
    with db.write() as session:
        load_account(session, account_id, for_update=True)
        budget = session.get(Budget, (account_id, name))
        before = (
            None
            if budget is None
            else {"limit": budget.limit_amount, "thresholds": budget.thresholds}
        )
        if budget is None:
            budget = Budget(
                account_id=account_id,
                name=name,
                limit_amount=limit,
                created_at=ctx.now,
                updated_at=ctx.now,
            )
        budget.limit_amount = limit
        budget.thresholds = parsed
        budget.updated_at = ctx.now
        session.add(budget)
        session.flush()
        audit.append(
            session,
            actor=ctx.caller.name,
            action="budget.set",
            account_id=account_id,
            before=before,
            after={"name": name, "limit": limit, "thresholds": budget.thresholds},
            at=ctx.now,
            request_id=ctx.request_id,
        )
        check_budgets(session, account_id, ctx.now)
        return BudgetView.from_row(budget)


def list_budgets(
    db: Database, account_id: str, *, page_size: int = 0, page_token: str = ""
) -> tuple[list[BudgetView], str]:
    """The account's budgets by name, ``page_size`` (default 100, at most 1000) a page."""
    size = min(page_size or 100, 1000)
    query = (account_id,)
    after = paging.read_token(
        page_token, "ListBudgets", query, (paging.matching(rf"[^\x00]{{1,{MAX_BUDGET_NAME}}}"),)
    )
    with db.read() as session:
        load_account(session, account_id)
        statement = select(Budget).where(Budget.account_id == account_id)
        if after:
            statement = statement.where(col(Budget.name) > after[0])
        rows = list(session.exec(statement.order_by(Budget.name).limit(size + 1)).all())
    token = (
        paging.next_token("ListBudgets", query, (rows[size - 1].name,)) if len(rows) > size else ""
    )
    return [BudgetView.from_row(row) for row in rows[:size]], token


def delete_budget(db: Database, ctx: RequestContext, *, account_id: str, name: str) -> None:
    with db.write() as session:
        budget = session.get(Budget, (account_id, name.strip()))
        if budget is None:
            raise NotFound(f"account {shown(account_id)} has no budget named {shown(name)}")
        session.delete(budget)
        audit.append(
            session,
            actor=ctx.caller.name,
            action="budget.deleted",
            account_id=account_id,
            before={"name": budget.name, "limit": budget.limit_amount},
            after=None,
            at=ctx.now,
            request_id=ctx.request_id,
        )


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
        for name, members in by_department.items()
    }
    if usage.unpartnered_messages or usage.unpartnered_cost:
        unallocated = totals.setdefault(UNALLOCATED, [0, ZERO])
        unallocated[0] += usage.unpartnered_messages
        unallocated[1] += usage.unpartnered_cost
    departments = [
        DepartmentCost(name, int(messages), cost, by_department.get(name, []))
        for name, (messages, cost) in sorted(totals.items())
    ]
    return Allocation(period, usage.snapshot.total, usage.snapshot.invoiced, departments)


@dataclass(frozen=True)
class JournalEntry:
    gl_account: str
    department: str
    amount: Decimal
    description: str
    reference: str


def journal_entries(
    db: Database, account_id: str, period: Period, gl_account: str = DEFAULT_GL_ACCOUNT
) -> list[JournalEntry]:
    """One ERP entry per department, summing to the period's invoice total."""
    with db.read() as session:
        require_existed(load_account(session, account_id), period)
        issued_invoice(session, account_id, period, "exporting journal entries")
    allocation = cost_allocation(db, account_id, period)
    return [
        JournalEntry(
            gl_account,
            d.department,
            d.cost,
            f"AS2 messaging - {d.department}",
            f"AS2-{period.label}",
        )
        for d in allocation.departments
        if d.cost
    ]


# ---------------------------------------------------------------------------------------------
# Plan comparison


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
    usage = rating.PeriodUsage(
        messages=snapshot.messages,
        active_tenants=snapshot.active_tenants,
        storage_gb_months=snapshot.storage_gb_months,
    )
    start = max(period.start, account.created_at)
    costs = []
    for terms in catalog.catalog():
        if terms.plan_id == "custom":
            continue
        lines = rating.rate_period(
            period,
            [rating.PlanSpan(start, period.end, terms, MONTHLY)],
            usage,
            subscription_start=account.created_at,
        )
        costs.append(PlanCost(terms.plan_id, terms.name, rating.invoice_total(lines), lines))
    return costs
