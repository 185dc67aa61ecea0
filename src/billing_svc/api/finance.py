"""Budget and finance RPCs of ``BillingService`` (a mixin of ``BillingServicer``)."""

from __future__ import annotations

import grpc
from as2aas.billing.v1 import billing_service_pb2 as pb

from billing_svc.api import convert, reports, validation
from billing_svc.api.common import run
from billing_svc.api.interceptor import current_context
from billing_svc.domain import money
from billing_svc.domain.errors import InvalidArgument
from billing_svc.services import (
    audit_trail,
    finance,
    partner_utilization,
    plan_advice,
    reconciliation,
)
from billing_svc.services.store import Database


class FinanceRpcs:
    db: Database
    gl_account: str

    async def SetBudget(
        self, request: pb.SetBudgetRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetBudgetResponse:
        if not request.HasField("limit"):
            raise InvalidArgument("limit", "is required, e.g. {currency_code: USD, units: 2000}")
        budget = await run(
            finance.set_budget,
            self.db,
            current_context(),
            account_id=request.account_id,
            name=request.name,
            limit=validation.money_in(request.limit, "limit"),
            thresholds=tuple(request.threshold_percentages),
        )
        return pb.SetBudgetResponse(budget=convert.budget_out(budget))

    async def ListBudgets(
        self, request: pb.ListBudgetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListBudgetsResponse:
        budgets, token = await run(
            finance.list_budgets,
            self.db,
            request.account_id,
            page_size=validation.page_size_in(request.page_size),
            page_token=request.page_token,
        )
        return pb.ListBudgetsResponse(
            budgets=[convert.budget_out(b) for b in budgets], next_page_token=token
        )

    async def DeleteBudget(
        self, request: pb.DeleteBudgetRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteBudgetResponse:
        await run(
            finance.delete_budget,
            self.db,
            current_context(),
            account_id=request.account_id,
            name=request.name,
        )
        return pb.DeleteBudgetResponse()

    async def GetCostAllocation(
        self, request: pb.GetCostAllocationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCostAllocationResponse:
        allocation = await run(
            finance.cost_allocation,
            self.db,
            request.account_id,
            validation.period_in(request.period),
        )
        return convert.allocation_out(allocation)

    async def ExportJournalEntries(
        self, request: pb.ExportJournalEntriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExportJournalEntriesResponse:
        entries = await run(
            finance.journal_entries,
            self.db,
            request.account_id,
            validation.period_in(request.period),
            self.gl_account,
        )
        return pb.ExportJournalEntriesResponse(
            entries=[
                pb.JournalEntry(
                    gl_account=e.gl_account,
                    department=e.department,
                    amount=convert.money_out(e.amount),
                    description=e.description,
                    reference=e.reference,
                )
                for e in entries
            ]
        )

    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAuditEventsResponse:
        records, token = await run(
            audit_trail.list_audit_events,
            self.db,
            account_id=request.account_id,
            action=request.action,
            start=validation.time_in(request, "start_time"),
            end=validation.time_in(request, "end_time"),
            page_size=validation.page_size_in(request.page_size),
            page_token=request.page_token,
        )
        return pb.ListAuditEventsResponse(
            audit_events=[convert.audit_out(r) for r in records], next_page_token=token
        )

    async def ReconcilePeriod(
        self, request: pb.ReconcilePeriodRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReconcilePeriodResponse:
        result = await run(
            reconciliation.reconcile_period,
            self.db,
            request.account_id,
            validation.period_in(request.period),
        )
        return pb.ReconcilePeriodResponse(
            invoice_id=result.invoice_id,
            matches=result.matches,
            lines=[
                pb.ReconciliationLine(
                    type=line.type,
                    invoiced_quantity=money.decimal_text(line.invoiced_quantity),
                    rerated_quantity=money.decimal_text(line.rerated_quantity),
                    invoiced_amount=convert.money_out(line.invoiced_amount),
                    rerated_amount=convert.money_out(line.rerated_amount),
                    difference=convert.money_out(line.difference),
                )
                for line in result.lines
            ],
        )

    async def ComparePlans(
        self, request: pb.ComparePlansRequest, context: grpc.aio.ServicerContext
    ) -> pb.ComparePlansResponse:
        period = validation.period_in(request.period)
        if not request.horizon_months:
            costs = await run(
                finance.compare_plans, self.db, request.account_id, period, current_context().now
            )
            return pb.ComparePlansResponse(plan_costs=reports.plan_costs_out(costs))
        comparison = await run(
            plan_advice.compare_over_horizon,
            self.db,
            request.account_id,
            period,
            request.horizon_months,
            current_context().now,
        )
        return pb.ComparePlansResponse(
            plan_costs=reports.plan_costs_out(comparison.plan_costs, comparison.horizon),
            recommendation=reports.recommendation_out(comparison.recommendation),
        )

    async def GetPartnerUtilization(
        self, request: pb.GetPartnerUtilizationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPartnerUtilizationResponse:
        result = await run(
            partner_utilization.partner_utilization,
            self.db,
            request.account_id,
            start_period=request.start_period,
            end_period=request.end_period,
            idle_periods=request.idle_periods,
            now=current_context().now,
        )
        return reports.utilization_out(result)
