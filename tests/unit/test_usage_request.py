"""Usage requests read without the compiled kernel: an oversized batch is refused from its count,
before the protobuf library turns millions of events into objects."""

from __future__ import annotations

from as2aas.billing.v1 import usage_service_pb2 as pb
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_svc import native
from billing_svc.api.usage import count_events, decode_request
from billing_svc.domain.errors import InvalidArgument
from billing_svc.domain.usage import MAX_BATCH_EVENTS, UsageBatch

EMPTY_EVENT = b"\x12\x00"
OVERSIZED = b"\x0a\x01b" + EMPTY_EVENT * (MAX_BATCH_EVENTS + 1)
ALL = 10**9  # stop_after: count every event

events = st.builds(
    pb.UsageEvent,
    event_id=st.text(max_size=8),
    account_id=st.text(max_size=4),
    kind=st.integers(-1, 3),
    quantity=st.integers(-(2**63), 2**63 - 1),
)
# Fields a newer producer may add, one of each wire type: varint, 64-bit, bytes, 32-bit.
unknown_fields = st.sampled_from(
    [
        b"",
        b"\x18\x96\x01",
        b"\x21" + bytes(8),
        b"\x2a\x02hi",
        b"\x35" + bytes(4),
        b"\xf8\xff\x03\x01",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=8), st.lists(st.tuples(events, unknown_fields), max_size=20))
def test_the_count_is_the_protobuf_librarys(batch_id: str, parts: list) -> None:
    raw = pb.StreamUsageRequest(batch_id=batch_id).SerializeToString() + b"".join(
        pb.StreamUsageRequest(events=[event]).SerializeToString() + unknown
        for event, unknown in parts
    )
    assert count_events(raw, stop_after=ALL) == len(pb.StreamUsageRequest.FromString(raw).events)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=64))
def test_unreadable_bytes_neither_raise_nor_overcount(raw: bytes) -> None:
    counted = count_events(raw, stop_after=ALL)
    try:
        decoded = len(pb.StreamUsageRequest.FromString(raw).events)
    except DecodeError:
        assert 0 <= counted <= len(raw) // 2  # what was read so far; the library says why
    else:
        assert counted <= decoded  # an unknown group ends the count: the decode then decides


def test_counting_stops_past_the_limit() -> None:
    assert count_events(OVERSIZED, stop_after=10) == 11
    assert count_events(OVERSIZED, stop_after=ALL) == MAX_BATCH_EVENTS + 1
    assert count_events(b"\x12" + b"\xff" * 20, stop_after=ALL) == 0  # an endless varint


def test_an_oversized_batch_is_refused_from_its_count_before_it_is_decoded() -> None:
    # Unreadable after the limit: only the count can have refused it.
    refused = decode_request(native.PYTHON)(OVERSIZED + b"\x12\xff")
    assert isinstance(refused, InvalidArgument)
    assert f"more than {MAX_BATCH_EVENTS} events in one batch" in str(refused)


def test_an_oversized_batch_the_count_cannot_read_is_refused_before_its_events_are_made() -> None:
    hidden = b"\x1b\x1c" + OVERSIZED  # an unknown group first: the count stops there
    assert count_events(hidden, stop_after=MAX_BATCH_EVENTS) == 0
    refused = decode_request(native.PYTHON)(hidden)
    assert isinstance(refused, InvalidArgument)
    assert f"{MAX_BATCH_EVENTS + 1} events in one batch" in str(refused)


def test_a_batch_at_the_limit_is_decoded() -> None:
    raw = b"\x0a\x01b" + EMPTY_EVENT * MAX_BATCH_EVENTS
    batch = decode_request(native.PYTHON)(raw)
    assert isinstance(batch, UsageBatch) and len(batch) == MAX_BATCH_EVENTS
