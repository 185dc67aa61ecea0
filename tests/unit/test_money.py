"""Money and periods (spec §1.3, §1.5): half-up cents, exact wire amounts, largest-remainder
splits that add up, and calendar months in UTC. Every row can be checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_svc.domain.money import (
    decimal_text,
    from_units_nanos,
    parse_decimal,
    split_largest_remainder,
    to_cents,
    to_units_nanos,
)
from billing_svc.domain.periods import Period

D = Decimal


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Rounding: half-up to the cent, each line on its own (§1.5)


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        ("0.005", "0.01"),  # a half cent goes up, not to the even 0.00
        ("0.015", "0.02"),
        ("0.025", "0.03"),  # banker's rounding would give 0.02
        ("2.675", "2.68"),  # exact decimal, no binary-float surprise (float gives 2.67)
        ("0.004999", "0.00"),  # just under half a cent goes down
        ("7.5075", "7.51"),  # 1,001 messages x $0.0075
        ("51.20689655", "51.21"),  # 99 x 15/29
        ("99", "99.00"),
        ("0", "0.00"),
        ("-0.005", "-0.01"),  # half-up means away from zero for a credit
        ("-1.234", "-1.23"),
    ],
    ids=[
        "half-cent-up",
        "0.015",
        "0.025-not-even",
        "2.675",
        "below-half",
        "sub-cent-rate",
        "proration",
        "whole",
        "zero",
        "negative-half",
        "negative",
    ],
)
def test_to_cents_rounds_half_up(amount: str, cents: str) -> None:
    rounded = to_cents(D(amount))
    assert str(rounded) == cents
    assert rounded.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.0075", D("0.0075")), (" 299.00 ", D("299.00")), ("-3", D(-3)), ("1e2", D(100))],
    ids=["six-decimals", "spaces", "negative", "exponent"],
)
def test_parse_decimal_reads_exact_numbers(text: str, value: Decimal) -> None:
    assert parse_decimal(text) == value


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1,5", "NaN", "Infinity"],
    ids=["empty", "letters", "comma", "nan", "infinity"],
)
def test_parse_decimal_refuses_what_is_not_a_number(text: str) -> None:
    with pytest.raises(ValueError, match="base_fee"):
        parse_decimal(text, field="base_fee")


# ---------------------------------------------------------------------------------------------
# google.type.Money: units and nanos with the same sign


@pytest.mark.parametrize(
    ("amount", "units", "nanos"),
    [
        ("842.00", 842, 0),
        ("0.0075", 0, 7_500_000),
        ("-1.25", -1, -250_000_000),
        ("-0.75", 0, -750_000_000),
        ("0.000000001", 0, 1),
        ("12345678901.999999999", 12345678901, 999_999_999),
    ],
    ids=["whole", "sub-cent-rate", "negative", "negative-below-one", "one-nano", "large"],
)
def test_money_to_the_wire_and_back(amount: str, units: int, nanos: int) -> None:
    assert to_units_nanos(D(amount)) == (units, nanos)
    assert from_units_nanos(units, nanos) == D(amount)


@pytest.mark.parametrize(
    ("units", "nanos"),
    [(1, -1), (-1, 1), (0, 1_000_000_000)],
    ids=["mixed-signs", "mixed-signs-negative", "nanos-overflow"],
)
def test_invalid_wire_money_is_refused(units: int, nanos: int) -> None:
    with pytest.raises(ValueError):
        from_units_nanos(units, nanos)


def test_an_amount_finer_than_a_nano_cannot_go_on_the_wire() -> None:
    with pytest.raises(ValueError, match="9 decimal places"):
        to_units_nanos(D("0.0000000001"))


# ---------------------------------------------------------------------------------------------
# Decimals as text (GB-months and quantities on the wire, invoice line descriptions)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("3", "3"),
        ("2.50", "2.5"),  # trailing zeros go
        ("100.000", "100"),  # and the point with them; the zeros before it stay
        ("1000", "1000"),
        ("1E+3", "1000"),  # never an exponent
        ("1E-9", "0.000000001"),
        ("0.000", "0"),
        ("-1.50", "-1.5"),
    ],
    ids=[
        "whole",
        "trailing-zero",
        "point-goes",
        "tens-stay",
        "exponent",
        "nano",
        "zero",
        "negative",
    ],
)
def test_decimal_text_has_no_exponent_and_no_trailing_zeros(value: str, text: str) -> None:
    assert decimal_text(D(value)) == text


# ---------------------------------------------------------------------------------------------
# Largest-remainder splits (cost allocation, journal entries)


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        # 199.00 over 3,000 / 2,500 / 1,500 messages (7,000): exact shares 85.2857.., 71.0714..,
        # 42.6428..; floors 85.28 + 71.07 + 42.64 = 198.99; the cent left goes to the largest
        # remainder (0.57 of a cent, the first).
        ("199.00", [3000, 2500, 1500], ["85.29", "71.07", "42.64"]),
        # 10 cents in three: 3 + 3 + 3, the one left to the first of equal remainders.
        ("0.10", [1, 1, 1], ["0.04", "0.03", "0.03"]),
        # no messages at all: an even split.
        ("100.00", [0, 0], ["50.00", "50.00"]),
        # a weight of zero gets nothing.
        ("10.00", [0, 3, 1], ["0.00", "7.50", "2.50"]),
        # a negative total splits the same way, signs kept.
        ("-0.05", [1, 1], ["-0.03", "-0.02"]),
        # 1 cent over 3: one part gets it.
        ("0.01", [1, 1, 1], ["0.01", "0.00", "0.00"]),
        # the second has the larger remainder: 1.00 x 1/3 = 0.333.., x 2/3 = 0.666..
        ("1.00", [1, 2], ["0.33", "0.67"]),
        ("5.00", [], []),
    ],
    ids=[
        "departments",
        "ten-cents-in-three",
        "all-zero",
        "zero-weight",
        "negative",
        "one-cent",
        "largest-remainder-wins",
        "nothing-to-split",
    ],
)
def test_largest_remainder_splits_add_up(total: str, weights: list[int], parts: list[str]) -> None:
    split = split_largest_remainder(D(total), weights)
    assert [str(p) for p in split] == parts
    if weights:
        assert sum(split, D(0)) == D(total)


def test_negative_weights_are_refused() -> None:
    with pytest.raises(ValueError):
        split_largest_remainder(D("1.00"), [1, -1])


@settings(max_examples=200, deadline=None)
@given(
    cents=st.integers(-(10**9), 10**9),
    weights=st.lists(st.integers(0, 10**7), min_size=1, max_size=12),
)
def test_any_split_adds_up_to_the_cent(cents: int, weights: list[int]) -> None:
    total = D(cents) / 100
    split = split_largest_remainder(total, weights)
    assert sum(split, D(0)) == total
    assert all(part == to_cents(part) for part in split)
    if sum(weights):
        exact = [total * w / sum(weights) for w in weights]
        assert all(abs(part - share) < D("0.01") for part, share in zip(split, exact, strict=True))


# ---------------------------------------------------------------------------------------------
# Periods: calendar months in UTC, [start, end)


@pytest.mark.parametrize(
    ("label", "start", "end", "days"),
    [
        ("2024-04", utc(2024, 4, 1), utc(2024, 5, 1), 30),
        ("2024-01", utc(2024, 1, 1), utc(2024, 2, 1), 31),
        ("2028-02", utc(2028, 2, 1), utc(2028, 3, 1), 29),  # leap year
        ("2027-02", utc(2027, 2, 1), utc(2027, 3, 1), 28),
        ("2100-02", utc(2100, 2, 1), utc(2100, 3, 1), 28),  # divisible by 100: not a leap year
        ("2000-02", utc(2000, 2, 1), utc(2000, 3, 1), 29),  # divisible by 400: a leap year
        ("2024-12", utc(2024, 12, 1), utc(2025, 1, 1), 31),  # ends in the next year
    ],
    ids=["30-days", "31-days", "feb-2028-leap", "feb-2027", "feb-2100", "feb-2000", "december"],
)
def test_a_period_is_a_calendar_month_in_utc(
    label: str, start: datetime, end: datetime, days: int
) -> None:
    period = Period.parse(label)
    assert (period.label, period.start, period.end) == (label, start, end)
    assert period.seconds == days * 86_400


@pytest.mark.parametrize(
    ("moment", "label"),
    [
        # the last millisecond of a month belongs to it; the first instant of the next does not
        (utc(2024, 4, 30, 23, 59, 59, 999_000), "2024-04"),
        (utc(2024, 5, 1), "2024-05"),
        (utc(2024, 4, 30, 23, 59, 59, 999_999), "2024-04"),
        (utc(2028, 2, 29, 23, 59, 59, 999_000), "2028-02"),  # leap day
        (utc(2028, 3, 1), "2028-03"),
        (utc(2024, 12, 31, 23, 59, 59, 999_000), "2024-12"),  # new year's eve
        (utc(2025, 1, 1), "2025-01"),
        # another time zone is converted first: 23:30 at UTC-2 on April 30 is May 1, 01:30 UTC
        (datetime(2024, 4, 30, 23, 30, tzinfo=timezone(timedelta(hours=-2))), "2024-05"),
        (datetime(2024, 5, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))), "2024-04"),
    ],
    ids=[
        "last-ms-of-april",
        "first-instant-of-may",
        "last-us-of-april",
        "leap-day-last-ms",
        "march-2028",
        "new-years-eve",
        "new-year",
        "utc-minus-2",
        "utc-plus-2",
    ],
)
def test_the_period_containing_a_moment(moment: datetime, label: str) -> None:
    period = Period.containing(moment)
    assert period.label == label
    assert period.contains(moment.astimezone(UTC))


@pytest.mark.parametrize(
    ("label", "previous", "following"),
    [
        ("2024-01", "2023-12", "2024-02"),
        ("2024-12", "2024-11", "2025-01"),
        ("2028-02", "2028-01", "2028-03"),
    ],
    ids=["january", "december", "february"],
)
def test_previous_and_next_period(label: str, previous: str, following: str) -> None:
    period = Period.parse(label)
    assert (period.previous().label, period.next().label) == (previous, following)
    assert period.next().previous() == period


@pytest.mark.parametrize(
    "label",
    ["2024-13", "2024-00", "24-01", "2024/01", "", "2024-1"],
    ids=["month-13", "month-0", "short-year", "slash", "empty", "one-digit"],
)
def test_invalid_period_labels_are_refused(label: str) -> None:
    with pytest.raises(ValueError):
        Period.parse(label)


@pytest.mark.parametrize(
    ("now", "days"),
    [
        (utc(2024, 4, 1), 30),
        (utc(2024, 4, 30, 0, 0, 1), 1),  # a started day counts as left
        (utc(2024, 4, 29), 2),
        (utc(2024, 5, 1), 0),
        (utc(2024, 6, 1), 0),
    ],
    ids=["first-day", "last-day-started", "two-days", "ended", "long-ended"],
)
def test_remaining_days(now: datetime, days: int) -> None:
    assert Period(2024, 4).remaining_days(now) == days
