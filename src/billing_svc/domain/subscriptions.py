"""Subscription rules (spec §1.3): statuses, trials, upgrades now and downgrades at period end."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing_svc.domain.catalog import Terms
from billing_svc.domain.errors import InvalidArgument

TRIALING = "trialing"
ACTIVE = "active"
PAST_DUE = "past_due"
UNPAID = "unpaid"
CANCELED = "canceled"
STATUSES = (TRIALING, ACTIVE, PAST_DUE, UNPAID, CANCELED)

MONTHLY = "monthly"
ANNUAL = "annual"
ANNUAL_FEE_MONTHS = 10  # spec §1.2 (assumption): a year costs 10 months, two months free

DEFAULT_USAGE_THRESHOLDS = (75, 90, 100)


def trial_end(created_at: datetime, terms: Terms, skip_trial: bool) -> datetime | None:
    """When the trial of a new subscription ends, or ``None`` when it has none."""
    if skip_trial or terms.trial_days <= 0:
        return None
    return created_at + timedelta(days=terms.trial_days)


def status_after_trial(has_payment_method: bool) -> str:
    return ACTIVE if has_payment_method else PAST_DUE



def is_upgrade(current: Terms, new: Terms) -> bool:
    """An upgrade is a move to a plan with a higher monthly base fee (spec §1.3)."""
    return new.base_fee > current.base_fee


MAX_THRESHOLDS = 20  # a list input is bounded like any other (a few are all anyone sets)


def parse_thresholds(values: list[int] | tuple[int, ...], field: str) -> tuple[int, ...]:
    """Validate threshold percentages: 1..1000, unique; returned sorted. Empty means the default."""
    if not values:
        return DEFAULT_USAGE_THRESHOLDS
    if len(values) > MAX_THRESHOLDS:
        raise InvalidArgument(field, f"at most {MAX_THRESHOLDS} percentages")
    for value in values:
        if not 1 <= value <= 1000:
            raise InvalidArgument(field, f"{value} is not a percentage within 1..1000")
    if len(set(values)) != len(values):
        raise InvalidArgument(field, "percentages must not repeat")
    return tuple(sorted(values))


# Anything with 12+ digits (ignoring spaces and dashes) looks like a card number (PAN).
_PAN_LIKE = re.compile(r"\d{12,}")


@dataclass(frozen=True)
class PaymentMethodInput:
    type: str
    last4: str
    exp_month: int
    exp_year: int

    def validate(self, today_year: int, today_month: int) -> None:
        """Only type, last 4 digits and expiry are stored; a full card number is refused."""
        for name, value in (("type", self.type), ("last4", self.last4)):
            if _PAN_LIKE.search(re.sub(r"[\s-]", "", value)):
                raise InvalidArgument(
                    f"payment_method.{name}",
                    "looks like a full card number; send only the last 4 digits "
                    "(card numbers must never reach billing-svc)")
        if not re.fullmatch(r"[a-z][a-z0-9_]{1,29}", self.type):
            raise InvalidArgument("payment_method.type",
                                  "must be a lowercase word such as 'card' or 'sepa_debit'")
        if not re.fullmatch(r"[0-9]{4}", self.last4):
            raise InvalidArgument("payment_method.last4", "must be exactly 4 digits")
        if not 1 <= self.exp_month <= 12:
            raise InvalidArgument("payment_method.exp_month", "must be within 1..12")
        if not 2000 <= self.exp_year <= 2100:
            raise InvalidArgument("payment_method.exp_year", "must be a 4-digit year")
        if (self.exp_year, self.exp_month) < (today_year, today_month):
            raise InvalidArgument("payment_method.exp_year", "the payment method has expired")
