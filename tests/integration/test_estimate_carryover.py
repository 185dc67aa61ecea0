"""The open period's estimate is its invoice as it would be if the period closed now: its own
usage, plus what the next invoice carries besides (other periods' late usage not billed yet, open
credits). GetCurrentUsage and budgets use it; cost allocation stays on the period's own usage."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from sqlmodel import select

from billing_svc.domain.periods import Period
from billing_svc.services import usage_reports
from billing_svc.storage.tables import OutboxEvent
from tests.integration.test_invoicing import close, imported_shop, now
from tests.support import ADMIN, READER, WRITER, Client, ServerThread


def usd(units: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="USD", units=units)


def decimal(money: common_pb2.Money) -> Decimal:
    return Decimal(money.units) + Decimal(money.nanos) / 10**9


def credit(client: Client, account_id: str, units: int) -> None:
    client.billing.IssueCredit(
        pb.IssueCreditRequest(account_id=account_id, amount=usd(units), description="Goodwill"),
        metadata=ADMIN,
    )


def test_the_estimate_just_before_closing_is_the_invoice_closing_issues(
    client: Client, server: ServerThread
) -> None:
    this = Period.containing(now())
    older, last = this.previous().previous(), this.previous()
    shop = imported_shop(client, months_back=3)
    shop.record([shop.message("base", 5000, at=older.start + timedelta(days=1))])
    close(client, shop.account_id, older)
    ack = shop.record(
        [
            shop.message("late", 40, at=older.end - timedelta(milliseconds=1)),
            shop.message("own", 5600, at=last.start + timedelta(days=1)),
        ]
    )
    assert ack.late == 1
    credit(client, shop.account_id, 10)

    # As GetCurrentUsage answered in the last microsecond of the period.
    estimate = usage_reports.current_usage(
        server.db, shop.account_id, now=last.end - timedelta(microseconds=1)
    )
    assert estimate.snapshot.period == last and not estimate.snapshot.invoiced
    invoice = close(client, shop.account_id, last)
    assert [(line.type, line.amount) for line in estimate.snapshot.lines] == [
        (line.type, decimal(line.amount)) for line in invoice.lines
    ]
    assert [line.type for line in invoice.lines] == [
        "base_fee",
        "message_overage",
        "late_usage",
        "credit",
    ]
    # $99 base + 600 x $0.05 + 40 late x $0.05 - $10 credit
    assert estimate.snapshot.total == decimal(invoice.total) == Decimal("121.00")
    assert estimate.projected_charges == estimate.snapshot.total


def test_current_usage_and_budgets_include_late_usage_and_credits_allocation_does_not(
    client: Client, server: ServerThread
) -> None:
    last = Period.containing(now()).previous()
    shop = imported_shop(client, months_back=2)
    shop.record([shop.message("last", 5000, at=last.start + timedelta(days=1))])
    close(client, shop.account_id, last)
    shop.record([shop.message("late", 100, at=last.end - timedelta(milliseconds=1))])
    credit(client, shop.account_id, 3)
    shop.record([shop.message("now", 6000, at=now() - timedelta(minutes=1))])

    current = shop.current().usage_to_date
    lines = {line.type: decimal(line.amount) for line in current.estimated_lines}
    # Own usage $99 + 1,000 x $0.05 = $149; then 100 late x $0.05 = $5 and the $3 credit.
    assert lines == {
        "base_fee": Decimal(99),
        "message_overage": Decimal(50),
        "late_usage": Decimal(5),
        "credit": Decimal(-3),
    }
    assert decimal(current.estimated_charges) == Decimal(151)

    allocation = client.billing.GetCostAllocation(
        pb.GetCostAllocationRequest(
            account_id=shop.account_id, period=Period.containing(now()).label
        ),
        metadata=READER,
    )
    assert not allocation.invoiced and decimal(allocation.total) == Decimal(149)

    # $149 of own usage is under $150; the estimate, $151, is not.
    client.billing.SetBudget(
        pb.SetBudgetRequest(
            account_id=shop.account_id, name="Monthly", limit=usd(150), threshold_percentages=[100]
        ),
        metadata=WRITER,
    )
    with server.db.read() as session:
        alerts = [
            json.loads(row.body)["data"]
            for row in session.exec(
                select(OutboxEvent).where(
                    OutboxEvent.account_id == shop.account_id,
                    OutboxEvent.type == "billing.budget_alert",
                )
            )
        ]
    assert [(a["budget_name"], a["current_usage"]) for a in alerts] == [("Monthly", 151)]
