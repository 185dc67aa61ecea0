"""Approval workflows (issue 15, point 1): subscription changes an account's policy holds, and
their decision by someone other than the requester.

``ChangePlan``, ``CancelSubscription`` and ``SetCustomTerms`` come through here: in one
transaction the account is locked, its policy read, and the change either made at once by the
``services.accounts`` code path it always used, or stored as a change request (``chg_...``). An
approval runs that same code path on the stored parameters, at the moment of approval, so an
approved change is exactly what the direct call would have done then.

Exactly once: a decision locks the request's row (``FOR UPDATE``; SQLite's single writer) and
checks that it is still pending, so two approvals at once, on one replica or two, make one
change and one ``billing.approval_decided``; ``request_id`` retries return the first result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from billing_svc.domain import approvals, events
from billing_svc.domain import subscriptions as subs
from billing_svc.domain.approvals import ApprovalPolicy
from billing_svc.domain.catalog import CustomTerms
from billing_svc.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    shown,
)
from billing_svc.domain.ids import new_id
from billing_svc.services import accounts, paging
from billing_svc.services.accounts import AccountBilling
from billing_svc.services.common import load_account, visible
from billing_svc.services.context import RequestContext
from billing_svc.services.views import AccountView, ChangeRequestView
from billing_svc.storage import audit, idempotency, outbox
from billing_svc.storage import tables as t
from billing_svc.storage.db import Database
from billing_svc.storage.idempotency import IdempotencyKey
from billing_svc.storage.tables import Account, ChangeRequest

DEFAULT_TTL = timedelta(hours=168)


@dataclass(frozen=True)
class PlanChange:
    """What ``ChangePlan`` answers: the subscription, and the request when the change is held."""

    account: AccountView
    effective_immediately: bool
    change_request: ChangeRequestView | None = None


@dataclass(frozen=True)
class Decision:
    """A decided request, and for an approval the subscription after its change."""

    change_request: ChangeRequestView
    account: AccountView | None = None
    effective_immediately: bool = False


def _held_view(request: ChangeRequest | None) -> ChangeRequestView | None:
    return ChangeRequestView.from_row(request) if request is not None else None


# ---------------------------------------------------------------------------------------------
# Policies


def policy_of(session: Session, account_id: str) -> ApprovalPolicy:
    row = session.get(t.ApprovalPolicy, account_id)
    if row is None:
        return ApprovalPolicy()
    return ApprovalPolicy(
        upgrades=row.upgrades,
        downgrades=row.downgrades,
        cancellations=row.cancellations,
        custom_terms=row.custom_terms,
        base_fee_above=row.base_fee_above,
    )


def _policy_record(policy: ApprovalPolicy) -> dict[str, object]:
    return {
        "upgrades": policy.upgrades,
        "downgrades": policy.downgrades,
        "cancellations": policy.cancellations,
        "custom_terms": policy.custom_terms,
        "base_fee_above": policy.base_fee_above,
    }


def set_policy(
    db: Database, ctx: RequestContext, *, account_id: str, policy: ApprovalPolicy
) -> ApprovalPolicy:
    """Replace the account's approval policy whole (audited)."""
    policy.validate()
    with db.write() as session:
        load_account(session, account_id, for_update=True)
        before = policy_of(session, account_id)
        row = session.get(t.ApprovalPolicy, account_id) or t.ApprovalPolicy(
            account_id=account_id, updated_at=ctx.now
        )
        row.upgrades, row.downgrades = policy.upgrades, policy.downgrades
        row.cancellations, row.custom_terms = policy.cancellations, policy.custom_terms
        row.base_fee_above = policy.base_fee_above
        row.updated_at = ctx.now
        session.add(row)
        audit.append(
            session,
            actor=ctx.caller.name,
            action="approval_policy.set",
            account_id=account_id,
            before=_policy_record(before),
            after=_policy_record(policy),
            at=ctx.now,
            request_id=ctx.request_id,
        )
    return policy


