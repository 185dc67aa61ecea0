"""What a usage event may carry (issue 12, points 1 and 2), on the Python path: the contract's
quantity limits, the one range of time the service takes, and counters whose columns hold every
value the limits allow. (The kernel is compared with these in tests/unit/test_usage_kernel.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from as2aas.billing.v1 import usage_service_pb2 as pb
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import BigInteger

from billing_svc.api.usage import events_in
from billing_svc.domain.periods import EARLIEST, LATEST, Period
from billing_svc.domain.usage import (
    LATEST_US,
    MAX_COUNTER,
    MAX_MESSAGE_QUANTITY,
    MAX_STORAGE_BYTES,
    MESSAGE,
    STORAGE,
    UsageEventIn,
    accept_window,
    check_shape,
    occurred_at_us_of,
    to_us,
)
from billing_svc.storage import tables

NOW_US = 1_795_600_000_000_000  # 2026-11-25
NOW_S = NOW_US // 10**6


def event(kind: int, quantity: int, occurred_at_us: int | None = NOW_US) -> UsageEventIn:
    return UsageEventIn("e1", "acc_a", "ten_1", "", kind, quantity, occurred_at_us)


@pytest.mark.parametrize(
    ("kind", "quantity", "reason"),
    [
        (MESSAGE, 1, None),
        (MESSAGE, 10**9, None),
        (
            MESSAGE,
            10**9 + 1,
            "quantity 1000000001 is above 1,000,000,000, the most one message "
            "event counts; split the count over several events",
        ),
        (MESSAGE, 2**63 - 1, "is above 1,000,000,000"),
        (MESSAGE, 0, "below 1"),
        (MESSAGE, -(2**63), "below 1"),
        (STORAGE, 0, None),
        (STORAGE, 10**18, None),
        (
            STORAGE,
            10**18 + 1,
            "quantity 1000000000000000001 is above 1,000,000,000,000,000,000 "
            "bytes (10^18), the largest storage gauge accepted",
        ),
        (STORAGE, 2**63 - 1, "is above 1,000,000,000,000,000,000 bytes (10^18)"),
        (STORAGE, -1, "negative"),
    ],
)
def test_quantities_are_bounded_by_the_contract(
    kind: int, quantity: int, reason: str | None
) -> None:
    found = check_shape(event(kind, quantity), NOW_US, 400)
    assert (found is None) if reason is None else (found is not None and reason in found)


@pytest.mark.parametrize(
    ("seconds", "nanos", "reason"),
    [
        (NOW_S, 0, None),
        (NOW_S, 999_999_999, None),
        (NOW_S, -1, "occurred_at.nanos is outside 0 to 999,999,999"),
        (NOW_S, 10**9, "occurred_at.nanos is outside 0 to 999,999,999"),
        (NOW_S, 2**31 - 1, "occurred_at.nanos is outside 0 to 999,999,999"),
        (0, 0, "occurred_at is missing"),
        (-1, 0, "occurred_at is before 1970-01-01T00:00:00Z, the earliest time taken"),
        (-(2**63), 999_999_999, "occurred_at is before 1970-01-01T00:00:00Z"),
        (
            253_370_764_800,
            0,
            "occurred_at is not before 9999-01-01T00:00:00Z, the end of the time taken",
        ),
        (2**63 - 1, 0, "occurred_at is not before 9999-01-01T00:00:00Z"),
        (253_370_764_799, 999_999_999, "more than 5 minutes in the future"),
    ],
)
def test_a_wire_timestamp_is_taken_only_in_range_and_never_shifted(
    seconds: int, nanos: int, reason: str | None
) -> None:
    """Read as the Python path reads it (events_in), then checked."""
    request = pb.StreamUsageRequest(
        events=[
            pb.UsageEvent(
                event_id="e1",
                account_id="acc_a",
                tenant_id="ten_1",
                kind=MESSAGE,
                quantity=1,
                occurred_at={"seconds": seconds, "nanos": nanos},
            )
        ]
    )
    [read] = events_in(request.events)
    found = check_shape(read, NOW_US, 400)
    if reason is None:
        assert found is None
        assert read.occurred_at_us == seconds * 10**6 + nanos // 1000
    else:
        assert found is not None and reason in found


@given(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1))
def test_every_timestamp_is_a_time_in_range_or_refused(seconds: int, nanos: int) -> None:
    at_us = occurred_at_us_of(seconds, nanos)
    in_range = to_us(EARLIEST) <= seconds * 10**6 + nanos // 1000 < LATEST_US
    if (seconds, nanos) == (0, 0):
        assert at_us is None
    elif 0 <= nanos < 10**9 and in_range:
        assert at_us == seconds * 10**6 + nanos // 1000
    else:  # a value no window takes, that check_shape gives the reason for
        assert at_us is not None and not to_us(EARLIEST) <= at_us < LATEST_US
        assert check_shape(event(MESSAGE, 1, at_us), NOW_US, 400) is not None


def test_the_range_is_the_narrower_of_a_timestamps_and_a_periods() -> None:
    assert Period.containing(EARLIEST).start == EARLIEST
    assert Period(9998, 12).end == LATEST, "the last period has an end"
    for year, month in ((1969, 12), (9999, 1)):
        with pytest.raises(ValueError, match=r"is not within 1970\.\.9998"):
            Period(year, month)
    assert Period.containing(LATEST - timedelta(microseconds=1)).label == "9998-12"


def test_the_accept_window_stays_within_the_range() -> None:
    assert accept_window(NOW_US, 400) == (NOW_US - 400 * 86_400 * 10**6, NOW_US + 300 * 10**6)
    assert accept_window(NOW_US, 10**6) == (0, NOW_US + 300 * 10**6)
    late_us = to_us(datetime(9998, 12, 31, 23, 58, tzinfo=UTC))
    assert accept_window(late_us, 400)[1] == LATEST_US - 1


# Every integer ingestion counts into, and the reply fields that carry them.
COUNTER_COLUMNS = [
    (tables.UsageEvent, "quantity"),
    (tables.UsagePeriod, "messages"),
    (tables.UsagePeriod, "late_messages"),
    (tables.UsagePeriod, "late_billed_messages"),
    (tables.UsageTenantPeriod, "messages"),
    (tables.UsagePartnerPeriod, "messages"),
    (tables.UsageHourly, "messages"),
    (tables.UsageHourly, "storage_bytes_max"),
    (tables.StorageLevel, "level_bytes"),
]


# The reply fields that carry counters, or sums the counters bound.
REPLY_FIELDS = [
    "UsageToDate.messages",
    "UsageToDate.storage_bytes",
    "UsageProjection.messages",
    "GetMonthlyUsageResponse.total_messages",
    "UsageBucket.messages",
    "UsageBucket.storage_bytes",
]


def test_max_counter_is_what_every_counter_column_and_reply_field_holds() -> None:
    assert MAX_COUNTER == 2**63 - 1  # BIGINT's, SQLite INTEGER's and int64's
    for table, column in COUNTER_COLUMNS:
        assert isinstance(table.__table__.columns[column].type, BigInteger), column  # type: ignore[attr-defined]
    for field in REPLY_FIELDS:
        message, name = field.split(".")
        assert (
            getattr(pb, message).DESCRIPTOR.fields_by_name[name].type == FieldDescriptor.TYPE_INT64
        ), field
    assert MAX_MESSAGE_QUANTITY <= MAX_STORAGE_BYTES <= MAX_COUNTER


def test_storage_byte_microseconds_fit_their_column_for_any_gauge() -> None:
    """Each tenant's byte-microseconds of a period are at most the largest gauge held for the
    longest period (31 days): NUMERIC(38, 0) holds that, so it needs no check per event."""
    column = tables.UsageTenantPeriod.__table__.columns["storage_byte_us"].type  # type: ignore[attr-defined]
    assert (column.precision, column.scale) == (38, 0)
    longest_us = 31 * 86_400 * 10**6
    assert MAX_STORAGE_BYTES * longest_us < 10**column.precision
