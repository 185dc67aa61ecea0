"""Approval RPCs of ``BillingService`` (a mixin of ``BillingServicer``) and the proto shapes of
policies and change requests."""

from __future__ import annotations

from datetime import timedelta

import grpc
from as2aas.billing.v1 import billing_service_pb2 as pb

from billing_svc.api import convert, validation
from billing_svc.api.common import run
from billing_svc.api.interceptor import current_context
from billing_svc.domain import approvals as rules
from billing_svc.domain.approvals import ApprovalPolicy
from billing_svc.domain.catalog import CustomTerms
from billing_svc.domain.errors import InvalidArgument
from billing_svc.services import approvals
from billing_svc.services.store import Database
from billing_svc.services.views import ChangeRequestView

_SERVICE = "BillingService"
_STATUS = {
    rules.PENDING: pb.CHANGE_REQUEST_STATUS_PENDING,
    rules.APPROVED: pb.CHANGE_REQUEST_STATUS_APPROVED,
    rules.REJECTED: pb.CHANGE_REQUEST_STATUS_REJECTED,
    rules.EXPIRED: pb.CHANGE_REQUEST_STATUS_EXPIRED,
}
_STATUS_BACK: dict[int, str] = {value: key for key, value in _STATUS.items()}
_KIND = {
    rules.UPGRADE: pb.CHANGE_REQUEST_KIND_UPGRADE,
    rules.DOWNGRADE: pb.CHANGE_REQUEST_KIND_DOWNGRADE,
    rules.CANCELLATION: pb.CHANGE_REQUEST_KIND_CANCELLATION,
    rules.CUSTOM_TERMS: pb.CHANGE_REQUEST_KIND_CUSTOM_TERMS,
}
_INTERVAL = {"monthly": pb.BILLING_INTERVAL_MONTHLY, "annual": pb.BILLING_INTERVAL_ANNUAL}


def policy_in(message: pb.ApprovalPolicy) -> ApprovalPolicy:
    above = (
        validation.money_in(message.base_fee_above, "policy.base_fee_above")
        if message.HasField("base_fee_above")
        else None
    )
    return ApprovalPolicy(
        upgrades=message.upgrades,
        downgrades=message.downgrades,
        cancellations=message.cancellations,
        custom_terms=message.custom_terms,
        base_fee_above=above,
    )


def policy_out(policy: ApprovalPolicy) -> pb.ApprovalPolicy:
    out = pb.ApprovalPolicy(
        upgrades=policy.upgrades,
        downgrades=policy.downgrades,
        cancellations=policy.cancellations,
        custom_terms=policy.custom_terms,
    )
    if policy.base_fee_above is not None:
        out.base_fee_above.CopyFrom(convert.money_out(policy.base_fee_above))
    return out


def custom_terms_out(terms: CustomTerms) -> pb.CustomTerms:
    out = pb.CustomTerms(
        account_manager=terms.account_manager,
        contract_start=convert.time_out(terms.contract_start),
        contract_end=convert.time_out(terms.contract_end),
    )
    for name in ("base_fee", "tenant_overage", "message_overage", "storage_overage_per_gb"):
        value = getattr(terms, name)
        if value is not None:
            getattr(out, name).CopyFrom(convert.money_out(value))
    for name in ("included_tenants", "included_master_partners", "included_messages"):
        value = getattr(terms, name)
        if value is not None:
            setattr(out, name, value)
    if terms.included_storage_gb is not None:
        out.included_storage_gb = format(terms.included_storage_gb, "f")
    for tier in terms.message_tiers:
        out.message_tiers.add(
            up_to_messages=tier.up_to_messages or 0, unit_price=convert.money_out(tier.unit_price)
        )
    return out


def change_request_out(request: ChangeRequestView | None) -> pb.ChangeRequest | None:
    if request is None:
        return None
    change = approvals.change_of(request)
    out = pb.ChangeRequest(
        change_request_id=request.change_request_id,
        account_id=request.account_id,
        status=_STATUS[request.status],
        kind=_KIND[request.kind],
        requested_by=request.requested_by,
        create_time=convert.time_out(request.created_at),
        expires_at=convert.time_out(request.expires_at),
        summary=request.summary,
        plan_id=change.get("plan_id") or "",
        billing_interval=_INTERVAL.get(
            change.get("billing_interval") or "", pb.BILLING_INTERVAL_UNSPECIFIED
        ),
        at_period_end=bool(change.get("at_period_end")),
        decided_by=request.decided_by,
        decided_at=convert.time_out(request.decided_at),
        reason=request.reason,
    )
    terms = approvals.custom_terms_of(request)
    if terms is not None:
        out.custom_terms.CopyFrom(custom_terms_out(terms))
    return out


def status_in(value: int) -> str | None:
    if value == pb.CHANGE_REQUEST_STATUS_UNSPECIFIED:
        return None
    if value not in _STATUS_BACK:
        raise InvalidArgument("status", f"{value} is not a ChangeRequestStatus")
    return _STATUS_BACK[value]


class ApprovalRpcs:
    db: Database
    change_request_ttl: timedelta

    async def SetApprovalPolicy(
        self, request: pb.SetApprovalPolicyRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetApprovalPolicyResponse:
        if not request.HasField("policy"):
            raise InvalidArgument("policy", "is required, e.g. {upgrades: true}")
        policy = await run(
            approvals.set_policy,
            self.db,
            current_context(),
            account_id=request.account_id,
            policy=policy_in(request.policy),
        )
        return pb.SetApprovalPolicyResponse(policy=policy_out(policy))

    async def ListChangeRequests(
        self, request: pb.ListChangeRequestsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListChangeRequestsResponse:
        rows, token = await run(
            approvals.list_change_requests,
            self.db,
            account_id=request.account_id,
            status=status_in(request.status),
            page_size=validation.page_size_in(request.page_size),
            page_token=request.page_token,
        )
        return pb.ListChangeRequestsResponse(
            change_requests=[change_request_out(r) for r in rows],  # type: ignore[misc]  # rows: no None
            next_page_token=token,
        )

    async def ApproveChangeRequest(
        self, request: pb.ApproveChangeRequestRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApproveChangeRequestResponse:
        ctx = current_context()
        decision = await run(
            approvals.decide,
            self.db,
            ctx,
            change_request_id=request.change_request_id,
            approve=True,
            reason="",
            key=validation.idempotency_key(
                f"{_SERVICE}.ApproveChangeRequest", request, ctx.caller.name
            ),
        )
        return pb.ApproveChangeRequestResponse(
            change_request=change_request_out(decision.change_request),
            subscription=(
                convert.subscription_out(decision.account) if decision.account is not None else None
            ),
            effective_immediately=decision.effective_immediately,
        )

    async def RejectChangeRequest(
        self, request: pb.RejectChangeRequestRequest, context: grpc.aio.ServicerContext
    ) -> pb.RejectChangeRequestResponse:
        ctx = current_context()
        decision = await run(
            approvals.decide,
            self.db,
            ctx,
            change_request_id=request.change_request_id,
            approve=False,
            reason=request.reason,
            key=validation.idempotency_key(
                f"{_SERVICE}.RejectChangeRequest", request, ctx.caller.name
            ),
        )
        return pb.RejectChangeRequestResponse(
            change_request=change_request_out(decision.change_request)
        )
