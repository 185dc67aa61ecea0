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
from billing_svc.storage import audit, notices, outbox
from billing_svc.storage.db import Database
from billing_svc.storage.idempotency import IdempotencyKey
from billing_svc.storage.tables import Account, Invoice, MasterPartner, PlanSegment, Tenant

MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class AccountBilling:
    """An account with the terms in force for it."""

    account: Account
    terms: Terms


def terms_of(account: Account) -> Terms:
    custom = CustomTerms.from_json(account.custom_terms_json) if account.custom_terms_json else None
    return catalog.effective_terms(account.plan_id, custom)


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
            {"type": account.payment_method_type, "last4": account.payment_last4,
             "exp_month": account.payment_exp_month, "exp_year": account.payment_exp_year}
            if account.payment_method_type else None),
        "usage_thresholds": account.usage_thresholds,
        "custom_terms": account.custom_terms_json,
    }


def _subscription_event(account: Account, *, change: str, before: dict[str, object],
                        at: datetime) -> events.BillingEvent:
    return events.subscription_updated(
        account_id=account.account_id, subscription_id=account.subscription_id, change=change,
        status=account.status, previous_status=str(before["status"]),
        plan_id=account.plan_id, previous_plan_id=str(before["plan_id"]),
        cancel_at_period_end=account.cancel_at_period_end,
        pending_plan_id=account.pending_plan_id, effective_at=at, occurred_at=at)


def _record_change(session: Session, ctx: RequestContext, account: Account, action: str,
                   before: dict[str, object], *, event_change: str | None,
                   at: datetime | None = None) -> None:
    """Audit a change of the account and, for subscription changes, emit the event."""
    account.updated_at = ctx.now
    session.add(account)
    audit.append(session, actor=ctx.caller.name, action=action, account_id=account.account_id,
                 before=before, after=_snapshot(account), at=ctx.now, request_id=ctx.request_id)
    if event_change is not None:
        outbox.enqueue(session, _subscription_event(account, change=event_change, before=before,
                                                    at=at or ctx.now))


# ---------------------------------------------------------------------------------------------
# Accounts and subscriptions


def create_account(db: Database, ctx: RequestContext, *, name: str, plan_id: str,
                   billing_interval: str, skip_trial: bool, start_time: datetime | None,
                   usage_thresholds: tuple[int, ...], key: IdempotencyKey | None,
                   test_clock_id: str = "") -> Account:
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
        trial_ends_at = subs.trial_end(created_at, terms, skip_trial)
        account = Account(
            account_id=account_id, customer_id=f"cus_{suffix}", subscription_id=f"sub_{suffix}",
            name=name, plan_id=terms.plan_id, billing_interval=billing_interval,
            status=subs.TRIALING if trial_ends_at else subs.ACTIVE,
            created_at=created_at, registered_at=ctx.now, updated_at=ctx.now,
            trial_ends_at=trial_ends_at,
            usage_thresholds=thresholds,
            test_clock_id=test_clock_id or None,
        )
        session.add(account)
        session.flush()
        session.add(PlanSegment(account_id=account_id, plan_id=terms.plan_id,
                                billing_interval=billing_interval, effective_at=created_at))
        audit.append(session, actor=ctx.caller.name, action="account.created",
                     account_id=account_id, before=None,
                     after={"name": name, **_snapshot(account)}, at=ctx.now,
                     request_id=ctx.request_id)
        return account

    return idempotent_write(db, ctx, key, create, lambda s, i: load_account(s, i),
                            lambda a: a.account_id)


