"""The subscription lifecycle (spec §1.3, §1.6) as a table: each row a subscription, what happens
to it, and what it becomes, with the audit action and the ``billing.subscription_updated`` event
it emits. No database, no clock: the machine is pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing_svc.domain import catalog, events
from billing_svc.domain import subscriptions as subs
from billing_svc.domain.errors import FailedPrecondition
from billing_svc.services.accounts import save_subscription, subscription_of
from billing_svc.storage.tables import Account

NOW = datetime(2024, 3, 10, 12, 30, tzinfo=UTC)
PERIOD_END = datetime(2024, 4, 1, tzinfo=UTC)  # the end of NOW's period, March 2024
EARLIER = NOW - timedelta(days=2)
LATER = NOW + timedelta(seconds=1)

ACTIVE = subs.Subscription(
    account_id="acc_1",
    subscription_id="sub_1",
    status="active",
    plan_id="business",
    billing_interval="monthly",
    has_payment_method=True,
)
TRIAL = replace(ACTIVE, status="trialing", trial_ends_at=EARLIER)
DOWNGRADING = replace(
    ACTIVE,
    pending_plan_id="startup",
    pending_billing_interval="monthly",
    pending_effective_at=PERIOD_END,
)
CANCELING = replace(ACTIVE, cancel_at_period_end=True, canceled_at=PERIOD_END)
CANCELED = replace(ACTIVE, status="canceled", canceled_at=EARLIER)
PAST_DUE = replace(ACTIVE, status="past_due")
UNPAID = replace(ACTIVE, status="unpaid")

Apply = Callable[[subs.Subscription], subs.Transition | None]


def to(plan_id: str, interval: str | None = None) -> Apply:
    """``ChangePlan`` to a catalog plan at NOW."""

    def apply(state: subs.Subscription) -> subs.Transition | None:
        return subs.change_plan(
            state,
            NOW,
            current=catalog.plan(state.plan_id),
            new=catalog.plan(plan_id),
            billing_interval=interval,
        )

    return apply


def cancel(at_period_end: bool) -> Apply:
    return lambda state: subs.cancel(state, NOW, at_period_end=at_period_end)


def end_trial(state: subs.Subscription) -> subs.Transition | None:
    return subs.end_trial(state, NOW)


def scheduled_change(state: subs.Subscription) -> subs.Transition | None:
    return subs.apply_scheduled_change(state, NOW)


def scheduled_cancellation(state: subs.Subscription) -> subs.Transition | None:
    return subs.apply_scheduled_cancellation(state, NOW)


def custom_terms(state: subs.Subscription) -> subs.Transition | None:
    return subs.adopt_custom_terms(state, NOW)


def payment_method(in_dunning: bool) -> Apply:
    return lambda state: subs.add_payment_method(state, NOW, in_dunning=in_dunning)


def collections(owed: str, paid: bool = False, change: str | None = None) -> Apply:
    """What the account's unpaid invoices say after a payment (``paid``) or a void."""
    return lambda state: subs.follow_collections(state, NOW, owed=owed, paid=paid, change=change)


