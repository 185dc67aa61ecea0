"""Billing math, worked out by hand (spec §1.2-§1.6). Each row is a case a finance person can
check with a calculator; the comment beside it is the arithmetic."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_svc.domain import catalog, rating
from billing_svc.domain.catalog import CustomTerms, MessageTier
from billing_svc.domain.money import split_largest_remainder, to_cents, to_units_nanos
from billing_svc.domain.periods import Period
from billing_svc.domain.rating import LateUsage, PeriodUsage, PlanSpan
from billing_svc.domain.subscriptions import ANNUAL, MONTHLY

D = Decimal
STARTUP, BUSINESS, ENTERPRISE = (catalog.plan(p) for p in ("startup", "business", "enterprise"))
APRIL = Period(2024, 4)  # 30 days
FEB_2028 = Period(2028, 2)  # 29 days: a leap year


def at(period: Period, day: int, hour: int = 0) -> datetime:
    return datetime(period.year, period.month, day, hour, tzinfo=UTC)


def whole(period: Period, terms: catalog.Terms, interval: str = MONTHLY) -> list[PlanSpan]:
    return [PlanSpan(period.start, period.end, terms, interval)]


def amounts(lines: list[rating.InvoiceLine]) -> list[tuple[str, str]]:
    return [(line.type, str(line.amount)) for line in lines]


@pytest.mark.parametrize(("terms", "usage", "expected", "total"), [
    # Startup, inside every allowance: the base fee only.
    (STARTUP, PeriodUsage(5000, 3, D(5)), [("base_fee", "99.00")], "99.00"),
    # Startup: 4 tenants (1 over x $29), 7,000 messages (2,000 x $0.05 = $100),
    # 8 GB-months (3 over x $2 = $6): 99 + 29 + 100 + 6.
    (STARTUP, PeriodUsage(7000, 4, D(8)),
     [("base_fee", "99.00"), ("tenant_overage", "29.00"), ("message_overage", "100.00"),
      ("storage_overage", "6.00")], "234.00"),
    # Business: 12 tenants (2 x $19 = $38), 30,000 messages (5,000 x $0.03 = $150),
    # 27.5 GB-months (2.5 x $1.50 = $3.75).
    (BUSINESS, PeriodUsage(30000, 12, D("27.5")),
     [("base_fee", "299.00"), ("tenant_overage", "38.00"), ("message_overage", "150.00"),
      ("storage_overage", "3.75")], "490.75"),
    # Enterprise: tenants unlimited; 100,001 messages (1 x $0.01); 100.333 GB-months
    # (0.333 x $1 = $0.333 -> $0.33).
    (ENTERPRISE, PeriodUsage(100_001, 500, D("100.333")),
     [("base_fee", "999.00"), ("message_overage", "0.01"), ("storage_overage", "0.33")],
     "999.34"),
    # Half-up rounding: 0.0025 GB-months over at $2 = $0.005 -> $0.01.
    (STARTUP, PeriodUsage(0, 0, D("5.0025")), [("base_fee", "99.00"),
                                              ("storage_overage", "0.01")], "99.01"),
], ids=["startup-included", "startup-overage", "business-overage", "enterprise", "half-up"])
def test_each_plan(terms: catalog.Terms, usage: PeriodUsage, expected: list, total: str) -> None:
    lines = rating.rate_period(APRIL, whole(APRIL, terms), usage)
    assert amounts(lines) == expected
    assert str(rating.invoice_total(lines)) == total


def test_upgrade_mid_period_prorates_by_the_second() -> None:
    # Startup for 15 of April's 30 days, then Business: 15/30 x 99 + 15/30 x 299 = 49.50 +
    # 149.50; Business (in force at the end) sets the allowances: 27,000 messages -> 2,000 x
    # $0.03 = $60.
    spans = [PlanSpan(APRIL.start, at(APRIL, 16), STARTUP, MONTHLY),
             PlanSpan(at(APRIL, 16), APRIL.end, BUSINESS, MONTHLY)]
    lines = rating.rate_period(APRIL, spans, PeriodUsage(27000, 2, D(0)))
    assert amounts(lines) == [("base_fee", "49.50"), ("base_fee", "149.50"),
                              ("message_overage", "60.00")]
    assert lines[0].quantity == D("0.5")


def test_downgrade_takes_effect_at_period_end_so_the_old_fee_is_whole() -> None:
    lines = rating.rate_period(APRIL, whole(APRIL, BUSINESS), PeriodUsage(26000, 2, D(0)))
    assert amounts(lines) == [("base_fee", "299.00"), ("message_overage", "30.00")]


def test_trial_ending_mid_period_charges_only_after_it() -> None:
    # Trial ends April 21 00:00: 10 of 30 days charged: 99 x 10/30 = 33.00. Tenant overage
    # (4 tenants, 1 over) is scaled the same way: 29 x 1/3 = 9.666.. -> 9.67. Messages are
    # counted after the trial by the caller: 6,000 -> 1,000 x $0.05 = $50.
    lines = rating.rate_period(APRIL, whole(APRIL, STARTUP), PeriodUsage(6000, 4, D(0)),
                               trial_end=at(APRIL, 21))
    assert amounts(lines) == [("base_fee", "33.00"), ("tenant_overage", "9.67"),
                              ("message_overage", "50.00")]


def test_a_trial_month_costs_nothing() -> None:
    lines = rating.rate_period(APRIL, whole(APRIL, STARTUP), PeriodUsage(0, 5, D(50)),
                               trial_end=at(APRIL, 30) + timedelta(days=5))
    assert lines == []


def test_february_of_a_leap_year() -> None:
    # Created Feb 15 00:00 2028: 15 of 29 days: 99 x 15/29 = 51.2068.. -> 51.21.
    lines = rating.rate_period(FEB_2028, whole(FEB_2028, STARTUP), PeriodUsage(0, 1, D(0)),
                               subscription_start=at(FEB_2028, 15))
    assert amounts(lines) == [("base_fee", "51.21")]
    assert FEB_2028.seconds == 29 * 86400


def test_custom_graduated_tiers() -> None:
    # Included 0; first 1M at $0.008, next 4M at $0.006, the rest at $0.004.
    # 6,500,000 messages: 8,000 + 24,000 + 1,500,000 x 0.004 = 6,000 -> $38,000.
    terms = catalog.effective_terms("custom", CustomTerms(
        base_fee=D("2500"), included_messages=0,
        message_tiers=(MessageTier(1_000_000, D("0.008")), MessageTier(5_000_000, D("0.006")),
                       MessageTier(None, D("0.004")))))
    lines = rating.rate_period(APRIL, whole(APRIL, terms), PeriodUsage(6_500_000, 1, D(0)))
    assert amounts(lines) == [("base_fee", "2500.00"), ("message_overage", "8000.00"),
                              ("message_overage", "24000.00"), ("message_overage", "6000.00")]
    assert [line.quantity for line in lines[1:]] == [D(1_000_000), D(4_000_000), D(1_500_000)]


def test_sub_cent_custom_rate() -> None:
    # $0.0075 a message, 1,001 messages over: 7.5075 -> 7.51
    terms = replace(ENTERPRISE, message_overage=D("0.0075"))
    lines = rating.rate_period(APRIL, whole(APRIL, terms), PeriodUsage(101_001, 1, D(0)))
    assert amounts(lines)[1] == ("message_overage", "7.51")


def test_late_usage_is_billed_for_what_it_adds_to_its_own_period() -> None:
    # March had 4,990 messages invoiced (10 under the 5,000 included); 40 arrive late:
    # 30 of them are overage: 30 x $0.05 = $1.50.
    late = [LateUsage("2024-03", 4990, 40, STARTUP)]
    lines = rating.rate_period(APRIL, whole(APRIL, STARTUP), PeriodUsage(0, 1, D(0)), late=late)
    assert amounts(lines) == [("base_fee", "99.00"), ("late_usage", "1.50")]
    assert lines[1].period == "2024-03" and "2024-03" in lines[1].description


def test_cancellation_at_period_end_bills_the_whole_period() -> None:
    lines = rating.rate_period(APRIL, whole(APRIL, STARTUP), PeriodUsage(0, 1, D(0)))
    assert amounts(lines) == [("base_fee", "99.00")]


def test_immediate_cancellation_bills_until_then() -> None:
    # Canceled April 10 12:00: 9.5 of 30 days: 99 x 9.5/30 = 31.35
    spans = [PlanSpan(APRIL.start, at(APRIL, 10, 12), STARTUP, MONTHLY)]
    assert amounts(rating.rate_period(APRIL, spans, PeriodUsage(0, 1, D(0)))) == [
        ("base_fee", "31.35")]


def test_annual_billing_in_the_anniversary_month_only() -> None:
    started = datetime(2024, 4, 1, tzinfo=UTC)
    spans = whole(APRIL, STARTUP, ANNUAL)
    assert amounts(rating.rate_period(APRIL, spans, PeriodUsage(0, 1, D(0)),
                                      subscription_start=started)) == [("base_fee", "990.00")]
    may = Period(2024, 5)
    assert rating.rate_period(may, whole(may, STARTUP, ANNUAL), PeriodUsage(0, 1, D(0)),
                              subscription_start=started) == []


def test_events_at_the_edges_of_a_month_fall_in_the_right_period() -> None:
    last_ms = APRIL.end - timedelta(milliseconds=1)
    assert Period.containing(last_ms) == APRIL
    assert Period.containing(APRIL.end) == APRIL.next()
    assert Period.containing(datetime(2028, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)) == FEB_2028


def test_credits_never_take_the_total_below_zero() -> None:
    lines = rating.rate_period(APRIL, whole(APRIL, STARTUP), PeriodUsage(0, 1, D(0)),
                               credits=[rating.Credit("goodwill", D("150"))])
    assert amounts(lines) == [("base_fee", "99.00"), ("credit", "-99.00")]
    assert rating.invoice_total(lines) == 0


@pytest.mark.parametrize(("total", "weights", "parts"), [
    ("199.00", [3000, 2500, 1500], ["85.29", "71.07", "42.64"]),
    ("0.10", [1, 1, 1], ["0.04", "0.03", "0.03"]),
    ("100.00", [0, 0], ["50.00", "50.00"]),
    ("-0.05", [1, 1], ["-0.03", "-0.02"]),
])
def test_largest_remainder_splits_add_up(total: str, weights: list[int], parts: list) -> None:
    split = split_largest_remainder(D(total), weights)
    assert [str(p) for p in split] == parts and sum(split) == D(total)


@pytest.mark.parametrize(("amount", "units", "nanos"), [
    ("842.00", 842, 0), ("0.0075", 0, 7_500_000), ("-1.25", -1, -250_000_000)])
def test_money_to_the_wire(amount: str, units: int, nanos: int) -> None:
    assert to_units_nanos(D(amount)) == (units, nanos)
    assert to_cents(D("0.005")) == D("0.01") and to_cents(D("-0.005")) == D("-0.01")


# ---------------------------------------------------------------------------------------------
# Properties

usage_strategy = st.builds(
    PeriodUsage, messages=st.integers(0, 10_000_000), active_tenants=st.integers(0, 500),
    storage_gb_months=st.decimals(min_value=0, max_value=100_000, places=9, allow_nan=False,
                                  allow_infinity=False))
plans = st.sampled_from([STARTUP, BUSINESS, ENTERPRISE])


@settings(max_examples=300, deadline=None)
@given(usage=usage_strategy, first=plans, second=plans,
       split_day=st.integers(1, 29), trial_day=st.none() | st.integers(1, 31))
def test_total_is_the_sum_of_cent_rounded_lines_and_nothing_is_a_float(
        usage: PeriodUsage, first: catalog.Terms, second: catalog.Terms, split_day: int,
        trial_day: int | None) -> None:
    period = FEB_2028
    cut = period.start + timedelta(days=split_day)
    spans = [PlanSpan(period.start, cut, first, MONTHLY), PlanSpan(cut, period.end, second,
                                                                   MONTHLY)]
    trial = period.start + timedelta(days=trial_day) if trial_day else None
    lines = rating.rate_period(period, spans, usage, trial_end=trial)
    total = rating.invoice_total(lines)
    assert total == sum((line.amount for line in lines), D(0)) >= 0
    for line in lines:
        assert line.amount == to_cents(line.amount) and line.amount != 0
        for value in (line.amount, line.unit_price, line.quantity):
            assert isinstance(value, Decimal) and not isinstance(value, float)
    assert [line.type for line in lines] == sorted(
        (line.type for line in lines), key=rating.LINE_ORDER.index)
