"""Closing periods into invoices (spec §1.6): one invoice per account and period, ever.

Closing locks the account row, so it serializes with ingestion (which share-locks it): every event
of the period is either on the invoice or, arriving later, marked late for the next one. The unique
(account, period) key makes a second close, a retry or another replica return the same invoice.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from opentelemetry import trace
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from billing_svc import metrics
from billing_svc.domain import events, rating
from billing_svc.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unratable,
    shown,
)
from billing_svc.domain.ids import new_id
from billing_svc.domain.periods import Period
from billing_svc.services import carryover, credits, paging
from billing_svc.services.accounts import on_clock
from billing_svc.services.common import load_account, require_existed, visible
from billing_svc.services.context import Caller, RequestContext
from billing_svc.services.terms import anniversary, load_segments, plan_spans
from billing_svc.services.usage_reports import PeriodRows, load_period_rows, measure
from billing_svc.services.views import InvoiceHeader
from billing_svc.storage import audit, outbox
from billing_svc.storage.db import Database
from billing_svc.storage.tables import (
    Account,
    AccountCredit,
    Invoice,
    PlanSegment,
)

log = structlog.get_logger("billing_svc.invoicing")

CLOSE_BATCH = 200
"""Accounts closed per transaction by the automatic closer (measured: see BENCHMARKS.md)."""

OPEN = "open"
PAID = "paid"
UNCOLLECTIBLE = "uncollectible"
VOID = "void"
DRAFT = "draft"


@dataclass(frozen=True)
class InvoiceView:
    invoice: InvoiceHeader
    lines: list[rating.InvoiceLine]
    tenant_breakdown: list[dict[str, object]]


def view(invoice: Invoice) -> InvoiceView:
    lines = [
        rating.InvoiceLine(
            type=line["type"],
            description=line["description"],
            quantity=Decimal(line["quantity"]),
            unit_price=Decimal(line["unit_price"]),
            amount=Decimal(line["amount"]),
            period=line.get("period"),
            credit_id=line.get("credit_id"),
        )
        for line in json.loads(invoice.lines_json)
    ]
    return InvoiceView(
        InvoiceHeader.from_row(invoice), lines, json.loads(invoice.tenant_breakdown_json)
    )


def close_period(
    db: Database, ctx: RequestContext, *, account_id: str, period: Period
) -> InvoiceView:
    """The period's invoice, issuing it first if it does not exist yet."""
    if period.end > ctx.now:
        raise FailedPrecondition(
            f"period {period.label} has not ended yet (it ends {period.end.isoformat()}); "
            "only ended periods can be closed"
        )
    if not account_id:
        raise InvalidArgument("account_id", "is required")
    for attempt in range(2):
        try:
            with _close_span(ctx, period, [account_id]) as span, db.write() as session:
                invoices, issued = _close(session, ctx, [account_id], period, strict=True)
                span.set_attribute("billing.invoices_issued", issued)
            metrics.INVOICES_CLOSED.inc(issued)  # counted once committed
            return view(invoices[account_id])
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def close_periods(db: Database, ctx: RequestContext, account_ids: list[str], period: Period) -> int:
    """Close ``period`` for many accounts in one transaction (the automatic closer's batches);
    accounts that cannot be closed are skipped. The number of invoices issued."""
    with _close_span(ctx, period, account_ids) as span, db.write() as session:
        issued = _close(session, ctx, account_ids, period, strict=False)[1]
        span.set_attribute("billing.invoices_issued", issued)
    metrics.INVOICES_CLOSED.inc(issued)  # counted once committed
    return issued


def _close_span(
    ctx: RequestContext, period: Period, account_ids: list[str]
) -> AbstractContextManager[trace.Span]:
    """The span of one closing transaction (its commit included)."""
    attributes: dict[str, str | int] = {
        "billing.period": period.label,
        "billing.accounts": len(account_ids),
    }
    if len(account_ids) == 1:
        attributes["billing.account_id"] = account_ids[0]
    return ctx.tracer.start_as_current_span("invoicing.close", attributes=attributes)