# (case, before, what happens, after, audit action, event change or None, event time,
#  moment the new plan is billed from or None)
ALLOWED: list[
    tuple[
        str, subs.Subscription, Apply, subs.Subscription, str, str | None, datetime, datetime | None
    ]
] = [
    (
        "trial ends with a payment method: active, dated at the trial's end",
        TRIAL,
        end_trial,
        replace(TRIAL, status="active"),
        "subscription.trial_ended",
        "trial_ended",
        EARLIER,
        None,
    ),
    (
        "trial ends without a payment method: past due",
        replace(TRIAL, has_payment_method=False),
        end_trial,
        replace(TRIAL, status="past_due", has_payment_method=False),
        "subscription.trial_ended",
        "trial_ended",
        EARLIER,
        None,
    ),
    (
        "trial ends at the very moment it is due",
        replace(TRIAL, trial_ends_at=NOW),
        end_trial,
        replace(TRIAL, status="active", trial_ends_at=NOW),
        "subscription.trial_ended",
        "trial_ended",
        NOW,
        None,
    ),
    (
        "upgrade: now, billed from now",
        replace(ACTIVE, plan_id="startup"),
        to("business"),
        ACTIVE,
        "subscription.upgraded",
        "upgraded",
        NOW,
        NOW,
    ),
    (
        "upgrade with a new interval: both now",
        replace(ACTIVE, plan_id="startup"),
        to("business", "annual"),
        replace(ACTIVE, billing_interval="annual"),
        "subscription.upgraded",
        "upgraded",
        NOW,
        NOW,
    ),
    (
        "upgrade drops a scheduled downgrade",
        DOWNGRADING,
        to("enterprise"),
        replace(ACTIVE, plan_id="enterprise"),
        "subscription.upgraded",
        "upgraded",
        NOW,
        NOW,
    ),
    (
        "upgrade while trialing keeps the trial",
        replace(TRIAL, plan_id="startup", trial_ends_at=LATER),
        to("business"),
        replace(TRIAL, trial_ends_at=LATER),
        "subscription.upgraded",
        "upgraded",
        NOW,
        NOW,
    ),
    (
        "upgrade while past due keeps the status",
        replace(PAST_DUE, plan_id="startup"),
        to("business"),
        PAST_DUE,
        "subscription.upgraded",
        "upgraded",
        NOW,
        NOW,
    ),
    (
        "downgrade: scheduled for the period end",
        ACTIVE,
        to("startup"),
        DOWNGRADING,
        "subscription.downgrade_scheduled",
        "downgrade_scheduled",
        NOW,
        None,
    ),
    (
        "interval change on the same plan: scheduled for the period end",
        ACTIVE,
        to("business", "annual"),
        replace(
            ACTIVE,
            pending_plan_id="business",
            pending_billing_interval="annual",
            pending_effective_at=PERIOD_END,
        ),
        "subscription.downgrade_scheduled",
        "downgrade_scheduled",
        NOW,
        None,
    ),
    (
        "a new downgrade replaces the scheduled one",
        replace(
            ACTIVE,
            plan_id="enterprise",
            pending_plan_id="business",
            pending_billing_interval="monthly",
            pending_effective_at=PERIOD_END,
        ),
        to("startup", "annual"),
        replace(
            ACTIVE,
            plan_id="enterprise",
            pending_plan_id="startup",
            pending_billing_interval="annual",
            pending_effective_at=PERIOD_END,
        ),
        "subscription.downgrade_scheduled",
        "downgrade_scheduled",
        NOW,
        None,
    ),
    (
        "asking for the current plan drops the scheduled change",
        DOWNGRADING,
        to("business"),
        ACTIVE,
        "subscription.pending_change_canceled",
        "pending_change_canceled",
        NOW,
        None,
    ),
    (
        "the same plan with an unset interval is the current interval",
        replace(DOWNGRADING, billing_interval="annual"),
        to("business"),
        replace(ACTIVE, billing_interval="annual"),
        "subscription.pending_change_canceled",
        "pending_change_canceled",
        NOW,
        None,
    ),
    (
        "cancel now: canceled at once, the scheduled change dropped",
        DOWNGRADING,
        cancel(False),
        replace(ACTIVE, status="canceled", canceled_at=NOW),
        "subscription.canceled",
        "canceled",
        NOW,
        None,
    ),
    (
        "cancel at the period end: scheduled, a scheduled downgrade kept",
        DOWNGRADING,
        cancel(True),
        replace(DOWNGRADING, cancel_at_period_end=True, canceled_at=PERIOD_END),
        "subscription.cancel_scheduled",
        "cancel_scheduled",
        NOW,
        None,
    ),
    (
        "cancel now after canceling at the period end: now",
        CANCELING,
        cancel(False),
        replace(CANCELING, status="canceled", canceled_at=NOW),
        "subscription.canceled",
        "canceled",
        NOW,
        None,
    ),
    (
        "cancel a trial now",
        replace(TRIAL, trial_ends_at=LATER),
        cancel(False),
        replace(TRIAL, trial_ends_at=LATER, status="canceled", canceled_at=NOW),
        "subscription.canceled",
        "canceled",
        NOW,
        None,
    ),
    (
        "period rollover: the scheduled downgrade, dated and billed from the period end",
        replace(DOWNGRADING, pending_effective_at=EARLIER),
        scheduled_change,
        replace(ACTIVE, plan_id="startup"),
        "subscription.downgraded",
        "downgraded",
        EARLIER,
        EARLIER,
    ),
    (
        "period rollover: the scheduled interval change",
        replace(
            ACTIVE,
            pending_plan_id="business",
            pending_billing_interval="annual",
            pending_effective_at=NOW,
        ),
        scheduled_change,
        replace(ACTIVE, billing_interval="annual"),
        "subscription.downgraded",
        "downgraded",
        NOW,
        NOW,
    ),
    (
        "period rollover: a scheduled change without an interval keeps the interval",
        replace(
            ACTIVE,
            billing_interval="annual",
            pending_plan_id="startup",
            pending_effective_at=EARLIER,
        ),
        scheduled_change,
        replace(ACTIVE, billing_interval="annual", plan_id="startup"),
        "subscription.downgraded",
        "downgraded",
        EARLIER,
        EARLIER,
    ),
    (
        "period rollover: the scheduled cancellation, dated at the period end",
        replace(CANCELING, canceled_at=EARLIER),
        scheduled_cancellation,
        replace(CANCELING, canceled_at=EARLIER, status="canceled"),
        "subscription.canceled",
        "canceled",
        EARLIER,
        None,
    ),
    (
        "period rollover: a past due subscription's scheduled cancellation",
        replace(CANCELING, status="past_due", canceled_at=NOW),
        scheduled_cancellation,
        replace(CANCELING, canceled_at=NOW, status="canceled"),
        "subscription.canceled",
        "canceled",
        NOW,
        None,
    ),
    (
        "custom terms: the custom plan now, the scheduled change dropped",
        DOWNGRADING,
        custom_terms,
        replace(ACTIVE, plan_id="custom"),
        "custom_terms.set",
        "custom_terms",
        NOW,
        NOW,
    ),
    (
        "new custom terms on custom: no new plan to bill",
        replace(DOWNGRADING, plan_id="custom"),
        custom_terms,
        replace(ACTIVE, plan_id="custom"),
        "custom_terms.set",
        "custom_terms",
        NOW,
        None,
    ),
    (
        "a payment method after a trial that ended without one: active",
        replace(PAST_DUE, has_payment_method=False),
        payment_method(False),
        ACTIVE,
        "payment_method.set",
        "payment_method_added",
        NOW,
        None,
    ),
    (
        "a payment method while a failed payment is in dunning: still past due, no event",
        replace(PAST_DUE, has_payment_method=False),
        payment_method(True),
        PAST_DUE,
        "payment_method.set",
        None,
        NOW,
        None,
    ),
    (
        "a payment method on an active subscription: no event",
        replace(ACTIVE, has_payment_method=False),
        payment_method(False),
        ACTIVE,
        "payment_method.set",
        None,
        NOW,
        None,
    ),
    (
        "a payment method on an unpaid subscription: still unpaid",
        replace(UNPAID, has_payment_method=False),
        payment_method(False),
        UNPAID,
        "payment_method.set",
        None,
        NOW,
        None,
    ),
    (
        "payment failed, to be retried: past due",
        ACTIVE,
        collections("past_due"),
        PAST_DUE,
        "subscription.status_changed",
        "payment_failed",
        NOW,
        None,
    ),
    (
        "dunning exhausted: unpaid",
        PAST_DUE,
        collections("unpaid"),
        UNPAID,
        "subscription.status_changed",
        "payment_failed",
        NOW,
        None,
    ),
    (
        "dunning exhausted straight from active (the last retry of an older invoice)",
        ACTIVE,
        collections("unpaid"),
        UNPAID,
        "subscription.status_changed",
        "payment_failed",
        NOW,
        None,
    ),
    (
        "paid while another invoice is in dunning: from unpaid back to past due",
        UNPAID,
        collections("past_due", paid=True),
        PAST_DUE,
        "subscription.status_changed",
        "payment_failed",
        NOW,
        None,
    ),
    (
        "payment recovered: active",
        PAST_DUE,
        collections("active", paid=True),
        ACTIVE,
        "subscription.status_changed",
        "payment_recovered",
        NOW,
        None,
    ),
    (
        "payment recovered from unpaid",
        UNPAID,
        collections("active", paid=True),
        ACTIVE,
        "subscription.status_changed",
        "payment_recovered",
        NOW,
        None,
    ),
    (
        "paid without a payment method on file: the processor took it some way, active",
        replace(PAST_DUE, has_payment_method=False),
        collections("active", paid=True),
        replace(ACTIVE, has_payment_method=False),
        "subscription.status_changed",
        "payment_recovered",
        NOW,
        None,
    ),
    (
        "the failed invoice voided: active, for that cause",
        PAST_DUE,
        collections("active", change="invoice_voided"),
        ACTIVE,
        "subscription.status_changed",
        "invoice_voided",
        NOW,
        None,
    ),
    (
        "the uncollectible invoice voided, another in dunning: past due",
        UNPAID,
        collections("past_due", change="invoice_voided"),
        PAST_DUE,
        "subscription.status_changed",
        "invoice_voided",
        NOW,
        None,
    ),
]


