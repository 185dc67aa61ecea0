"""Billing math, worked out by hand (spec §1.2-§1.6).

Each row is an invoice a finance person can check with a calculator: the comment above it is the
arithmetic, the expected lines are ``(type, quantity, amount)`` exactly as the invoice shows them.
April 2024 has 30 days (2,592,000 seconds), February 2028 has 29, February 2027 has 28.
Catalog: Startup $99 (3 tenants, 5,000 messages, 5 GB; $29 / $0.05 / $2.00), Business $299 (10,
25,000, 25 GB; $19 / $0.03 / $1.50), Enterprise $999 (unlimited, 100,000, 100 GB; - / $0.01 /
$1.00).
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_svc.domain import catalog, rating
from billing_svc.domain.catalog import CustomTerms, MessageTier, Terms
from billing_svc.domain.money import to_cents
from billing_svc.domain.periods import Period
from billing_svc.domain.rating import Credit, InvoiceLine, LateUsage, PeriodUsage, PlanSpan
from billing_svc.domain.subscriptions import ANNUAL, MONTHLY

D = Decimal
STARTUP, BUSINESS, ENTERPRISE = (catalog.plan(p) for p in ("startup", "business", "enterprise"))
APRIL = Period(2024, 4)
MAY = Period(2024, 5)
FEB_2028 = Period(2028, 2)
FEB_2027 = Period(2027, 2)
TIERS = (
    MessageTier(1_000_000, D("0.008")),
    MessageTier(5_000_000, D("0.006")),
    MessageTier(None, D("0.004")),
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def custom(**overrides: Any) -> Terms:
    return catalog.effective_terms("custom", CustomTerms(**overrides))


def span(terms: Terms, start: datetime, end: datetime, interval: str = MONTHLY) -> PlanSpan:
    return PlanSpan(start, end, terms, interval)


def whole(period: Period, terms: Terms, interval: str = MONTHLY) -> list[PlanSpan]:
    return [span(terms, period.start, period.end, interval)]


def usage(messages: int = 0, tenants: int = 1, gb_months: str = "0") -> PeriodUsage:
    return PeriodUsage(messages=messages, active_tenants=tenants, storage_gb_months=D(gb_months))


def shown(lines: list[InvoiceLine]) -> list[tuple[str, str, str]]:
    return [(line.type, str(line.quantity), str(line.amount)) for line in lines]


def check(lines: list[InvoiceLine], expected: list[tuple[str, str, str]], total: str) -> None:
    assert shown(lines) == expected
    assert str(rating.invoice_total(lines)) == total


# ---------------------------------------------------------------------------------------------
# Each plan, a whole month, with and without overage


@pytest.mark.parametrize(
    ("terms", "period_usage", "expected", "total"),
    [
        # inside every allowance: the base fee only
        (STARTUP, usage(5000, 3, "5"), [("base_fee", "1", "99.00")], "99.00"),
        # 99 + (4 - 3) x 29 + (7,000 - 5,000) x 0.05 + (8 - 5) x 2 = 99 + 29 + 100 + 6
        (
            STARTUP,
            usage(7000, 4, "8"),
            [
                ("base_fee", "1", "99.00"),
                ("tenant_overage", "1", "29.00"),
                ("message_overage", "2000", "100.00"),
                ("storage_overage", "3", "6.00"),
            ],
            "234.00",
        ),
        (BUSINESS, usage(25000, 10, "25"), [("base_fee", "1", "299.00")], "299.00"),
        # 299 + 2 x 19 + 5,000 x 0.03 + 2.5 x 1.50 = 299 + 38 + 150 + 3.75
        (
            BUSINESS,
            usage(30000, 12, "27.5"),
            [
                ("base_fee", "1", "299.00"),
                ("tenant_overage", "2", "38.00"),
                ("message_overage", "5000", "150.00"),
                ("storage_overage", "2.5", "3.75"),
            ],
            "490.75",
        ),
        # tenants are unlimited on Enterprise: 500 tenants cost nothing extra
        (ENTERPRISE, usage(100_000, 500, "100"), [("base_fee", "1", "999.00")], "999.00"),
        # 999 + 1 x 0.01 + 0.333 x 1.00 = 999 + 0.01 + 0.333 (-> 0.33)
        (
            ENTERPRISE,
            usage(100_001, 500, "100.333"),
            [
                ("base_fee", "1", "999.00"),
                ("message_overage", "1", "0.01"),
                ("storage_overage", "0.333", "0.33"),
            ],
            "999.34",
        ),
        # negotiated: $1,500 a month, $0.0075 a message over 100,000:
        # 1,001 x 0.0075 = 7.5075 -> 7.51
        (
            custom(base_fee=D("1500"), message_overage=D("0.0075")),
            usage(101_001, 40, "0"),
            [("base_fee", "1", "1500.00"), ("message_overage", "1001", "7.51")],
            "1507.51",
        ),
        # negotiated six-decimal storage rate: 1,000 GB-months over x $0.012345 = 12.345 -> 12.35
        (
            custom(storage_overage_per_gb=D("0.012345")),
            usage(0, 1, "1100"),
            [("base_fee", "1", "999.00"), ("storage_overage", "1000", "12.35")],
            "1011.35",
        ),
        # half-up: 0.0025 GB-months over x $2 = 0.005 -> 0.01
        (
            STARTUP,
            usage(0, 1, "5.0025"),
            [("base_fee", "1", "99.00"), ("storage_overage", "0.0025", "0.01")],
            "99.01",
        ),
        # under half a cent: 0.002 x $2 = 0.004 -> 0.00, and a zero line is left out
        (STARTUP, usage(0, 1, "5.002"), [("base_fee", "1", "99.00")], "99.00"),
    ],
    ids=[
        "startup-included",
        "startup-overage",
        "business-included",
        "business-overage",
        "enterprise-included",
        "enterprise-overage",
        "custom-sub-cent-rate",
        "custom-six-decimal-storage",
        "half-up-to-a-cent",
        "below-half-a-cent",
    ],
)
def test_each_plan_for_a_whole_month(
    terms: Terms, period_usage: PeriodUsage, expected: list[tuple[str, str, str]], total: str
) -> None:
    check(rating.rate_period(APRIL, whole(APRIL, terms), period_usage), expected, total)


# ---------------------------------------------------------------------------------------------
# Plan changes, trials, accounts created mid-month, cancellations


@pytest.mark.parametrize(
    ("period", "spans", "period_usage", "options", "expected", "total"),
    [
        # Upgrade Startup -> Business on April 16 00:00: 15/30 x 99 + 15/30 x 299 = 49.50 + 149.50.
        # Business is in force at the end, so its allowances apply: (27,000 - 25,000) x 0.03 = 60.
        (
            APRIL,
            [
                span(STARTUP, APRIL.start, utc(2024, 4, 16)),
                span(BUSINESS, utc(2024, 4, 16), APRIL.end),
            ],
            usage(27_000, 2),
            {},
            [
                ("base_fee", "0.5", "49.50"),
                ("base_fee", "0.5", "149.50"),
                ("message_overage", "2000", "60.00"),
            ],
            "259.00",
        ),
        # Upgrade on April 10 at 12:00: 9.5/30 x 99 = 31.35; 20.5/30 x 299 = 204.3166.. -> 204.32.
        # The quantities 0.31666.. and 0.68333.. are shown to 9 places.
        (
            APRIL,
            [
                span(STARTUP, APRIL.start, utc(2024, 4, 10, 12)),
                span(BUSINESS, utc(2024, 4, 10, 12), APRIL.end),
            ],
            usage(),
            {},
            [("base_fee", "0.316666667", "31.35"), ("base_fee", "0.683333333", "204.32")],
            "235.67",
        ),
        # Upgrade at the last millisecond of April:
        # Startup 99 x 2,591,999.999/2,592,000 = 98.99999996 -> 99.00 (quantity 0.99999999961 ->
        # 1.000000000); Business 299 x 0.001/2,592,000 -> 0.00, left out. Business still sets the
        # allowances: 2,000 x 0.03 = 60.
        (
            APRIL,
            [
                span(STARTUP, APRIL.start, APRIL.end - timedelta(milliseconds=1)),
                span(BUSINESS, APRIL.end - timedelta(milliseconds=1), APRIL.end),
            ],
            usage(27_000, 2),
            {},
            [("base_fee", "1.000000000", "99.00"), ("message_overage", "2000", "60.00")],
            "159.00",
        ),
        # A downgrade takes effect at the period's end: April is whole Business;
        # 1,000 x 0.03 = 30.
        (
            APRIL,
            whole(APRIL, BUSINESS),
            usage(26_000, 2),
            {},
            [("base_fee", "1", "299.00"), ("message_overage", "1000", "30.00")],
            "329.00",
        ),
        # ... and May is whole Startup, with Startup's allowances: 21,000 x 0.05 = 1,050.
        (
            MAY,
            whole(MAY, STARTUP),
            usage(26_000, 2),
            {},
            [("base_fee", "1", "99.00"), ("message_overage", "21000", "1050.00")],
            "1149.00",
        ),
        # Created April 7, trial until April 21 00:00: 10 of 30 days are charged: 99 x 1/3 = 33.
        # Tenant overage is prorated the same way: 1 x 29 x 1/3 = 9.666.. -> 9.67.
        # The caller counts messages and GB-months after the trial only: 6,000 -> 1,000 x 0.05 = 50;
        # 7 GB-months -> 2 x 2 = 4.
        (
            APRIL,
            [span(STARTUP, utc(2024, 4, 7), APRIL.end)],
            usage(6000, 4, "7"),
            {"subscription_start": utc(2024, 4, 7), "trial_end": utc(2024, 4, 21)},
            [
                ("base_fee", "0.333333333", "33.00"),
                ("tenant_overage", "0.333333333", "9.67"),
                ("message_overage", "1000", "50.00"),
                ("storage_overage", "2", "4.00"),
            ],
            "96.67",
        ),
        # A month entirely inside the trial costs nothing, whatever the usage.
        (
            APRIL,
            whole(APRIL, STARTUP),
            usage(9000, 5, "50"),
            {"trial_end": utc(2024, 5, 5)},
            [],
            "0",
        ),
        # A trial ending exactly at the period's end: still nothing.
        (APRIL, whole(APRIL, STARTUP), usage(0, 5), {"trial_end": APRIL.end}, [], "0"),
        # Created February 15 2028 (leap year: 29 days): 15/29 of the month.
        # 99 x 15/29 = 51.2068.. -> 51.21; tenant 29 x 15/29 = 15.00 exactly.
        (
            FEB_2028,
            [span(STARTUP, utc(2028, 2, 15), FEB_2028.end)],
            usage(0, 4),
            {"subscription_start": utc(2028, 2, 15)},
            [("base_fee", "0.517241379", "51.21"), ("tenant_overage", "0.517241379", "15.00")],
            "66.21",
        ),
        # Upgrade on February 15 2028: 99 x 14/29 = 47.7931.. -> 47.79; 299 x 15/29 = 154.6551..
        # -> 154.66.
        (
            FEB_2028,
            [
                span(STARTUP, FEB_2028.start, utc(2028, 2, 15)),
                span(BUSINESS, utc(2028, 2, 15), FEB_2028.end),
            ],
            usage(),
            {},
            [("base_fee", "0.482758621", "47.79"), ("base_fee", "0.517241379", "154.66")],
            "202.45",
        ),
        # The same upgrade in February 2027 (28 days) splits evenly: 49.50 + 149.50.
        (
            FEB_2027,
            [
                span(STARTUP, FEB_2027.start, utc(2027, 2, 15)),
                span(BUSINESS, utc(2027, 2, 15), FEB_2027.end),
            ],
            usage(),
            {},
            [("base_fee", "0.5", "49.50"), ("base_fee", "0.5", "149.50")],
            "199.00",
        ),
        # Cancel at period end: the span runs to the period's end; the whole period is billed.
        (
            APRIL,
            whole(APRIL, STARTUP),
            usage(6000, 1),
            {},
            [("base_fee", "1", "99.00"), ("message_overage", "1000", "50.00")],
            "149.00",
        ),
        # Canceled at once on April 10 12:00: 99 x 9.5/30 = 31.35; tenants 29 x 9.5/30 = 9.1833..
        # -> 9.18.
        (
            APRIL,
            [span(STARTUP, APRIL.start, utc(2024, 4, 10, 12))],
            usage(0, 4),
            {},
            [("base_fee", "0.316666667", "31.35"), ("tenant_overage", "0.316666667", "9.18")],
            "40.53",
        ),
    ],
    ids=[
        "upgrade-on-the-16th",
        "upgrade-at-noon",
        "upgrade-at-the-last-millisecond",
        "downgrade-keeps-the-old-plan",
        "downgrade-next-period",
        "trial-ends-mid-month",
        "whole-month-in-trial",
        "trial-ends-at-period-end",
        "created-mid-february-2028",
        "upgrade-february-2028",
        "upgrade-february-2027",
        "cancel-at-period-end",
        "canceled-at-once",
    ],
)
def test_plan_changes_trials_and_cancellations(
    period: Period,
    spans: list[PlanSpan],
    period_usage: PeriodUsage,
    options: dict[str, Any],
    expected: list[tuple[str, str, str]],
    total: str,
) -> None:
    check(rating.rate_period(period, spans, period_usage, **options), expected, total)


def test_base_fee_lines_name_the_plan_and_the_dates() -> None:
    spans = [
        span(STARTUP, APRIL.start, utc(2024, 4, 16)),
        span(BUSINESS, utc(2024, 4, 16), APRIL.end),
    ]
    first, second = rating.rate_period(APRIL, spans, usage())
    assert first.description == (
        "Startup plan, 2024-04-01 00:00 to 2024-04-16 00:00 UTC (1,296,000 of 2,592,000 seconds)"
    )
    assert second.description.startswith("Business plan, 2024-04-16 00:00 to 2024-05-01 00:00")
    assert first.unit_price == D("99.00") and second.unit_price == D("299.00")
    full = rating.rate_period(APRIL, whole(APRIL, STARTUP), usage())[0]
    assert full.description == "Startup plan, 2024-04"


def test_an_event_at_the_last_millisecond_belongs_to_its_month() -> None:
    # 5,000 messages early in April, then one at April's last millisecond and one at May's
    # first instant. April: 5,001 -> 1 x 0.05 over; May: 1 message, inside the allowance.
    events = [(utc(2024, 4, 2), 5000), (APRIL.end - timedelta(milliseconds=1), 1), (MAY.start, 1)]
    per_period: dict[Period, int] = {}
    for occurred_at, count in events:
        period = Period.containing(occurred_at)
        per_period[period] = per_period.get(period, 0) + count
    assert per_period == {APRIL: 5001, MAY: 1}
    check(
        rating.rate_period(APRIL, whole(APRIL, STARTUP), usage(per_period[APRIL])),
        [("base_fee", "1", "99.00"), ("message_overage", "1", "0.05")],
        "99.05",
    )
    check(
        rating.rate_period(MAY, whole(MAY, STARTUP), usage(per_period[MAY])),
        [("base_fee", "1", "99.00")],
        "99.00",
    )


# ---------------------------------------------------------------------------------------------
# Annual billing: 10 x the monthly fee, whole, in the month each subscription year starts

YEAR_START = utc(2024, 4, 1)
OCTOBER = Period(2024, 10)
STARTUP_YEAR = span(STARTUP, YEAR_START, utc(2024, 10, 16), ANNUAL)


@pytest.mark.parametrize(
    ("period", "spans", "period_usage", "options", "expected", "total"),
    [
        # Subscribed April 1 2024: April's invoice carries the year, 10 x 99 = 990.
        (
            APRIL,
            whole(APRIL, STARTUP, ANNUAL),
            usage(),
            {"subscription_start": YEAR_START},
            [("base_fee", "1", "990.00")],
            "990.00",
        ),
        # May: no base fee; monthly allowances still apply: 1,000 x 0.05 = 50.
        (
            MAY,
            whole(MAY, STARTUP, ANNUAL),
            usage(6000),
            {"subscription_start": YEAR_START},
            [("message_overage", "1000", "50.00")],
            "50.00",
        ),
        # April 2025: the second year, 990 again.
        (
            Period(2025, 4),
            whole(Period(2025, 4), STARTUP, ANNUAL),
            usage(),
            {"subscription_start": YEAR_START},
            [("base_fee", "1", "990.00")],
            "990.00",
        ),
        # Subscribed April 10 12:00: the year runs from then; the whole 990, not prorated.
        (
            APRIL,
            [span(STARTUP, utc(2024, 4, 10, 12), APRIL.end, ANNUAL)],
            usage(),
            {"subscription_start": utc(2024, 4, 10, 12)},
            [("base_fee", "1", "990.00")],
            "990.00",
        ),
        # Business, created January 10 2024, 30-day trial to February 9: January is free ...
        (
            Period(2024, 1),
            [span(BUSINESS, utc(2024, 1, 10), Period(2024, 1).end, ANNUAL)],
            usage(),
            {"subscription_start": utc(2024, 1, 10), "trial_end": utc(2024, 2, 9)},
            [],
            "0",
        ),
        # ... and the paid year starts with the trial's end: February carries 10 x 299 = 2,990.
        (
            Period(2024, 2),
            whole(Period(2024, 2), BUSINESS, ANNUAL),
            usage(),
            {"subscription_start": utc(2024, 1, 10), "trial_end": utc(2024, 2, 9)},
            [("base_fee", "1", "2990.00")],
            "2990.00",
        ),
        # Upgrade to Business on October 16 2024, in the year April 1 2024 - April 1 2025 (365
        # days); 167 days are left (16 + 30 + 31 + 31 + 28 + 31). The difference of the yearly
        # fees, 2,990 - 990 = 2,000, x 167/365 = 915.068.. -> 915.07. Business's allowances apply
        # to October: 5,000 x 0.03 = 150.
        (
            OCTOBER,
            [STARTUP_YEAR, span(BUSINESS, utc(2024, 10, 16), OCTOBER.end, ANNUAL)],
            usage(30_000, 2),
            {"subscription_start": YEAR_START},
            [("base_fee", "0.457534247", "915.07"), ("message_overage", "5000", "150.00")],
            "1065.07",
        ),
        # The same upgrade on October 1 00:00, with the span before the period given:
        # 182 days left (31 + 30 + 31 + 31 + 28 + 31): 2,000 x 182/365 = 997.260.. -> 997.26.
        (
            OCTOBER,
            [
                span(STARTUP, YEAR_START, OCTOBER.start, ANNUAL),
                span(BUSINESS, OCTOBER.start, OCTOBER.end, ANNUAL),
            ],
            usage(),
            {"subscription_start": YEAR_START},
            [("base_fee", "0.498630137", "997.26")],
            "997.26",
        ),
        # Downgraded back to Startup at October's end: no refund, and nothing until April 2025.
        (
            Period(2024, 11),
            [
                span(BUSINESS, utc(2024, 10, 16), Period(2024, 11).start, ANNUAL),
                span(STARTUP, Period(2024, 11).start, Period(2024, 11).end, ANNUAL),
            ],
            usage(),
            {"subscription_start": YEAR_START},
            [],
            "0",
        ),
        # Switch from monthly to annual on June 16 2024: 15 days monthly, 15/30 x 99 = 49.50;
        # then a new subscription year starts at the switch: the whole 990; 49.50 + 990 = 1,039.50.
        (
            Period(2024, 6),
            [
                span(STARTUP, utc(2024, 6, 1), utc(2024, 6, 16)),
                span(STARTUP, utc(2024, 6, 16), utc(2024, 7, 1), ANNUAL),
            ],
            usage(),
            {"subscription_start": YEAR_START},
            [("base_fee", "0.5", "49.50"), ("base_fee", "1", "990.00")],
            "1039.50",
        ),
        # ... and renews on June 16 2025, not on the account's anniversary (April 1).
        (
            Period(2025, 4),
            [
                span(STARTUP, utc(2024, 6, 1), utc(2024, 6, 16)),
                span(STARTUP, utc(2024, 6, 16), Period(2025, 4).end, ANNUAL),
            ],
            usage(),
            {"subscription_start": YEAR_START},
            [],
            "0",
        ),
        (
            Period(2025, 6),
            [
                span(STARTUP, utc(2024, 6, 1), utc(2024, 6, 16)),
                span(STARTUP, utc(2024, 6, 16), Period(2025, 6).end, ANNUAL),
            ],
            usage(),
            {"subscription_start": YEAR_START},
            [("base_fee", "1", "990.00")],
            "990.00",
        ),
        # A year started on February 29 2028 renews on February 28 in 2029.
        (
            Period(2029, 2),
            whole(Period(2029, 2), STARTUP, ANNUAL),
            usage(),
            {"subscription_start": utc(2028, 2, 29)},
            [("base_fee", "1", "990.00")],
            "990.00",
        ),
        # Canceled at once mid-year: the prepaid year is not refunded, and nothing more is due.
        (
            MAY,
            [span(STARTUP, MAY.start, utc(2024, 5, 10), ANNUAL)],
            usage(),
            {"subscription_start": YEAR_START},
            [],
            "0",
        ),
    ],
    ids=[
        "anniversary-month",
        "other-month",
        "next-anniversary",
        "subscribed-mid-month",
        "annual-in-trial",
        "annual-after-trial",
        "upgrade-mid-year",
        "upgrade-at-period-start",
        "downgrade-mid-year",
        "monthly-to-annual",
        "monthly-to-annual-no-renewal-at-the-old-anniversary",
        "monthly-to-annual-renewal",
        "leap-day-anniversary",
        "canceled-mid-year",
    ],
)
def test_annual_billing(
    period: Period,
    spans: list[PlanSpan],
    period_usage: PeriodUsage,
    options: dict[str, Any],
    expected: list[tuple[str, str, str]],
    total: str,
) -> None:
    check(rating.rate_period(period, spans, period_usage, **options), expected, total)


def test_annual_lines_name_the_subscription_year() -> None:
    (line,) = rating.rate_period(
        Period(2029, 2),
        whole(Period(2029, 2), STARTUP, ANNUAL),
        usage(),
        subscription_start=utc(2028, 2, 29),
    )
    assert "2029-02-28 00:00 to 2030-02-28 00:00" in line.description
    assert line.unit_price == D("990.00")


def test_annual_billing_needs_to_know_when_the_years_start() -> None:
    with pytest.raises(ValueError, match="anniversary"):
        rating.rate_period(APRIL, whole(APRIL, STARTUP, ANNUAL), usage())
    # an explicit anniversary (the start of the annual years) works without a subscription start
    lines = rating.rate_period(
        APRIL, whole(APRIL, STARTUP, ANNUAL), usage(), anniversary=utc(2023, 4, 20)
    )
    assert shown(lines) == [("base_fee", "1", "990.00")]


# ---------------------------------------------------------------------------------------------
# Custom graduated tiers: first 1M at $0.008, next 4M at $0.006, the rest at $0.004


@pytest.mark.parametrize(
    ("terms", "messages", "expected", "total"),
    [
        # Nothing included; 6,500,000 messages: 1,000,000 x 0.008 = 8,000; 4,000,000 x 0.006 =
        # 24,000; 1,500,000 x 0.004 = 6,000. With the $2,500 fee: 40,500.
        (
            custom(base_fee=D(2500), included_messages=0, message_tiers=TIERS),
            6_500_000,
            [
                ("base_fee", "1", "2500.00"),
                ("message_overage", "1000000", "8000.00"),
                ("message_overage", "4000000", "24000.00"),
                ("message_overage", "1500000", "6000.00"),
            ],
            "40500.00",
        ),
        # 100,000 included: 1,100,000 messages put 1,000,000 into the first tier only: 8,000.
        (
            custom(base_fee=D(2500), included_messages=100_000, message_tiers=TIERS),
            1_100_000,
            [("base_fee", "1", "2500.00"), ("message_overage", "1000000", "8000.00")],
            "10500.00",
        ),
        # Exactly at a tier bound: 5,000,000 fill the first two tiers: 8,000 + 24,000.
        (
            custom(base_fee=D(2500), included_messages=0, message_tiers=TIERS),
            5_000_000,
            [
                ("base_fee", "1", "2500.00"),
                ("message_overage", "1000000", "8000.00"),
                ("message_overage", "4000000", "24000.00"),
            ],
            "34500.00",
        ),
        # One message past the first bound: 8,000 + 1 x 0.006 (-> 0.01).
        (
            custom(base_fee=D(2500), included_messages=0, message_tiers=TIERS),
            1_000_001,
            [
                ("base_fee", "1", "2500.00"),
                ("message_overage", "1000000", "8000.00"),
                ("message_overage", "1", "0.01"),
            ],
            "10500.01",
        ),
        # Inside the included amount: no message line.
        (
            custom(base_fee=D(2500), included_messages=100_000, message_tiers=TIERS),
            90_000,
            [("base_fee", "1", "2500.00")],
            "2500.00",
        ),
        # A bounded last tier takes the rest: 1,000,000 x 0.008 + 2,000,000 x 0.006 = 20,000.
        (
            custom(
                base_fee=D(2500),
                included_messages=0,
                message_tiers=(
                    MessageTier(1_000_000, D("0.008")),
                    MessageTier(2_000_000, D("0.006")),
                ),
            ),
            3_000_000,
            [
                ("base_fee", "1", "2500.00"),
                ("message_overage", "1000000", "8000.00"),
                ("message_overage", "2000000", "12000.00"),
            ],
            "22500.00",
        ),
        # Each tier line is rounded on its own: 10 x 0.0075 = 0.075 -> 0.08; 1 x 0.0025 = 0.0025
        # -> 0.00, left out.
        (
            custom(
                base_fee=D(100),
                included_messages=0,
                message_tiers=(MessageTier(10, D("0.0075")), MessageTier(None, D("0.0025"))),
            ),
            11,
            [("base_fee", "1", "100.00"), ("message_overage", "10", "0.08")],
            "100.08",
        ),
    ],
    ids=[
        "three-tiers",
        "first-tier-only",
        "at-a-tier-bound",
        "one-past-a-bound",
        "within-included",
        "bounded-last-tier",
        "rounded-per-tier",
    ],
)
def test_custom_graduated_tiers(
    terms: Terms, messages: int, expected: list[tuple[str, str, str]], total: str
) -> None:
    check(rating.rate_period(APRIL, whole(APRIL, terms), usage(messages)), expected, total)


def test_tier_lines_name_their_range() -> None:
    terms = custom(included_messages=0, message_tiers=TIERS)
    lines = rating.rate_period(APRIL, whole(APRIL, terms), usage(6_500_000))
    assert [line.unit_price for line in lines[1:]] == [D("0.008"), D("0.006"), D("0.004")]
    assert "overage messages 1-1,000,000" in lines[1].description
    assert "overage messages 1,000,001-5,000,000" in lines[2].description
    assert "overage messages 5,000,001 and above" in lines[3].description


@pytest.mark.parametrize(
    ("messages", "parts"),
    [
        (0, []),
        (999_999, [(999_999, "0.008", "7999.992")]),
        (2_500_000, [(1_000_000, "0.008", "8000.000"), (1_500_000, "0.006", "9000.000")]),
        (
            5_000_001,
            [
                (1_000_000, "0.008", "8000.000"),
                (4_000_000, "0.006", "24000.000"),
                (1, "0.004", "0.004"),
            ],
        ),
    ],
    ids=["none", "inside-first", "two-tiers", "into-the-last"],
)
def test_graduated_charge_is_exact(messages: int, parts: list[tuple[int, str, str]]) -> None:
    assert rating.graduated_charge(messages, TIERS) == [(q, D(p), D(a)) for q, p, a in parts]


@pytest.mark.parametrize(
    ("terms", "messages", "amount"),
    [
        (STARTUP, 4999, "0"),
        (STARTUP, 5001, "0.05"),
        (ENTERPRISE, 100_003, "0.03"),
        (custom(included_messages=0, message_tiers=TIERS), 1_000_003, "8000.018"),
        (custom(message_overage=D("0.0075")), 100_001, "0.0075"),
    ],
    ids=["under", "one-over", "enterprise", "tiers", "sub-cent-unrounded"],
)
def test_message_overage_is_exact_and_unrounded(terms: Terms, messages: int, amount: str) -> None:
    assert rating.message_overage(messages, terms) == D(amount)


# ---------------------------------------------------------------------------------------------
# Late usage: billed on the next invoice, for what it adds to its own period


@pytest.mark.parametrize(
    ("late", "expected", "total"),
    [
        # March invoiced 4,990 (10 under the 5,000 included); 40 arrive late: 30 are overage:
        # 30 x 0.05 = 1.50.
        (
            [LateUsage("2024-03", 4990, 40, STARTUP)],
            [("base_fee", "1", "99.00"), ("late_usage", "30", "1.50")],
            "100.50",
        ),
        # March invoiced exactly the 5,000 included; 40 late: 40 x 0.05 = 2.00.
        (
            [LateUsage("2024-03", 5000, 40, STARTUP)],
            [("base_fee", "1", "99.00"), ("late_usage", "40", "2.00")],
            "101.00",
        ),
        # Still inside the allowance: 100 + 40: no charge, no line.
        ([LateUsage("2024-03", 100, 40, STARTUP)], [("base_fee", "1", "99.00")], "99.00"),
        # Two late periods, oldest first, each under its own period's terms:
        # February (Business) 25,000 + 100: 100 x 0.03 = 3.00; March (Startup) 5,000 + 10: 0.50.
        (
            [LateUsage("2024-03", 5000, 10, STARTUP), LateUsage("2024-02", 25_000, 100, BUSINESS)],
            [
                ("base_fee", "1", "99.00"),
                ("late_usage", "100", "3.00"),
                ("late_usage", "10", "0.50"),
            ],
            "102.50",
        ),
        # Tiers: 999,990 invoiced, 20 late: 10 x 0.008 + 10 x 0.006 = 0.08 + 0.06 = 0.14.
        (
            [LateUsage("2024-03", 999_990, 20, custom(included_messages=0, message_tiers=TIERS))],
            [("base_fee", "1", "99.00"), ("late_usage", "20", "0.14")],
            "99.14",
        ),
    ],
    ids=["partly-included", "all-overage", "within-included", "two-periods", "across-tiers"],
)
def test_late_usage(
    late: list[LateUsage], expected: list[tuple[str, str, str]], total: str
) -> None:
    check(rating.rate_period(APRIL, whole(APRIL, STARTUP), usage(), late=late), expected, total)


def test_a_late_line_names_its_period() -> None:
    lines = rating.rate_period(
        APRIL, whole(APRIL, STARTUP), usage(), late=[LateUsage("2024-03", 4990, 40, STARTUP)]
    )
    assert lines[1].period == "2024-03"
    assert lines[1].description.startswith(
        "40 messages of 2024-03 received after it was invoiced, 30 of them over the 5,000 included"
    )
    assert lines[1].unit_price == D("0.05")
    tiered = rating.rate_period(
        APRIL,
        whole(APRIL, STARTUP),
        usage(),
        late=[LateUsage("2024-03", 999_990, 20, custom(included_messages=0, message_tiers=TIERS))],
    )
    assert tiered[1].unit_price == D("0.007")  # 0.14 / 20, the average of the tiers touched


def test_late_usage_is_still_billed_after_the_subscription_ended() -> None:
    # canceled in March; April's invoice has no span, only the late line
    lines = rating.rate_period(
        APRIL, [], usage(0, 0), late=[LateUsage("2024-03", 5000, 40, STARTUP)]
    )
    assert shown(lines) == [("late_usage", "40", "2.00")]


# ---------------------------------------------------------------------------------------------
# Credits: negative lines, never taking the total below zero


@pytest.mark.parametrize(
    ("credits", "expected", "total"),
    [
        (
            [Credit("goodwill", D(10))],
            [("base_fee", "1", "99.00"), ("credit", "1", "-10.00")],
            "89.00",
        ),
        # capped at the invoice: 150 offered, 99 applied
        (
            [Credit("goodwill", D(150))],
            [("base_fee", "1", "99.00"), ("credit", "1", "-99.00")],
            "0.00",
        ),
        # in order: 60, then what is left, 39
        (
            [Credit("goodwill", D(60)), Credit("refund", D(60))],
            [("base_fee", "1", "99.00"), ("credit", "1", "-60.00"), ("credit", "1", "-39.00")],
            "0.00",
        ),
        # a half cent rounds up like any line: 0.005 -> 0.01
        (
            [Credit("goodwill", D("0.005"))],
            [("base_fee", "1", "99.00"), ("credit", "1", "-0.01")],
            "98.99",
        ),
    ],
    ids=["credit", "capped", "two-credits", "half-cent"],
)
def test_credits(credits: list[Credit], expected: list[tuple[str, str, str]], total: str) -> None:
    check(
        rating.rate_period(APRIL, whole(APRIL, STARTUP), usage(), credits=credits), expected, total
    )


def test_a_capped_credit_says_so() -> None:
    lines = rating.rate_period(
        APRIL, whole(APRIL, STARTUP), usage(), credits=[Credit("goodwill", D(150))]
    )
    assert lines[1].description == (
        "goodwill (150.00 credit, 99.00 applied: capped at the invoice total)"
    )


# ---------------------------------------------------------------------------------------------
# Refused input


@pytest.mark.parametrize(
    ("spans", "period_usage", "options"),
    [
        (
            [
                span(STARTUP, APRIL.start, utc(2024, 4, 20)),
                span(BUSINESS, utc(2024, 4, 10), APRIL.end),
            ],
            usage(),
            {},
        ),
        ([span(STARTUP, utc(2024, 4, 20), utc(2024, 4, 10))], usage(), {}),
        ([PlanSpan(datetime(2024, 4, 1), datetime(2024, 5, 1), STARTUP, MONTHLY)], usage(), {}),
        ([span(STARTUP, APRIL.start, APRIL.end, "weekly")], usage(), {}),
        (whole(APRIL, STARTUP), usage(-1), {}),
        (whole(APRIL, STARTUP), usage(), {"credits": [Credit("charge", D(-5))]}),
        (
            whole(APRIL, STARTUP),
            usage(),
            {"late": [LateUsage("2024-03", 1, 1, STARTUP), LateUsage("2024-03", 2, 2, STARTUP)]},
        ),
        (whole(APRIL, STARTUP), usage(), {"late": [LateUsage("March", 1, 1, STARTUP)]}),
    ],
    ids=[
        "overlapping-spans",
        "backwards-span",
        "naive-datetimes",
        "unknown-interval",
        "negative-usage",
        "negative-credit",
        "late-period-twice",
        "bad-late-period",
    ],
)
def test_invalid_input_is_refused(
    spans: list[PlanSpan], period_usage: PeriodUsage, options: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        rating.rate_period(APRIL, spans, period_usage, **options)


@pytest.mark.parametrize(
    "tiers",
    [
        (),
        (MessageTier(None, D("0.01")), MessageTier(10, D("0.01"))),
        (MessageTier(10, D("0.01")), MessageTier(10, D("0.01"))),
        (MessageTier(10, D("-0.01")),),
    ],
    ids=["no-tiers", "unbounded-first", "not-increasing", "negative-price"],
)
def test_invalid_tiers_are_refused(tiers: tuple[MessageTier, ...]) -> None:
    with pytest.raises(ValueError):
        rating.graduated_charge(5, tiers)


# ---------------------------------------------------------------------------------------------
# Properties

TIERED = custom(
    base_fee=D("1234.567"),
    included_messages=50_000,
    message_tiers=TIERS,
    storage_overage_per_gb=D("0.123456"),
    tenant_overage=D("7.77"),
    included_tenants=2,
)
any_terms = st.sampled_from(
    [STARTUP, BUSINESS, ENTERPRISE, TIERED, replace(STARTUP, message_overage=D("0.0075"))]
)
usage_strategy = st.builds(
    PeriodUsage,
    messages=st.integers(0, 10_000_000),
    active_tenants=st.integers(0, 500),
    storage_gb_months=st.decimals(
        min_value=0, max_value=100_000, places=9, allow_nan=False, allow_infinity=False
    ),
)
PERIOD_US = FEB_2028.seconds * 10**6
instants = st.integers(0, PERIOD_US).map(lambda us: FEB_2028.start + timedelta(microseconds=us))


@st.composite
def span_lists(draw: st.DrawFn) -> list[PlanSpan]:
    cuts = sorted(draw(st.lists(instants, max_size=3)))
    bounds = [FEB_2028.start, *cuts, draw(st.sampled_from([FEB_2028.end, *cuts[-1:]]))]
    bounds = sorted(bounds)
    return [
        span(
            draw(any_terms),
            bounds[i],
            bounds[i + 1],
            draw(st.sampled_from([MONTHLY, MONTHLY, ANNUAL])),
        )
        for i in range(len(bounds) - 1)
    ]


late_strategy = st.lists(
    st.builds(
        LateUsage,
        st.sampled_from(["2027-11", "2027-12", "2028-01"]),
        st.integers(0, 200_000),
        st.integers(0, 10_000),
        any_terms,
    ),
    max_size=3,
    unique_by=lambda item: item.period,
)
credit_strategy = st.lists(
    st.builds(
        Credit,
        st.just("credit"),
        st.decimals(
            min_value=D("0.01"), max_value=5000, places=3, allow_nan=False, allow_infinity=False
        ),
    ),
    max_size=2,
)


def assert_no_float(value: object) -> None:
    assert not isinstance(value, float), value
    if isinstance(value, (int, Decimal, str)) or value is None:
        return
    for field in fields(value):  # type: ignore[arg-type]
        assert_no_float(getattr(value, field.name))


@settings(max_examples=300, deadline=None)
@given(
    spans=span_lists(),
    period_usage=usage_strategy,
    trial=st.none() | instants,
    start=st.none() | instants,
    late=late_strategy,
    credits=credit_strategy,
)
def test_any_invoice_adds_up_to_the_cent_without_a_float(
    spans: list[PlanSpan],
    period_usage: PeriodUsage,
    trial: datetime | None,
    start: datetime | None,
    late: list[LateUsage],
    credits: list[Credit],
) -> None:
    lines = rating.rate_period(
        FEB_2028,
        spans,
        period_usage,
        trial_end=trial,
        subscription_start=start,
        anniversary=utc(2027, 2, 10),
        late=late,
        credits=credits,
    )
    total = rating.invoice_total(lines)
    assert total == sum((line.amount for line in lines), D(0))
    assert total >= 0
    for line in lines:
        assert_no_float(line)
        for number in (line.quantity, line.unit_price, line.amount):
            assert type(number) is Decimal
        assert line.amount != 0 and line.amount == to_cents(line.amount)
        assert line.amount.as_tuple().exponent == -2
        assert line.quantity > 0
        assert (line.amount < 0) == (line.type == "credit")
    assert [line.type for line in lines] == sorted(
        (line.type for line in lines), key=rating.LINE_ORDER.index
    )


@settings(max_examples=200, deadline=None)
@given(cut=instants, terms=any_terms)
def test_splitting_a_month_on_one_plan_costs_the_whole_fee_within_a_cent(
    cut: datetime, terms: Terms
) -> None:
    spans = [span(terms, FEB_2028.start, cut), span(terms, cut, FEB_2028.end)]
    total = rating.invoice_total(rating.rate_period(FEB_2028, spans, usage()))
    assert abs(total - to_cents(terms.base_fee)) <= D("0.01")


@settings(max_examples=200, deadline=None)
@given(
    invoiced=st.integers(0, 7_000_000),
    first=st.integers(0, 2_000_000),
    second=st.integers(0, 2_000_000),
    terms=any_terms,
)
def test_late_messages_in_two_batches_cost_what_one_batch_costs(
    invoiced: int, first: int, second: int, terms: Terms
) -> None:
    def added(before: int, count: int) -> Decimal:
        return rating.message_overage(before + count, terms) - rating.message_overage(before, terms)

    assert added(invoiced, first) + added(invoiced + first, second) == added(
        invoiced, first + second
    )
    assert added(invoiced, first) >= 0