def _on_test_clock(db: Database, ctx: RequestContext, test_clock_id: str,
                   start_time: datetime | None) -> RequestContext:
    """``ctx`` at the time of test clock ``test_clock_id``, for an account made on it."""
    from billing_svc.services import test_clocks

    if not ctx.caller.has("sandbox"):
        raise PermissionDenied("test_clock_id needs the 'sandbox' scope")
    if start_time is not None:
        raise InvalidArgument("start_time", "must be unset with test_clock_id: a clock account "
                              "starts at the clock's time")
    clock = test_clocks.get_test_clock(db, test_clock_id)
    if clock.status != test_clocks.READY:
        raise FailedPrecondition(f"test clock {test_clock_id} is advancing; create the account "
                                 "once GetTestClock says STATUS_READY")
    return dataclasses.replace(ctx, now=clock.frozen_time)


def get_account_billing(db: Database, account_id: str) -> AccountBilling:
    with db.read() as session:
        account = load_account(session, account_id)
        return AccountBilling(account, terms_of(account))


def change_plan(db: Database, ctx: RequestContext, *, account_id: str, plan_id: str,
                billing_interval: str | None) -> tuple[Account, bool]:
    """Upgrade now or schedule a downgrade for the period end; returns (account, immediate)."""
    new_terms = _catalog_plan(plan_id)
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        return apply_plan_change(session, ctx, account, new_terms, billing_interval)


def plan_after_change(account: Account, new_terms: Terms) -> Terms:
    """The terms ``account`` would have on ``new_terms``'s plan (its custom terms, for custom)."""
    custom = (CustomTerms.from_json(account.custom_terms_json)
              if account.custom_terms_json and new_terms.plan_id == "custom" else None)
    return catalog.effective_terms(new_terms.plan_id, custom)


def apply_plan_change(session: Session, ctx: RequestContext, account: Account,
                      new_terms: Terms, billing_interval: str | None) -> tuple[Account, bool]:
    """``change_plan`` on a locked ``account`` inside ``session``'s transaction: what a direct
    call and an approved change request both do."""
    account_id = account.account_id
    if account.status == subs.CANCELED:
        raise FailedPrecondition(
            f"account {account_id} is canceled; create a new account to subscribe again")
    interval = billing_interval or account.billing_interval
    before = _snapshot(account)
    current = terms_of(account)
    if new_terms.plan_id == account.plan_id and interval == account.billing_interval:
        if account.pending_plan_id is None:
            return account, True
        account.pending_plan_id = account.pending_billing_interval = None
        account.pending_effective_at = None
        _record_change(session, ctx, account, "subscription.pending_change_canceled", before,
                       event_change="pending_change_canceled")
        return account, True
    effective_new = plan_after_change(account, new_terms)
    if subs.is_upgrade(current, effective_new):
        account.plan_id = new_terms.plan_id
        account.billing_interval = interval
        account.pending_plan_id = account.pending_billing_interval = None
        account.pending_effective_at = None
        session.add(PlanSegment(account_id=account_id, plan_id=new_terms.plan_id,
                                billing_interval=interval, effective_at=ctx.now))
        _record_change(session, ctx, account, "subscription.upgraded", before,
                       event_change="upgraded")
        return account, True
    account.pending_plan_id = new_terms.plan_id
    account.pending_billing_interval = interval
    account.pending_effective_at = Period.containing(ctx.now).end
    _record_change(session, ctx, account, "subscription.downgrade_scheduled", before,
                   event_change="downgrade_scheduled")
    return account, False


def cancel_subscription(db: Database, ctx: RequestContext, *, account_id: str,
                        at_period_end: bool) -> Account:
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        return apply_cancellation(session, ctx, account, at_period_end)


def apply_cancellation(session: Session, ctx: RequestContext, account: Account,
                       at_period_end: bool) -> Account:
    """``cancel_subscription`` on a locked ``account`` inside ``session``'s transaction."""
    if account.status == subs.CANCELED:
        return account
    before = _snapshot(account)
    if at_period_end:
        if account.cancel_at_period_end:
            return account
        account.cancel_at_period_end = True
        account.canceled_at = Period.containing(ctx.now).end
        _record_change(session, ctx, account, "subscription.cancel_scheduled", before,
                       event_change="cancel_scheduled")
    else:
        account.status = subs.CANCELED
        account.canceled_at = ctx.now
        account.pending_plan_id = account.pending_billing_interval = None
        account.pending_effective_at = None
        _record_change(session, ctx, account, "subscription.canceled", before,
                       event_change="canceled")
    return account


