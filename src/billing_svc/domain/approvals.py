"""Approval workflows (issue 15, point 1): which subscription changes an account's policy holds
for a second person's decision, and the life of a change request.

Pure rules: the service layer (``services/approvals.py``) loads the policy and the account, asks
here whether a change is held, and stores the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing_svc.domain.errors import InvalidArgument

MAX_TTL_HOURS = 87_600.0
"""Decision: a held change waits at most 10 years (``BILLING_CHANGE_REQUEST_TTL_HOURS``): a
longer wait is "never expires" in effect, and a TTL of thousands of years made every held change
fail (its expiry past the year 9999) or the server fail to start (infinity)."""

UPGRADE = "upgrade"
DOWNGRADE = "downgrade"
CANCELLATION = "cancellation"
CUSTOM_TERMS = "custom_terms"
KINDS = (UPGRADE, DOWNGRADE, CANCELLATION, CUSTOM_TERMS)

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"
STATUSES = (PENDING, APPROVED, REJECTED, EXPIRED)

MAX_REASON_LENGTH = 500


@dataclass(frozen=True)
class ApprovalPolicy:
    """What an account's changes need a decision for. ``base_fee_above``: any change (of any
    kind) whose new monthly base fee is above it; ``None``: no such rule."""

    upgrades: bool = False
    downgrades: bool = False
    cancellations: bool = False
    custom_terms: bool = False
    base_fee_above: Decimal | None = None

    def validate(self) -> None:
        if self.base_fee_above is not None and self.base_fee_above < 0:
            raise InvalidArgument("policy.base_fee_above", "must not be negative")

    @property
    def holds_anything(self) -> bool:
        return (
            self.upgrades
            or self.downgrades
            or self.cancellations
            or self.custom_terms
            or self.base_fee_above is not None
        )

    def holds(self, kind: str, new_base_fee: Decimal | None) -> bool:
        """Whether a change of ``kind`` whose monthly base fee afterwards is ``new_base_fee``
        (``None`` for a cancellation: nothing is charged afterwards) waits for a decision."""
        by_kind = {
            UPGRADE: self.upgrades,
            DOWNGRADE: self.downgrades,
            CANCELLATION: self.cancellations,
            CUSTOM_TERMS: self.custom_terms,
        }
        if by_kind[kind]:
            return True
        return (
            self.base_fee_above is not None
            and new_base_fee is not None
            and new_base_fee > self.base_fee_above
        )


def reason_in(reason: str, *, required: bool) -> str:
    """A decision's reason, stripped and bounded."""
    reason = reason.strip()
    if required and not reason:
        raise InvalidArgument("reason", "is required: say why the change is rejected")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidArgument("reason", f"is longer than {MAX_REASON_LENGTH} characters")
    return reason
