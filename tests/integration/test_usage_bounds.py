"""No usage event can poison an account (issue 12, points 1, 2 and 11), over real gRPC, on SQLite
and PostgreSQL: quantities within the contract's limits, timestamps that name a time the service
takes, and no counter past what it holds (2^63-1): an event that would take one past it is
rejected with the reason, the rest of its batch is stored, and every read still answers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
from as2aas.billing.v1 import usage_service_pb2 as upb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from billing_svc.domain import usage as rules
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import MAX_COUNTER, counter_full, hour_of, to_us
from tests.integration.test_invoicing import close, imported_shop
from tests.integration.test_usage import (
    MESSAGE,
    STORAGE,
    USAGE_READER,
    Shop,
    now,
    ts,
)
from tests.support import Client, ServerThread, on_postgres

# Every column ingestion counts into, by table (the account's rows are read back with SQL).
COUNTER_COLUMNS = {
    "usage_event": ("quantity",),
    "usage_period": ("messages", "late_messages", "late_billed_messages"),
    "usage_tenant_period": ("messages",),
    "usage_partner_period": ("messages",),
    "usage_hourly": ("messages", "storage_bytes_max"),
    "storage_level": ("level_bytes",),
}


def execute(server: ServerThread, statement: str, **params: Any) -> None:
    with server.db.write() as session:
        session.execute(text(statement), params)


def counter_values(server: ServerThread, account_id: str) -> list[tuple[str, Any, str | None]]:
    """``(table.column, value, SQLite's typeof or None)`` of every counter of the account."""
    found = []
    with server.db.read() as session:
        for table, columns in COUNTER_COLUMNS.items():
            for column in columns:
                kind = "NULL" if on_postgres() else f"typeof({column})"
                for value, stored_as in session.execute(
                    text(f"SELECT {column}, {kind} FROM {table} WHERE account_id = :a"),
                    {"a": account_id},
                ):
                    found.append((f"{table}.{column}", value, stored_as))
    return found


def assert_integer_counters(server: ServerThread, account_id: str) -> None:
    for name, value, stored_as in counter_values(server, account_id):
        assert type(value) is int, (name, value)
        assert 0 <= value <= MAX_COUNTER, (name, value)
        assert stored_as in (None, "integer"), (name, stored_as)


def reads_answer(shop: Shop, period: Period, at: datetime) -> upb.GetCurrentUsageResponse:
    """GetCurrentUsage, GetMonthlyUsage and GetUsageHistory of the account all answer."""
    current = shop.current()
    shop.monthly(period)
    for granularity in (upb.GRANULARITY_HOUR, upb.GRANULARITY_MONTH):
        shop.client.usage.GetUsageHistory(
            upb.GetUsageHistoryRequest(
                account_id=shop.account_id,
                granularity=granularity,
                start_time=ts(at - timedelta(days=2)),
                end_time=ts(at + timedelta(hours=2)),
            ),
            metadata=USAGE_READER,
        )
    return current


def an_hour_in(moment: datetime) -> datetime:
    """A minute into ``moment``'s hour: events at it and seconds after share their hour and
    period, and are at most a few minutes ahead of now (accepted)."""
    return moment.replace(minute=1, second=0, microsecond=0)


# --- the contract's limits --------------------------------------------------------------------


def test_quantities_beyond_the_contract_are_rejected_naming_the_limit(client: Client) -> None:
    shop = Shop(client)
    at = now()
    storage = shop.storage
    events = [
        shop.message("m-most", rules.MAX_MESSAGE_QUANTITY, at=at),
        shop.message("m-over", rules.MAX_MESSAGE_QUANTITY + 1, at=at),
        shop.message("m-int64", 2**63 - 1, at=at),
        storage("s-most", 0, at),
        storage("s-over", 0, at),
        storage("s-int64", 0, at),
    ]
    events[3].quantity, events[4].quantity = rules.MAX_STORAGE_BYTES, rules.MAX_STORAGE_BYTES + 1
    events[5].quantity = 2**63 - 1
    ack = shop.record(events)
    assert ack.accepted == 2
    assert [(r.event_id, r.reason) for r in ack.rejected] == [
        (
            "m-over",
            "quantity 1000000001 is above 1,000,000,000, the most one message event "
            "counts; split the count over several events",
        ),
        (
            "m-int64",
            f"quantity {2**63 - 1} is above 1,000,000,000, the most one message event "
            "counts; split the count over several events",
        ),
        (
            "s-over",
            "quantity 1000000000000000001 is above 1,000,000,000,000,000,000 bytes "
            "(10^18), the largest storage gauge accepted",
        ),
        (
            "s-int64",
            f"quantity {2**63 - 1} is above 1,000,000,000,000,000,000 bytes (10^18), "
            "the largest storage gauge accepted",
        ),
    ]
    assert shop.current().usage_to_date.storage_bytes == rules.MAX_STORAGE_BYTES


@pytest.mark.parametrize(
    ("seconds", "nanos", "reason"),
    [
        (None, -1, "occurred_at.nanos is outside 0 to 999,999,999"),
        (None, 10**9, "occurred_at.nanos is outside 0 to 999,999,999"),
        (None, 2**31 - 1, "occurred_at.nanos is outside 0 to 999,999,999"),
        (-1, 0, "occurred_at is before 1970-01-01T00:00:00Z"),
        (-(2**63), 0, "occurred_at is before 1970-01-01T00:00:00Z"),
        (rules.LATEST_SECONDS, 0, "occurred_at is not before 9999-01-01T00:00:00Z"),
        (2**63 - 1, 999_999_999, "occurred_at is not before 9999-01-01T00:00:00Z"),
    ],
)
def test_a_timestamp_that_names_no_time_is_rejected_not_shifted(
    client: Client, server: ServerThread, seconds: int | None, nanos: int, reason: str
) -> None:
    """The event alone is rejected, whether its batch was otherwise plain (the kernel decodes
    it on SQLite) or not; its neighbours are stored at the time they name."""
    shop = Shop(client)
    at = now() - timedelta(minutes=1)
    bad = shop.message("bad", 3, at=at)
    bad.occurred_at.nanos = nanos
    if seconds is not None:
        bad.occurred_at.seconds = seconds
    ack = shop.record([shop.message("before", 1, at=at), bad, shop.message("after", 2, at=at)])
    assert ack.accepted == 2
    assert [(r.event_id, r.index) for r in ack.rejected] == [("bad", 1)]
    assert ack.rejected[0].reason.startswith(reason)
    assert shop.current().usage_to_date.messages == 3
    with server.db.read() as session:
        stored = session.execute(
            text("SELECT occurred_at_us FROM usage_event WHERE account_id = :a"),
            {"a": shop.account_id},
        ).scalars()
        assert set(stored) == {to_us(at)}


# --- counters at the brink --------------------------------------------------------------------

# Each counter seeded 10 below its maximum; an event's keys: its account and period, tenant,
# partner and hour.
SEEDS = {
    "period": (
        "INSERT INTO usage_period (account_id, period, messages, late_messages, "
        "late_billed_messages) VALUES (:a, :p, :v, 0, 0)",
        "the account's messages of {p}",
    ),
    "late": (
        "INSERT INTO usage_period (account_id, period, messages, late_messages, "
        "late_billed_messages) VALUES (:a, :p, 0, :v, 0)",
        "the account's late messages of {p}",
    ),
    "tenant": (
        "INSERT INTO usage_tenant_period (account_id, period, tenant_id, messages, "
        "storage_byte_us) VALUES (:a, :p, :t, :v, '0')",
        "the tenant's messages of {p}",
    ),
    "partner": (
        "INSERT INTO usage_partner_period (account_id, period, partner_id, messages) "
        "VALUES (:a, :p, :r, :v)",
        "the partner's messages of {p}",
    ),
    "hourly": (
        "INSERT INTO usage_hourly (account_id, hour_us, tenant_id, partner_id, kind, "
        "messages, storage_bytes_max) VALUES (:a, :h, :t, :r, 1, :v, 0)",
        "the tenant's hourly messages from {hour}",
    ),
}


@pytest.mark.parametrize("counter", list(SEEDS))
def test_an_event_that_would_pass_a_counters_maximum_is_rejected_and_the_account_answers(
    client: Client, server: ServerThread, counter: str
) -> None:
    shop = imported_shop(client)
    at = an_hour_in(now())
    if counter == "late":  # an invoiced period: its events are late
        at = an_hour_in(Period.containing(now()).previous().start + timedelta(days=3))
        close(client, shop.account_id, Period.containing(at))
    period = Period.containing(at)
    statement, name = SEEDS[counter]
    hour_us = hour_of(to_us(at))
    execute(
        server,
        statement,
        a=shop.account_id,
        p=period.label,
        t=shop.tenants[0],
        r=shop.partners[0],
        h=hour_us,
        v=MAX_COUNTER - 10,
    )
    ack = shop.record(
        [
            shop.message("a", 4, at=at),
            shop.message("b", 5, at=at),
            shop.message("c", 2, at=at),
            shop.message("d", 1, tenant=1, partner=1, at=at),
        ]
    )
    hour = f"{at:%Y-%m-%dT%H}:00Z"
    assert (ack.accepted, ack.late) == (3, 3 if counter == "late" else 0)
    assert [(r.event_id, r.index, r.reason) for r in ack.rejected] == [
        ("c", 2, counter_full(name.format(p=period.label, hour=hour), 2))
    ]
    assert ack.rejected[0].reason == (
        f"quantity 2 would take {name.format(p=period.label, hour=hour)} past "
        "9,223,372,036,854,775,807 (2^63-1), the most it can hold; the event is not counted"
    )

    current = reads_answer(shop, period, at)
    monthly = shop.monthly(period)
    if counter == "period":
        assert current.usage_to_date.messages == monthly.total_messages == MAX_COUNTER
        assert current.projection.messages == MAX_COUNTER
    else:
        assert monthly.total_messages == 10
    assert_integer_counters(server, shop.account_id)
    # And on it goes: a storage reading adds no messages, and is stored.
    later = shop.record([shop.storage("s", 5, at=at + timedelta(minutes=1))])
    assert (later.accepted, list(later.rejected)) == (1, [])
    reads_answer(shop, period, at)


def test_the_storage_an_account_holds_stays_within_int64_summed_over_its_tenants(
    client: Client, server: ServerThread
) -> None:
    """Sums the reads answer in int64 fields: the tenants' latest levels (GetCurrentUsage), and
    an hour's maxima (GetUsageHistory). Neither is a stored counter: they are checked as the
    readings arrive."""
    shop = Shop(client)
    at = an_hour_in(now())
    execute(
        server,
        "INSERT INTO storage_level (account_id, tenant_id, level_bytes, "
        "reading_at_us) VALUES (:a, :t, :v, :at)",
        a=shop.account_id,
        t=shop.tenants[0],
        v=MAX_COUNTER - 5,
        at=to_us(at - timedelta(hours=2)),
    )

    def reading(event_id: str, tenant: int, level_bytes: int, seconds: int) -> upb.UsageEvent:
        event = shop.storage(event_id, 0, at + timedelta(seconds=seconds), tenant=tenant)
        event.quantity = level_bytes
        return event

    ack = shop.record(
        [
            reading("t1-5", 1, 5, 0),
            reading("t1-6", 1, 6, 1),
            reading("t0-down", 0, 1000, 2),
            reading("t1-up", 1, 10**18, 3),
        ]
    )
    whose = "the account's stored bytes summed over its tenants"
    assert ack.accepted == 3
    assert [(r.event_id, r.reason) for r in ack.rejected] == [("t1-6", counter_full(whose, 6))]
    current = reads_answer(shop, Period.containing(at), at)
    assert current.usage_to_date.storage_bytes == 1000 + 10**18

    # An hour's maxima, summed over tenants: tenant 0 held nearly all of it earlier in the hour.
    other = Shop(client)
    execute(
        server,
        "INSERT INTO usage_hourly (account_id, hour_us, tenant_id, partner_id, kind, "
        "messages, storage_bytes_max) VALUES (:a, :h, :t, '', 2, 0, :v)",
        a=other.account_id,
        h=hour_of(to_us(at)),
        t=other.tenants[0],
        v=MAX_COUNTER - 5,
    )
    ack = other.record([reading_of(other, "h-5", 5, at), reading_of(other, "h-6", 6, at)])
    assert ack.accepted == 1
    assert [(r.event_id, r.reason) for r in ack.rejected] == [
        ("h-6", counter_full(f"{whose} in the hour from {at:%Y-%m-%dT%H}:00Z", 6))
    ]
    history = other.client.usage.GetUsageHistory(
        upb.GetUsageHistoryRequest(
            account_id=other.account_id,
            granularity=upb.GRANULARITY_HOUR,
            start_time=ts(at - timedelta(hours=1)),
            end_time=ts(at + timedelta(hours=1)),
        ),
        metadata=USAGE_READER,
    )
    assert [bucket.storage_bytes for bucket in history.buckets] == [MAX_COUNTER]
    reads_answer(other, Period.containing(at), at)
    assert_integer_counters(server, shop.account_id)
    assert_integer_counters(server, other.account_id)


def reading_of(shop: Shop, event_id: str, level_bytes: int, at: datetime) -> upb.UsageEvent:
    event = shop.storage(event_id, 0, at, tenant=1)
    event.quantity = level_bytes
    return event


# --- any quantity, any timestamp --------------------------------------------------------------

INT64 = (-(2**63), 2**63 - 1)
QUANTITIES = st.one_of(
    st.integers(-2, 3),
    st.integers(1, rules.MAX_MESSAGE_QUANTITY),
    st.sampled_from(
        [
            rules.MAX_MESSAGE_QUANTITY,
            rules.MAX_MESSAGE_QUANTITY + 1,
            rules.MAX_STORAGE_BYTES,
            rules.MAX_STORAGE_BYTES + 1,
            *INT64,
            INT64[1] - 1,
            INT64[0] + 1,
        ]
    ),
    st.integers(*INT64),
)
NANOS = st.one_of(st.integers(0, 999_999_999), st.sampled_from([-1, 10**9, 2**31 - 1, -(2**31)]))
SECONDS_OFF = st.sampled_from([-1, 0, rules.LATEST_SECONDS, *INT64])
# Counters seeded near their maximum (None: none), so that random quantities can reach them:
# one, or all that tenant 0 and partner 0 fill in that hour, as ingesting that much would (an
# hourly row alone near the maximum is no state ingestion can make: the hour's rows, summed by
# GetUsageHistory, never pass the period's counter).
SEEDED = st.sampled_from([None, "period", "tenant", "partner", "all", "storage"])


def test_no_quantity_or_timestamp_gives_internal_or_a_counter_that_is_not_an_integer(
    client: Client, server: ServerThread
) -> None:
    ran = {"rejected": 0, "counter_full": 0}

    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        shop = Shop(client)
        at = an_hour_in(now())
        period = Period.containing(at)
        seeded = data.draw(SEEDED)
        room = data.draw(
            st.one_of(st.integers(0, 3 * rules.MAX_MESSAGE_QUANTITY), st.sampled_from([0, 1]))
        )
        if seeded == "storage":
            execute(
                server,
                "INSERT INTO storage_level (account_id, tenant_id, level_bytes, "
                "reading_at_us) VALUES (:a, :t, :v, :at)",
                a=shop.account_id,
                t=shop.tenants[0],
                v=MAX_COUNTER - room,
                at=to_us(at) - 1,
            )
        elif seeded is not None:
            for counter in (
                ("period", "tenant", "partner", "hourly") if seeded == "all" else (seeded,)
            ):
                execute(
                    server,
                    SEEDS[counter][0],
                    a=shop.account_id,
                    p=period.label,
                    t=shop.tenants[0],
                    r=shop.partners[0],
                    h=hour_of(to_us(at)),
                    v=MAX_COUNTER - room,
                )
        clean = data.draw(st.booleans())  # plain batches: the kernel's path on SQLite
        events = []
        for i in range(data.draw(st.integers(1, 10))):
            event = shop.message(
                f"e{i}",
                at=at + timedelta(seconds=i),
                tenant=data.draw(st.integers(0, 1)),
                partner=data.draw(st.sampled_from([None, 0, 1])),
            )
            if clean:
                event.quantity = data.draw(st.integers(1, rules.MAX_MESSAGE_QUANTITY))
            else:
                event.kind = data.draw(st.sampled_from([MESSAGE, MESSAGE, STORAGE, 0, 3, -1]))
                event.quantity = data.draw(QUANTITIES)
                event.occurred_at.nanos = data.draw(NANOS)
                if data.draw(st.integers(0, 4)) == 0:
                    event.occurred_at.seconds = data.draw(SECONDS_OFF)
            events.append(event)
        try:
            ack = shop.record(events)
        except grpc.RpcError as error:  # pragma: no cover - the failure this test is for
            raise AssertionError(f"{error.code()}: {error.details()}") from error
        rejected = {r.index: r.reason for r in ack.rejected}
        assert ack.accepted + len(rejected) == len(events)
        for index, event in enumerate(events):
            stamp = event.occurred_at
            if not (0 <= stamp.nanos < 10**9 and 0 < stamp.seconds < rules.LATEST_SECONDS):
                assert index in rejected, "a timestamp outside the range was taken"
        accepted = [e for i, e in enumerate(events) if i not in rejected]
        assert all(
            1 <= e.quantity <= rules.MAX_MESSAGE_QUANTITY for e in accepted if e.kind == MESSAGE
        )
        assert all(
            0 <= e.quantity <= rules.MAX_STORAGE_BYTES for e in accepted if e.kind == STORAGE
        )
        ran["rejected"] += len(rejected)
        ran["counter_full"] += sum("the most it can hold" in r for r in rejected.values())

        assert_integer_counters(server, shop.account_id)
        current = reads_answer(shop, period, at)
        expected = sum(e.quantity for e in accepted if e.kind == MESSAGE) + (
            MAX_COUNTER - room if seeded in ("period", "all") else 0
        )
        assert current.usage_to_date.messages == expected

    check()
    assert ran["counter_full"] > 0, "the generated batches must reach a counter's maximum"
