"""Usage ingestion and usage reads over real gRPC (spec §1.4, §1.7; issue 3)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb
from google.protobuf import timestamp_pb2
from sqlmodel import func, select

from billing_svc.domain.periods import Period
from billing_svc.storage.tables import OutboxEvent, UsageEvent
from tests.support import (
    ADMIN,
    WRITER,
    Client,
    ServerThread,
    auth,
    create_account,
)

PRODUCER = auth("producer")
USAGE_READER = auth("usage-reader")
MESSAGE = common_pb2.USAGE_KIND_MESSAGE
STORAGE = common_pb2.USAGE_KIND_STORAGE


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def now() -> datetime:
    return datetime.now(UTC)


class Shop:
    """An account with two tenants and two partners, made through the API."""

    def __init__(self, client: Client, plan_id: str = "startup", **account_fields) -> None:
        self.client = client
        self.account = create_account(client, plan_id=plan_id, **account_fields)
        self.account_id = self.account.account_id
        self.tenants = [
            client.billing.CreateTenant(
                pb.CreateTenantRequest(
                    account_id=self.account_id,
                    name=name,
                    start_time=account_fields.get("start_time"),
                ),
                metadata=ADMIN,
            ).tenant.tenant_id
            for name in ("EU", "US")
        ]
        self.partners = [
            client.billing.CreateMasterPartner(
                pb.CreateMasterPartnerRequest(
                    account_id=self.account_id, name=name, department=dept
                ),
                metadata=WRITER,
            ).master_partner.partner_id
            for name, dept in (("Supplier One", "Procurement"), ("Customer One", "Sales"))
        ]

    def message(
        self,
        event_id: str,
        quantity: int = 1,
        tenant: int = 0,
        partner: int | None = 0,
        at: datetime | None = None,
    ) -> upb.UsageEvent:
        return upb.UsageEvent(
            event_id=event_id,
            account_id=self.account_id,
            tenant_id=self.tenants[tenant],
            partner_id=self.partners[partner] if partner is not None else "",
            kind=MESSAGE,
            quantity=quantity,
            occurred_at=ts(at or now()),
        )

    def storage(
        self, event_id: str, gigabytes: int, at: datetime, tenant: int = 0
    ) -> upb.UsageEvent:
        return upb.UsageEvent(
            event_id=event_id,
            account_id=self.account_id,
            tenant_id=self.tenants[tenant],
            kind=STORAGE,
            quantity=gigabytes * 10**9,
            occurred_at=ts(at),
        )

    def record(self, events: list[upb.UsageEvent], batch_id: str = "b") -> upb.RecordUsageResponse:
        return self.client.usage.RecordUsage(
            upb.RecordUsageRequest(batch_id=batch_id, events=events), metadata=PRODUCER
        )

    def current(self) -> upb.GetCurrentUsageResponse:
        return self.client.usage.GetCurrentUsage(
            upb.GetCurrentUsageRequest(account_id=self.account_id), metadata=USAGE_READER
        )

    def monthly(self, period: Period) -> upb.GetMonthlyUsageResponse:
        return self.client.usage.GetMonthlyUsage(
            upb.GetMonthlyUsageRequest(
                account_id=self.account_id, year=period.year, month=period.month
            ),
            metadata=USAGE_READER,
        )


def outbox(server: ServerThread, account_id: str, event_type: str) -> list[dict]:
    with server.db.read() as session:
        rows = session.exec(
            select(OutboxEvent)
            .where(OutboxEvent.account_id == account_id, OutboxEvent.type == event_type)
            .order_by(OutboxEvent.created_at)
        ).all()
    return [json.loads(row.body)["data"] for row in rows]


def stored_events(server: ServerThread, account_id: str) -> int:
    with server.db.read() as session:
        return session.exec(
            select(func.count()).select_from(UsageEvent).where(UsageEvent.account_id == account_id)
        ).one()


# --------------------------------------------------------------------------------------------


def test_record_usage_counts_accepted_duplicates_and_reads_back_in_real_time(
    client: Client,
) -> None:
    shop = Shop(client)
    first = shop.message("e1", 3)
    ack = shop.record(
        [first, shop.message("e2", 2, tenant=1, partner=1), shop.message("e3", 5, partner=None)],
        batch_id="batch-1",
    )
    assert (ack.batch_id, ack.accepted, ack.duplicates, ack.late, list(ack.rejected)) == (
        "batch-1",
        3,
        0,
        0,
        [],
    )
    again = shop.record([first, shop.message("e4", 1)])
    assert (again.accepted, again.duplicates) == (1, 1)
    usage = shop.current().usage_to_date
    assert usage.messages == 11
    assert usage.active_tenants == 2
    assert usage.included_messages == 5000


def _reject_cases(shop: Shop, other: Shop) -> list[tuple[upb.UsageEvent, str]]:
    good = shop.message
    return [
        (
            upb.UsageEvent(
                event_id="",
                account_id=shop.account_id,
                tenant_id=shop.tenants[0],
                kind=MESSAGE,
                quantity=1,
                occurred_at=ts(now()),
            ),
            "event_id is empty",
        ),
        (good("x" * 129), "longer than 128"),
        (
            upb.UsageEvent(
                event_id="r-acc",
                account_id="acc_missing",
                tenant_id=shop.tenants[0],
                kind=MESSAGE,
                quantity=1,
                occurred_at=ts(now()),
            ),
            "does not exist",
        ),
        (
            upb.UsageEvent(
                event_id="r-ten",
                account_id=shop.account_id,
                tenant_id=other.tenants[0],
                kind=MESSAGE,
                quantity=1,
                occurred_at=ts(now()),
            ),
            "is not a tenant of account",
        ),
        (
            upb.UsageEvent(
                event_id="r-prt",
                account_id=shop.account_id,
                tenant_id=shop.tenants[0],
                partner_id=other.partners[0],
                kind=MESSAGE,
                quantity=1,
                occurred_at=ts(now()),
            ),
            "is not a master partner",
        ),
        (
            upb.UsageEvent(
                event_id="r-kind",
                account_id=shop.account_id,
                tenant_id=shop.tenants[0],
                quantity=1,
                occurred_at=ts(now()),
            ),
            "kind is unspecified",
        ),
        (good("r-qty", 0), "below 1"),
        (
            upb.UsageEvent(
                event_id="r-neg",
                account_id=shop.account_id,
                tenant_id=shop.tenants[0],
                kind=STORAGE,
                quantity=-5,
                occurred_at=ts(now()),
            ),
            "negative",
        ),
        (
            upb.UsageEvent(
                event_id="r-time",
                account_id=shop.account_id,
                tenant_id=shop.tenants[0],
                kind=MESSAGE,
                quantity=1,
            ),
            "occurred_at is missing",
        ),
        (good("r-future", at=now() + timedelta(minutes=6)), "in the future"),
        (good("r-old", at=now() - timedelta(days=401)), "retention"),
    ]


def test_bad_events_are_rejected_with_reasons_and_the_rest_accepted(
    client: Client, server: ServerThread
) -> None:
    shop, other = Shop(client), Shop(client)
    cases = _reject_cases(shop, other)
    events = [shop.message("ok-1")] + [event for event, _ in cases] + [shop.message("ok-2")]
    ack = shop.record(events)
    assert ack.accepted == 2
    assert len(ack.rejected) == len(cases)
    for rejection, (event, reason) in zip(ack.rejected, cases, strict=True):
        assert rejection.event_id == event.event_id[:128]  # an overlong one comes back cut
        assert events[rejection.index].event_id == event.event_id
        assert reason in rejection.reason, rejection.reason
    assert stored_events(server, shop.account_id) == 2


def test_same_event_id_with_different_content_is_a_conflict(client: Client) -> None:
    shop = Shop(client)
    at = now()
    shop.record([shop.message("dup", 1, at=at)])
    ack = shop.record(
        [
            shop.message("dup", 2, at=at),
            shop.message("in-batch", 1, at=at),
            shop.message("in-batch", 1, at=at),
            shop.message("in-batch", 7, at=at),
        ]
    )
    assert (ack.accepted, ack.duplicates) == (1, 1)
    assert [r.event_id for r in ack.rejected] == ["dup", "in-batch"]
    assert all("different content" in r.reason for r in ack.rejected)
    assert shop.current().usage_to_date.messages == 2


def test_oversized_batch_fails_the_call_and_stores_nothing(
    client: Client, server: ServerThread
) -> None:
    shop = Shop(client)
    events = [shop.message(f"big-{i}") for i in range(10_001)]
    with pytest.raises(grpc.RpcError) as error:
        shop.record(events)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 10000" in error.value.details()
    assert stored_events(server, shop.account_id) == 0
    assert shop.record(events[:10_000]).accepted == 10_000


def test_stream_acks_every_batch_in_order_after_commit(
    client: Client, server: ServerThread
) -> None:
    shop = Shop(client)
    batches = [
        upb.StreamUsageRequest(
            batch_id=f"s-{b}",
            events=[shop.message(f"s-{b}-{i}", 1, tenant=i % 2) for i in range(100)],
        )
        for b in range(20)
    ]
    batches.append(upb.StreamUsageRequest(batch_id="s-again", events=batches[0].events))
    acks = list(client.usage.StreamUsage(iter(batches), metadata=PRODUCER))
    assert [a.batch_id for a in acks] == [b.batch_id for b in batches]
    assert [a.accepted for a in acks] == [100] * 20 + [0]
    assert acks[-1].duplicates == 100
    assert stored_events(server, shop.account_id) == 2000


def test_stream_refuses_an_oversized_batch_after_acking_the_ones_before(client: Client) -> None:
    shop = Shop(client)
    requests = [
        upb.StreamUsageRequest(batch_id="ok", events=[shop.message("ok")]),
        upb.StreamUsageRequest(
            batch_id="too-big", events=[shop.message(f"tb-{i}") for i in range(10_001)]
        ),
    ]
    acks = []
    with pytest.raises(grpc.RpcError) as error:
        for ack in client.usage.StreamUsage(iter(requests), metadata=PRODUCER):
            acks.append(ack)
    assert [a.batch_id for a in acks] == ["ok"]
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_usage_needs_the_usage_scopes(client: Client) -> None:
    shop = Shop(client)
    with pytest.raises(grpc.RpcError) as error:
        client.usage.RecordUsage(
            upb.RecordUsageRequest(events=[shop.message("a")]), metadata=USAGE_READER
        )
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as error:
        client.usage.GetCurrentUsage(
            upb.GetCurrentUsageRequest(account_id=shop.account_id), metadata=PRODUCER
        )
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_thresholds_and_the_message_limit_fire_once_per_period(
    client: Client, server: ServerThread
) -> None:
    shop = Shop(client, plan_id="startup")  # 5,000 included messages
    period = Period.containing(now()).label
    shop.record([shop.message("t1", 3749)])
    assert outbox(server, shop.account_id, "billing.usage_threshold") == []
    shop.record([shop.message("t2", 1)])  # 3,750 = 75 %
    shop.record([shop.message("t3", 1000)])  # 4,750: 90 %
    shop.record([shop.message("t4", 250)])  # 5,000: 100 %
    shop.record([shop.message("t5", 1)])  # 5,001: over the limit
    shop.record([shop.message("t6", 1000)])
    thresholds = outbox(server, shop.account_id, "billing.usage_threshold")
    assert [(t["threshold_percentage"], t["current_usage"]) for t in thresholds] == [
        (75, 3750),
        (90, 4750),
        (100, 5000),
    ]
    assert all(
        t["plan_limit"] == 5000
        and t["period"] == period
        and t["threshold_type"] == "monthly_messages"
        for t in thresholds
    )
    limits = outbox(server, shop.account_id, "billing.limit_exceeded")
    assert [(x["limit_type"], x["current_usage"]) for x in limits] == [("monthly_messages", 5001)]


def test_custom_thresholds(client: Client, server: ServerThread) -> None:
    shop = Shop(client, plan_id="startup", usage_threshold_percentages=[80])
    shop.record([shop.message("c1", 4500)])  # jumps past 80 % in one batch
    assert [
        t["threshold_percentage"]
        for t in outbox(server, shop.account_id, "billing.usage_threshold")
    ] == [80]


def test_storage_is_billed_in_gb_months_across_period_boundaries(client: Client) -> None:
    this = Period.containing(now())
    last = this.previous()
    start = last.previous().start
    shop = Shop(client, plan_id="enterprise", skip_trial=True, start_time=ts(start))
    half = last.start + (last.end - last.start) / 2
    # Tenant EU: 10 GB from the start of last month, 20 GB from its middle; tenant US: 4 GB
    # from last month's start. Readings are sent out of order.
    ack = shop.record(
        [
            shop.storage("g2", 20, half),
            shop.storage("g1", 10, last.start),
            shop.storage("g3", 4, last.start, tenant=1),
        ]
    )
    assert ack.accepted == 3
    report = shop.monthly(last)
    by_tenant = {t.tenant_id: t for t in report.tenant_breakdown}
    assert by_tenant[shop.tenants[0]].storage_gb_months == "15"  # 10 × ½ + 20 × ½
    assert by_tenant[shop.tenants[1]].storage_gb_months == "4"
    assert report.storage_gb_months == "19"
    # The levels carry over into this month: 24 GB held since this month started.
    usage = shop.current().usage_to_date
    assert usage.storage_bytes == 24 * 10**9
    elapsed = (now() - this.start).total_seconds() / this.seconds
    assert abs(float(usage.storage_gb_months) - 24 * elapsed) < 0.01


def test_monthly_usage_breaks_down_by_partner_and_tenant(client: Client) -> None:
    shop = Shop(client)
    shop.record(
        [
            shop.message("m1", 10, tenant=0, partner=0),
            shop.message("m2", 5, tenant=1, partner=1),
            shop.message("m3", 2, tenant=1, partner=None),
        ]
    )
    report = shop.monthly(Period.containing(now()))
    assert report.total_messages == 17
    assert report.period.label == Period.containing(now()).label
    partners = {p.partner_id: p for p in report.partner_breakdown}
    assert (
        partners[shop.partners[0]].partner_name,
        partners[shop.partners[0]].message_count,
        partners[shop.partners[0]].department,
    ) == ("Supplier One", 10, "Procurement")
    assert partners[shop.partners[1]].message_count == 5
    assert {t.tenant_id: t.message_count for t in report.tenant_breakdown} == {
        shop.tenants[0]: 10,
        shop.tenants[1]: 7,
    }


def test_usage_history_buckets_by_hour_day_and_month(client: Client) -> None:
    this = Period.containing(now())
    start = this.previous().previous().start
    shop = Shop(client, plan_id="enterprise", skip_trial=True, start_time=ts(start))
    day = this.previous().start
    shop.record(
        [
            shop.message("h1", 1, at=day + timedelta(hours=1, minutes=5)),
            shop.message("h2", 2, at=day + timedelta(hours=1, minutes=50)),
            shop.message("h3", 4, at=day + timedelta(hours=5)),
            shop.message("h4", 8, at=day + timedelta(days=1, hours=2)),
        ]
    )

    def history(
        granularity: int, page_size: int = 0, token: str = ""
    ) -> upb.GetUsageHistoryResponse:
        return client.usage.GetUsageHistory(
            upb.GetUsageHistoryRequest(
                account_id=shop.account_id,
                granularity=granularity,
                start_time=ts(start),
                end_time=ts(now()),
                page_size=page_size,
                page_token=token,
            ),
            metadata=USAGE_READER,
        )

    hours = history(upb.GRANULARITY_HOUR).buckets
    assert [(b.start.ToDatetime(tzinfo=UTC) - day, b.messages) for b in hours] == [
        (timedelta(hours=1), 3),
        (timedelta(hours=5), 4),
        (timedelta(days=1, hours=2), 8),
    ]
    days = history(upb.GRANULARITY_DAY).buckets
    assert [b.messages for b in days] == [7, 8]
    months = history(upb.GRANULARITY_MONTH).buckets
    assert [(b.start.ToDatetime(tzinfo=UTC), b.messages) for b in months] == [(day, 15)]
    first = history(upb.GRANULARITY_HOUR, page_size=2)
    assert len(first.buckets) == 2 and first.next_page_token
    rest = history(upb.GRANULARITY_HOUR, page_size=2, token=first.next_page_token)
    assert [b.messages for b in rest.buckets] == [8] and not rest.next_page_token


def test_estimated_charges_follow_the_plan(client: Client) -> None:
    shop = Shop(client, plan_id="startup", skip_trial=True)
    shop.record([shop.message("o1", 5100)])
    usage = shop.current().usage_to_date
    lines = {line.type: line.amount for line in usage.estimated_lines}
    # 100 messages over the 5,000 included at $0.05
    assert (lines["message_overage"].units, lines["message_overage"].nanos) == (5, 0)
    assert "base_fee" in lines
    # The projection runs the rate so far to the period's end: more messages, more money.
    current = shop.current()
    estimated = current.usage_to_date.estimated_charges
    projected = current.projection
    assert projected.messages >= 5100
    assert (projected.charges.units, projected.charges.nanos) >= (estimated.units, estimated.nanos)


def test_tenant_and_storage_limits_emit_limit_exceeded_once(
    client: Client, server: ServerThread
) -> None:
    shop = Shop(client, plan_id="startup")  # 3 tenants and 5 GB included; Shop makes 2 tenants
    for name in ("third", "fourth", "fifth"):
        client.billing.CreateTenant(
            pb.CreateTenantRequest(account_id=shop.account_id, name=name), metadata=WRITER
        )
    at = now() - timedelta(minutes=1)
    shop.record([shop.storage("st1", 3, at), shop.storage("st2", 2, at, tenant=1)])  # 5 GB
    assert [x["limit_type"] for x in outbox(server, shop.account_id, "billing.limit_exceeded")] == [
        "tenants"
    ]
    shop.record([shop.storage("st3", 4, at + timedelta(seconds=1))])  # 4 + 2 = 6 GB
    shop.record([shop.storage("st4", 5, at + timedelta(seconds=2))])
    limits = outbox(server, shop.account_id, "billing.limit_exceeded")
    assert [(x["limit_type"], x["current_usage"], x["plan_limit"]) for x in limits] == [
        ("tenants", 4, 3),
        ("storage_gb", 6, 5),
    ]


def test_two_replicas_ingesting_overlapping_events_count_each_once(
    client: Client, server: ServerThread
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.support import settings_for_tests

    replica = ServerThread(settings_for_tests(server.settings.database_url)).start()
    other = Client(replica.target)
    try:
        shop = Shop(client)
        at = now()
        events = [shop.message(f"rep-{i}", 1 + i % 5, tenant=i % 2, at=at) for i in range(3000)]
        batches = [events[i : i + 500] for i in range(0, 3000, 250)]  # every event sent twice

        def send(index: int) -> upb.RecordUsageResponse:
            target = client if index % 2 else other
            return target.usage.RecordUsage(
                upb.RecordUsageRequest(events=batches[index]), metadata=PRODUCER
            )

        with ThreadPoolExecutor(6) as pool:
            acks = list(pool.map(send, range(len(batches))))
        assert sum(a.accepted for a in acks) == 3000
        assert sum(a.duplicates for a in acks) == sum(len(b) for b in batches) - 3000
        assert shop.current().usage_to_date.messages == sum(e.quantity for e in events)
        assert stored_events(server, shop.account_id) == 3000
    finally:
        other.close()
        replica.stop()


def test_streams_per_caller_are_limited(tmp_path) -> None:
    import threading

    from tests.support import fresh_database, settings_for_tests

    with fresh_database(str(tmp_path)) as url:
        limited = ServerThread(settings_for_tests(url, max_streams_per_caller=1)).start()
        client = Client(limited.target)
        release = threading.Event()

        def idle():
            release.wait(10)
            return
            yield

        try:
            first = client.usage.StreamUsage(idle(), metadata=PRODUCER)
            time.sleep(0.3)
            with pytest.raises(grpc.RpcError) as error:
                list(client.usage.StreamUsage(iter([]), metadata=PRODUCER))
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "streams open" in error.value.details()
            release.set()
            assert list(first) == []
            assert list(client.usage.StreamUsage(iter([]), metadata=PRODUCER)) == []
        finally:
            release.set()
            client.close()
            limited.stop()


def test_a_call_past_its_deadline_does_no_work(client: Client, server: ServerThread) -> None:
    from billing_svc.api.common import check_deadline, deadline
    from billing_svc.domain.errors import DeadlineExceeded

    token = deadline.set(time.monotonic() - 1)
    try:
        with pytest.raises(DeadlineExceeded):
            check_deadline()
    finally:
        deadline.reset(token)
    shop = Shop(client)
    with pytest.raises(grpc.RpcError) as error:
        shop.client.usage.RecordUsage(
            upb.RecordUsageRequest(events=[shop.message(f"late-{i}") for i in range(2000)]),
            metadata=PRODUCER,
            timeout=0.000_001,
        )
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(0.5)
    assert stored_events(server, shop.account_id) == 0


def test_a_message_over_the_size_limit_is_resource_exhausted(tmp_path) -> None:
    from tests.support import fresh_database, settings_for_tests

    with fresh_database(str(tmp_path)) as url:
        small = ServerThread(settings_for_tests(url, max_message_bytes=64 * 1024)).start()
        client = Client(small.target)
        try:
            shop = Shop(client)
            events = [shop.message(f"big-{i}") for i in range(2000)]  # ~300 KB
            with pytest.raises(grpc.RpcError) as error:
                shop.record(events)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert shop.current().usage_to_date.messages == 0
            assert shop.record(events[:100]).accepted == 100  # still serving
        finally:
            client.close()
            small.stop()


def test_text_with_nul_characters_is_bad_input(client: Client) -> None:
    shop = Shop(client)
    ack = shop.record([shop.message("nul\x00id"), shop.message("fine")])
    assert ack.accepted == 1 and "NUL" in ack.rejected[0].reason
    ack = shop.record(
        [
            upb.UsageEvent(
                event_id="x",
                account_id="acc\x00",
                tenant_id="t",
                kind=MESSAGE,
                quantity=1,
                occurred_at=ts(now()),
            )
        ]
    )
    assert "NUL" in ack.rejected[0].reason
    with pytest.raises(grpc.RpcError) as error:
        client.billing.CreateTenant(
            pb.CreateTenantRequest(account_id=shop.account_id, name="a\x00b"), metadata=WRITER
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in error.value.details()


def test_nothing_the_producer_sent_comes_back_larger_than_an_id(client: Client) -> None:
    shop = Shop(client)
    huge = "e" * (1 << 20)
    ack = shop.record([shop.message(huge), shop.message("ok")])
    assert (ack.accepted, [r.index for r in ack.rejected]) == (1, [0])
    assert ack.rejected[0].event_id == huge[:128]
    assert ack.ByteSize() < 1024
    with pytest.raises(grpc.RpcError) as refused:
        shop.record([shop.message("ok-2")], batch_id="b" * 129)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch_id" in refused.value.details() and "bbbb" not in refused.value.details()
    assert shop.record([shop.message("ok-2")], batch_id="b" * 128).accepted == 1