def set_payment_method(db: Database, ctx: RequestContext, *, account_id: str,
                       method: subs.PaymentMethodInput) -> Account:
    method.validate(ctx.now.year, ctx.now.month)
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        before = _snapshot(account)
        account.payment_method_type = method.type
        account.payment_last4 = method.last4
        account.payment_exp_month = method.exp_month
        account.payment_exp_year = method.exp_year
        change = None
        if account.status == subs.PAST_DUE and not _has_open_dunning(session, account):
            # Past due with no failed payment to settle: for want of a payment method (a trial
            # that ended without one), so the subscription can start now.
            account.status = subs.ACTIVE
            change = "payment_method_added"
        _record_change(session, ctx, account, "payment_method.set", before, event_change=change)
        return account


def _has_open_dunning(session: Session, account: Account) -> bool:
    """Whether a failed payment keeps the account past due (then only paying clears it)."""
    return session.exec(select(func.count()).select_from(Invoice).where(
        Invoice.account_id == account.account_id, Invoice.failed_attempts > 0,
        Invoice.status.in_(["open", "uncollectible"]))).one() > 0  # type: ignore[attr-defined]  # SQLModel column attribute


def set_custom_terms(db: Database, ctx: RequestContext, *, account_id: str,
                     terms: CustomTerms) -> AccountBilling:
    terms.validate()
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        return apply_custom_terms(session, ctx, account, terms)


def apply_custom_terms(session: Session, ctx: RequestContext, account: Account,
                       terms: CustomTerms) -> AccountBilling:
    """``set_custom_terms`` (validated terms) on a locked ``account`` inside ``session``'s
    transaction."""
    before = _snapshot(account)
    previous_plan = account.plan_id
    account.custom_terms_json = terms.to_json()
    account.plan_id = "custom"
    account.pending_plan_id = account.pending_billing_interval = None
    account.pending_effective_at = None
    if previous_plan != "custom":
        session.add(PlanSegment(account_id=account.account_id, plan_id="custom",
                                billing_interval=account.billing_interval,
                                effective_at=ctx.now))
    _record_change(session, ctx, account, "custom_terms.set", before,
                   event_change="custom_terms")
    return AccountBilling(account, terms_of(account))


def set_usage_thresholds(db: Database, ctx: RequestContext, *, account_id: str,
                         thresholds: tuple[int, ...]) -> Account:
    parsed = subs.parse_thresholds(thresholds, "threshold_percentages")
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        before = _snapshot(account)
        account.usage_thresholds = parsed
        _record_change(session, ctx, account, "usage_thresholds.set", before, event_change=None)
        return account


# ---------------------------------------------------------------------------------------------
# Tenants and master partners


def create_tenant(db: Database, ctx: RequestContext, *, account_id: str, name: str,
                  start_time: datetime | None, key: IdempotencyKey | None) -> Tenant:
    name = _name(name)
    created_at = _start_time(ctx, start_time)

    def create(session: Session) -> Tenant:
        account = load_account(session, account_id, for_update=True)
        if account.status == subs.CANCELED:
            raise FailedPrecondition(f"account {account_id} is canceled")
        count = session.exec(select(func.count()).select_from(Tenant)
                             .where(Tenant.account_id == account_id)).one()
        if count >= MAX_TENANTS_PER_ACCOUNT:
            raise FailedPrecondition(
                f"account {account_id} has {count:,} tenants, the most billing-svc keeps for "
                "one account (their usage and invoices stay within its bounds)")
        tenant = Tenant(tenant_id=new_id("ten"), account_id=account_id, name=name,
                        created_at=created_at)
        session.add(tenant)
        session.flush()
        _check_tenant_limit(session, ctx, account)
        audit.append(session, actor=ctx.caller.name, action="tenant.created",
                     account_id=account_id, before=None,
                     after={"tenant_id": tenant.tenant_id, "name": name,
                            "created_at": created_at},
                     at=ctx.now, request_id=ctx.request_id)
        return tenant

    return idempotent_write(db, ctx, key, create, loader(Tenant), lambda t: t.tenant_id)