# ---------------------------------------------------------------------------------------------
# The three changes a policy may hold


def change_plan(
    db: Database,
    ctx: RequestContext,
    *,
    account_id: str,
    plan_id: str,
    billing_interval: str | None,
    ttl: timedelta = DEFAULT_TTL,
    key: IdempotencyKey | None = None,
) -> PlanChange:
    """``accounts.change_plan``, unless the account's policy holds the change."""
    new_terms = accounts.catalog_plan(plan_id)
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        held = _held_before(session, ctx, account, key)
        if held is not None:
            return PlanChange(AccountView.from_row(account), False, _held_view(held))
        interval = billing_interval or account.billing_interval
        is_change = new_terms.plan_id != account.plan_id or interval != account.billing_interval
        if is_change and account.status != subs.CANCELED:
            current = accounts.terms_of(account)
            after = accounts.plan_after_change(account, new_terms)
            kind = approvals.UPGRADE if subs.is_upgrade(current, after) else approvals.DOWNGRADE
            summary = (
                f"{kind} from {account.plan_id} ({account.billing_interval}) to "
                f"{new_terms.plan_id} ({interval})"
            )
            held = _hold(
                session,
                ctx,
                account,
                kind,
                after.base_fee,
                {"plan_id": new_terms.plan_id, "billing_interval": billing_interval},
                summary,
                ttl,
                key,
            )
            if held is not None:
                return PlanChange(AccountView.from_row(account), False, _held_view(held))
        changed, immediate = accounts.apply_plan_change(
            session, ctx, account, new_terms, billing_interval
        )
        return PlanChange(AccountView.from_row(changed), immediate)


def cancel_subscription(
    db: Database,
    ctx: RequestContext,
    *,
    account_id: str,
    at_period_end: bool,
    ttl: timedelta = DEFAULT_TTL,
    key: IdempotencyKey | None = None,
) -> tuple[AccountView, ChangeRequestView | None]:
    """``accounts.cancel_subscription``, unless the account's policy holds the cancellation."""
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        held = _held_before(session, ctx, account, key)
        if held is not None:
            return AccountView.from_row(account), _held_view(held)
        no_op = (
            subs.cancel(accounts.subscription_of(account), ctx.now, at_period_end=at_period_end)
            is None
        )
        if not no_op:
            summary = (
                "cancellation at the end of the period" if at_period_end else "cancellation now"
            )
            held = _hold(
                session,
                ctx,
                account,
                approvals.CANCELLATION,
                None,
                {"at_period_end": at_period_end},
                summary,
                ttl,
                key,
            )
            if held is not None:
                return AccountView.from_row(account), _held_view(held)
        return AccountView.from_row(
            accounts.apply_cancellation(session, ctx, account, at_period_end)
        ), None


def set_custom_terms(
    db: Database,
    ctx: RequestContext,
    *,
    account_id: str,
    terms: CustomTerms,
    ttl: timedelta = DEFAULT_TTL,
    key: IdempotencyKey | None = None,
) -> tuple[AccountBilling, ChangeRequestView | None]:
    """``accounts.set_custom_terms``, unless the account's policy holds the change."""
    terms.validate()
    with db.write() as session:
        account = load_account(session, account_id, for_update=True)
        held = _held_before(session, ctx, account, key)
        if held is None:
            fee = (
                terms.base_fee
                if terms.base_fee is not None
                else accounts.catalog_plan("custom").base_fee
            )
            held = _hold(
                session,
                ctx,
                account,
                approvals.CUSTOM_TERMS,
                fee,
                {"custom_terms": terms.to_json()},
                f"custom terms with a monthly base fee of {fee} USD",
                ttl,
                key,
            )
        if held is not None:
            return AccountBilling.of(account), _held_view(held)
        return accounts.apply_custom_terms(session, ctx, account, terms), None