def subscription_updated(
    before: subs.Subscription, after: subs.Subscription, change: str, at: datetime
) -> dict[str, Any]:
    """The event's data as the seed's payload spells it (WEBHOOKS.md)."""
    return {
        "account_id": "acc_1",
        "subscription_id": "sub_1",
        "change": change,
        "status": after.status,
        "previous_status": before.status,
        "plan_id": after.plan_id,
        "previous_plan_id": before.plan_id,
        "pending_plan_id": after.pending_plan_id,
        "cancel_at_period_end": after.cancel_at_period_end,
        "effective_at": events.iso_utc(at),
    }


@pytest.mark.parametrize(
    ("before", "apply", "after", "action", "change", "at", "plan_starts_at"),
    [row[1:] for row in ALLOWED],
    ids=[row[0] for row in ALLOWED],
)
def test_allowed_transitions(
    before: subs.Subscription,
    apply: Apply,
    after: subs.Subscription,
    action: str,
    change: str | None,
    at: datetime,
    plan_starts_at: datetime | None,
) -> None:
    transition = apply(before)
    assert transition is not None
    assert transition.state == after
    assert transition.action == action
    assert transition.plan_starts_at == plan_starts_at
    if change is None:
        assert transition.events == ()
    else:
        [event] = transition.events
        assert (event.type, event.account_id, event.occurred_at) == (
            events.SUBSCRIPTION_UPDATED,
            "acc_1",
            at,
        )
        assert event.data == subscription_updated(before, after, change, at)


