"""Which changes an approval policy holds, and the bodies of the two approval events (issue 15:
"Implement approval workflows for plan changes")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing_svc.domain import approvals, events
from billing_svc.domain.approvals import ApprovalPolicy
from billing_svc.domain.errors import InvalidArgument

FEE_500 = ApprovalPolicy(base_fee_above=Decimal("500.00"))


@pytest.mark.parametrize(
    ("policy", "kind", "new_base_fee", "held"),
    [
        (ApprovalPolicy(), approvals.UPGRADE, Decimal("999"), False),
        (ApprovalPolicy(), approvals.CANCELLATION, None, False),
        (ApprovalPolicy(upgrades=True), approvals.UPGRADE, Decimal("299"), True),
        (ApprovalPolicy(upgrades=True), approvals.DOWNGRADE, Decimal("99"), False),
        (ApprovalPolicy(downgrades=True), approvals.DOWNGRADE, Decimal("99"), True),
        (ApprovalPolicy(cancellations=True), approvals.CANCELLATION, None, True),
        (ApprovalPolicy(custom_terms=True), approvals.CUSTOM_TERMS, Decimal("0"), True),
        (ApprovalPolicy(custom_terms=True), approvals.UPGRADE, Decimal("999"), False),
        # Above the amount, whatever the kind; at it, not.
        (FEE_500, approvals.UPGRADE, Decimal("999"), True),
        (FEE_500, approvals.DOWNGRADE, Decimal("999"), True),
        (FEE_500, approvals.CUSTOM_TERMS, Decimal("500.01"), True),
        (FEE_500, approvals.CUSTOM_TERMS, Decimal("500.00"), False),
        (FEE_500, approvals.UPGRADE, Decimal("299"), False),
        (FEE_500, approvals.CANCELLATION, None, False),
        (ApprovalPolicy(base_fee_above=Decimal(0)), approvals.DOWNGRADE, Decimal("0.01"), True),
    ],
)
def test_a_policy_holds_the_kinds_it_names_and_fees_above_its_amount(
    policy: ApprovalPolicy, kind: str, new_base_fee: Decimal | None, held: bool
) -> None:
    assert policy.holds(kind, new_base_fee) is held


def test_a_negative_amount_and_a_missing_or_long_reason_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="must not be negative"):
        ApprovalPolicy(base_fee_above=Decimal("-0.01")).validate()
    with pytest.raises(InvalidArgument, match="is required"):
        approvals.reason_in("   ", required=True)
    with pytest.raises(InvalidArgument, match="longer than 500"):
        approvals.reason_in("x" * 501, required=True)
    assert approvals.reason_in("  over budget ", required=True) == "over budget"
    assert approvals.reason_in("", required=False) == ""


def test_the_approval_events_bodies() -> None:
    at = datetime(2026, 12, 2, 10, 15, tzinfo=UTC)
    requested = events.approval_requested(
        account_id="acc_1",
        change_request_id="chg_1",
        kind="upgrade",
        requested_by="ops",
        summary="upgrade from startup (monthly) to business (monthly)",
        expires_at=datetime(2026, 12, 9, 10, 15, tzinfo=UTC),
        occurred_at=at,
    )
    assert requested.body() == (
        '{"type":"billing.approval_requested","timestamp":"2026-12-02T10:15:00Z","data":'
        '{"account_id":"acc_1","change_request_id":"chg_1","kind":"upgrade",'
        '"requested_by":"ops","summary":"upgrade from startup (monthly) to business (monthly)",'
        '"expires_at":"2026-12-09T10:15:00Z"}}'
    )
    decided = events.approval_decided(
        account_id="acc_1",
        change_request_id="chg_1",
        decision="approved",
        decided_by="lead",
        reason=None,
        occurred_at=at,
    )
    assert decided.body() == (
        '{"type":"billing.approval_decided","timestamp":"2026-12-02T10:15:00Z","data":'
        '{"account_id":"acc_1","change_request_id":"chg_1","decision":"approved",'
        '"decided_by":"lead","reason":null}}'
    )
    assert {events.APPROVAL_REQUESTED, events.APPROVAL_DECIDED} <= set(events.EVENT_TYPES)
