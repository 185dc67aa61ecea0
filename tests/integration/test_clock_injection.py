"""One clock: a server built on a fixed clock lives entirely on that clock's time.

Nothing here freezes the process: the clock is handed to ``BillingServer`` and every part of the
service (the servicers, the scheduler, the dispatcher, the outbox, the idempotency records) reads
it. Without the injection the trial would not end and March would not close for years.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from google.protobuf import timestamp_pb2
from sqlmodel import select

from billing_svc.clock import FixedClock
from billing_svc.storage.tables import IdempotencyRecord, OutboxEvent
from tests.support import ADMIN, Client, Receiver, ServerThread, fresh_database, settings_for_tests

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[FixedClock, ServerThread, Client]]:
    clock = FixedClock(START)
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url), clock).start()
        client = Client(server.target)
        try:
            yield clock, server, client
        finally:
            client.close()
            server.stop()


def _time(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def test_a_server_on_a_fixed_clock_bills_on_that_clock(
    clocked: tuple[FixedClock, ServerThread, Client],
) -> None:
    clock, server, client = clocked
    receiver = Receiver()
    try:
        account = client.billing.CreateAccount(
            pb.CreateAccountRequest(name="Clocked", plan_id="startup", request_id="create-clocked"),
            metadata=ADMIN,
        ).account
        account_id = account.account_id
        assert _time(account.create_time) == START
        assert _time(account.subscription.trial_ends_at) == START + timedelta(days=14)
        assert _time(account.subscription.current_period_start) == datetime(2026, 3, 1, tzinfo=UTC)
        client.billing.SetPaymentMethod(
            pb.SetPaymentMethodRequest(
                account_id=account_id,
                payment_method=pb.PaymentMethod(
                    type="card", last4="4242", exp_month=12, exp_year=2030
                ),
            ),
            metadata=ADMIN,
        )
        client.billing.CreateWebhookEndpoint(
            pb.CreateWebhookEndpointRequest(account_id=account_id, url=receiver.url), metadata=ADMIN
        )

        # April 1st, 02:00: the trial (March 24th) is over and March is past its hour of grace.
        later = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
        clock.set(later)
        received = receiver.wait_for(2)
        # Up to 4 deliveries per endpoint are in flight at once: receivers order by timestamp.
        bodies = sorted((json.loads(body) for _, body in received), key=lambda b: b["timestamp"])
        assert [(b["type"], b["timestamp"]) for b in bodies] == [
            ("billing.subscription_updated", "2026-03-24T09:00:00Z"),
            ("billing.invoice_generated", "2026-04-01T02:00:00Z"),
        ]
        assert bodies[0]["data"]["status"] == "active"
        assert bodies[1]["data"]["period"] == "2026-03"
        # The signature's timestamp is the server's clock too (the one clock of this process).
        assert {int(h["webhook-timestamp"]) for h, _ in received} == {int(later.timestamp())}

        billing = client.billing.GetAccountBilling(
            pb.GetAccountBillingRequest(account_id=account_id), metadata=ADMIN
        )
        assert _time(billing.subscription.current_period_start) == datetime(2026, 4, 1, tzinfo=UTC)
        with server.db.read() as session:
            outbox_times = set(session.exec(select(OutboxEvent.created_at)).all())
            remembered = session.exec(select(IdempotencyRecord.created_at)).one()
        assert outbox_times == {later}
        assert remembered == START
    finally:
        receiver.close()