# (case, before, what happens): nothing changes, nothing is recorded.
UNCHANGED: list[tuple[str, subs.Subscription, Apply]] = [
    ("a trial not yet due", replace(TRIAL, trial_ends_at=LATER), end_trial),
    ("no trial to end", ACTIVE, end_trial),
    ("a trial already ended (past due)", replace(TRIAL, status="past_due"), end_trial),
    ("a canceled trial", replace(TRIAL, status="canceled"), end_trial),
    ("the current plan and interval, nothing scheduled", ACTIVE, to("business", "monthly")),
    ("the current plan, the interval unset, nothing scheduled", ACTIVE, to("business")),
    ("cancel now what is canceled", CANCELED, cancel(False)),
    ("cancel at the period end what is canceled", CANCELED, cancel(True)),
    ("cancel at the period end again", CANCELING, cancel(True)),
    ("rollover with nothing scheduled", ACTIVE, scheduled_change),
    (
        "rollover before the scheduled change is due",
        replace(DOWNGRADING, pending_effective_at=LATER),
        scheduled_change,
    ),
    ("rollover with no cancellation scheduled", ACTIVE, scheduled_cancellation),
    (
        "rollover before the scheduled cancellation is due",
        replace(CANCELING, canceled_at=LATER),
        scheduled_cancellation,
    ),
    (
        "rollover of a subscription canceled since",
        replace(CANCELING, status="canceled", canceled_at=EARLIER),
        scheduled_cancellation,
    ),
    ("a trial does not follow its invoices", TRIAL, collections("past_due")),
    ("a canceled subscription does not follow its invoices", CANCELED, collections("unpaid")),
    ("past due already", PAST_DUE, collections("past_due")),
    ("unpaid already", UNPAID, collections("unpaid")),
    ("active already", ACTIVE, collections("active", paid=True)),
    (
        "an invoice voided while past due for want of a payment method: still past due",
        replace(PAST_DUE, has_payment_method=False),
        collections("active", change="invoice_voided"),
    ),
]


