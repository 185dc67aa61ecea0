"""The scale benchmarks' event ids and wire batches (benchmarks/ids.py, benchmarks/producer.py):
benchmarks are not tests, but a harness that sends malformed ids or batches would measure
nothing while looking fine."""

from __future__ import annotations

import uuid

import pytest
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb
from google.protobuf import timestamp_pb2

from benchmarks.ids import BenchAccount, StreamIds, StreamPlan, prefill_ids
from benchmarks.producer import encode_batch


@pytest.mark.parametrize("version", [4, 7])
def test_streamed_and_prefilled_uuids_are_valid_rfc_9562_uuids(version: int) -> None:
    kind = f"uuid{version}"
    streamed = StreamIds(kind, seed=1, stream=0).take(2000)
    stored = prefill_ids(kind, seed=1, account_index=0, n=2000)
    for text in streamed + stored:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == version
        assert parsed.variant == uuid.RFC_4122
    assert len(set(streamed + stored)) == 4000


def test_uuid7_ids_carry_increasing_millisecond_timestamps() -> None:
    ids = StreamIds("uuid7", seed=3, stream=1).take(500)
    stamps = [uuid.UUID(text).int >> 80 for text in ids]
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] == 499 // 50  # 50 ids per millisecond
    # Made in 2026, as the pre-filled ones, which come before them.
    stored = prefill_ids("uuid7", seed=3, account_index=0, n=10)
    assert uuid.UUID(stored[-1]).int >> 80 < stamps[0]


@pytest.mark.parametrize("kind", ["uuid4", "uuid7", "sequential"])
def test_prefill_ids_are_sorted_and_streams_repeat_from_their_seed(kind: str) -> None:
    stored = prefill_ids(kind, seed=9, account_index=2, n=3000)
    assert stored == sorted(stored) and len(set(stored)) == 3000
    assert StreamIds(kind, 9, 0).take(100) == StreamIds(kind, 9, 0).take(100)
    assert StreamIds(kind, 9, 0).take(100) != StreamIds(kind, 9, 1).take(100)
    assert not set(stored) & set(StreamIds(kind, 9, 0).take(3000))


def test_a_plan_spreads_batches_over_the_accounts_and_the_encoding_is_protobufs() -> None:
    accounts = [
        BenchAccount(f"acc_{i}", (f"ten_{i}a", f"ten_{i}b"), (f"prt_{i}",)) for i in range(30)
    ]
    plan = StreamPlan(
        "uuid4", seed=1, streams=2, events=4000, batch_size=1000, accounts_per_batch=10
    )
    batches = [list(plan.batches(s, accounts)) for s in range(2)]
    assert [len(b) for b in batches] == [2, 2]
    touched = {event[0].account_id for stream in batches for batch in stream for event in batch}
    assert touched == {a.account_id for a in accounts}  # 4 batches x 10 accounts, round the 30
    batch = batches[1][0]
    assert len({event[0].account_id for event in batch}) == 10
    wire = encode_batch("b-1", batch, 1_790_000_000)
    expected = upb.StreamUsageRequest(batch_id="b-1")
    for account, event_id, tenant, partner in batch:
        expected.events.append(
            upb.UsageEvent(
                event_id=event_id,
                account_id=account.account_id,
                tenant_id=tenant,
                partner_id=partner,
                kind=common_pb2.USAGE_KIND_MESSAGE,
                quantity=1,
                occurred_at=timestamp_pb2.Timestamp(seconds=1_790_000_000),
            )
        )
    assert upb.StreamUsageRequest.FromString(wire) == expected
    assert wire == expected.SerializeToString()


def test_the_soaks_fast_clock_reads_the_same_in_the_server_and_the_producer() -> None:
    import time
    from datetime import UTC, datetime, timedelta

    from benchmarks.fastclock import FastClock

    clock = FastClock(datetime(2027, 1, 1, tzinfo=UTC), wall_start=time.time() - 10, speed=21_600.0)
    assert FastClock.parse(clock.spec()) == clock
    moved = clock.now() - datetime(2027, 1, 1, tzinfo=UTC)
    assert timedelta(days=2.5) <= moved < timedelta(days=2.6)  # 10 s of wall time