def _close(
    session: Session, ctx: RequestContext, account_ids: list[str], period: Period, *, strict: bool
) -> tuple[dict[str, Invoice], int]:
    """Each account's invoice for ``period``, issuing the missing ones, in ``session``'s
    transaction: a few queries per batch, not per account. ``strict``: an account that does not
    exist or started after the period is an error (otherwise it is skipped). Also returns how
    many invoices this call issued."""
    ids = sorted(set(account_ids))  # one lock order for every replica
    accounts = {
        account.account_id: account
        for account in session.exec(
            select(Account)
            .where(Account.account_id.in_(ids))  # type: ignore[attr-defined]  # SQLModel column attribute
            .order_by(Account.account_id)
            .with_for_update()
        )
    }
    invoices = {
        invoice.account_id: invoice
        for invoice in session.exec(
            select(Invoice).where(col(Invoice.account_id).in_(ids), Invoice.period == period.label)
        )
    }
    to_issue = []
    for account_id in ids:
        account = accounts.get(account_id)
        if account is None:
            if strict:
                raise NotFound(f"account {shown(account_id)} does not exist")
        elif account_id in invoices:
            continue
        elif period.end <= account.created_at:
            if strict:
                require_existed(account, period)
        else:
            to_issue.append(account)
    if not to_issue:
        return invoices, 0
    issuing = [account.account_id for account in to_issue]
    rows = load_period_rows(session, issuing, period)
    segments = load_segments(session, issuing)
    carried = carryover.pending(session, to_issue, period, segments, for_update=True)
    for account in to_issue:
        share = carried[account.account_id]
        invoices[account.account_id] = _issue(
            session,
            ctx,
            account,
            period,
            rows[account.account_id],
            segments[account.account_id],
            share.late,
            share.credits,
        )
        carryover.mark_late_billed(session, share)
    session.flush()  # a second invoice for the period fails here, on the unique key
    return invoices, len(to_issue)


def find_invoice(session: Session, account_id: str, period: Period) -> Invoice | None:
    """The account's invoice for ``period``, if it was closed."""
    return session.exec(
        select(Invoice).where(Invoice.account_id == account_id, Invoice.period == period.label)
    ).first()


def issued_invoice(session: Session, account_id: str, period: Period, purpose: str) -> Invoice:
    """The period's invoice, or ``FailedPrecondition`` saying it must be closed for ``purpose``."""
    invoice = find_invoice(session, account_id, period)
    if invoice is None:
        raise FailedPrecondition(
            f"period {period.label} of account {account_id} is not "
            f"invoiced yet; close it (CloseBillingPeriod) before {purpose}"
        )
    return invoice


def _issue(
    session: Session,
    ctx: RequestContext,
    account: Account,
    period: Period,
    rows: PeriodRows,
    segments: list[PlanSegment],
    late: list[rating.LateUsage],
    account_credits: list[AccountCredit],
) -> Invoice:
    measured = measure(session, account, period, period.end, rows)
    tenants = measured.tenants
    lines = rating.rate_period(
        period,
        plan_spans(session, account, period, segments),
        measured.billable,
        trial_end=account.trial_ends_at,
        subscription_start=account.created_at,
        anniversary=anniversary(session, account, period, segments),
        late=late,
        credits=credits.for_rating(account_credits),
    )
    credits.draw(session, account_credits, lines)
    total = rating.invoice_total(lines)
    invoice = Invoice(
        invoice_id=new_id("in"),
        account_id=account.account_id,
        period=period.label,
        status=PAID if total == 0 else OPEN,
        subtotal=total,
        total=total,
        lines_json=json.dumps([_line_json(line) for line in lines]),
        tenant_breakdown_json=json.dumps(
            [
                {
                    "tenant_id": t.tenant_id,
                    "name": t.name,
                    "message_count": t.messages,
                    "storage_gb_months": format(t.storage_gb_months, "f"),
                    "storage_bytes": t.storage_bytes,
                }
                for t in tenants
            ]
        ),
        issued_at=ctx.now,
        paid_at=ctx.now if total == 0 else None,
        created_at=ctx.now,
    )
    session.add(invoice)
    audit.append(
        session,
        actor=ctx.caller.name,
        action="invoice.issued",
        account_id=account.account_id,
        before=None,
        after={
            "invoice_id": invoice.invoice_id,
            "period": period.label,
            "total": total,
            "status": invoice.status,
        },
        at=ctx.now,
        request_id=ctx.request_id,
    )
    outbox.enqueue(
        session,
        events.invoice_generated(
            account_id=account.account_id,
            invoice_id=invoice.invoice_id,
            period=period.label,
            total=total,
            status=invoice.status,
            occurred_at=ctx.now,
        ),
    )
    return invoice


