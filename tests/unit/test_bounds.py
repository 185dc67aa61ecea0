"""The bounds of terms and usage, and the largest invoice they allow, worked out by hand
(issue 12, point 5; the arithmetic is in ``domain/bounds.py``)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from as2aas.billing.v1 import common_pb2

from billing_svc.domain import bounds, catalog, rating
from billing_svc.domain.catalog import CustomTerms, MessageTier
from billing_svc.domain.errors import InvalidArgument, Unratable
from billing_svc.domain.money import to_units_nanos
from billing_svc.domain.periods import Period
from billing_svc.domain.rating import LateUsage, PeriodUsage, PlanSpan
from billing_svc.domain.subscriptions import ANNUAL

D = Decimal
INT64_MAX = 2**63 - 1
APRIL = Period(2024, 4)

LARGEST_TERMS = CustomTerms(
    base_fee=bounds.MAX_BASE_FEE,
    included_tenants=0,
    included_messages=0,
    included_storage_gb=D(0),
    tenant_overage=bounds.MAX_TENANT_OVERAGE,
    message_overage=bounds.MAX_MESSAGE_RATE,
    storage_overage_per_gb=bounds.MAX_STORAGE_RATE,
)


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        (CustomTerms(included_storage_gb=D("1e400")), "terms.included_storage_gb"),
        (CustomTerms(included_storage_gb=D("NaN")), "terms.included_storage_gb"),
        (CustomTerms(included_storage_gb=D("Infinity")), "terms.included_storage_gb"),
        (CustomTerms(included_storage_gb=D("10000000000000.000001")), "terms.included_storage_gb"),
        (CustomTerms(included_storage_gb=D("0.0000001")), "terms.included_storage_gb"),
        (CustomTerms(storage_overage_per_gb=D(9 * 10**18)), "terms.storage_overage_per_gb"),
        (CustomTerms(storage_overage_per_gb=D("1000.000001")), "terms.storage_overage_per_gb"),
        (CustomTerms(message_overage=D(10**15)), "terms.message_overage"),
        (CustomTerms(message_overage=D("0.100001")), "terms.message_overage"),
        (CustomTerms(message_overage=D("-0.000001")), "terms.message_overage"),
        (CustomTerms(tenant_overage=D("1000000.01")), "terms.tenant_overage"),
        (CustomTerms(base_fee=D("1000000000.01")), "terms.base_fee"),
        (CustomTerms(base_fee=D("9.0000001")), "terms.base_fee"),
        (CustomTerms(included_messages=2**63), "terms.included_messages"),
        (CustomTerms(included_tenants=-1), "terms.included_tenants"),
        (
            CustomTerms(message_tiers=(MessageTier(None, D("0.2")),)),
            "terms.message_tiers[0].unit_price",
        ),
        (
            CustomTerms(
                message_tiers=(MessageTier(2**63, D("0.01")), MessageTier(None, D("0.01")))
            ),
            "terms.message_tiers[0]",
        ),
        (
            CustomTerms(message_tiers=tuple(MessageTier(n + 1, D("0.01")) for n in range(11))),
            "terms.message_tiers",
        ),
        (CustomTerms(account_manager="m" * 201), "terms.account_manager"),
    ],
)
def test_terms_beyond_their_bounds_name_the_term(terms: CustomTerms, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        terms.validate()
    assert caught.value.field == field


def test_every_term_at_its_maximum_is_a_term() -> None:
    LARGEST_TERMS.validate()
    CustomTerms(
        included_storage_gb=bounds.MAX_INCLUDED_STORAGE_GB,
        included_messages=INT64_MAX,
        included_tenants=INT64_MAX,
        included_master_partners=INT64_MAX,
        message_overage=D("0.000001"),
        base_fee=D("9.000000"),
        account_manager="m" * 200,
        message_tiers=(
            *(MessageTier(n + 1, bounds.MAX_MESSAGE_RATE) for n in range(9)),
            MessageTier(None, D(0)),
        ),
    ).validate()


def test_the_largest_period_the_bounds_allow_is_rated_exactly_and_fits_money() -> None:
    terms = catalog.effective_terms("custom", LARGEST_TERMS)
    # Annual, in the period its subscription year starts: the yearly fee is charged whole.
    lines = rating.rate_period(
        APRIL,
        [PlanSpan(APRIL.start, APRIL.end, terms, ANNUAL)],
        PeriodUsage(
            messages=INT64_MAX,
            active_tenants=bounds.MAX_TENANTS_PER_ACCOUNT,
            storage_gb_months=bounds.MAX_GB_MONTHS,
        ),
        subscription_start=APRIL.start,
    )
    # 10 x 1,000,000,000
    # + 10,000 tenants x 1,000,000
    # + 9,223,372,036,854,775,807 messages x 0.1 = 922,337,203,685,477,580.70
    # + 10,000 tenants x 10^18 bytes = 10^13 GB-months x 1,000 = 10^16
    assert [(line.type, str(line.amount)) for line in lines] == [
        ("base_fee", "10000000000.00"),
        ("tenant_overage", "10000000000.00"),
        ("message_overage", "922337203685477580.70"),
        ("storage_overage", "10000000000000000.00"),
    ]
    total = rating.invoice_total(lines)
    assert total == D("932337223685477580.70") <= bounds.LARGEST_PERIOD_CHARGES
    assert bounds.LARGEST_PERIOD_CHARGES * 9 < bounds.MAX_AMOUNT
    units, nanos = to_units_nanos(total)
    assert common_pb2.Money(units=units, nanos=nanos).units == 932337223685477580


def test_the_largest_amount_fits_money_and_the_columns() -> None:
    units, nanos = to_units_nanos(bounds.MAX_AMOUNT)
    assert units <= INT64_MAX and nanos == 0
    assert len(str(int(bounds.MAX_AMOUNT))) <= 28 - 9  # NUMERIC(28, 9)


def test_charges_beyond_the_largest_amount_are_refused_naming_them() -> None:
    # Late usage is the one way past MAX_AMOUNT: ten periods of int64 messages at 0.1 each.
    terms = catalog.effective_terms("custom", LARGEST_TERMS)
    late = [LateUsage(Period(2023, month).label, 0, INT64_MAX, terms) for month in range(1, 11)]
    with pytest.raises(
        Unratable,
        match=r"the charges of 2024-04 come to .* more than the "
        r"9,000,000,000,000,000,000 USD an invoice can hold",
    ):
        rating.rate_period(
            APRIL,
            [PlanSpan(APRIL.start, APRIL.end, terms, ANNUAL)],
            PeriodUsage(0, 0, D(0)),
            subscription_start=APRIL.start,
            late=late,
        )
    fewer = rating.rate_period(
        APRIL,
        [PlanSpan(APRIL.start, APRIL.end, terms, ANNUAL)],
        PeriodUsage(0, 0, D(0)),
        subscription_start=APRIL.start,
        late=late[:9],
    )
    assert rating.invoice_total(fewer) == D(10**10) + 9 * D("922337203685477580.70")
