"""Invoice and payment RPCs of ``BillingService`` (a mixin of ``BillingServicer``)."""

from __future__ import annotations

import grpc
from as2aas.billing.v1 import billing_service_pb2 as pb

from billing_svc.api import convert, validation
from billing_svc.api.common import run
from billing_svc.api.interceptor import current_context
from billing_svc.domain.errors import InvalidArgument
from billing_svc.services import credits, invoicing, payments
from billing_svc.services.store import Database


class InvoiceRpcs:
    db: Database
    dunning_days: tuple[int, ...]

    async def CloseBillingPeriod(
        self, request: pb.CloseBillingPeriodRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseBillingPeriodResponse:
        invoice = await run(
            invoicing.close_period,
            self.db,
            current_context(),
            account_id=request.account_id,
            period=validation.period_in(request.period),
        )
        return pb.CloseBillingPeriodResponse(invoice=convert.invoice_out(invoice))

    async def GetInvoice(
        self, request: pb.GetInvoiceRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetInvoiceResponse:
        invoice = await run(
            invoicing.get_invoice, self.db, request.invoice_id, caller=current_context().caller
        )
        return pb.GetInvoiceResponse(invoice=convert.invoice_out(invoice))

    async def ListInvoices(
        self, request: pb.ListInvoicesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListInvoicesResponse:
        invoices, token = await run(
            invoicing.list_invoices,
            self.db,
            account_id=request.account_id,
            status=validation.invoice_status_in(request.status),
            period=validation.period_in(request.period) if request.period else None,
            page_size=validation.page_size_in(request.page_size),
            page_token=request.page_token,
        )
        return pb.ListInvoicesResponse(
            invoices=[convert.invoice_out(i) for i in invoices], next_page_token=token
        )

    async def VoidInvoice(
        self, request: pb.VoidInvoiceRequest, context: grpc.aio.ServicerContext
    ) -> pb.VoidInvoiceResponse:
        invoice = await run(
            payments.void_invoice,
            self.db,
            current_context(),
            invoice_id=request.invoice_id,
            reason=request.reason,
        )
        return pb.VoidInvoiceResponse(invoice=convert.invoice_out(invoice))

    async def RecordPaymentResult(
        self, request: pb.RecordPaymentResultRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordPaymentResultResponse:
        ctx = current_context()
        invoice = await run(
            payments.record_payment_result,
            self.db,
            ctx,
            invoice_id=request.invoice_id,
            succeeded=request.succeeded,
            failure_reason=request.failure_reason,
            attempt_time=validation.time_in(request, "attempt_time"),
            dunning_days=self.dunning_days,
            key=validation.idempotency_key(
                "BillingService.RecordPaymentResult", request, ctx.caller.name
            ),
        )
        return pb.RecordPaymentResultResponse(invoice=convert.invoice_out(invoice))

    async def IssueCredit(
        self, request: pb.IssueCreditRequest, context: grpc.aio.ServicerContext
    ) -> pb.IssueCreditResponse:
        if not request.HasField("amount"):
            raise InvalidArgument("amount", "is required, e.g. {currency_code: USD, units: 50}")
        ctx = current_context()
        credit = await run(
            credits.issue_credit,
            self.db,
            ctx,
            account_id=request.account_id,
            amount=validation.money_in(request.amount, "amount"),
            description=request.description,
            key=validation.idempotency_key("BillingService.IssueCredit", request, ctx.caller.name),
        )
        return pb.IssueCreditResponse(credit=convert.credit_out(credit))

    async def ListCredits(
        self, request: pb.ListCreditsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCreditsResponse:
        found, token = await run(
            credits.list_credits,
            self.db,
            request.account_id,
            page_size=validation.page_size_in(request.page_size),
            page_token=request.page_token,
        )
        return pb.ListCreditsResponse(
            credits=[convert.credit_out(c) for c in found], next_page_token=token
        )
