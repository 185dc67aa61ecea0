"""What a subscription's status is after payments, with or without a payment method on file
(docs/decisions.md, "Payments"): a payment that went through settles its invoice and, once no
failed invoice is left, makes the subscription active; a payment method alone never clears a
failed payment."""

from __future__ import annotations

from datetime import timedelta

from as2aas.billing.v1 import billing_service_pb2 as pb

from billing_svc.domain.periods import Period
from tests.integration.test_accounts import _wait_for_status
from tests.integration.test_invoicing import close, events_of, imported_shop, now
from tests.integration.test_usage import ts
from tests.support import READER, WRITER, Client, ServerThread, create_account

CARD = pb.PaymentMethod(type="card", last4="4242", exp_month=12, exp_year=2035)


def pay(client: Client, invoice_id: str, succeeded: bool, request_id: str) -> pb.Invoice:
    return client.billing.RecordPaymentResult(
        pb.RecordPaymentResultRequest(
            invoice_id=invoice_id,
            succeeded=succeeded,
            request_id=request_id,
            failure_reason="" if succeeded else "no_payment_method",
            attempt_time=ts(now().replace(microsecond=0) - timedelta(minutes=5)),
        ),
        metadata=WRITER,
    ).invoice


def status(client: Client, account_id: str) -> int:
    return client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=account_id), metadata=READER
    ).subscription.status


def test_a_payment_without_a_method_on_file_recovers_the_subscription(
    client: Client, server: ServerThread
) -> None:
    shop = imported_shop(client)  # no payment method ever set
    invoice = close(client, shop.account_id, Period.containing(now()).previous())
    pay(client, invoice.invoice_id, False, "fail-1")
    assert status(client, shop.account_id) == pb.SUBSCRIPTION_STATUS_PAST_DUE
    # A payment method alone does not settle a failed payment.
    client.billing.SetPaymentMethod(
        pb.SetPaymentMethodRequest(account_id=shop.account_id, payment_method=CARD), metadata=WRITER
    )
    assert status(client, shop.account_id) == pb.SUBSCRIPTION_STATUS_PAST_DUE

    other = imported_shop(client)
    unpaid = close(client, other.account_id, Period.containing(now()).previous())
    pay(client, unpaid.invoice_id, False, "fail-2")
    paid = pay(client, unpaid.invoice_id, True, "paid-2")  # e.g. a bank transfer, no card
    assert paid.status == pb.INVOICE_STATUS_PAID
    assert status(client, other.account_id) == pb.SUBSCRIPTION_STATUS_ACTIVE
    assert (
        events_of(server, other.account_id, "billing.payment_succeeded")[0]["payment_method"]
        == "unknown"
    )
    changes = [
        (e["previous_status"], e["status"], e["change"])
        for e in events_of(server, other.account_id, "billing.subscription_updated")
    ]
    assert changes == [
        ("active", "past_due", "payment_failed"),
        ("past_due", "active", "payment_recovered"),
    ]
    # A payment method set afterwards changes nothing more.
    client.billing.SetPaymentMethod(
        pb.SetPaymentMethodRequest(account_id=other.account_id, payment_method=CARD),
        metadata=WRITER,
    )
    assert status(client, other.account_id) == pb.SUBSCRIPTION_STATUS_ACTIVE
    assert len(events_of(server, other.account_id, "billing.subscription_updated")) == 2


def test_a_trial_ended_without_a_method_then_paid_is_active(client: Client) -> None:
    last = Period.containing(now()).previous()
    # The 14-day trial ends as last month starts: last month is billed in full.
    account = create_account(
        client, plan_id="startup", start_time=ts(last.start - timedelta(days=14))
    )
    _wait_for_status(client, account.account_id, pb.SUBSCRIPTION_STATUS_PAST_DUE)
    invoice = close(client, account.account_id, last)
    assert invoice.status == pb.INVOICE_STATUS_OPEN
    pay(client, invoice.invoice_id, True, "paid-trial")
    assert status(client, account.account_id) == pb.SUBSCRIPTION_STATUS_ACTIVE
