"""Accounts, subscriptions, tenants and master partners (spec §1.1-§1.3).

Every change appends an audit record and writes its ``billing.*`` events to the outbox in the same
transaction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from billing_svc.domain import catalog, events
from billing_svc.domain import subscriptions as subs
from billing_svc.domain.bounds import MAX_TENANTS_PER_ACCOUNT
from billing_svc.domain.catalog import CustomTerms, Terms
from billing_svc.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    shown,
)
from billing_svc.domain.ids import new_id
from billing_svc.domain.periods import Period
from billing_svc.services.common import idempotent_write, load_account, loader, visible
from billing_svc.services.context import RequestContext
from billing_svc.services.terms import terms_of as terms_of  # re-exported: accounts.terms_of
from billing_svc.services.views import AccountView, MasterPartnerView, TenantView
from billing_svc.storage import audit, notices, outbox
from billing_svc.storage.db import Database
from billing_svc.storage.idempotency import IdempotencyKey
from billing_svc.storage.tables import Account, Invoice, MasterPartner, PlanSegment, Tenant

MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class AccountBilling:
    """An account with the terms in force for it."""

    account: AccountView
    terms: Terms

    @classmethod
    def of(cls, account: Account) -> AccountBilling:
        return cls(AccountView.from_row(account), terms_of(account))


def _catalog_plan(plan_id: str, field: str = "plan_id") -> Terms:
    if not plan_id:
        raise InvalidArgument(field, "is required; see ListPlans for the plan ids")
    try:
        return catalog.plan(plan_id)
    except NotFound as exc:
        raise InvalidArgument(field, str(exc)) from exc


def catalog_plan(plan_id: str) -> Terms:
    """A catalog plan by id, or ``InvalidArgument`` naming ``plan_id``."""
    return _catalog_plan(plan_id)


def _name(value: str, field: str = "name") -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidArgument(field, f"is longer than {MAX_NAME_LENGTH} characters")
    return value


def _start_time(ctx: RequestContext, start_time: datetime | None) -> datetime:
    if start_time is None:
        return ctx.now
    if not ctx.caller.has("admin"):
        raise PermissionDenied("start_time is for imports and needs the 'admin' scope")
    if start_time > ctx.now:
        raise InvalidArgument("start_time", "must not be in the future")
    return start_time


def _snapshot(account: Account) -> dict[str, object]:
    return {
        "plan_id": account.plan_id,
        "billing_interval": account.billing_interval,
        "status": account.status,
        "trial_ends_at": account.trial_ends_at,
        "cancel_at_period_end": account.cancel_at_period_end,
        "canceled_at": account.canceled_at,
        "pending_plan_id": account.pending_plan_id,
        "pending_effective_at": account.pending_effective_at,
        "payment_method": (
            {
                "type": account.payment_method_type,
                "last4": account.payment_last4,
                "exp_month": account.payment_exp_month,
                "exp_year": account.payment_exp_year,
            }
            if account.payment_method_type
            else None
        ),
        "usage_thresholds": account.usage_thresholds,
        "custom_terms": account.custom_terms_json,
    }


def subscription_of(account: Account) -> subs.Subscription:
    """The lifecycle's view of ``account``'s subscription."""
    return subs.Subscription(
        account_id=account.account_id,
        subscription_id=account.subscription_id,
        status=account.status,
        plan_id=account.plan_id,
        billing_interval=account.billing_interval,
        trial_ends_at=account.trial_ends_at,
        cancel_at_period_end=account.cancel_at_period_end,
        canceled_at=account.canceled_at,
        pending_plan_id=account.pending_plan_id,
        pending_billing_interval=account.pending_billing_interval,
        pending_effective_at=account.pending_effective_at,
        has_payment_method=account.payment_method_type is not None,
    )


def save_subscription(account: Account, state: subs.Subscription) -> None:
    """Write ``state`` back to ``account`` (not the payment method: its details are the
    caller's to set)."""
    account.status = state.status
    account.plan_id = state.plan_id
    account.billing_interval = state.billing_interval
    account.trial_ends_at = state.trial_ends_at
    account.cancel_at_period_end = state.cancel_at_period_end
    account.canceled_at = state.canceled_at
    account.pending_plan_id = state.pending_plan_id
    account.pending_billing_interval = state.pending_billing_interval
    account.pending_effective_at = state.pending_effective_at


def _record_change(
    session: Session,
    ctx: RequestContext,
    account: Account,
    action: str,
    before: dict[str, object],
    emitted: tuple[events.BillingEvent, ...] = (),
) -> None:
    """Audit a change of the account and write the events it emits to the outbox."""
    account.updated_at = ctx.now
    session.add(account)
    audit.append(
        session,
        actor=ctx.caller.name,
        action=action,
        account_id=account.account_id,
        before=before,
        after=_snapshot(account),
        at=ctx.now,
        request_id=ctx.request_id,
    )
    for event in emitted:
        outbox.enqueue(session, event)


def _apply(
    session: Session,
    ctx: RequestContext,
    account: Account,
    transition: subs.Transition,
    before: dict[str, object] | None = None,
) -> None:
    """Save a lifecycle transition of the locked ``account``: its state, the plan segment it
    starts, its audit record (``before``: the snapshot before the whole change, when the caller
    changed more than the subscription) and its events."""
    before = _snapshot(account) if before is None else before
    save_subscription(account, transition.state)
    if transition.plan_starts_at is not None:
        session.add(
            PlanSegment(
                account_id=account.account_id,
                plan_id=account.plan_id,
                billing_interval=account.billing_interval,
                effective_at=transition.plan_starts_at,
            )
        )
    _record_change(session, ctx, account, transition.action, before, transition.events)


# ---------------------------------------------------------------------------------------------
# Accounts and subscriptions


def create_account(
    db: Database,
    ctx: RequestContext,
    *,
    name: str,
    plan_id: str,
    billing_interval: str,
    skip_trial: bool,
    start_time: datetime | None,
    usage_thresholds: tuple[int, ...],
    key: IdempotencyKey | None,
    test_clock_id: str = "",
) -> AccountView:
    """Create an account and its subscription, ``trialing`` unless the trial is skipped; with
    ``test_clock_id``, on that test clock's time."""
    name = _name(name)
    if test_clock_id:
        ctx = _on_test_clock(db, ctx, test_clock_id, start_time)
    terms = _catalog_plan(plan_id)
    if skip_trial and not ctx.caller.has("admin"):
        raise PermissionDenied("skip_trial is for imports and needs the 'admin' scope")
    created_at = _start_time(ctx, start_time)
    thresholds = subs.parse_thresholds(usage_thresholds, "usage_threshold_percentages")

    def create(session: Session) -> Account:
        account_id = new_id("acc")
        suffix = account_id.removeprefix("acc_")
        started = subs.subscribe(
            account_id=account_id,
            subscription_id=f"sub_{suffix}",
            plan_id=terms.plan_id,
            billing_interval=billing_interval,
            trial_ends_at=subs.trial_end(created_at, terms, skip_trial),
        )
        account = Account(
            account_id=account_id,
            customer_id=f"cus_{suffix}",
            subscription_id=started.subscription_id,
            name=name,
            plan_id=started.plan_id,
            billing_interval=started.billing_interval,
            status=started.status,
            created_at=created_at,
            registered_at=ctx.now,
            updated_at=ctx.now,
            trial_ends_at=started.trial_ends_at,
            usage_thresholds=thresholds,
            test_clock_id=test_clock_id or None,
        )
        session.add(account)
        session.flush()
        session.add(
            PlanSegment(
                account_id=account_id,
                plan_id=terms.plan_id,
                billing_interval=billing_interval,
                effective_at=created_at,
            )
        )
        audit.append(
            session,
            actor=ctx.caller.name,
            action="account.created",
            account_id=account_id,
            before=None,
            after={"name": name, **_snapshot(account)},
            at=ctx.now,
            request_id=ctx.request_id,
        )
        return account

    return AccountView.from_row(
        idempotent_write(
            db, ctx, key, create, lambda s, i: load_account(s, i), lambda a: a.account_id
        )
    )


def _on_test_clock(
    db: Database, ctx: RequestContext, test_clock_id: str, start_time: datetime | None
) -> RequestContext:
    """``ctx`` at the time of test clock ``test_clock_id``, for an account made on it."""
    from billing_svc.services import test_clocks

    if not ctx.caller.has("sandbox"):
        raise PermissionDenied("test_clock_id needs the 'sandbox' scope")
    if start_time is not None:
        raise InvalidArgument(
            "start_time",
            "must be unset with test_clock_id: a clock account starts at the clock's time",
        )
    clock = test_clocks.get_test_clock(db, test_clock_id)
    if clock.status != test_clocks.READY:
        raise FailedPrecondition(
            f"test clock {test_clock_id} is advancing; create the account "
            "once GetTestClock says STATUS_READY"
        )
    return dataclasses.replace(ctx, now=clock.frozen_time)


def get_account_billing(db: Database, account_id: str) -> AccountBilling:
    with db.read() as session:
        return AccountBilling.of(load_account(session, account_id))


def change_plan(
    db: Database,
    ctx: RequestContext,
    *,
    account_id: str,
    plan_id: str,
    billing_interval: str | None,
) -> tuple[AccountView, bool]:
    """Upgrade now or schedule a downgrade for the period end; returns (account, immediate)."""
    new_terms = _catalog_plan(plan_id)
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        changed, immediate = apply_plan_change(session, ctx, account, new_terms, billing_interval)
        return AccountView.from_row(changed), immediate


def plan_after_change(account: Account, new_terms: Terms) -> Terms:
    """The terms ``account`` would have on ``new_terms``'s plan (its custom terms, for custom)."""
    custom = (
        CustomTerms.from_json(account.custom_terms_json)
        if account.custom_terms_json and new_terms.plan_id == "custom"
        else None
    )
    return catalog.effective_terms(new_terms.plan_id, custom)


def apply_plan_change(
    session: Session,
    ctx: RequestContext,
    account: Account,
    new_terms: Terms,
    billing_interval: str | None,
) -> tuple[Account, bool]:
    """``change_plan`` on a locked ``account`` inside ``session``'s transaction: what a direct
    call and an approved change request both do."""
    transition = subs.change_plan(
        subscription_of(account),
        ctx.now,
        current=terms_of(account),
        new=plan_after_change(account, new_terms),
        billing_interval=billing_interval,
    )
    if transition is not None:
        _apply(session, ctx, account, transition)
    # Only a downgrade waits for the period end: every other outcome leaves nothing pending.
    return account, account.pending_plan_id is None


def cancel_subscription(
    db: Database, ctx: RequestContext, *, account_id: str, at_period_end: bool
) -> AccountView:
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        return AccountView.from_row(apply_cancellation(session, ctx, account, at_period_end))


def apply_cancellation(
    session: Session, ctx: RequestContext, account: Account, at_period_end: bool
) -> Account:
    """``cancel_subscription`` on a locked ``account`` inside ``session``'s transaction."""
    transition = subs.cancel(subscription_of(account), ctx.now, at_period_end=at_period_end)
    if transition is not None:
        _apply(session, ctx, account, transition)
    return account


def set_payment_method(
    db: Database, ctx: RequestContext, *, account_id: str, method: subs.PaymentMethodInput
) -> AccountView:
    method.validate(ctx.now.year, ctx.now.month)
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        before = _snapshot(account)
        transition = subs.add_payment_method(
            subscription_of(account), ctx.now, in_dunning=_has_open_dunning(session, account)
        )
        account.payment_method_type = method.type
        account.payment_last4 = method.last4
        account.payment_exp_month = method.exp_month
        account.payment_exp_year = method.exp_year
        _apply(session, ctx, account, transition, before)
        return AccountView.from_row(account)


def _has_open_dunning(session: Session, account: Account) -> bool:
    """Whether a failed payment keeps the account past due (then only paying clears it)."""
    return (
        session.exec(
            select(func.count())
            .select_from(Invoice)
            .where(
                Invoice.account_id == account.account_id,
                Invoice.failed_attempts > 0,
                col(Invoice.status).in_(["open", "uncollectible"]),
            )
        ).one()
        > 0
    )


def set_custom_terms(
    db: Database, ctx: RequestContext, *, account_id: str, terms: CustomTerms
) -> AccountBilling:
    terms.validate()
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        return apply_custom_terms(session, ctx, account, terms)


def apply_custom_terms(
    session: Session, ctx: RequestContext, account: Account, terms: CustomTerms
) -> AccountBilling:
    """``set_custom_terms`` (validated terms) on a locked ``account`` inside ``session``'s
    transaction."""
    before = _snapshot(account)
    account.custom_terms_json = terms.to_json()
    _apply(
        session, ctx, account, subs.adopt_custom_terms(subscription_of(account), ctx.now), before
    )
    return AccountBilling.of(account)


def set_usage_thresholds(
    db: Database, ctx: RequestContext, *, account_id: str, thresholds: tuple[int, ...]
) -> AccountView:
    parsed = subs.parse_thresholds(thresholds, "threshold_percentages")
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        before = _snapshot(account)
        account.usage_thresholds = parsed
        _record_change(session, ctx, account, "usage_thresholds.set", before)
        return AccountView.from_row(account)


# ---------------------------------------------------------------------------------------------
# Tenants and master partners


def create_tenant(
    db: Database,
    ctx: RequestContext,
    *,
    account_id: str,
    name: str,
    start_time: datetime | None,
    key: IdempotencyKey | None,
) -> TenantView:
    name = _name(name)
    created_at = _start_time(ctx, start_time)

    def create(session: Session) -> Tenant:
        account = load_account(session, account_id, for_update=True)
        if account.status == subs.CANCELED:
            raise FailedPrecondition(f"account {account_id} is canceled")
        count = session.exec(
            select(func.count()).select_from(Tenant).where(Tenant.account_id == account_id)
        ).one()
        if count >= MAX_TENANTS_PER_ACCOUNT:
            raise FailedPrecondition(
                f"account {account_id} has {count:,} tenants, the most billing-svc keeps for "
                "one account (their usage and invoices stay within its bounds)"
            )
        tenant = Tenant(
            tenant_id=new_id("ten"), account_id=account_id, name=name, created_at=created_at
        )
        session.add(tenant)
        session.flush()
        _check_tenant_limit(session, ctx, account)
        audit.append(
            session,
            actor=ctx.caller.name,
            action="tenant.created",
            account_id=account_id,
            before=None,
            after={"tenant_id": tenant.tenant_id, "name": name, "created_at": created_at},
            at=ctx.now,
            request_id=ctx.request_id,
        )
        return tenant

    return TenantView.from_row(
        idempotent_write(db, ctx, key, create, loader(Tenant), lambda t: t.tenant_id)
    )


def _check_tenant_limit(session: Session, ctx: RequestContext, account: Account) -> None:
    """Tenants beyond the plan's count are allowed and billed as overage; the first one in a
    period emits ``billing.limit_exceeded`` (spec §1.7)."""
    included = terms_of(account).included_tenants
    if included is None:
        return
    count = session.exec(
        select(func.count()).select_from(Tenant).where(Tenant.account_id == account.account_id)
    ).one()
    period = Period.containing(ctx.now).label
    if count > included and notices.claim(session, account.account_id, period, "limit:tenants"):
        outbox.enqueue(
            session,
            events.limit_exceeded(
                account_id=account.account_id,
                limit_type="tenants",
                current_usage=count,
                plan_limit=included,
                period=period,
                refused=False,
                occurred_at=ctx.now,
            ),
        )


@dataclass(frozen=True)
class _Refused:
    """A request the plan's limit refused: raised only once its transaction, which records the
    refusal, has committed."""

    error: FailedPrecondition


def create_master_partner(
    db: Database,
    ctx: RequestContext,
    *,
    account_id: str,
    name: str,
    department: str,
    start_time: datetime | None,
    key: IdempotencyKey | None,
) -> MasterPartnerView:
    """Create a master partner within the plan's hard limit (spec §1.7).

    Beyond the limit the request is refused with ``FailedPrecondition``, and the refusal's
    transaction still commits a ``billing.limit_exceeded`` event (once per period) and an audit
    record.
    """
    name = _name(name)
    department = department.strip()
    if len(department) > 100:
        raise InvalidArgument("department", "is longer than 100 characters")
    created_at = _start_time(ctx, start_time)

    def create(session: Session) -> MasterPartner | _Refused:
        account = load_account(session, account_id, for_update=True)
        if account.status == subs.CANCELED:
            raise FailedPrecondition(f"account {account_id} is canceled")
        limit = terms_of(account).included_master_partners
        count = session.exec(
            select(func.count())
            .select_from(MasterPartner)
            .where(MasterPartner.account_id == account_id)
        ).one()
        if limit is not None and count >= limit:
            period = Period.containing(ctx.now).label
            audit.append(
                session,
                actor=ctx.caller.name,
                action="master_partner.refused",
                account_id=account_id,
                before=None,
                after={"name": name, "limit": limit, "count": count},
                at=ctx.now,
                request_id=ctx.request_id,
            )
            if notices.claim(session, account_id, period, "limit:master_partners"):
                outbox.enqueue(
                    session,
                    events.limit_exceeded(
                        account_id=account_id,
                        limit_type="master_partners",
                        current_usage=count + 1,
                        plan_limit=limit,
                        period=period,
                        refused=True,
                        occurred_at=ctx.now,
                    ),
                )
            return _Refused(
                FailedPrecondition(
                    f"the {account.plan_id} plan allows at most {limit} master partners and "
                    f"account {account_id} has {count}; upgrade the plan (ChangePlan) to add more"
                )
            )
        partner = MasterPartner(
            partner_id=new_id("prt"),
            account_id=account_id,
            name=name,
            department=department,
            created_at=created_at,
        )
        session.add(partner)
        audit.append(
            session,
            actor=ctx.caller.name,
            action="master_partner.created",
            account_id=account_id,
            before=None,
            after={"partner_id": partner.partner_id, "name": name, "department": department},
            at=ctx.now,
            request_id=ctx.request_id,
        )
        return partner

    outcome = idempotent_write(
        db,
        ctx,
        key,
        create,
        loader(MasterPartner),
        lambda o: o.partner_id if isinstance(o, MasterPartner) else "",
    )
    if isinstance(outcome, _Refused):
        raise outcome.error
    return MasterPartnerView.from_row(outcome)


def update_master_partner(
    db: Database, ctx: RequestContext, *, partner_id: str, name: str | None, department: str | None
) -> MasterPartnerView:
    if not partner_id:
        raise InvalidArgument("partner_id", "is required")
    with db.write() as session:
        partner = visible(
            ctx.caller,
            session.get(MasterPartner, partner_id, with_for_update=True),
            f"master partner {shown(partner_id)} does not exist",
        )
        before = {"name": partner.name, "department": partner.department}
        if name is not None:
            partner.name = _name(name)
        if department is not None:
            if len(department.strip()) > 100:
                raise InvalidArgument("department", "is longer than 100 characters")
            partner.department = department.strip()
        session.add(partner)
        audit.append(
            session,
            actor=ctx.caller.name,
            action="master_partner.updated",
            account_id=partner.account_id,
            before=before,
            after={"name": partner.name, "department": partner.department},
            at=ctx.now,
            request_id=ctx.request_id,
        )
        return MasterPartnerView.from_row(partner)


# ---------------------------------------------------------------------------------------------
# Scheduled transitions (run by the scheduler on every replica; each row changes once)


def _any_account(db: Database, *conditions: Any) -> bool:
    """A read first: the periodic jobs must not take SQLite's one write lock every few seconds
    when nothing is due (ingestion's group commits would wait for it)."""
    with db.read() as session:
        return (
            session.exec(select(Account.account_id).where(*conditions).limit(1)).first() is not None
        )


def on_clock(test_clock_id: str | None) -> Any:
    """The accounts of test clock ``test_clock_id``; with ``None``, the real accounts: a job
    runs for one time line at once."""
    if test_clock_id is None:
        return Account.test_clock_id.is_(None)  # type: ignore[union-attr]  # SQLModel column attribute
    return Account.test_clock_id == test_clock_id


def end_due_trials(
    db: Database, ctx: RequestContext, *, limit: int = 500, test_clock_id: str | None = None
) -> int:
    """End every trial whose time has come: ``active`` with a payment method, else ``past_due``."""
    due_now = (
        Account.status == subs.TRIALING,
        Account.trial_ends_at <= ctx.now,  # type: ignore[operator]  # SQLModel column attribute
        on_clock(test_clock_id),
    )
    if not _any_account(db, *due_now):
        return 0
    with db.write() as session:
        due = session.exec(
            select(Account)
            .where(*due_now)
            .order_by(col(Account.trial_ends_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for account in due:
            transition = subs.end_trial(subscription_of(account), ctx.now)
            if transition is not None:
                _apply(session, ctx, account, transition)
        return len(due)


def apply_period_end_changes(
    db: Database, ctx: RequestContext, *, limit: int = 500, test_clock_id: str | None = None
) -> int:
    """Apply downgrades and cancellations scheduled for a period end that has passed."""
    downgrade_due = (
        Account.pending_plan_id.is_not(None),  # type: ignore[union-attr]  # SQLModel column attribute
        col(Account.pending_effective_at) <= ctx.now,
        on_clock(test_clock_id),
    )
    cancel_due = (
        Account.cancel_at_period_end.is_(True),  # type: ignore[attr-defined]  # SQLModel column attribute
        col(Account.status) != subs.CANCELED,
        col(Account.canceled_at) <= ctx.now,
        on_clock(test_clock_id),
    )
    if not _any_account(db, or_(and_(*downgrade_due), and_(*cancel_due))):
        return 0
    changed = 0
    with db.write() as session:
        downgrades = session.exec(
            select(Account).where(*downgrade_due).limit(limit).with_for_update(skip_locked=True)
        ).all()
        for account in downgrades:
            transition = subs.apply_scheduled_change(subscription_of(account), ctx.now)
            if transition is not None:
                _apply(session, ctx, account, transition)
                changed += 1
        cancels = session.exec(
            select(Account).where(*cancel_due).limit(limit).with_for_update(skip_locked=True)
        ).all()
        for account in cancels:
            transition = subs.apply_scheduled_cancellation(subscription_of(account), ctx.now)
            if transition is not None:
                _apply(session, ctx, account, transition)
                changed += 1
    return changed