def _held_before(
    session: Session, ctx: RequestContext, account: Account, key: IdempotencyKey | None
) -> ChangeRequest | None:
    """The request a first call with ``key`` made, for a retry."""
    if key is None:
        return None
    existing = idempotency.find(session, key, ctx.caller.token_id)
    if existing is None:
        return None
    found = session.get(ChangeRequest, existing)
    if found is None or found.account_id != account.account_id:
        raise NotFound(f"change request {shown(existing)} no longer exists")
    return found


def _hold(
    session: Session,
    ctx: RequestContext,
    account: Account,
    kind: str,
    new_base_fee: Decimal | None,
    change: dict[str, Any],
    summary: str,
    ttl: timedelta,
    key: IdempotencyKey | None,
) -> ChangeRequest | None:
    """A new pending request for the change when the policy holds it, else ``None``.

    The same change asked again by the same caller while its request is pending (a retry
    without request_id) returns that request rather than a second one.
    """
    if not policy_of(session, account.account_id).holds(kind, new_base_fee):
        return None
    change_json = json.dumps(change, sort_keys=True, separators=(",", ":"))
    same = session.exec(
        select(ChangeRequest).where(
            ChangeRequest.account_id == account.account_id,
            ChangeRequest.status == approvals.PENDING,
            ChangeRequest.kind == kind,
            ChangeRequest.change_json == change_json,
            ChangeRequest.requested_by_token_id == ctx.caller.token_id,
            ChangeRequest.expires_at > ctx.now,
        )
    ).first()
    if same is not None:
        return same
    request = ChangeRequest(
        change_request_id=new_id("chg"),
        account_id=account.account_id,
        kind=kind,
        status=approvals.PENDING,
        change_json=change_json,
        summary=summary[:300],
        requested_by=ctx.caller.name,
        requested_by_token_id=ctx.caller.token_id,
        request_id=ctx.request_id,
        created_at=ctx.now,
        expires_at=ctx.now + ttl,
    )
    session.add(request)
    session.flush()
    audit.append(
        session,
        actor=ctx.caller.name,
        action="change_request.created",
        account_id=account.account_id,
        before=None,
        after=_record(request),
        at=ctx.now,
        request_id=ctx.request_id,
    )
    outbox.enqueue(
        session,
        events.approval_requested(
            account_id=account.account_id,
            change_request_id=request.change_request_id,
            kind=kind,
            requested_by=request.requested_by,
            summary=request.summary,
            expires_at=request.expires_at,
            occurred_at=ctx.now,
        ),
    )
    if key is not None:
        idempotency.remember(
            session,
            key,
            token_id=ctx.caller.token_id,
            caller=ctx.caller.name,
            result_id=request.change_request_id,
        )
    return request


def _record(request: ChangeRequest) -> dict[str, object]:
    return {
        "change_request_id": request.change_request_id,
        "kind": request.kind,
        "status": request.status,
        "change": json.loads(request.change_json),
        "summary": request.summary,
        "requested_by": request.requested_by,
        "expires_at": request.expires_at,
        "decided_by": request.decided_by,
        "reason": request.reason,
    }


# ---------------------------------------------------------------------------------------------
# Decisions