def _check_tenant_limit(session: Session, ctx: RequestContext, account: Account) -> None:
    """Tenants beyond the plan's count are allowed and billed as overage; the first one in a
    period emits ``billing.limit_exceeded`` (spec §1.7)."""
    included = terms_of(account).included_tenants
    if included is None:
        return
    count = session.exec(select(func.count()).select_from(Tenant)
                         .where(Tenant.account_id == account.account_id)).one()
    period = Period.containing(ctx.now).label
    if count > included and notices.claim(session, account.account_id, period, "limit:tenants"):
        outbox.enqueue(session, events.limit_exceeded(
            account_id=account.account_id, limit_type="tenants", current_usage=count,
            plan_limit=included, period=period, refused=False, occurred_at=ctx.now))


def create_master_partner(db: Database, ctx: RequestContext, *, account_id: str, name: str,
                          department: str, start_time: datetime | None,
                          key: IdempotencyKey | None) -> MasterPartner:
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
    refusal: list[FailedPrecondition] = []

    def create(session: Session) -> MasterPartner | None:
        account = load_account(session, account_id, for_update=True)
        if account.status == subs.CANCELED:
            raise FailedPrecondition(f"account {account_id} is canceled")
        limit = terms_of(account).included_master_partners
        count = session.exec(select(func.count()).select_from(MasterPartner)
                             .where(MasterPartner.account_id == account_id)).one()
        if limit is not None and count >= limit:
            period = Period.containing(ctx.now).label
            audit.append(session, actor=ctx.caller.name, action="master_partner.refused",
                         account_id=account_id, before=None,
                         after={"name": name, "limit": limit, "count": count},
                         at=ctx.now, request_id=ctx.request_id)
            if notices.claim(session, account_id, period, "limit:master_partners"):
                outbox.enqueue(session, events.limit_exceeded(
                    account_id=account_id, limit_type="master_partners", current_usage=count + 1,
                    plan_limit=limit, period=period, refused=True, occurred_at=ctx.now))
            refusal.append(FailedPrecondition(
                f"the {account.plan_id} plan allows at most {limit} master partners and account "
                f"{account_id} has {count}; upgrade the plan (ChangePlan) to add more"))
            return None
        partner = MasterPartner(partner_id=new_id("prt"), account_id=account_id, name=name,
                                department=department, created_at=created_at)
        session.add(partner)
        audit.append(session, actor=ctx.caller.name, action="master_partner.created",
                     account_id=account_id, before=None,
                     after={"partner_id": partner.partner_id, "name": name,
                            "department": department},
                     at=ctx.now, request_id=ctx.request_id)
        return partner

    partner = idempotent_write(db, ctx, key, create, loader(MasterPartner),
                               lambda p: p.partner_id if p else "")
    if partner is None:
        raise refusal[0]
    return partner


def update_master_partner(db: Database, ctx: RequestContext, *, partner_id: str,
                          name: str | None, department: str | None) -> MasterPartner:
    if not partner_id:
        raise InvalidArgument("partner_id", "is required")
    with db.write() as session:
        partner = visible(ctx.caller, session.get(MasterPartner, partner_id, with_for_update=True),
                          f"master partner {shown(partner_id)} does not exist")
        before = {"name": partner.name, "department": partner.department}
        if name is not None:
            partner.name = _name(name)
        if department is not None:
            if len(department.strip()) > 100:
                raise InvalidArgument("department", "is longer than 100 characters")
            partner.department = department.strip()
        session.add(partner)
        audit.append(session, actor=ctx.caller.name, action="master_partner.updated",
                     account_id=partner.account_id, before=before,
                     after={"name": partner.name, "department": partner.department},
                     at=ctx.now, request_id=ctx.request_id)
        return partner


