"""Subscription rules (spec §1.3, §1.6): statuses, trials, upgrades now and downgrades at period
end, and the subscription lifecycle as a state machine.

Each transition is a pure function from a frozen ``Subscription`` (plus the moment and its input)
to a ``Transition``: the new state, the audit action that records it and the ``billing.*`` events
it emits, or ``None`` when nothing changes. The services load the row, apply one of them, and
write the state, the audit record and the events in one transaction; nothing here reads a clock
or a database, so every rule is checked by ``tests/unit/test_subscription_machine.py`` alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from billing_svc.domain import events
from billing_svc.domain.catalog import Terms
from billing_svc.domain.errors import FailedPrecondition, InvalidArgument
from billing_svc.domain.periods import Period

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
                    "(card numbers must never reach billing-svc)",
                )
        if not re.fullmatch(r"[a-z][a-z0-9_]{1,29}", self.type):
            raise InvalidArgument(
                "payment_method.type", "must be a lowercase word such as 'card' or 'sepa_debit'"
            )
        if not re.fullmatch(r"[0-9]{4}", self.last4):
            raise InvalidArgument("payment_method.last4", "must be exactly 4 digits")
        if not 1 <= self.exp_month <= 12:
            raise InvalidArgument("payment_method.exp_month", "must be within 1..12")
        if not 2000 <= self.exp_year <= 2100:
            raise InvalidArgument("payment_method.exp_year", "must be a 4-digit year")
        if (self.exp_year, self.exp_month) < (today_year, today_month):
            raise InvalidArgument("payment_method.exp_year", "the payment method has expired")


# ---------------------------------------------------------------------------------------------
# The lifecycle


@dataclass(frozen=True)
class Subscription:
    """An account's subscription as the lifecycle sees it.

    ``canceled_at`` is when it ends: a past moment once ``canceled``, the period end while
    ``cancel_at_period_end``. ``has_payment_method`` comes from the row but is never saved back
    from a state: the method's details are the service's to store.
    """

    account_id: str
    subscription_id: str
    status: str
    plan_id: str
    billing_interval: str
    trial_ends_at: datetime | None = None
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = None
    pending_plan_id: str | None = None
    pending_billing_interval: str | None = None
    pending_effective_at: datetime | None = None
    has_payment_method: bool = False

    def without_pending_change(self) -> Subscription:
        return replace(
            self, pending_plan_id=None, pending_billing_interval=None, pending_effective_at=None
        )


@dataclass(frozen=True)
class Transition:
    """One change of a subscription.

    ``plan_starts_at``: the moment from which the new plan and interval are billed (a plan
    segment starts), when the change moves them.
    """

    state: Subscription
    action: str
    events: tuple[events.BillingEvent, ...] = ()
    plan_starts_at: datetime | None = None


def subscribe(
    *,
    account_id: str,
    subscription_id: str,
    plan_id: str,
    billing_interval: str,
    trial_ends_at: datetime | None,
) -> Subscription:
    """A new subscription: ``trialing`` until ``trial_ends_at``, or ``active`` without a trial."""
    return Subscription(
        account_id=account_id,
        subscription_id=subscription_id,
        status=TRIALING if trial_ends_at else ACTIVE,
        plan_id=plan_id,
        billing_interval=billing_interval,
        trial_ends_at=trial_ends_at,
    )


def _changed(
    before: Subscription,
    after: Subscription,
    action: str,
    change: str | None,
    at: datetime,
    plan_starts_at: datetime | None = None,
) -> Transition:
    """``after``, with the ``billing.subscription_updated`` event of ``change`` (none without)."""
    if change is None:
        return Transition(after, action, (), plan_starts_at)
    event = events.subscription_updated(
        account_id=after.account_id,
        subscription_id=after.subscription_id,
        change=change,
        status=after.status,
        previous_status=before.status,
        plan_id=after.plan_id,
        previous_plan_id=before.plan_id,
        cancel_at_period_end=after.cancel_at_period_end,
        pending_plan_id=after.pending_plan_id,
        effective_at=at,
        occurred_at=at,
    )
    return Transition(after, action, (event,), plan_starts_at)


def end_trial(state: Subscription, now: datetime) -> Transition | None:
    """A trial whose end has come: ``active`` with a payment method, else ``past_due`` (the
    subscription starts once one is added). The event is dated at the trial's end, however late
    the scheduler runs."""
    if state.status != TRIALING or state.trial_ends_at is None or state.trial_ends_at > now:
        return None
    after = replace(state, status=status_after_trial(state.has_payment_method))
    return _changed(state, after, "subscription.trial_ended", "trial_ended", state.trial_ends_at)


def change_plan(
    state: Subscription, now: datetime, *, current: Terms, new: Terms, billing_interval: str | None
) -> Transition | None:
    """Move to ``new`` (the terms the account would have on it) and ``billing_interval`` (unset:
    the current one). An upgrade takes effect now and drops any scheduled change; a downgrade or
    an interval change is scheduled for the end of the current period, replacing any scheduled
    before; asking for the current plan and interval drops the scheduled change (``None`` when
    there is none). A canceled subscription cannot change."""
    if state.status == CANCELED:
        raise FailedPrecondition(
            f"account {state.account_id} is canceled; create a new account to subscribe again"
        )
    interval = billing_interval or state.billing_interval
    if new.plan_id == state.plan_id and interval == state.billing_interval:
        if state.pending_plan_id is None:
            return None
        return _changed(
            state,
            state.without_pending_change(),
            "subscription.pending_change_canceled",
            "pending_change_canceled",
            now,
        )
    if is_upgrade(current, new):
        after = replace(
            state.without_pending_change(), plan_id=new.plan_id, billing_interval=interval
        )
        return _changed(state, after, "subscription.upgraded", "upgraded", now, plan_starts_at=now)
    after = replace(
        state,
        pending_plan_id=new.plan_id,
        pending_billing_interval=interval,
        pending_effective_at=Period.containing(now).end,
    )
    return _changed(state, after, "subscription.downgrade_scheduled", "downgrade_scheduled", now)


def adopt_custom_terms(state: Subscription, now: datetime) -> Transition:
    """Negotiated terms take effect now, on the ``custom`` plan, and drop any scheduled change.
    The billed plan changes (a new segment) only when the subscription was not yet on ``custom``:
    new terms on ``custom`` replace the old ones whole."""
    after = replace(state.without_pending_change(), plan_id="custom")
    return _changed(
        state,
        after,
        "custom_terms.set",
        "custom_terms",
        now,
        plan_starts_at=None if state.plan_id == "custom" else now,
    )


def cancel(state: Subscription, now: datetime, *, at_period_end: bool) -> Transition | None:
    """Cancel now (which drops any scheduled change) or at the end of the current period.
    ``None`` when already canceled, or already canceling at the period end and asked again.

    There is no undoing a cancellation at the period end: no RPC asks for it (a new account
    subscribes again), so the lifecycle has no such transition."""
    if state.status == CANCELED:
        return None
    if at_period_end:
        if state.cancel_at_period_end:
            return None
        after = replace(state, cancel_at_period_end=True, canceled_at=Period.containing(now).end)
        return _changed(state, after, "subscription.cancel_scheduled", "cancel_scheduled", now)
    after = replace(state.without_pending_change(), status=CANCELED, canceled_at=now)
    return _changed(state, after, "subscription.canceled", "canceled", now)


def apply_scheduled_change(state: Subscription, now: datetime) -> Transition | None:
    """Period rollover, first half: the downgrade or interval change scheduled for a period end
    that has come takes effect, dated (and billed) from that period end."""
    effective_at = state.pending_effective_at
    if state.pending_plan_id is None or effective_at is None or effective_at > now:
        return None
    after = replace(
        state.without_pending_change(),
        plan_id=state.pending_plan_id,
        billing_interval=state.pending_billing_interval or state.billing_interval,
    )
    return _changed(
        state,
        after,
        "subscription.downgraded",
        "downgraded",
        effective_at,
        plan_starts_at=effective_at,
    )


def apply_scheduled_cancellation(state: Subscription, now: datetime) -> Transition | None:
    """Period rollover, second half: a cancellation at a period end that has come takes effect,
    dated at that period end."""
    canceled_at = state.canceled_at
    if (
        not state.cancel_at_period_end
        or state.status == CANCELED
        or canceled_at is None
        or canceled_at > now
    ):
        return None
    return _changed(
        state, replace(state, status=CANCELED), "subscription.canceled", "canceled", canceled_at
    )


def add_payment_method(state: Subscription, now: datetime, *, in_dunning: bool) -> Transition:
    """A payment method is on file now. A ``past_due`` subscription with no failed payment to
    settle (``in_dunning``) was past due for want of one (a trial ended without it), so it
    starts: ``active``. Otherwise only the audit records it: no event."""
    after = replace(state, has_payment_method=True)
    if state.status == PAST_DUE and not in_dunning:
        return _changed(
            state, replace(after, status=ACTIVE), "payment_method.set", "payment_method_added", now
        )
    return _changed(state, after, "payment_method.set", None, now)


def _collections(state: Subscription, now: datetime, status: str, change: str) -> Transition | None:
    # A trial is not billed yet, a canceled subscription is over: neither follows its invoices.
    if state.status in (status, CANCELED, TRIALING):
        return None
    return _changed(
        state, replace(state, status=status), "subscription.status_changed", change, now
    )


def payment_failed(
    state: Subscription, now: datetime, *, change: str | None = None
) -> Transition | None:
    """An invoice's payment failed and will be retried: ``past_due`` (spec §1.6)."""
    return _collections(state, now, PAST_DUE, change or "payment_failed")


