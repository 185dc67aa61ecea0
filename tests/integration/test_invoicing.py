"""Closing periods, invoices, payments and dunning over real gRPC (spec §1.6; issue 5)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from billing_svc.domain.money import to_cents
from billing_svc.domain.periods import Period
from billing_svc.services import invoicing
from billing_svc.services.context import SYSTEM, RequestContext, system_context
from billing_svc.storage.tables import Invoice, OutboxEvent, PlanSegment
from tests.integration.test_usage import Shop, ts
from tests.support import ADMIN, READER, WRITER, Client, ServerThread, bad_request_fields


def now() -> datetime:
    return datetime.now(UTC)


def amount(money) -> str:
    cents = money.units * 100 + money.nanos // 10_000_000
    return f"{cents // 100}.{cents % 100:02d}"


def events_of(server: ServerThread, account_id: str, event_type: str) -> list[dict]:
    with server.db.read() as session:
        rows = session.exec(
            select(OutboxEvent)
            .where(OutboxEvent.account_id == account_id, OutboxEvent.type == event_type)
            .order_by(OutboxEvent.created_at)
        ).all()
    return [json.loads(row.body)["data"] for row in rows]


def close(client: Client, account_id: str, period: Period) -> pb.Invoice:
    return client.billing.CloseBillingPeriod(
        pb.CloseBillingPeriodRequest(account_id=account_id, period=period.label), metadata=WRITER
    ).invoice


def imported_shop(client: Client, plan_id: str = "startup", months_back: int = 3) -> Shop:
    start = Period.containing(now())
    for _ in range(months_back):
        start = start.previous()
    return Shop(client, plan_id=plan_id, skip_trial=True, start_time=ts(start.start))


def test_startup_invoice_with_every_overage_to_the_cent(client: Client) -> None:
    last = Period.containing(now()).previous()
    shop = imported_shop(client)
    for name in ("APAC", "LATAM"):  # 4 tenants: one over the 3 included
        client.billing.CreateTenant(
            pb.CreateTenantRequest(
                account_id=shop.account_id, name=name, start_time=ts(last.start - timedelta(days=1))
            ),
            metadata=ADMIN,
        )
    # 7,000 messages and 8 GB held all month
    ack = shop.record(
        [shop.message(f"m{i}", 1000, at=last.start + timedelta(days=i)) for i in range(7)]
        + [shop.storage("s1", 8, last.start)]
    )
    assert ack.accepted == 8
    invoice = close(client, shop.account_id, last)
    assert invoice.invoice_id.startswith("in_") and invoice.period == last.label
    assert invoice.status == pb.INVOICE_STATUS_OPEN
    lines = [(line.type, line.quantity, amount(line.amount)) for line in invoice.lines]
    # base $99; (4 - 3) x $29; (7,000 - 5,000) x $0.05 = $100; (8 - 5) GB-months x $2 = $6
    assert lines == [
        ("base_fee", "1", "99.00"),
        ("tenant_overage", "1", "29.00"),
        ("message_overage", "2000", "100.00"),
        ("storage_overage", "3", "6.00"),
    ]
    assert amount(invoice.total) == "234.00" and amount(invoice.subtotal) == "234.00"
    assert {t.message_count for t in invoice.tenant_breakdown} == {7000, 0}
    fetched = client.billing.GetInvoice(
        pb.GetInvoiceRequest(invoice_id=invoice.invoice_id), metadata=READER
    ).invoice
    assert fetched == invoice


def test_a_trial_ending_mid_period_bills_only_the_storage_held_after_it(client: Client) -> None:
    last = Period.containing(now()).previous()
    # A Startup trial (14 days) from 4 days before the period: it ends on day 10 of the period.
    shop = Shop(client, plan_id="startup", start_time=ts(last.start - timedelta(days=4)))
    ack = shop.record([shop.storage("s1", 10, last.start - timedelta(days=1))])
    assert ack.accepted == 1
    invoice = close(client, shop.account_id, last)
    days = last.seconds // 86_400
    paid = Fraction(days - 10, days)
    # 10 GB held all month, but only (days - 10)/days of it after the trial; 5 GB included.
    held = (Decimal(10 * paid.numerator) / paid.denominator).quantize(Decimal("1e-9"))
    over = held - 5
    lines = {line.type: (line.quantity, amount(line.amount)) for line in invoice.lines}
    assert lines["storage_overage"] == (str(over), str(to_cents(over * 2)))
    assert lines["base_fee"][1] == str(to_cents(Decimal(99) * paid.numerator / paid.denominator))
    assert set(lines) == {"base_fee", "storage_overage"}


def test_switching_to_annual_on_the_first_instant_of_a_period_starts_a_new_year(
    client: Client, server: ServerThread
) -> None:
    last = Period.containing(now()).previous()
    shop = imported_shop(client, plan_id="business", months_back=6)  # monthly, since 6 months
    with server.db.write() as session:  # a switch scheduled for the period's end, applied
        session.add(
            PlanSegment(
                account_id=shop.account_id,
                plan_id="business",
                billing_interval="annual",
                effective_at=last.start,
            )
        )
    invoice = close(client, shop.account_id, last)
    # The years start afresh at the switch: the whole 10 x $299, not the rest of the account's
    # subscription year (docs/decisions.md, "Annual billing").
    (line,) = [line for line in invoice.lines if line.type == "base_fee"]
    assert amount(line.amount) == "2990.00"
    assert last.start.strftime("%Y-%m-%d") in line.description


def test_closing_twice_or_concurrently_yields_one_invoice(
    client: Client, server: ServerThread
) -> None:
    last = Period.containing(now()).previous()
    shop = imported_shop(client)
    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(lambda _: close(client, shop.account_id, last).invoice_id, range(6)))
    assert len(ids) == 1
    assert close(client, shop.account_id, last).invoice_id in ids
    with server.db.read() as session:
        assert (
            len(session.exec(select(Invoice).where(Invoice.account_id == shop.account_id)).all())
            == 1
        )
    assert len(events_of(server, shop.account_id, "billing.invoice_generated")) == 1


@pytest.mark.parametrize("offset", [0, 1])
def test_the_current_or_a_future_period_cannot_be_closed(client: Client, offset: int) -> None:
    shop = imported_shop(client)
    period = Period.containing(now())
    for _ in range(offset):
        period = period.next()
    with pytest.raises(grpc.RpcError) as error:
        close(client, shop.account_id, period)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "has not ended" in error.value.details()


def test_late_events_are_billed_on_the_next_invoice_naming_their_period(client: Client) -> None:
    this = Period.containing(now())
    older, last = this.previous().previous(), this.previous()
    shop = imported_shop(client, months_back=3)
    shop.record([shop.message("base", 5000, at=older.start + timedelta(days=1))])
    first = close(client, shop.account_id, older)
    assert [line.type for line in first.lines] == ["base_fee"]  # 5,000 = the included amount
    ack = shop.record(
        [
            shop.message("late-1", 40, at=older.end - timedelta(milliseconds=1)),
            shop.message("on-time", 1, at=last.start),
        ]
    )
    assert (ack.accepted, ack.late) == (2, 1)
    second = close(client, shop.account_id, last)
    late = [line for line in second.lines if line.type == "late_usage"]
    assert len(late) == 1
    assert (late[0].period, late[0].quantity, amount(late[0].amount)) == (
        older.label,
        "40",
        "2.00",
    )  # 40 x $0.05
    assert older.label in late[0].description
    assert amount(second.total) == "101.00"  # $99 base + $2 late


def test_payment_success_and_the_dunning_schedule(client: Client, server: ServerThread) -> None:
    last = Period.containing(now()).previous()
    shop = imported_shop(client)
    client.billing.SetPaymentMethod(
        pb.SetPaymentMethodRequest(
            account_id=shop.account_id,
            payment_method=pb.PaymentMethod(type="card", last4="4242", exp_month=12, exp_year=2035),
        ),
        metadata=WRITER,
    )
    invoice = close(client, shop.account_id, last)
    attempt = now().replace(microsecond=0) - timedelta(hours=1)

    def pay(
        succeeded: bool, request_id: str, at: datetime = attempt
    ) -> pb.RecordPaymentResultResponse:
        return client.billing.RecordPaymentResult(
            pb.RecordPaymentResultRequest(
                invoice_id=invoice.invoice_id,
                succeeded=succeeded,
                failure_reason="" if succeeded else "insufficient_funds",
                request_id=request_id,
                attempt_time=ts(at),
            ),
            metadata=WRITER,
        )

    def status() -> int:
        return client.billing.GetAccountBilling(
            pb.GetAccountBillingRequest(account_id=shop.account_id), metadata=READER
        ).subscription.status

    first = pay(False, "pay-1").invoice
    assert first.status == pb.INVOICE_STATUS_OPEN
    assert first.next_payment_attempt.ToDatetime(tzinfo=UTC) == attempt + timedelta(days=3)
    assert pay(False, "pay-1").invoice == first  # a retried report changes nothing
    assert status() == pb.SUBSCRIPTION_STATUS_PAST_DUE
    pay(False, "pay-2")
    pay(False, "pay-3")
    final = pay(False, "pay-4").invoice
    assert final.status == pb.INVOICE_STATUS_UNCOLLECTIBLE
    assert status() == pb.SUBSCRIPTION_STATUS_UNPAID
    failed = events_of(server, shop.account_id, "billing.payment_failed")
    assert [f["retry_date"] for f in failed] == [
        (attempt + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in (3, 5, 7)
    ] + [None]
    assert failed[0]["amount"] == 99 and failed[0]["failure_reason"] == "insufficient_funds"

    paid = pay(True, "pay-5").invoice
    assert paid.status == pb.INVOICE_STATUS_PAID and amount(paid.amount_paid) == "99.00"
    assert status() == pb.SUBSCRIPTION_STATUS_ACTIVE
    succeeded = events_of(server, shop.account_id, "billing.payment_succeeded")
    assert succeeded == [
        {
            "invoice_id": invoice.invoice_id,
            "amount_paid": 99.0,
            "payment_method": "card_ending_4242",
            "paid_at": attempt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ]
    changes = [
        (e["previous_status"], e["status"])
        for e in events_of(server, shop.account_id, "billing.subscription_updated")
    ]
    assert changes == [("active", "past_due"), ("past_due", "unpaid"), ("unpaid", "active")]
    with pytest.raises(grpc.RpcError) as error:
        pay(True, "pay-6")
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_failed_payment_needs_a_reason(client: Client) -> None:
    shop = imported_shop(client)
    invoice = close(client, shop.account_id, Period.containing(now()).previous())
    with pytest.raises(grpc.RpcError) as error:
        client.billing.RecordPaymentResult(
            pb.RecordPaymentResultRequest(invoice_id=invoice.invoice_id, succeeded=False),
            metadata=WRITER,
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "failure_reason" in error.value.details()


def test_void_is_admin_only_and_final(client: Client) -> None:
    shop = imported_shop(client)
    invoice = close(client, shop.account_id, Period.containing(now()).previous())
    request = pb.VoidInvoiceRequest(invoice_id=invoice.invoice_id, reason="duplicate import")
    with pytest.raises(grpc.RpcError) as error:
        client.billing.VoidInvoice(request, metadata=WRITER)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    voided = client.billing.VoidInvoice(request, metadata=ADMIN).invoice
    assert voided.status == pb.INVOICE_STATUS_VOID
    with pytest.raises(grpc.RpcError) as error:
        client.billing.RecordPaymentResult(
            pb.RecordPaymentResultRequest(invoice_id=invoice.invoice_id, succeeded=True),
            metadata=WRITER,
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_list_invoices_pages_and_filters(client: Client) -> None:
    this = Period.containing(now())
    shop = imported_shop(client, months_back=4)
    periods = [this.previous(), this.previous().previous(), this.previous().previous().previous()]
    ids = [close(client, shop.account_id, p).invoice_id for p in reversed(periods)]

    def page(token: str = "", **filters) -> pb.ListInvoicesResponse:
        return client.billing.ListInvoices(
            pb.ListInvoicesRequest(
                account_id=shop.account_id, page_size=2, page_token=token, **filters
            ),
            metadata=READER,
        )

    first = page()
    assert [i.invoice_id for i in first.invoices] == ids[::-1][:2] and first.next_page_token
    second = page(first.next_page_token)
    assert [i.invoice_id for i in second.invoices] == ids[:1] and not second.next_page_token
    assert [i.period for i in page(period=periods[1].label).invoices] == [periods[1].label]
    assert page(status=pb.INVOICE_STATUS_PAID).invoices == []


def test_the_closer_bills_ended_periods_once_but_never_before_registration(
    client: Client, server: ServerThread
) -> None:
    imported = imported_shop(client)  # its past periods ended before it was registered
    fresh = Shop(client, plan_id="business", skip_trial=True)
    this = Period.containing(now())
    grace = timedelta(hours=1)
    due_now = invoicing.due_periods(server.db, now(), timedelta(0))
    assert not [due for due in due_now if due[0] in (imported.account_id, fresh.account_id)]
    later = RequestContext(
        caller=system_context("test").caller, now=this.end + grace + timedelta(seconds=1)
    )
    invoicing.close_due_periods(server.db, later, grace)
    invoicing.close_due_periods(server.db, later, grace)
    with server.db.read() as session:
        rows = session.exec(
            select(Invoice).where(
                Invoice.account_id.in_(  # type: ignore[attr-defined]
                    [imported.account_id, fresh.account_id]
                )
            )
        ).all()
    assert sorted((r.account_id, r.period) for r in rows) == sorted(
        [(fresh.account_id, this.label), (imported.account_id, this.label)]
    )
    within_grace = RequestContext(caller=later.caller, now=this.end + timedelta(minutes=30))
    assert (fresh.account_id, this) not in invoicing.due_periods(server.db, within_grace.now, grace)


def test_the_closer_on_two_replicas_at_once_issues_each_invoice_once(
    client: Client, server: ServerThread
) -> None:
    from tests.support import settings_for_tests

    replica = ServerThread(settings_for_tests(server.settings.database_url)).start()
    try:
        shops = [Shop(client, plan_id="startup", skip_trial=True) for _ in range(3)]
        this = Period.containing(now())
        grace = timedelta(hours=1)
        later = RequestContext(
            caller=system_context("test").caller, now=this.end + grace + timedelta(seconds=1)
        )
        with ThreadPoolExecutor(4) as pool:
            list(
                pool.map(
                    lambda db: invoicing.close_due_periods(db, later, grace),
                    [server.db, replica.db, server.db, replica.db],
                )
            )
        with server.db.read() as session:
            rows = session.exec(
                select(Invoice).where(
                    Invoice.account_id.in_(  # type: ignore[attr-defined]
                        [s.account_id for s in shops]
                    )
                )
            ).all()
        assert sorted(r.account_id for r in rows) == sorted(s.account_id for s in shops)
        assert len(events_of(server, shops[0].account_id, "billing.invoice_generated")) == 1
    finally:
        replica.stop()


def test_an_account_that_cannot_be_rated_does_not_hold_up_the_others(
    client: Client, server: ServerThread
) -> None:
    shops = [Shop(client, plan_id="startup", skip_trial=True) for _ in range(3)]
    broken = shops[1].account_id
    with server.db.write() as session:  # damaged data: its terms cannot be read any more
        session.connection().exec_driver_sql(
            f"UPDATE account SET custom_terms_json = '{{not json' WHERE account_id = '{broken}'"
        )
    this = Period.containing(now())
    later = RequestContext(caller=system_context("test").caller, now=this.end + timedelta(hours=2))
    invoicing.close_due_periods(server.db, later, timedelta(hours=1))
    with server.db.read() as session:
        billed = set(
            session.exec(
                select(Invoice.account_id).where(
                    Invoice.account_id.in_(  # type: ignore[attr-defined]
                        [s.account_id for s in shops]
                    )
                )
            ).all()
        )
    assert billed == {shops[0].account_id, shops[2].account_id}


def usd(units: int, nanos: int = 0) -> common_pb2.Money:
    return common_pb2.Money(currency_code="USD", units=units, nanos=nanos)


def issue_credit(
    client: Client,
    account_id: str,
    money: common_pb2.Money,
    description: str,
    request_id: str = "",
    metadata=ADMIN,
) -> pb.Credit:
    return client.billing.IssueCredit(
        pb.IssueCreditRequest(
            account_id=account_id, amount=money, description=description, request_id=request_id
        ),
        metadata=metadata,
    ).credit


def test_credits_come_off_the_next_invoices_oldest_first_never_below_zero(client: Client) -> None:
    last = Period.containing(now()).previous()
    shop = imported_shop(client)  # Startup, two tenants, no usage: $99.00 a month
    first = issue_credit(client, shop.account_id, usd(60), "Goodwill credit", request_id="c-1")
    again = issue_credit(client, shop.account_id, usd(60), "Goodwill credit", request_id="c-1")
    assert again.credit_id == first.credit_id  # a retried call grants nothing more
    second = issue_credit(client, shop.account_id, usd(50), "Outage of 2026-11-03")
    invoice = close(client, shop.account_id, last)
    lines = [(line.type, amount(line.amount), line.credit_id) for line in invoice.lines]
    assert lines == [
        ("base_fee", "99.00", ""),
        ("credit", "-60.00", first.credit_id),
        ("credit", "-39.00", second.credit_id),
    ]
    assert amount(invoice.total) == "0.00" and invoice.status == pb.INVOICE_STATUS_PAID
    left = client.billing.ListCredits(
        pb.ListCreditsRequest(account_id=shop.account_id), metadata=READER
    ).credits
    assert [(c.credit_id, amount(c.remaining)) for c in left] == [
        (first.credit_id, "0.00"),
        (second.credit_id, "11.00"),
    ]
    # What the first invoice could not absorb comes off the next one closed.
    earlier = close(client, shop.account_id, last.previous())
    assert [(line.type, amount(line.amount)) for line in earlier.lines] == [
        ("base_fee", "99.00"),
        ("credit", "-11.00"),
    ]
    assert amount(earlier.total) == "88.00"
    # Closing again changes nothing and draws nothing more.
    assert close(client, shop.account_id, last.previous()) == earlier
    left = client.billing.ListCredits(
        pb.ListCreditsRequest(account_id=shop.account_id), metadata=READER
    ).credits
    assert [amount(c.remaining) for c in left] == ["0.00", "0.00"]


@pytest.mark.parametrize(
    ("money", "description", "field"),
    [
        (usd(0), "Zero", "amount"),
        (usd(-5), "Negative", "amount"),
        (usd(10, 5_000_000), "Half a cent", "amount"),
        (common_pb2.Money(currency_code="EUR", units=5), "Euros", "amount.currency_code"),
        (usd(5), "   ", "description"),
    ],
)
def test_a_credit_must_be_positive_whole_cents_usd_and_described(
    client: Client, money: common_pb2.Money, description: str, field: str
) -> None:
    shop = imported_shop(client)
    with pytest.raises(grpc.RpcError) as error:
        issue_credit(client, shop.account_id, money, description)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(error.value) == [field]


def test_only_admins_issue_credits(client: Client) -> None:
    shop = imported_shop(client)
    with pytest.raises(grpc.RpcError) as error:
        issue_credit(client, shop.account_id, usd(5), "Nice try", metadata=WRITER)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (
        client.billing.ListCredits(
            pb.ListCreditsRequest(account_id=shop.account_id), metadata=READER
        ).credits
        == []
    )


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.sampled_from(["startup", "business", "enterprise"]),
    messages=st.lists(st.tuples(st.integers(0, 27 * 86_400), st.integers(1, 40_000)), max_size=6),
    storage_gb=st.integers(0, 600),
)
def test_any_period_closed_twice_is_one_invoice_that_adds_up_without_a_float(
    client: Client,
    server: ServerThread,
    plan: str,
    messages: list[tuple[int, int]],
    storage_gb: int,
) -> None:
    last = Period.containing(now()).previous()
    shop = imported_shop(client, plan_id=plan)
    shop.record(
        [
            shop.message(f"m{i}", quantity, at=last.start + timedelta(seconds=second))
            for i, (second, quantity) in enumerate(messages)
        ]
        + [shop.storage("s", storage_gb, last.start + timedelta(days=3))]
    )
    first, second = close(client, shop.account_id, last), close(client, shop.account_id, last)
    assert first == second
    issued = invoicing.get_invoice(server.db, first.invoice_id, caller=SYSTEM)
    with server.db.read() as session:
        assert (
            len(
                session.exec(
                    select(Invoice).where(
                        Invoice.account_id == shop.account_id, Invoice.period == last.label
                    )
                ).all()
            )
            == 1
        )
    values = [issued.invoice.total, issued.invoice.subtotal] + [
        value for line in issued.lines for value in (line.quantity, line.unit_price, line.amount)
    ]
    assert all(type(value) is Decimal for value in values)
    assert issued.invoice.total == sum((line.amount for line in issued.lines), Decimal(0))
    assert all(line.amount == line.amount.quantize(Decimal("0.01")) for line in issued.lines)
