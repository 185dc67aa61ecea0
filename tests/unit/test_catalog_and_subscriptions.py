"""The catalog's numbers, custom terms, and subscription input rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing_svc.domain import catalog
from billing_svc.domain import subscriptions as subs
from billing_svc.domain.catalog import CustomTerms, MessageTier
from billing_svc.domain.errors import InvalidArgument, NotFound
from billing_svc.domain.usage import crossed_thresholds

D = Decimal


@pytest.mark.parametrize(
    (
        "plan_id",
        "fee",
        "tenants",
        "partners",
        "messages",
        "storage_gb",
        "tenant_rate",
        "message_rate",
        "storage_rate",
        "trial",
    ),
    [
        ("startup", "99.00", 3, 10, 5000, "5", "29.00", "0.05", "2.00", 14),
        ("business", "299.00", 10, 50, 25000, "25", "19.00", "0.03", "1.50", 30),
        ("enterprise", "999.00", None, None, 100000, "100", "0", "0.01", "1.00", 60),
    ],
)
def test_catalog_matches_the_spec(
    plan_id,
    fee,
    tenants,
    partners,
    messages,
    storage_gb,
    tenant_rate,
    message_rate,
    storage_rate,
    trial,
) -> None:
    terms = catalog.plan(plan_id)
    assert (
        terms.base_fee,
        terms.included_tenants,
        terms.included_master_partners,
        terms.included_messages,
        terms.included_storage_gb,
        terms.tenant_overage,
        terms.message_overage,
        terms.storage_overage_per_gb,
        terms.trial_days,
    ) == (
        D(fee),
        tenants,
        partners,
        messages,
        D(storage_gb),
        D(tenant_rate),
        D(message_rate),
        D(storage_rate),
        trial,
    )
    assert all(isinstance(v, Decimal) for v in (terms.base_fee, terms.message_overage))


def test_storage_included_is_one_gb_per_thousand_messages() -> None:
    for terms in catalog.catalog():
        assert terms.included_storage_gb == D(terms.included_messages) / 1000


def test_unknown_plan_lists_the_valid_ones() -> None:
    with pytest.raises(NotFound, match="startup, business, enterprise, custom"):
        catalog.plan("platinum")


def test_custom_terms_override_and_round_trip() -> None:
    custom = CustomTerms(
        base_fee=D("2500"),
        message_overage=D("0.0075"),
        unlimited_master_partners=True,
        included_tenants=25,
        message_tiers=(
            MessageTier(1_000_000, D("0.008")),
            MessageTier(5_000_000, D("0.006")),
            MessageTier(None, D("0.004")),
        ),
        contract_start=datetime(2024, 1, 1, tzinfo=UTC),
        contract_end=datetime(2027, 1, 1, tzinfo=UTC),
        account_manager="Dana",
    )
    custom.validate()
    assert CustomTerms.from_json(custom.to_json()) == custom
    terms = catalog.effective_terms("custom", custom)
    assert (
        terms.base_fee,
        terms.message_overage,
        terms.included_tenants,
        terms.included_master_partners,
        terms.custom,
    ) == (D("2500"), D("0.0075"), 25, None, True)
    assert terms.included_messages == 100000  # not negotiated: the catalog default


@pytest.mark.parametrize(
    ("custom", "field"),
    [
        (CustomTerms(message_overage=D("0.0000001")), "terms.message_overage"),
        (CustomTerms(base_fee=D("-1")), "terms.base_fee"),
        (
            CustomTerms(message_tiers=(MessageTier(None, D("0.01")), MessageTier(5, D("0.01")))),
            "terms.message_tiers[0]",
        ),
        (
            CustomTerms(message_tiers=(MessageTier(10, D("0.01")), MessageTier(5, D("0.01")))),
            "terms.message_tiers[1]",
        ),
        (
            CustomTerms(
                contract_start=datetime(2025, 1, 1, tzinfo=UTC),
                contract_end=datetime(2024, 1, 1, tzinfo=UTC),
            ),
            "terms.contract_end",
        ),
    ],
)
def test_bad_custom_terms_name_the_field(custom: CustomTerms, field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        custom.validate()
    assert error.value.field == field


def test_trials_and_upgrades() -> None:
    start = datetime(2024, 1, 10, tzinfo=UTC)
    assert subs.trial_end(start, catalog.plan("startup"), False) == start + timedelta(days=14)
    assert subs.trial_end(start, catalog.plan("startup"), True) is None
    assert subs.is_upgrade(catalog.plan("startup"), catalog.plan("business"))
    assert not subs.is_upgrade(catalog.plan("enterprise"), catalog.plan("business"))
    assert subs.status_after_trial(True) == "active"
    assert subs.status_after_trial(False) == "past_due"


@pytest.mark.parametrize(
    ("before", "after", "crossed"),
    [
        (0, 3749, []),
        (3749, 3750, [75]),
        (0, 5000, [75, 90, 100]),
        (4500, 4999, []),
        (4499, 4500, [90]),
        (5000, 9000, []),
    ],
)
def test_threshold_crossings_are_exact(before: int, after: int, crossed: list[int]) -> None:
    assert crossed_thresholds(before, after, 5000, (75, 90, 100)) == crossed
