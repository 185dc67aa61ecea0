"""Storage GB-months from gauge readings (spec §1.4): each tenant's latest reading holds until its
next one, across period boundaries; 1 GB = 10^9 bytes; GB-months are the time-weighted average
over the period. Each row is worked out by hand in its comment."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_svc.domain import storage_meter
from billing_svc.domain.periods import Period
from billing_svc.domain.storage_meter import StorageReading

D = Decimal
GB = 10**9
DAY_US = 86_400 * 10**6
APRIL = Period(2024, 4)  # 30 days
FEB_2028 = Period(2028, 2)  # 29 days


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def gb(tenant: str, gigabytes: int | str, at: datetime) -> StorageReading:
    return StorageReading(at, tenant, int(D(gigabytes) * GB))


@pytest.mark.parametrize(
    ("period", "readings", "window", "expected"),
    [
        # 8 GB from the first instant of April to its end: 8 GB-months.
        (APRIL, [gb("a", 8, utc(2024, 4, 1))], None, "8"),
        # Read on March 3 and never again: the level carries over into April: 8 GB-months.
        (APRIL, [gb("a", 8, utc(2024, 3, 3))], None, "8"),
        # 10 GB for 15 of 30 days, then emptied: 10 x 15/30 = 5.
        (APRIL, [gb("a", 10, utc(2024, 4, 1)), gb("a", 0, utc(2024, 4, 16))], None, "5"),
        # Two tenants add up: 6 GB all month + 3 GB for the last 10 days: 6 + 3 x 10/30 = 7.
        (APRIL, [gb("a", 6, utc(2024, 3, 31)), gb("b", 3, utc(2024, 4, 21))], None, "7"),
        # Across the boundary: 4 GB since March 20, 1 GB from April 11:
        # 4 x 10/30 + 1 x 20/30 = 40/30 + 20/30 = 2.
        (APRIL, [gb("a", 4, utc(2024, 3, 20)), gb("a", 1, utc(2024, 4, 11))], None, "2"),
        # Only the last reading before the period counts as its starting level: 2 GB.
        (
            APRIL,
            [gb("a", 50, utc(2024, 2, 1)), gb("a", 2, utc(2024, 3, 31, 23, 59, 59))],
            None,
            "2",
        ),
        # A reading at the last millisecond of April: 12 GB x 0.001 s / 2,592,000 s
        # = 0.0000000046296.. GB-months -> 0.000000005 (half-up at 9 places).
        (APRIL, [gb("a", 12, utc(2024, 4, 30, 23, 59, 59, 999_000))], None, "0.000000005"),
        # A reading at the first instant of May does not touch April: 2 GB all April.
        (APRIL, [gb("a", 2, utc(2024, 4, 1)), gb("a", 700, utc(2024, 5, 1))], None, "2"),
        # After a trial ending April 21 00:00: 9 GB x 10/30 of the month = 3.
        (APRIL, [gb("a", 9, utc(2024, 4, 1))], (utc(2024, 4, 21), APRIL.end), "3"),
        # The window's own start level comes from a reading before it: 6 GB read April 5, window
        # from April 16: 6 x 15/30 = 3.
        (APRIL, [gb("a", 6, utc(2024, 4, 5))], (utc(2024, 4, 16), APRIL.end), "3"),
        # February 2028 has 29 days: 29 GB for the leap day alone = 29 x 1/29 = 1.
        (FEB_2028, [gb("a", 29, utc(2028, 2, 29))], None, "1"),
        # February 2028, 1 GB all month but 100 GB on the 15th only: 1 + 99 x 1/29 = 4.413793103..
        (
            FEB_2028,
            [
                gb("a", 1, utc(2028, 2, 1)),
                gb("a", 100, utc(2028, 2, 15)),
                gb("a", 1, utc(2028, 2, 16)),
            ],
            None,
            "4.413793103",
        ),
        # One byte all month: 10^-9 GB-months, the smallest amount shown.
        (APRIL, [StorageReading(utc(2024, 4, 1), "a", 1)], None, "0.000000001"),
        # One byte for half the month: 0.5 x 10^-9 rounds half-up to 10^-9.
        (APRIL, [StorageReading(utc(2024, 4, 16), "a", 1)], None, "0.000000001"),
        # One byte for a third of the month: 0.333 x 10^-9 rounds down to 0.
        (APRIL, [StorageReading(utc(2024, 4, 21), "a", 1)], None, "0"),
        # Two readings at the same instant: the later one given wins: 5 GB.
        (APRIL, [gb("a", 7, utc(2024, 4, 1)), gb("a", 5, utc(2024, 4, 1))], None, "5"),
        # No readings: nothing stored.
        (APRIL, [], None, "0"),
        # 1.5 GB for 10 days and 2.25 GB for 20: 1.5/3 + 2.25 x 2/3 = 0.5 + 1.5 = 2.
        (APRIL, [gb("a", "1.5", utc(2024, 4, 1)), gb("a", "2.25", utc(2024, 4, 11))], None, "2"),
    ],
    ids=[
        "whole-month",
        "carried-over",
        "half-month",
        "two-tenants",
        "across-boundary",
        "last-reading-before",
        "last-millisecond",
        "first-instant-of-next",
        "after-trial",
        "window-start-level",
        "leap-day",
        "leap-month-spike",
        "one-byte",
        "half-byte-up",
        "third-byte-down",
        "same-instant",
        "no-readings",
        "fractional-gb",
    ],
)
def test_gb_months(
    period: Period,
    readings: list[StorageReading],
    window: tuple[datetime, datetime] | None,
    expected: str,
) -> None:
    start, end = window or (period.start, period.end)
    result = storage_meter.gb_months(readings, start, end, period)
    assert result == D(expected)
    assert result.as_tuple().exponent == -storage_meter.GB_MONTH_PLACES


def test_plain_tuples_work_as_readings() -> None:
    readings = [(utc(2024, 4, 1), "a", 8 * GB)]
    assert storage_meter.gb_months(readings, APRIL.start, APRIL.end, APRIL) == 8


@pytest.mark.parametrize(
    ("window", "readings"),
    [
        ((utc(2024, 3, 31), APRIL.end), []),
        ((APRIL.start, utc(2024, 5, 2)), []),
        ((utc(2024, 4, 10), utc(2024, 4, 9)), []),
        ((APRIL.start, APRIL.end), [StorageReading(utc(2024, 4, 1), "a", -1)]),
    ],
    ids=["starts-before-period", "ends-after-period", "backwards", "negative-gauge"],
)
def test_invalid_input_is_refused(
    window: tuple[datetime, datetime], readings: list[StorageReading]
) -> None:
    with pytest.raises(ValueError):
        storage_meter.gb_months(readings, *window, APRIL)


# ---------------------------------------------------------------------------------------------
# The incremental form, for ingestion: byte-microseconds per period


@pytest.mark.parametrize(
    ("level_gb", "since", "until", "expected_gb_months"),
    [
        # 3 GB from March 20 to May 10: March holds 12 of 31 days (3 x 12/31 = 1.161290322..),
        # April all 30 days (3), May 9 of 31 days (3 x 9/31 = 0.870967741..).
        (
            3,
            utc(2024, 3, 20),
            utc(2024, 5, 10),
            [("2024-03", "1.161290323"), ("2024-04", "3"), ("2024-05", "0.870967742")],
        ),
        # Inside one month: 6 GB for 5 of April's 30 days = 1.
        (6, utc(2024, 4, 10), utc(2024, 4, 15), [("2024-04", "1")]),
        # Over new year: 31 GB for Dec 31 and Jan 1: 31 x 1/31 each.
        (31, utc(2024, 12, 31), utc(2025, 1, 2), [("2024-12", "1"), ("2025-01", "1")]),
        # Ending exactly at a period's start adds nothing to that period.
        (6, utc(2024, 4, 26), utc(2024, 5, 1), [("2024-04", "1")]),  # 6 GB x 5/30
        (0, utc(2024, 4, 1), utc(2024, 5, 1), []),  # an empty tenant adds nothing
        (5, utc(2024, 4, 2), utc(2024, 4, 2), []),  # an empty stretch adds nothing
    ],
    ids=["three-months", "one-month", "new-year", "ends-at-boundary", "zero-level", "empty"],
)
def test_spread_over_periods(
    level_gb: int, since: datetime, until: datetime, expected_gb_months: list[tuple[str, str]]
) -> None:
    parts = storage_meter.spread(level_gb * GB, since, until)
    assert [
        (period.label, storage_meter.gb_months_of(byte_us, period)) for period, byte_us in parts
    ] == [(label, D(v)) for label, v in expected_gb_months]
    assert sum(byte_us for _, byte_us in parts) == level_gb * GB * (
        (until - since) // timedelta(microseconds=1)
    )
    for period, byte_us in parts:
        assert storage_meter.byte_microseconds(level_gb * GB, since, until, period) == byte_us


def test_byte_microseconds_are_exact_integers() -> None:
    # 1 TB for all of April: 10^12 bytes x 2,592,000 s x 10^6 = 2.592 x 10^24 (beyond 64 bits)
    byte_us = storage_meter.byte_microseconds(10**12, APRIL.start, APRIL.end, APRIL)
    assert byte_us == 2_592_000_000_000_000_000_000_000
    assert storage_meter.gb_months_of(byte_us, APRIL) == 1000
    assert storage_meter.byte_microseconds(10**12, APRIL.end, utc(2024, 6, 1), APRIL) == 0


# ---------------------------------------------------------------------------------------------
# Properties

moments = st.integers(0, 120 * DAY_US).map(lambda us: utc(2024, 3, 1) + timedelta(microseconds=us))
readings_strategy = st.lists(
    st.builds(StorageReading, moments, st.sampled_from("abc"), st.integers(0, 10**13)), max_size=15
)


@settings(max_examples=150, deadline=None)
@given(readings=readings_strategy, cut=moments)
def test_byte_microseconds_add_up_over_any_split(
    readings: list[StorageReading], cut: datetime
) -> None:
    start, end = APRIL.start, APRIL.end
    cut = min(max(cut, start), end)
    whole = storage_meter.held_byte_microseconds(readings, start, end)
    assert whole == (
        storage_meter.held_byte_microseconds(readings, start, cut)
        + storage_meter.held_byte_microseconds(readings, cut, end)
    )
    assert isinstance(whole, int)


@settings(max_examples=150, deadline=None)
@given(readings=readings_strategy)
def test_incremental_spreads_equal_the_batch_computation(readings: list[StorageReading]) -> None:
    # What ingestion does: on each reading, spread the tenant's previous level from its time;
    # at the end, the current levels held to the end of the last period.
    end = utc(2024, 7, 1)
    totals: dict[Period, int] = defaultdict(int)
    last: dict[str, tuple[datetime, int]] = {}
    for reading in sorted(readings, key=lambda r: r.occurred_at):
        if reading.tenant_id in last:
            since, level = last[reading.tenant_id]
            for period, byte_us in storage_meter.spread(level, since, reading.occurred_at):
                totals[period] += byte_us
        last[reading.tenant_id] = (reading.occurred_at, reading.level_bytes)
    for since, level in last.values():
        for period, byte_us in storage_meter.spread(level, since, end):
            totals[period] += byte_us
    for period in (Period(2024, 3), APRIL, Period(2024, 5), Period(2024, 6)):
        assert totals[period] == storage_meter.held_byte_microseconds(
            readings, period.start, period.end
        )
        assert storage_meter.gb_months(
            readings, period.start, period.end, period
        ) == storage_meter.gb_months_of(totals[period], period)