def dunning_exhausted(
    state: Subscription, now: datetime, *, change: str | None = None
) -> Transition | None:
    """An invoice failed its last retry and is uncollectible: ``unpaid`` (spec §1.6)."""
    return _collections(state, now, UNPAID, change or "payment_failed")


def payment_recovered(
    state: Subscription, now: datetime, *, paid: bool, change: str | None = None
) -> Transition | None:
    """No failed invoice is left: ``active`` again. Not when nothing was ``paid`` and there is no
    payment method: then the subscription is past due for want of one, not for an invoice (a
    voided invoice does not give it one); a payment that went through does settle it."""
    if not paid and not state.has_payment_method:
        return None
    return _collections(state, now, ACTIVE, change or "payment_recovered")


def follow_collections(
    state: Subscription, now: datetime, *, owed: str, paid: bool, change: str | None = None
) -> Transition | None:
    """The status the account's unpaid invoices give (``owed``: ``unpaid`` when one is
    uncollectible, ``past_due`` while one is in dunning, else ``active``), by the transition that
    leads there; ``paid``: a payment just went through. ``change`` names the event's cause when
    it is not the payment itself (``invoice_voided``)."""
    if owed == UNPAID:
        return dunning_exhausted(state, now, change=change)
    if owed == PAST_DUE:
        return payment_failed(state, now, change=change)
    return payment_recovered(state, now, paid=paid, change=change)
