"""Payment outcomes reported by the payment processor, dunning, and voiding (spec §1.6).

billing-svc does not move money: the processor reports each attempt. Success pays the invoice;
a failure schedules the next attempt (3, 5, 7 days by default) and makes the subscription
``past_due``; after the last one the invoice is ``uncollectible`` and the subscription ``unpaid``.
A success settles its invoice and, once no failed invoice is left, makes the subscription
``active`` whether or not a payment method is on file (the processor took the money some way).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, select

from billing_svc.domain import events
from billing_svc.domain import subscriptions as subs
from billing_svc.domain.errors import FailedPrecondition, InvalidArgument, shown
from billing_svc.services import accounts
from billing_svc.services.common import idempotent_write, load_account, loader, visible
from billing_svc.services.context import RequestContext
from billing_svc.services.invoicing import OPEN, PAID, UNCOLLECTIBLE, VOID, InvoiceView, view
from billing_svc.storage import audit, outbox
from billing_svc.storage.db import Database
from billing_svc.storage.idempotency import IdempotencyKey
from billing_svc.storage.tables import Account, Invoice

DEFAULT_DUNNING_DAYS = (3, 5, 7)


def _load_invoice(session: Session, ctx: RequestContext, invoice_id: str) -> Invoice:
    if not invoice_id:
        raise InvalidArgument("invoice_id", "is required")
    return visible(
        ctx.caller,
        session.get(Invoice, invoice_id, with_for_update=True),
        f"invoice {shown(invoice_id)} does not exist",
    )


def _follow_collections(
    session: Session,
    ctx: RequestContext,
    account: Account,
    *,
    paid: bool = False,
    change: str | None = None,
) -> None:
    """Move the subscription to the status its unpaid invoices give (audited: the status
    only)."""
    before = accounts.subscription_of(account)
    owed = _collections_status(session, account)
    transition = subs.follow_collections(before, ctx.now, owed=owed, paid=paid, change=change)
    if transition is None:
        return
    accounts.save_subscription(account, transition.state)
    account.updated_at = ctx.now
    session.add(account)
    audit.append(
        session,
        actor=ctx.caller.name,
        action=transition.action,
        account_id=account.account_id,
        before={"status": before.status},
        after={"status": transition.state.status},
        at=ctx.now,
        request_id=ctx.request_id,
    )
    for event in transition.events:
        outbox.enqueue(session, event)


def _collections_status(session: Session, account: Account) -> str:
    """What the account's unpaid invoices make its subscription: unpaid, past_due or active."""
    statuses = {
        row.status
        for row in session.exec(
            select(Invoice).where(
                Invoice.account_id == account.account_id,
                Invoice.status.in_(  # type: ignore[attr-defined]  # SQLModel column attribute
                    [OPEN, UNCOLLECTIBLE]
                ),
                Invoice.failed_attempts > 0,
            )
        )
    }
    if UNCOLLECTIBLE in statuses:
        return subs.UNPAID
    if OPEN in statuses:
        return subs.PAST_DUE
    return subs.ACTIVE


def record_payment_result(
    db: Database,
    ctx: RequestContext,
    *,
    invoice_id: str,
    succeeded: bool,
    failure_reason: str,
    attempt_time: datetime | None,
    dunning_days: tuple[int, ...] = DEFAULT_DUNNING_DAYS,
    key: IdempotencyKey | None = None,
) -> InvoiceView:
    """Apply one payment attempt's outcome; a retry with the same request id changes nothing."""
    if not succeeded and not failure_reason.strip():
        raise InvalidArgument(
            "failure_reason", "is required when the payment failed, e.g. 'insufficient_funds'"
        )
    at = attempt_time or ctx.now
    if at > ctx.now + timedelta(minutes=5):
        raise InvalidArgument("attempt_time", "must not be in the future")

    def apply(session: Session) -> InvoiceView:
        invoice = _load_invoice(session, ctx, invoice_id)
        if invoice.status in (PAID, VOID):
            raise FailedPrecondition(
                f"invoice {invoice_id} is {invoice.status}; no payment can be recorded against it"
            )
        account = load_account(session, invoice.account_id, for_update=True)
        before = {"status": invoice.status, "failed_attempts": invoice.failed_attempts}
        if succeeded:
            invoice.status = PAID
            invoice.paid_at = at
            invoice.amount_paid = invoice.total
            invoice.next_payment_attempt_at = None
            method = (
                f"{account.payment_method_type}_ending_{account.payment_last4}"
                if account.payment_method_type
                else "unknown"
            )
            outbox.enqueue(
                session,
                events.payment_succeeded(
                    account_id=account.account_id,
                    invoice_id=invoice.invoice_id,
                    amount_paid=invoice.total,
                    payment_method=method,
                    paid_at=at,
                ),
            )
        else:
            invoice.failed_attempts += 1
            if invoice.failed_attempts <= len(dunning_days):
                retry = at + timedelta(days=dunning_days[invoice.failed_attempts - 1])
                invoice.next_payment_attempt_at = retry
            else:
                retry = None
                invoice.status = UNCOLLECTIBLE
                invoice.next_payment_attempt_at = None
            outbox.enqueue(
                session,
                events.payment_failed(
                    account_id=account.account_id,
                    invoice_id=invoice.invoice_id,
                    amount=invoice.total,
                    failure_reason=failure_reason.strip(),
                    retry_date=retry,
                    occurred_at=at,
                ),
            )
        session.add(invoice)
        session.flush()
        audit.append(
            session,
            actor=ctx.caller.name,
            action="payment.succeeded" if succeeded else "payment.failed",
            account_id=account.account_id,
            before=before,
            after={
                "status": invoice.status,
                "failed_attempts": invoice.failed_attempts,
                "failure_reason": None if succeeded else failure_reason.strip(),
            },
            at=ctx.now,
            request_id=ctx.request_id,
        )
        _follow_collections(session, ctx, account, paid=succeeded)
        return view(invoice)

    def load(session: Session, found_id: str) -> InvoiceView:
        return view(loader(Invoice)(session, found_id))

    return idempotent_write(db, ctx, key, apply, load, lambda v: v.invoice.invoice_id)


def void_invoice(db: Database, ctx: RequestContext, *, invoice_id: str, reason: str) -> InvoiceView:
    if not reason.strip():
        raise InvalidArgument("reason", "is required: say why the invoice is voided")
    with db.write() as session:
        invoice = _load_invoice(session, ctx, invoice_id)
        if invoice.status == VOID:
            return view(invoice)
        if invoice.status == PAID:
            raise FailedPrecondition(
                f"invoice {invoice_id} is paid; refund it instead of voiding it"
            )
        before = {"status": invoice.status}
        invoice.status = VOID
        invoice.next_payment_attempt_at = None
        session.add(invoice)
        session.flush()
        account = load_account(session, invoice.account_id, for_update=True)
        audit.append(
            session,
            actor=ctx.caller.name,
            action="invoice.voided",
            account_id=invoice.account_id,
            before=before,
            after={"status": VOID, "reason": reason.strip()},
            at=ctx.now,
            request_id=ctx.request_id,
        )
        _follow_collections(session, ctx, account, change="invoice_voided")
        return view(invoice)