def decide(
    db: Database,
    ctx: RequestContext,
    *,
    change_request_id: str,
    approve: bool,
    reason: str,
    key: IdempotencyKey | None,
) -> Decision:
    """Approve (apply the change now, as the direct call would) or reject a pending request.

    ``PermissionDenied`` for its requester; ``FailedPrecondition`` once it is decided (unless
    the same caller repeats the same decision: then it is returned as it is) or expired (then
    it is marked expired, and that commits).
    """
    if not change_request_id:
        raise InvalidArgument("change_request_id", "is required (chg_…, see ListChangeRequests)")
    reason = approvals.reason_in(reason, required=not approve)
    decision = approvals.APPROVED if approve else approvals.REJECTED
    missing = f"change request {shown(change_request_id)} does not exist"
    if not change_request_id.startswith("chg_"):
        raise NotFound(missing)
    expired: list[FailedPrecondition] = []
    with db.write() as session:
        if key is not None:
            earlier = idempotency.find(session, key, ctx.caller.token_id)
            if earlier is not None:
                return _decision_view(
                    session, visible(ctx.caller, session.get(ChangeRequest, earlier), missing)
                )
        request = visible(
            ctx.caller, session.get(ChangeRequest, change_request_id, with_for_update=True), missing
        )
        if (
            ctx.caller.name == request.requested_by
            or ctx.caller.token_id == request.requested_by_token_id
        ):
            raise PermissionDenied(
                f"change request {request.change_request_id} was asked for by "
                f"{request.requested_by!r}; someone else with the 'billing:approve' scope must "
                "decide it"
            )
        if request.status != approvals.PENDING:
            if request.status == decision and request.decided_by == ctx.caller.name:
                return _decision_view(session, request)
            by = f" by {request.decided_by!r}" if request.decided_by else ""
            raise FailedPrecondition(
                f"change request {request.change_request_id} was already {request.status}{by}"
                f" at {request.decided_at.isoformat() if request.decided_at else '?'}"
            )
        if request.expires_at <= ctx.now:
            _expire(session, ctx, request)
            expired.append(
                FailedPrecondition(
                    f"change request {request.change_request_id} expired at "
                    f"{request.expires_at.isoformat()} without a decision; ask for the change again"
                )
            )
        else:
            account: AccountView | None = None
            immediate = False
            if approve:
                account, immediate = _apply(session, ctx, request)
            _record_decision(
                session, ctx, request, decision, by=ctx.caller.name, at=ctx.now, reason=reason
            )
            if key is not None:
                idempotency.remember(
                    session,
                    key,
                    token_id=ctx.caller.token_id,
                    caller=ctx.caller.name,
                    result_id=request.change_request_id,
                )
            return Decision(ChangeRequestView.from_row(request), account, immediate)
    raise expired[0]


def _apply(
    session: Session, ctx: RequestContext, request: ChangeRequest
) -> tuple[AccountView, bool]:
    """Make the request's change through the code path of the direct call: the account after
    it, and whether it took effect at once."""
    account = load_account(session, request.account_id, for_update=True)
    change = json.loads(request.change_json)
    try:
        if request.kind == approvals.CANCELLATION:
            account = accounts.apply_cancellation(
                session, ctx, account, bool(change["at_period_end"])
            )
            return AccountView.from_row(account), not change["at_period_end"]
        if request.kind == approvals.CUSTOM_TERMS:
            terms = CustomTerms.from_json(change["custom_terms"])
            terms.validate()
            view = accounts.apply_custom_terms(session, ctx, account, terms)
            return view.account, True
        account, immediate = accounts.apply_plan_change(
            session,
            ctx,
            account,
            accounts.catalog_plan(change["plan_id"]),
            change["billing_interval"],
        )
        return AccountView.from_row(account), immediate
    except (FailedPrecondition, InvalidArgument) as exc:
        raise FailedPrecondition(
            f"change request {request.change_request_id} cannot be applied now: {exc}; "
            "reject it instead"
        ) from exc


def _decision_view(session: Session, request: ChangeRequest) -> Decision:
    """A decision already made, as a retry of it answers."""
    account = session.get(Account, request.account_id)
    immediate = request.status == approvals.APPROVED and (
        request.kind in (approvals.UPGRADE, approvals.CUSTOM_TERMS)
        or (request.kind == approvals.CANCELLATION and not change_of(request)["at_period_end"])
    )
    return Decision(
        ChangeRequestView.from_row(request),
        AccountView.from_row(account) if account is not None else None,
        immediate,
    )