# ---------------------------------------------------------------------------------------------
# Scheduled transitions (run by the scheduler on every replica; each row changes once)


def _any_account(db: Database, *conditions: Any) -> bool:
    """A read first: the periodic jobs must not take SQLite's one write lock every few seconds
    when nothing is due (ingestion's group commits would wait for it)."""
    with db.read() as session:
        return session.exec(select(Account.account_id).where(*conditions).limit(1)).first() \
            is not None


def on_clock(test_clock_id: str | None) -> Any:
    """The accounts of test clock ``test_clock_id``; with ``None``, the real accounts: a job
    runs for one time line at once."""
    if test_clock_id is None:
        return Account.test_clock_id.is_(None)  # type: ignore[union-attr]  # SQLModel column attribute
    return Account.test_clock_id == test_clock_id


def end_due_trials(db: Database, ctx: RequestContext, *, limit: int = 500,
                   test_clock_id: str | None = None) -> int:
    """End every trial whose time has come: ``active`` with a payment method, else ``past_due``."""
    due_now = (Account.status == subs.TRIALING, Account.trial_ends_at <= ctx.now,  # type: ignore[operator]  # SQLModel column attribute
               on_clock(test_clock_id))
    if not _any_account(db, *due_now):
        return 0
    with db.write() as session:
        due = session.exec(
            select(Account)
            .where(*due_now)
            .order_by(col(Account.trial_ends_at)).limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for account in due:
            before = _snapshot(account)
            account.status = subs.status_after_trial(account.payment_method_type is not None)
            assert account.trial_ends_at is not None
            _record_change(session, ctx, account, "subscription.trial_ended", before,
                           event_change="trial_ended", at=account.trial_ends_at)
        return len(due)


def apply_period_end_changes(db: Database, ctx: RequestContext, *, limit: int = 500,
                             test_clock_id: str | None = None) -> int:
    """Apply downgrades and cancellations scheduled for a period end that has passed."""
    downgrade_due = (Account.pending_plan_id.is_not(None),  # type: ignore[union-attr]  # SQLModel column attribute
                     col(Account.pending_effective_at) <= ctx.now,
                     on_clock(test_clock_id))
    cancel_due = (Account.cancel_at_period_end.is_(True),  # type: ignore[attr-defined]  # SQLModel column attribute
                  col(Account.status) != subs.CANCELED, col(Account.canceled_at) <= ctx.now,
                  on_clock(test_clock_id))
    if not _any_account(db, or_(and_(*downgrade_due), and_(*cancel_due))):
        return 0
    changed = 0
    with db.write() as session:
        downgrades = session.exec(
            select(Account)
            .where(*downgrade_due)
            .limit(limit).with_for_update(skip_locked=True)
        ).all()
        for account in downgrades:
            before = _snapshot(account)
            effective_at = account.pending_effective_at
            assert effective_at is not None and account.pending_plan_id is not None
            account.plan_id = account.pending_plan_id
            account.billing_interval = account.pending_billing_interval or account.billing_interval
            account.pending_plan_id = account.pending_billing_interval = None
            account.pending_effective_at = None
            session.add(PlanSegment(account_id=account.account_id, plan_id=account.plan_id,
                                    billing_interval=account.billing_interval,
                                    effective_at=effective_at))
            _record_change(session, ctx, account, "subscription.downgraded", before,
                           event_change="downgraded", at=effective_at)
            changed += 1
        cancels = session.exec(
            select(Account)
            .where(*cancel_due)
            .limit(limit).with_for_update(skip_locked=True)
        ).all()
        for account in cancels:
            before = _snapshot(account)
            account.status = subs.CANCELED
            assert account.canceled_at is not None
            _record_change(session, ctx, account, "subscription.canceled", before,
                           event_change="canceled", at=account.canceled_at)
            changed += 1
    return changed
