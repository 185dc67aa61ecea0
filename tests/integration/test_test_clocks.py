"""Test clocks (issue 14, points 2 and 4): an account on a clock lives on the clock's time, its
advance is replayed in time order by the scheduler, and the real-time run never touches it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from google.protobuf import timestamp_pb2

from tests.support import ADMIN, WRITER, Client, Receiver, ServerThread

CLOCK_START = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _time(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def create_clock(client: Client, at: datetime = CLOCK_START, name: str = "sim") -> pb.TestClock:
    return client.billing.CreateTestClock(
        pb.CreateTestClockRequest(name=name, frozen_time=ts(at)), metadata=ADMIN
    ).test_clock


def advance(client: Client, clock_id: str, to: datetime, timeout: float = 30) -> pb.TestClock:
    """Advance and wait until the scheduler has replayed it."""
    started = client.billing.AdvanceTestClock(
        pb.AdvanceTestClockRequest(test_clock_id=clock_id, frozen_time=ts(to)), metadata=ADMIN
    ).test_clock
    assert started.status == pb.TestClock.STATUS_ADVANCING
    assert _time(started.advancing_to) == to
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clock = client.billing.GetTestClock(
            pb.GetTestClockRequest(test_clock_id=clock_id), metadata=ADMIN
        ).test_clock
        if clock.status == pb.TestClock.STATUS_READY:
            assert _time(clock.frozen_time) == to
            return clock
        time.sleep(0.05)
    raise AssertionError(f"test clock {clock_id} still advancing after {timeout} s")


def test_a_clock_account_lives_on_the_clock_and_its_advance_replays_in_order(
    client: Client, server: ServerThread, receiver: Receiver
) -> None:
    clock = create_clock(client)
    assert clock.status == pb.TestClock.STATUS_READY
    assert _time(clock.frozen_time) == CLOCK_START
    account = client.billing.CreateAccount(
        pb.CreateAccountRequest(
            name="Sim Co", plan_id="startup", test_clock_id=clock.test_clock_id
        ),
        metadata=ADMIN,
    ).account
    assert _time(account.create_time) == CLOCK_START
    assert _time(account.subscription.trial_ends_at) == datetime(2026, 1, 24, 9, tzinfo=UTC)
    assert _time(account.subscription.current_period_start) == datetime(2026, 1, 1, tzinfo=UTC)
    client.billing.SetPaymentMethod(
        pb.SetPaymentMethodRequest(
            account_id=account.account_id,
            payment_method=pb.PaymentMethod(type="card", last4="4242", exp_month=12, exp_year=2030),
        ),
        metadata=ADMIN,
    )
    client.billing.CreateWebhookEndpoint(
        pb.CreateWebhookEndpointRequest(account_id=account.account_id, url=receiver.url),
        metadata=ADMIN,
    )

    # The real-time run (every 0.2 s here) must leave it alone: its trial "ended" in January
    # of the real calendar, but not on its clock.
    time.sleep(1.0)
    billing = client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=account.account_id), metadata=ADMIN
    )
    assert billing.subscription.status == pb.SUBSCRIPTION_STATUS_TRIALING
    assert receiver.received() == []

    advance(client, clock.test_clock_id, datetime(2026, 2, 5, tzinfo=UTC))
    # Deliveries carry no ordering guarantee (WEBHOOKS.md): on a loaded machine the second
    # event can arrive first, so they are read in the order of their (clock) timestamps.
    received = sorted(receiver.wait_for(2), key=lambda item: json.loads(item[1])["timestamp"])
    bodies = [json.loads(body) for _, body in received]
    assert [(b["type"], b["timestamp"]) for b in bodies] == [
        ("billing.subscription_updated", "2026-01-24T09:00:00Z"),
        ("billing.invoice_generated", "2026-02-01T01:00:00Z"),  # January + 1 h of grace
    ]
    assert {b["data"]["test_clock_id"] for b in bodies} == {clock.test_clock_id}
    assert bodies[1]["data"]["period"] == "2026-01"
    # The signature's timestamp stays wall time: verifiers refuse a skewed one.
    for headers, _ in received:
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 120

    # A payment outcome is stamped with the clock's time; dunning counts from it.
    invoice_id = bodies[1]["data"]["invoice_id"]
    client.billing.RecordPaymentResult(
        pb.RecordPaymentResultRequest(
            invoice_id=invoice_id, succeeded=False, failure_reason="card_declined"
        ),
        metadata=ADMIN,
    )
    # With the status change (past_due) in the same transaction; up to 4 deliveries per
    # endpoint are in flight at once, so the two may arrive in either order.
    later = [json.loads(body) for _, body in receiver.wait_for(4)[2:]]
    failed = next(b for b in later if b["type"] == "billing.payment_failed")
    assert failed["type"] == "billing.payment_failed"
    assert failed["timestamp"] == "2026-02-05T00:00:00Z"
    assert failed["data"]["retry_date"] == "2026-02-08T00:00:00Z"
    assert failed["data"]["test_clock_id"] == clock.test_clock_id
    billing = client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=account.account_id), metadata=ADMIN
    )
    assert billing.subscription.status == pb.SUBSCRIPTION_STATUS_PAST_DUE
    assert _time(billing.subscription.current_period_start) == datetime(2026, 2, 1, tzinfo=UTC)

    deleted = client.billing.DeleteTestClock(
        pb.DeleteTestClockRequest(test_clock_id=clock.test_clock_id), metadata=ADMIN
    )
    assert deleted.deleted_accounts == 1
    with pytest.raises(grpc.RpcError) as gone:
        client.billing.GetAccountBilling(
            pb.GetAccountBillingRequest(account_id=account.account_id), metadata=ADMIN
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as clock_gone:
        client.billing.GetTestClock(
            pb.GetTestClockRequest(test_clock_id=clock.test_clock_id), metadata=ADMIN
        )
    assert clock_gone.value.code() == grpc.StatusCode.NOT_FOUND
    # The audit trail keeps the account's records and records the clock's operations.
    kept = client.billing.ListAuditEvents(
        pb.ListAuditEventsRequest(account_id=account.account_id), metadata=ADMIN
    ).audit_events
    assert {"account.created", "subscription.trial_ended", "payment.failed"} <= {
        e.action for e in kept
    }
    for action in ("test_clock.created", "test_clock.advanced", "test_clock.deleted"):
        records = client.billing.ListAuditEvents(
            pb.ListAuditEventsRequest(action=action), metadata=ADMIN
        ).audit_events
        assert any(
            clock.test_clock_id in r.after_json or clock.test_clock_id in r.before_json
            for r in records
        ), action


def test_a_period_end_downgrade_applies_when_the_clock_reaches_it(client: Client) -> None:
    clock = create_clock(client, datetime(2026, 3, 20, 12, 0, tzinfo=UTC), name="downgrade")
    account = client.billing.CreateAccount(
        pb.CreateAccountRequest(
            name="Down Co", plan_id="business", skip_trial=True, test_clock_id=clock.test_clock_id
        ),
        metadata=ADMIN,
    ).account
    changed = client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=account.account_id, plan_id="startup"), metadata=ADMIN
    )
    assert not changed.effective_immediately
    assert _time(changed.subscription.pending_plan_effective_at) == datetime(2026, 4, 1, tzinfo=UTC)
    advance(client, clock.test_clock_id, datetime(2026, 4, 2, tzinfo=UTC))
    billing = client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=account.account_id), metadata=ADMIN
    )
    assert billing.subscription.plan_id == "startup"
    assert billing.subscription.pending_plan_id == ""
    march = client.billing.ListInvoices(
        pb.ListInvoicesRequest(account_id=account.account_id), metadata=ADMIN
    ).invoices
    assert [i.period for i in march] == ["2026-03"]


def test_advances_go_forward_and_at_most_two_months(client: Client) -> None:
    clock = create_clock(client, name="bounds")

    def refused(to: datetime) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as error:
            client.billing.AdvanceTestClock(
                pb.AdvanceTestClockRequest(test_clock_id=clock.test_clock_id, frozen_time=ts(to)),
                metadata=ADMIN,
            )
        return error.value

    backwards = refused(CLOCK_START - timedelta(seconds=1))
    assert backwards.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "only move forward" in backwards.details()
    too_far = refused(datetime(2026, 3, 10, 9, 0, 1, tzinfo=UTC))
    assert too_far.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "2026-03-10T09:00:00+00:00 at most" in too_far.details()
    advance(client, clock.test_clock_id, datetime(2026, 3, 10, 9, 0, tzinfo=UTC))

    with pytest.raises(grpc.RpcError) as unknown:
        client.billing.AdvanceTestClock(
            pb.AdvanceTestClockRequest(test_clock_id="clock_nope", frozen_time=ts(CLOCK_START)),
            metadata=ADMIN,
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    for request in (
        pb.CreateTestClockRequest(frozen_time=ts(CLOCK_START)),
        pb.CreateTestClockRequest(name="x"),
    ):
        with pytest.raises(grpc.RpcError) as invalid:
            client.billing.CreateTestClock(request, metadata=ADMIN)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_test_clocks_need_the_sandbox_scope(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as denied:
        client.billing.CreateTestClock(
            pb.CreateTestClockRequest(name="x", frozen_time=ts(CLOCK_START)), metadata=WRITER
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "sandbox" in denied.value.details()
    clock = create_clock(client, name="scoped")
    with pytest.raises(grpc.RpcError) as on_clock:
        client.billing.CreateAccount(
            pb.CreateAccountRequest(name="x", plan_id="startup", test_clock_id=clock.test_clock_id),
            metadata=WRITER,
        )
    assert on_clock.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "sandbox" in on_clock.value.details()
    with pytest.raises(grpc.RpcError) as unknown:
        client.billing.CreateAccount(
            pb.CreateAccountRequest(name="x", plan_id="startup", test_clock_id="clock_nope"),
            metadata=ADMIN,
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as both:
        client.billing.CreateAccount(
            pb.CreateAccountRequest(
                name="x",
                plan_id="startup",
                test_clock_id=clock.test_clock_id,
                start_time=ts(CLOCK_START),
            ),
            metadata=ADMIN,
        )
    assert both.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_usage_of_a_clock_account_is_judged_on_the_clock(client: Client) -> None:
    from as2aas.billing.v1 import common_pb2
    from as2aas.billing.v1 import usage_service_pb2 as upb

    from tests.support import auth

    producer, reader = auth("producer"), auth("usage-reader")
    clock = create_clock(client, name="usage")
    account_id = client.billing.CreateAccount(
        pb.CreateAccountRequest(
            name="Usage Co", plan_id="startup", skip_trial=True, test_clock_id=clock.test_clock_id
        ),
        metadata=ADMIN,
    ).account.account_id
    tenant = client.billing.CreateTenant(
        pb.CreateTenantRequest(account_id=account_id, name="EU"), metadata=ADMIN
    ).tenant
    assert _time(tenant.create_time) == CLOCK_START

    def record(*events: tuple[str, datetime]) -> upb.RecordUsageResponse:
        return client.usage.RecordUsage(
            upb.RecordUsageRequest(
                batch_id="b",
                events=[
                    upb.UsageEvent(
                        event_id=event_id,
                        account_id=account_id,
                        tenant_id=tenant.tenant_id,
                        kind=common_pb2.USAGE_KIND_MESSAGE,
                        quantity=10,
                        occurred_at=ts(at),
                    )
                    for event_id, at in events
                ],
            ),
            metadata=producer,
        )

    # A day after the clock's time is the future, however long ago that is in real time.
    first = record(
        ("e1", CLOCK_START - timedelta(hours=1)), ("e2", CLOCK_START + timedelta(days=1))
    )
    assert (first.accepted, first.late) == (1, 0)
    assert [r.event_id for r in first.rejected] == ["e2"]
    assert "future" in first.rejected[0].reason
    current = client.usage.GetCurrentUsage(
        upb.GetCurrentUsageRequest(account_id=account_id), metadata=reader
    )
    assert current.period.label == "2026-01"
    assert current.usage_to_date.messages == 10

    advance(client, clock.test_clock_id, datetime(2026, 2, 2, tzinfo=UTC))
    # January is invoiced on the clock: an event of January is late now, one of February not.
    second = record(
        ("e3", datetime(2026, 1, 20, tzinfo=UTC)), ("e4", datetime(2026, 2, 1, 12, tzinfo=UTC))
    )
    assert (second.accepted, second.late, list(second.rejected)) == (2, 1, [])
    current = client.usage.GetCurrentUsage(
        upb.GetCurrentUsageRequest(account_id=account_id), metadata=reader
    )
    assert current.period.label == "2026-02"


def test_calls_naming_only_an_endpoint_or_event_run_at_the_accounts_clock_time(
    client: Client, server: ServerThread, receiver: Receiver
) -> None:
    from billing_svc.storage.tables import WebhookEndpoint

    clock = create_clock(client, name="by-id")
    account_id = client.billing.CreateAccount(
        pb.CreateAccountRequest(
            name="By Id Co", plan_id="startup", test_clock_id=clock.test_clock_id
        ),
        metadata=ADMIN,
    ).account.account_id
    endpoint = client.billing.CreateWebhookEndpoint(
        pb.CreateWebhookEndpointRequest(account_id=account_id, url=receiver.url), metadata=ADMIN
    ).endpoint
    on_clock = datetime(2026, 1, 25, tzinfo=UTC)
    advance(client, clock.test_clock_id, on_clock)  # the trial ends on the 24th: one event
    ((headers, body),) = receiver.wait_for(1)
    event_id = headers["webhook-id"]

    def audited(action: str) -> datetime:
        (record,) = client.billing.ListAuditEvents(
            pb.ListAuditEventsRequest(account_id=account_id, action=action), metadata=ADMIN
        ).audit_events
        return _time(record.event_time)

    # Each request names no account, only the endpoint or the event; each runs at the clock's
    # time (its audit record says so), not at the wall time.
    client.billing.RedeliverWebhookEvent(
        pb.RedeliverWebhookEventRequest(event_id=event_id), metadata=ADMIN
    )
    assert audited("webhook_event.redelivered") == on_clock
    # The delivery itself is the dispatcher's, on wall time: it goes out now.
    again_headers, again = receiver.wait_for(2)[1]
    assert again_headers["webhook-id"] == event_id and again == body
    assert json.loads(again)["timestamp"] == "2026-01-24T09:00:00Z"

    client.billing.RotateWebhookSecret(
        pb.RotateWebhookSecretRequest(endpoint_id=endpoint.endpoint_id), metadata=ADMIN
    )
    assert audited("webhook_endpoint.secret_rotated") == on_clock
    with server.db.read() as session:  # the old secret's grace runs on the signer's wall time
        expires = session.get(WebhookEndpoint, endpoint.endpoint_id).previous_secret_expires_at
    assert abs((expires - datetime.now(UTC)) - timedelta(hours=24)) < timedelta(minutes=5)

    client.billing.DeleteWebhookEndpoint(
        pb.DeleteWebhookEndpointRequest(endpoint_id=endpoint.endpoint_id), metadata=ADMIN
    )
    assert audited("webhook_endpoint.deleted") == on_clock


def test_a_batch_mixing_a_real_and_a_clock_account_judges_each_event_at_its_own_time(
    client: Client,
) -> None:
    from as2aas.billing.v1 import common_pb2
    from as2aas.billing.v1 import usage_service_pb2 as upb

    from tests.integration.test_usage import Shop
    from tests.support import auth

    producer = auth("producer")
    clock = create_clock(client, name="mixed")
    on_clock = client.billing.CreateAccount(
        pb.CreateAccountRequest(
            name="Clock Co", plan_id="startup", skip_trial=True, test_clock_id=clock.test_clock_id
        ),
        metadata=ADMIN,
    ).account.account_id
    clock_tenant = client.billing.CreateTenant(
        pb.CreateTenantRequest(account_id=on_clock, name="EU"), metadata=ADMIN
    ).tenant.tenant_id
    real = Shop(client, skip_trial=True)
    advance(client, clock.test_clock_id, datetime(2026, 2, 2, tzinfo=UTC))  # January invoiced
    wall = datetime.now(UTC)

    def clock_event(event_id: str, at: datetime) -> upb.UsageEvent:
        return upb.UsageEvent(
            event_id=event_id,
            account_id=on_clock,
            tenant_id=clock_tenant,
            kind=common_pb2.USAGE_KIND_MESSAGE,
            quantity=10,
            occurred_at=ts(at),
        )

    for order in ("clock-first", "real-first"):  # whichever account the batch names first
        clock_events = [
            clock_event(f"{order}-c-late", datetime(2026, 1, 20, tzinfo=UTC)),  # invoiced
            clock_event(f"{order}-c-now", datetime(2026, 2, 1, 12, tzinfo=UTC)),
            clock_event(f"{order}-c-future", datetime(2026, 2, 3, tzinfo=UTC)),
        ]  # clock+1 day
        real_events = [
            real.message(f"{order}-r-now", 5, at=wall - timedelta(hours=1)),
            real.message(f"{order}-r-future", 5, at=wall + timedelta(days=1)),
        ]
        events = (
            clock_events + real_events if order == "clock-first" else real_events + clock_events
        )
        ack = client.usage.RecordUsage(
            upb.RecordUsageRequest(batch_id=order, events=events), metadata=producer
        )
        # On the clock's time the clock events are late / on time / in the future; on the
        # wall time, the real events are on time / in the future. Judged at one time for all,
        # either c-future (wall) or r-now (clock) would come out wrong.
        assert (ack.accepted, ack.late) == (3, 1), order
        assert sorted(r.event_id for r in ack.rejected) == [
            f"{order}-c-future",
            f"{order}-r-future",
        ], order
        assert all("future" in r.reason for r in ack.rejected)
        # Each rejection names its event's place in the batch as sent.
        assert [events[r.index].event_id for r in ack.rejected] == [
            r.event_id for r in ack.rejected
        ]
        assert [r.index for r in ack.rejected] == sorted(r.index for r in ack.rejected)


def test_change_request_expiry_and_hourly_reports_follow_the_clock(
    client: Client, receiver: Receiver
) -> None:
    from as2aas.billing.v1 import common_pb2
    from as2aas.billing.v1 import usage_service_pb2 as upb

    from tests.support import auth

    clock = create_clock(client, name="approvals-and-reports")
    account_id = client.billing.CreateAccount(
        pb.CreateAccountRequest(
            name="Held Co", plan_id="startup", skip_trial=True, test_clock_id=clock.test_clock_id
        ),
        metadata=ADMIN,
    ).account.account_id
    tenant_id = client.billing.CreateTenant(
        pb.CreateTenantRequest(account_id=account_id, name="EU"), metadata=ADMIN
    ).tenant.tenant_id
    client.billing.CreateWebhookEndpoint(
        pb.CreateWebhookEndpointRequest(
            account_id=account_id,
            url=receiver.url,
            event_types=["billing.usage_reported", "billing.approval_decided"],
        ),
        metadata=ADMIN,
    )
    client.billing.SetApprovalPolicy(
        pb.SetApprovalPolicyRequest(account_id=account_id, policy=pb.ApprovalPolicy(upgrades=True)),
        metadata=ADMIN,
    )
    held = client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=account_id, plan_id="business"), metadata=ADMIN
    ).change_request
    assert held.status == pb.CHANGE_REQUEST_STATUS_PENDING
    assert _time(held.expires_at) == CLOCK_START + timedelta(days=7)  # on the clock
    # Hour 08:00 closes at 09:00 (+ 5 minutes of grace) on the clock, long ago on the wall.
    client.usage.RecordUsage(
        upb.RecordUsageRequest(
            batch_id="r",
            events=[
                upb.UsageEvent(
                    event_id="r1",
                    account_id=account_id,
                    tenant_id=tenant_id,
                    kind=common_pb2.USAGE_KIND_MESSAGE,
                    quantity=7,
                    occurred_at=ts(CLOCK_START - timedelta(minutes=30)),
                )
            ],
        ),
        metadata=auth("producer"),
    )

    def requests() -> list[pb.ChangeRequest]:
        return list(
            client.billing.ListChangeRequests(
                pb.ListChangeRequestsRequest(account_id=account_id), metadata=ADMIN
            ).change_requests
        )

    def reports() -> list[upb.UsageReport]:
        return list(
            client.usage.ListUsageReports(
                upb.ListUsageReportsRequest(account_id=account_id), metadata=auth("usage-reader")
            ).reports
        )

    # The real-time runs (every 0.2 s) leave both alone: neither time has come on the clock.
    time.sleep(1.0)
    assert [r.status for r in requests()] == [pb.CHANGE_REQUEST_STATUS_PENDING]
    assert reports() == []
    assert receiver.received() == []

    advance(client, clock.test_clock_id, datetime(2026, 1, 20, tzinfo=UTC))
    (expired,) = requests()
    assert expired.status == pb.CHANGE_REQUEST_STATUS_EXPIRED
    assert _time(expired.decided_at) == CLOCK_START + timedelta(days=7)
    (report,) = reports()
    assert _time(report.hour) == CLOCK_START - timedelta(hours=1)
    # Made on the clock's time, once the hour closed there (09:00, plus 5 minutes of grace).
    assert _time(report.create_time) == CLOCK_START + timedelta(minutes=5)
    bodies = sorted(
        (json.loads(body) for _, body in receiver.wait_for(2)), key=lambda b: b["timestamp"]
    )  # no ordering guarantee between deliveries
    assert [b["type"] for b in bodies] == ["billing.usage_reported", "billing.approval_decided"]
    assert [b["timestamp"] for b in bodies] == ["2026-01-10T09:05:00Z", "2026-01-17T09:00:00Z"]
    assert {b["data"]["test_clock_id"] for b in bodies} == {clock.test_clock_id}


def test_the_purge_leaves_clock_accounts_alone(tmp_path) -> None:
    from as2aas.billing.v1 import common_pb2
    from as2aas.billing.v1 import usage_service_pb2 as upb
    from sqlmodel import select

    from billing_svc.services import retention
    from billing_svc.storage.tables import UsageEvent
    from tests.support import auth, fresh_database, settings_for_tests

    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url)).start()
        client = Client(server.target)
        try:
            clock = create_clock(client, name="purge")
            account_id = client.billing.CreateAccount(
                pb.CreateAccountRequest(
                    name="Kept Co",
                    plan_id="startup",
                    skip_trial=True,
                    test_clock_id=clock.test_clock_id,
                ),
                metadata=ADMIN,
            ).account.account_id
            tenant_id = client.billing.CreateTenant(
                pb.CreateTenantRequest(account_id=account_id, name="EU"), metadata=ADMIN
            ).tenant.tenant_id

            def record(event_id: str, at: datetime) -> upb.RecordUsageResponse:
                return client.usage.RecordUsage(
                    upb.RecordUsageRequest(
                        events=[
                            upb.UsageEvent(
                                event_id=event_id,
                                account_id=account_id,
                                tenant_id=tenant_id,
                                kind=common_pb2.USAGE_KIND_MESSAGE,
                                quantity=3,
                                occurred_at=ts(at),
                            )
                        ]
                    ),
                    metadata=auth("producer"),
                )

            assert record("jan", datetime(2026, 1, 10, tzinfo=UTC)).accepted == 1
            advance(client, clock.test_clock_id, datetime(2026, 2, 15, tzinfo=UTC))
            # January is invoiced and, on the wall's time, far older than a 30-day retention.
            summary = retention.purge(
                server.db,
                retention.RetentionPolicy(usage_days=30, hourly_rollup_days=1),
                datetime.now(UTC),
            )
            assert summary.horizon > datetime(2026, 2, 1, tzinfo=UTC)
            assert summary.periods_purged == [] and summary.hourly_rollups == 0
            assert all(kept.account_id != account_id for kept in summary.uninvoiced)
            with server.db.read() as session:  # its raw events are all there
                assert (
                    len(
                        session.exec(
                            select(UsageEvent).where(UsageEvent.account_id == account_id)
                        ).all()
                    )
                    == 1
                )
            # The real-time horizon is not the clock's: its February, long before the
            # horizon, still takes usage.
            assert record("feb", datetime(2026, 2, 14, tzinfo=UTC)).accepted == 1
        finally:
            client.close()
            server.stop()
