"""A Startup account's first sixteen months on a test clock, in seconds (issue 14, point 5).

Trial, a mid-month upgrade, usage with a late event, four failed payments to ``unpaid``, the
recovery, a switch to annual billing (at a period end, May 1st), an upgrade within the annual
year, and the first renewal a year after the switch (May 1st of the next year); every invoice
is checked against amounts worked out by hand below, and the webhook receiver sees every event,
in time order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb

from billing_svc.domain.events import EXPLICIT_ONLY_TYPES
from tests.integration.test_test_clocks import advance, create_clock, ts
from tests.support import (
    ADMIN,
    Client,
    Receiver,
    ServerThread,
    auth,
    fresh_database,
    settings_for_tests,
)

PRODUCER = auth("producer")


def at(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def money(value: common_pb2.Money) -> Decimal:
    return Decimal(value.units) + Decimal(value.nanos) / Decimal(10**9)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Client]:
    # One delivery at a time per endpoint: the receiver then sees the events in the order they
    # were written, which is the clock's order.
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url, webhook_per_endpoint_concurrency=1)).start()
        client = Client(server.target)
        try:
            yield client
        finally:
            client.close()
            server.stop()


class Simulation:
    def __init__(self, client: Client, receiver: Receiver) -> None:
        self.client = client
        self.clock_id = create_clock(client, at(2026, 1, 5), name="startup-16-months").test_clock_id
        self.account_id = client.billing.CreateAccount(
            pb.CreateAccountRequest(
                name="Startup Sim", plan_id="startup", test_clock_id=self.clock_id
            ),
            metadata=ADMIN,
        ).account.account_id
        client.billing.SetPaymentMethod(
            pb.SetPaymentMethodRequest(
                account_id=self.account_id,
                payment_method=pb.PaymentMethod(
                    type="card", last4="4242", exp_month=12, exp_year=2030
                ),
            ),
            metadata=ADMIN,
        )
        self.tenant_id = client.billing.CreateTenant(
            pb.CreateTenantRequest(account_id=self.account_id, name="EU"), metadata=ADMIN
        ).tenant.tenant_id
        client.billing.CreateWebhookEndpoint(
            pb.CreateWebhookEndpointRequest(account_id=self.account_id, url=receiver.url),
            metadata=ADMIN,
        )
        self.events = 0

    def to(self, moment: datetime) -> None:
        advance(self.client, self.clock_id, moment)

    def messages(self, quantity: int, when: datetime) -> upb.RecordUsageResponse:
        self.events += 1
        return self.client.usage.RecordUsage(
            upb.RecordUsageRequest(
                events=[
                    upb.UsageEvent(
                        event_id=f"m{self.events}",
                        account_id=self.account_id,
                        tenant_id=self.tenant_id,
                        kind=common_pb2.USAGE_KIND_MESSAGE,
                        quantity=quantity,
                        occurred_at=ts(when),
                    )
                ]
            ),
            metadata=PRODUCER,
        )

    def invoice(self, period: str) -> pb.Invoice:
        (found,) = self.client.billing.ListInvoices(
            pb.ListInvoicesRequest(account_id=self.account_id, period=period), metadata=ADMIN
        ).invoices
        return found

    def pay(self, period: str, succeeded: bool) -> pb.Invoice:
        return self.client.billing.RecordPaymentResult(
            pb.RecordPaymentResultRequest(
                invoice_id=self.invoice(period).invoice_id,
                succeeded=succeeded,
                failure_reason="" if succeeded else "insufficient_funds",
            ),
            metadata=ADMIN,
        ).invoice

    def status(self) -> int:
        return self.client.billing.GetAccountBilling(
            pb.GetAccountBillingRequest(account_id=self.account_id), metadata=ADMIN
        ).subscription.status


def test_a_startup_account_over_sixteen_months(sandbox: Client) -> None:
    started = time.monotonic()
    receiver = Receiver()
    try:
        sim = Simulation(sandbox, receiver)
        _simulate(sim)
        _check_webhooks(sim, receiver)
    finally:
        receiver.close()
    assert time.monotonic() - started < 60  # seconds, not months


def _simulate(sim: Simulation) -> None:
    # January 2026: created on the 5th, trialing until the 19th (14 days).
    sim.to(at(2026, 1, 12))
    assert sim.status() == pb.SUBSCRIPTION_STATUS_TRIALING
    assert sim.messages(1000, at(2026, 1, 10)).accepted == 1  # in the trial: free
    sim.to(at(2026, 1, 25, 12))
    assert sim.status() == pb.SUBSCRIPTION_STATUS_ACTIVE
    assert sim.messages(6000, at(2026, 1, 25, 6)).accepted == 1

    # January closes on February 1st, 01:00 (one hour of grace).
    sim.to(at(2026, 2, 10))
    january = sim.invoice("2026-01")
    # Base fee from the trial's end: 13 of 31 days, 99 x 13 / 31 = 41.516... -> 41.52.
    # Messages after the trial: 6,000, 1,000 over the 5,000 included, at 0.05 = 50.00.
    assert money(january.total) == Decimal("91.52")
    late = sim.messages(200, at(2026, 1, 28))  # January is invoiced: late
    assert (late.accepted, late.late) == (1, 1)
    sim.messages(2000, at(2026, 2, 9))
    sim.pay("2026-01", succeeded=True)

    # Upgrade to Business in the middle of February (the 15th: 14 of 28 days each side).
    sim.to(at(2026, 2, 15))
    upgraded = sim.client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=sim.account_id, plan_id="business"), metadata=ADMIN
    )
    assert upgraded.effective_immediately
    sim.to(at(2026, 2, 21))
    sim.messages(3000, at(2026, 2, 20))

    sim.to(at(2026, 3, 10))
    february = sim.invoice("2026-02")
    # Startup 99 x 14/28 = 49.50; Business 299 x 14/28 = 149.50; 5,000 messages, all within
    # Business's 25,000; January's 200 late messages at Startup's 0.05 (January was already
    # over its included messages) = 10.00.
    assert money(february.total) == Decimal("209.00")
    sim.pay("2026-02", succeeded=True)

    # March: Business, the whole month, 299.00; its payment fails four times (dunning 3, 5 and
    # 7 days apart on the clock), then succeeds.
    sim.to(at(2026, 4, 2))
    assert money(sim.invoice("2026-03").total) == Decimal("299.00")
    for retry_on in (at(2026, 4, 5), at(2026, 4, 10), at(2026, 4, 17)):
        failed = sim.pay("2026-03", succeeded=False)
        assert failed.next_payment_attempt.ToDatetime(tzinfo=UTC) == retry_on
        assert sim.status() == pb.SUBSCRIPTION_STATUS_PAST_DUE
        sim.to(retry_on)
    assert sim.pay("2026-03", succeeded=False).status == pb.INVOICE_STATUS_UNCOLLECTIBLE
    assert sim.status() == pb.SUBSCRIPTION_STATUS_UNPAID
    sim.to(at(2026, 4, 20))
    assert sim.pay("2026-03", succeeded=True).status == pb.INVOICE_STATUS_PAID
    assert sim.status() == pb.SUBSCRIPTION_STATUS_ACTIVE

    # Switch to annual billing: the same fee, so it waits for the period's end (May 1st).
    switched = sim.client.billing.ChangePlan(
        pb.ChangePlanRequest(
            account_id=sim.account_id,
            plan_id="business",
            billing_interval=pb.BILLING_INTERVAL_ANNUAL,
        ),
        metadata=ADMIN,
    )
    assert not switched.effective_immediately
    assert switched.subscription.pending_plan_effective_at.ToDatetime(tzinfo=UTC) == at(2026, 5, 1)
    sim.to(at(2026, 5, 5))
    assert money(sim.invoice("2026-04").total) == Decimal("299.00")  # still monthly in April
    billing = sim.client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=sim.account_id), metadata=ADMIN
    ).subscription
    assert billing.billing_interval == pb.BILLING_INTERVAL_ANNUAL

    # July: 27,000 messages, 2,000 over Business's 25,000 at 0.03 = 60.00; no base fee.
    sim.to(at(2026, 7, 5))
    sim.messages(27_000, at(2026, 7, 4))
    # Annual from May 1st: a new subscription year starts at the switch (May 1st 2026 to May
    # 1st 2027), its whole yearly fee on May's invoice: 10 x 299 = 2,990.00.
    assert money(sim.invoice("2026-05").total) == Decimal("2990.00")
    # August 16th: an upgrade to Enterprise, annual, within the year that started on May 1st:
    # the difference of the yearly fees, 9,990 - 2,990 = 7,000, for the 258 of the year's 365
    # days left (Aug 16-31: 16, Sep 30, Oct 31, Nov 30, Dec 31, Jan 31, Feb 28, Mar 31,
    # Apr 30), 7,000 x 258 / 365 = 4,947.945... -> 4,947.95. The year is the switch's, not the
    # trial's end's (January 19th to January 19th would leave 156 days).
    sim.to(at(2026, 8, 16))
    upgraded = sim.client.billing.ChangePlan(
        pb.ChangePlanRequest(
            account_id=sim.account_id,
            plan_id="enterprise",
            billing_interval=pb.BILLING_INTERVAL_ANNUAL,
        ),
        metadata=ADMIN,
    )
    assert upgraded.effective_immediately
    # The renewal's invoice comes with May 2027's close, on June 1st 2027 (01:00).
    for moment in (
        at(2026, 10, 16),
        at(2026, 12, 16),
        at(2027, 2, 16),
        at(2027, 4, 16),
        at(2027, 6, 2),
    ):
        sim.to(moment)
    assert money(sim.invoice("2026-06").total) == Decimal("0.00")
    assert money(sim.invoice("2026-07").total) == Decimal("60.00")
    assert money(sim.invoice("2026-08").total) == Decimal("4947.95")
    for period in (
        "2026-09",
        "2026-10",
        "2026-11",
        "2026-12",
        "2027-01",
        "2027-02",
        "2027-03",
        "2027-04",
    ):  # nothing until the renewal; no renewal on January 19th
        assert money(sim.invoice(period).total) == Decimal("0.00"), period
    # The first renewal, a year after the switch: May 1st 2027, Enterprise's yearly fee,
    # 10 x 999 = 9,990.00.
    renewal = sim.invoice("2027-05")
    assert money(renewal.total) == Decimal("9990.00")
    (line,) = renewal.lines
    assert "2027-05-01 00:00 to 2028-05-01 00:00" in line.description


def _check_webhooks(sim: Simulation, receiver: Receiver) -> None:
    # billing.usage_reported goes only to endpoints that name it (EXPLICIT_ONLY_TYPES); this
    # one subscribes to the default set.
    listed = [
        event
        for event in sim.client.billing.ListWebhookEvents(
            pb.ListWebhookEventsRequest(account_id=sim.account_id, page_size=500), metadata=ADMIN
        ).events
        if event.type not in EXPLICIT_ONLY_TYPES
    ]
    bodies = [json.loads(body) for _, body in receiver.wait_for(len(listed), timeout=60)]
    assert len(bodies) == len(listed)
    stamps = [b["timestamp"] for b in bodies]
    assert stamps == sorted(stamps), "the receiver must see the clock's events in time order"
    assert {b["data"]["test_clock_id"] for b in bodies} == {sim.clock_id}
    invoiced = [b["data"]["period"] for b in bodies if b["type"] == "billing.invoice_generated"]
    assert invoiced == [f"2026-{m:02d}" for m in range(1, 13)] + [
        f"2027-{m:02d}" for m in range(1, 6)
    ]
    failures = [b for b in bodies if b["type"] == "billing.payment_failed"]
    assert [b["timestamp"] for b in failures] == [
        "2026-04-02T00:00:00Z",
        "2026-04-05T00:00:00Z",
        "2026-04-10T00:00:00Z",
        "2026-04-17T00:00:00Z",
    ]
    changes = [b["data"]["change"] for b in bodies if b["type"] == "billing.subscription_updated"]
    assert changes[0] == "trial_ended" and changes.count("upgraded") == 2
    assert any(b["type"] == "billing.usage_threshold" for b in bodies)
