"""``BillingService`` servicer: thin translation between proto and the use cases."""

from __future__ import annotations

from datetime import timedelta

import grpc
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import billing_service_pb2_grpc as pb_grpc

from billing_svc.api import convert, validation
from billing_svc.api.approvals import ApprovalRpcs, change_request_out
from billing_svc.api.common import run
from billing_svc.api.finance import FinanceRpcs
from billing_svc.api.interceptor import current_context
from billing_svc.api.invoices import InvoiceRpcs
from billing_svc.api.test_clocks import TestClockRpcs
from billing_svc.api.webhooks import WebhookRpcs
from billing_svc.domain import catalog
from billing_svc.domain import subscriptions as subs
from billing_svc.domain.errors import InvalidArgument
from billing_svc.services import accounts, approvals
from billing_svc.services.store import Database

_SERVICE = "BillingService"


class BillingServicer(
    InvoiceRpcs,
    FinanceRpcs,
    WebhookRpcs,
    ApprovalRpcs,
    TestClockRpcs,
    pb_grpc.BillingServiceServicer,
):
    """Accounts, plans and partners here; other RPC groups come from the mixins in their own
    modules (webhooks, invoices, finance) as they land."""

    def __init__(
        self,
        db: Database,
        *,
        dunning_days: tuple[int, ...] = (3, 5, 7),
        gl_account: str = "6100-AS2-MESSAGING",
        allow_private_networks: bool = False,
        change_request_ttl: timedelta = approvals.DEFAULT_TTL,
    ) -> None:
        self.db = db
        self.change_request_ttl = change_request_ttl
        self.allow_private_networks = allow_private_networks
        self.dunning_days = dunning_days
        self.gl_account = gl_account

    async def ListPlans(
        self, request: pb.ListPlansRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPlansResponse:
        return pb.ListPlansResponse(plans=[convert.plan_out(t) for t in catalog.catalog()])

    async def CreateAccount(
        self, request: pb.CreateAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateAccountResponse:
        ctx = current_context()
        account = await run(
            accounts.create_account,
            self.db,
            ctx,
            name=request.name,
            plan_id=request.plan_id,
            billing_interval=validation.interval_in(
                request.billing_interval, "billing_interval", default=subs.MONTHLY
            ),
            skip_trial=request.skip_trial,
            start_time=validation.time_in(request, "start_time"),
            usage_thresholds=tuple(request.usage_threshold_percentages),
            test_clock_id=request.test_clock_id.strip(),
            key=validation.idempotency_key(f"{_SERVICE}.CreateAccount", request, ctx.caller.name),
        )
        # A clock account was made at its clock's time, not at the call's.
        return pb.CreateAccountResponse(
            account=convert.account_out(
                account, account.created_at if account.test_clock_id else None
            )
        )

    async def GetAccountBilling(
        self, request: pb.GetAccountBillingRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAccountBillingResponse:
        view = await run(accounts.get_account_billing, self.db, request.account_id)
        return convert.account_billing_out(view)

    async def ChangePlan(
        self, request: pb.ChangePlanRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChangePlanResponse:
        ctx = current_context()
        change = await run(
            approvals.change_plan,
            self.db,
            ctx,
            account_id=request.account_id,
            plan_id=request.plan_id,
            billing_interval=validation.interval_in(
                request.billing_interval, "billing_interval", default=None
            ),
            ttl=self.change_request_ttl,
            key=validation.idempotency_key(f"{_SERVICE}.ChangePlan", request, ctx.caller.name),
        )
        return pb.ChangePlanResponse(
            subscription=convert.subscription_out(change.account),
            effective_immediately=change.effective_immediately,
            change_request=change_request_out(change.change_request),
        )

    async def CancelSubscription(
        self, request: pb.CancelSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelSubscriptionResponse:
        ctx = current_context()
        account, held = await run(
            approvals.cancel_subscription,
            self.db,
            ctx,
            account_id=request.account_id,
            at_period_end=request.at_period_end,
            ttl=self.change_request_ttl,
            key=validation.idempotency_key(
                f"{_SERVICE}.CancelSubscription", request, ctx.caller.name
            ),
        )
        return pb.CancelSubscriptionResponse(
            subscription=convert.subscription_out(account), change_request=change_request_out(held)
        )

    async def SetPaymentMethod(
        self, request: pb.SetPaymentMethodRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetPaymentMethodResponse:
        if not request.HasField("payment_method"):
            raise InvalidArgument("payment_method", "is required")
        account = await run(
            accounts.set_payment_method,
            self.db,
            current_context(),
            account_id=request.account_id,
            method=validation.payment_method_in(request.payment_method),
        )
        return pb.SetPaymentMethodResponse(
            payment_method=convert.payment_method_out(account),
            subscription=convert.subscription_out(account),
        )

    async def SetCustomTerms(
        self, request: pb.SetCustomTermsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetCustomTermsResponse:
        if not request.HasField("terms"):
            raise InvalidArgument("terms", "is required")
        ctx = current_context()
        view, held = await run(
            approvals.set_custom_terms,
            self.db,
            ctx,
            account_id=request.account_id,
            terms=validation.custom_terms_in(request.terms),
            ttl=self.change_request_ttl,
            key=validation.idempotency_key(f"{_SERVICE}.SetCustomTerms", request, ctx.caller.name),
        )
        return pb.SetCustomTermsResponse(
            billing_plan=convert.billing_plan_out(view.terms),
            change_request=change_request_out(held),
        )

    async def SetUsageThresholds(
        self, request: pb.SetUsageThresholdsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetUsageThresholdsResponse:
        account = await run(
            accounts.set_usage_thresholds,
            self.db,
            current_context(),
            account_id=request.account_id,
            thresholds=tuple(request.threshold_percentages),
        )
        return pb.SetUsageThresholdsResponse(account=convert.account_out(account))

    async def CreateTenant(
        self, request: pb.CreateTenantRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTenantResponse:
        ctx = current_context()
        tenant = await run(
            accounts.create_tenant,
            self.db,
            ctx,
            account_id=request.account_id,
            name=request.name,
            start_time=validation.time_in(request, "start_time"),
            key=validation.idempotency_key(f"{_SERVICE}.CreateTenant", request, ctx.caller.name),
        )
        return pb.CreateTenantResponse(tenant=convert.tenant_out(tenant))

    async def CreateMasterPartner(
        self, request: pb.CreateMasterPartnerRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateMasterPartnerResponse:
        ctx = current_context()
        partner = await run(
            accounts.create_master_partner,
            self.db,
            ctx,
            account_id=request.account_id,
            name=request.name,
            department=request.department,
            start_time=validation.time_in(request, "start_time"),
            key=validation.idempotency_key(
                f"{_SERVICE}.CreateMasterPartner", request, ctx.caller.name
            ),
        )
        return pb.CreateMasterPartnerResponse(master_partner=convert.master_partner_out(partner))

    async def UpdateMasterPartner(
        self, request: pb.UpdateMasterPartnerRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateMasterPartnerResponse:
        partner = await run(
            accounts.update_master_partner,
            self.db,
            current_context(),
            partner_id=request.partner_id,
            name=request.name if request.HasField("name") else None,
            department=request.department if request.HasField("department") else None,
        )
        return pb.UpdateMasterPartnerResponse(master_partner=convert.master_partner_out(partner))