def _expire(session: Session, ctx: RequestContext, request: ChangeRequest) -> None:
    hours = (request.expires_at - request.created_at).total_seconds() / 3600
    _record_decision(
        session,
        ctx,
        request,
        approvals.EXPIRED,
        by=ctx.caller.name if ctx.caller.name.startswith("system") else "system",
        at=request.expires_at,
        reason=f"no decision within {hours:g} hours",
    )


def _record_decision(
    session: Session,
    ctx: RequestContext,
    request: ChangeRequest,
    decision: str,
    *,
    by: str,
    at: datetime,
    reason: str,
) -> None:
    """Decide ``request`` (approved, rejected or expired) by ``by`` at ``at``, with its audit
    record (written at the service's time) and its ``billing.approval.decided`` event."""
    request.status = decision
    request.decided_by = by
    request.decided_at = at
    request.reason = reason
    session.add(request)
    audit.append(
        session,
        actor=by,
        action=f"change_request.{decision}",
        account_id=request.account_id,
        before={"status": approvals.PENDING},
        after=_record(request),
        at=ctx.now,
        request_id=ctx.request_id,
    )
    outbox.enqueue(
        session,
        events.approval_decided(
            account_id=request.account_id,
            change_request_id=request.change_request_id,
            decision=decision,
            decided_by=by,
            reason=reason or None,
            occurred_at=at,
        ),
    )


def expire_due(
    db: Database, ctx: RequestContext, *, limit: int = 500, test_clock_id: str | None = None
) -> int:
    """Mark every pending request past its ``expires_at`` expired (the scheduler, every
    replica: ``SKIP LOCKED`` and the status check make each expire once). One time line at once:
    the real accounts', or test clock ``test_clock_id``'s (a clock account's request was made,
    and expires, on the clock's time)."""
    due = (
        ChangeRequest.status == approvals.PENDING,
        col(ChangeRequest.expires_at) <= ctx.now,
        col(ChangeRequest.account_id).in_(
            select(Account.account_id).where(accounts.on_clock(test_clock_id))
        ),
    )
    with db.read() as session:
        if (
            session.exec(select(ChangeRequest.change_request_id).where(*due).limit(1)).first()
            is None
        ):
            return 0
    with db.write() as session:
        rows = session.exec(
            select(ChangeRequest)
            .where(*due)
            .order_by(col(ChangeRequest.expires_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for request in rows:
            _expire(session, ctx, request)
        return len(rows)


# ---------------------------------------------------------------------------------------------
# Listing


def list_change_requests(
    db: Database, *, account_id: str, status: str | None, page_size: int, page_token: str
) -> tuple[list[ChangeRequestView], str]:
    """Oldest first, by id (ids sort by creation time)."""
    size = min(page_size or 50, 500)
    query = (account_id, status or "")
    after = paging.read_token(page_token, "ListChangeRequests", query, (paging.resource_id("chg"),))
    statement = select(ChangeRequest)
    if account_id:
        statement = statement.where(ChangeRequest.account_id == account_id)
    if status:
        statement = statement.where(ChangeRequest.status == status)
    if after:
        statement = statement.where(col(ChangeRequest.change_request_id) > after[0])
    with db.read() as session:
        if account_id:
            load_account(session, account_id)
        rows = list(
            session.exec(statement.order_by(ChangeRequest.change_request_id).limit(size + 1))
        )
    token = (
        paging.next_token("ListChangeRequests", query, (rows[size - 1].change_request_id,))
        if len(rows) > size
        else ""
    )
    return [ChangeRequestView.from_row(row) for row in rows[:size]], token


def change_of(request: ChangeRequest | ChangeRequestView) -> dict[str, Any]:
    """The stored parameters of the change (``plan_id``, ``at_period_end``, ...)."""
    return dict(json.loads(request.change_json))


def custom_terms_of(request: ChangeRequestView) -> CustomTerms | None:
    change = change_of(request)
    return CustomTerms.from_json(change["custom_terms"]) if "custom_terms" in change else None