def _line_json(line: rating.InvoiceLine) -> dict[str, object]:
    return {
        "type": line.type,
        "description": line.description,
        "quantity": format(line.quantity, "f"),
        "unit_price": format(line.unit_price, "f"),
        "amount": format(line.amount, "f"),
        "period": line.period,
        "credit_id": line.credit_id,
    }


def get_invoice(db: Database, invoice_id: str, *, caller: Caller) -> InvoiceView:
    if not invoice_id:
        raise InvalidArgument("invoice_id", "is required")
    with db.read() as session:
        invoice = visible(
            caller, session.get(Invoice, invoice_id), f"invoice {shown(invoice_id)} does not exist"
        )
        return view(invoice)


def due_periods(
    db: Database,
    now: datetime,
    grace: timedelta,
    limit: int = 1000,
    test_clock_id: str | None = None,
) -> list[tuple[str, Period]]:
    """(account, period) pairs whose period ended more than ``grace`` ago and has no invoice,
    for accounts that existed in billing-svc before that period ended."""
    last_closable = Period.containing(now - grace).previous()
    already = select(Invoice.account_id).where(Invoice.period == last_closable.label)
    # One anti-join in the database: every replica runs this every few seconds, and once the
    # month is closed it must cost next to nothing however many accounts there are.
    with db.read() as session:
        ids = session.exec(
            select(Account.account_id)
            .where(
                Account.registered_at < last_closable.end,
                Account.created_at < last_closable.end,
                Account.account_id.not_in(already),  # type: ignore[attr-defined]  # SQLModel column attribute
                on_clock(test_clock_id),
                ~(
                    (col(Account.status) == "canceled")
                    & (col(Account.canceled_at) <= last_closable.start)
                ),
            )
            .order_by(Account.account_id)
            .limit(limit)
        ).all()
    return [(account_id, last_closable) for account_id in ids]


def list_invoices(
    db: Database,
    *,
    account_id: str,
    status: str | None,
    period: Period | None,
    page_size: int,
    page_token: str,
) -> tuple[list[InvoiceView], str]:
    """The account's invoices, newest first, ``page_size`` (default 50, at most 500) a page."""
    size = min(page_size or 50, 500)
    query = (account_id, status, period.label if period else None)
    after = paging.read_token(page_token, "ListInvoices", query, (paging.resource_id("in"),))
    with db.read() as session:
        load_account(session, account_id)
        statement = select(Invoice).where(Invoice.account_id == account_id)
        if status:
            statement = statement.where(Invoice.status == status)
        if period:
            statement = statement.where(Invoice.period == period.label)
        if after:
            statement = statement.where(col(Invoice.invoice_id) < after[0])
        rows = session.exec(
            statement.order_by(Invoice.invoice_id.desc()).limit(size + 1)  # type: ignore[attr-defined]  # SQLModel column attribute
        ).all()
    token = (
        paging.next_token("ListInvoices", query, (rows[size - 1].invoice_id,))
        if len(rows) > size
        else ""
    )
    return [view(row) for row in rows[:size]], token


def close_due_periods(
    db: Database, ctx: RequestContext, grace: timedelta, test_clock_id: str | None = None
) -> int:
    """The automatic closer: invoice every ended period past the grace window (all replicas run
    it; the unique key and the account locks make each invoice happen once).

    Accounts are closed in batches of ``CLOSE_BATCH``, one transaction each. A batch that fails
    (a replica's concurrent close, an account whose data cannot be rated) is closed again one
    account at a time, so one bad account delays nobody else's invoice.
    """
    closed = 0
    due = due_periods(db, ctx.now, grace, test_clock_id=test_clock_id)
    for start in range(0, len(due), CLOSE_BATCH):
        batch = due[start : start + CLOSE_BATCH]
        period = batch[0][1]  # due_periods returns one period
        try:
            closed += close_periods(db, ctx, [account_id for account_id, _ in batch], period)
        except Unavailable:
            raise
        except Exception:
            log.warning(
                "period_close_batch_failed", period=period.label, accounts=len(batch), exc_info=True
            )
            for account_id, _ in batch:
                try:
                    close_period(db, ctx, account_id=account_id, period=period)
                    closed += 1
                except Unratable as exc:
                    log.warning(
                        "period_close_failed",
                        account_id=account_id,
                        period=period.label,
                        reason=str(exc),
                    )
                except FailedPrecondition:
                    continue
                except Exception:
                    log.exception("period_close_failed", account_id=account_id, period=period.label)
    return closed