@pytest.mark.parametrize(
    ("before", "apply"), [row[1:] for row in UNCHANGED], ids=[row[0] for row in UNCHANGED]
)
def test_transitions_that_change_nothing(before: subs.Subscription, apply: Apply) -> None:
    assert apply(before) is None


@pytest.mark.parametrize(
    "apply",
    [to("enterprise"), to("startup"), to("business", "annual"), to("business")],
    ids=["upgrade", "downgrade", "interval change", "the current plan"],
)
def test_a_canceled_subscription_cannot_change_plan(apply: Apply) -> None:
    with pytest.raises(
        FailedPrecondition,
        match=r"^account acc_1 is canceled; create a new "
        r"account to subscribe again$",
    ):
        apply(CANCELED)


def test_an_upgrade_is_by_the_terms_in_force_not_the_plan_name() -> None:
    """Custom terms cheaper than Business make a move to Business an upgrade."""
    custom = replace(catalog.plan("custom"), base_fee=catalog.plan("startup").base_fee)
    state = replace(ACTIVE, plan_id="custom")
    upgrade = subs.change_plan(
        state, NOW, current=custom, new=catalog.plan("business"), billing_interval=None
    )
    assert upgrade is not None and upgrade.state.plan_id == "business"
    downgrade = subs.change_plan(
        state,
        NOW,
        current=catalog.plan("custom"),
        new=catalog.plan("business"),
        billing_interval=None,
    )
    assert downgrade is not None and downgrade.state.pending_plan_id == "business"


def test_the_event_body_is_the_seed_payload() -> None:
    """The exact bytes every endpoint receives for a trial that ended."""
    transition = subs.end_trial(replace(TRIAL, trial_ends_at=datetime(2024, 3, 1, tzinfo=UTC)), NOW)
    assert transition is not None
    assert transition.events[0].body() == (
        '{"type":"billing.subscription_updated","timestamp":"2024-03-01T00:00:00Z","data":'
        '{"account_id":"acc_1","subscription_id":"sub_1","change":"trial_ended",'
        '"status":"active","previous_status":"trialing","plan_id":"business",'
        '"previous_plan_id":"business","pending_plan_id":null,"cancel_at_period_end":false,'
        '"effective_at":"2024-03-01T00:00:00Z"}}'
    )


@pytest.mark.parametrize(("trial_ends_at", "status"), [(LATER, "trialing"), (None, "active")])
def test_a_new_subscription_trials_unless_it_has_no_trial(
    trial_ends_at: datetime | None, status: str
) -> None:
    started = subs.subscribe(
        account_id="acc_1",
        subscription_id="sub_1",
        plan_id="startup",
        billing_interval="monthly",
        trial_ends_at=trial_ends_at,
    )
    assert started == subs.Subscription(
        account_id="acc_1",
        subscription_id="sub_1",
        status=status,
        plan_id="startup",
        billing_interval="monthly",
        trial_ends_at=trial_ends_at,
    )


def test_the_account_row_carries_every_field_of_the_state() -> None:
    """What the services load and save: a state field the row would drop is caught here."""
    state = replace(
        DOWNGRADING,
        status="past_due",
        trial_ends_at=EARLIER,
        cancel_at_period_end=True,
        canceled_at=PERIOD_END,
        has_payment_method=False,
    )
    row = Account(
        account_id="acc_1",
        subscription_id="sub_1",
        customer_id="cus_1",
        name="A",
        plan_id="enterprise",
        billing_interval="annual",
        status="active",
        created_at=EARLIER,
        registered_at=EARLIER,
        updated_at=EARLIER,
    )
    save_subscription(row, state)
    assert subscription_of(row) == state
    row.payment_method_type = "card"
    assert subscription_of(row) == replace(state, has_payment_method=True)
