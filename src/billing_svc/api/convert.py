"""Domain values -> proto messages. No rules here: only shapes. Requests the other way are
checked and converted in ``validation.py``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as usage_pb
from google.protobuf import timestamp_pb2

from billing_svc.api.interceptor import current_context
from billing_svc.domain import money, rating
from billing_svc.domain import subscriptions as subs
from billing_svc.domain.catalog import Terms
from billing_svc.domain.periods import Period
from billing_svc.services import finance, hourly_reports, invoicing, usage_reports, webhooks
from billing_svc.services.accounts import AccountBilling
from billing_svc.services.views import (
    AccountView,
    AuditEventView,
    BudgetView,
    CreditView,
    MasterPartnerView,
    TenantView,
    WebhookEndpointView,
)

_STATUS = {
    subs.TRIALING: pb.SUBSCRIPTION_STATUS_TRIALING,
    subs.ACTIVE: pb.SUBSCRIPTION_STATUS_ACTIVE,
    subs.PAST_DUE: pb.SUBSCRIPTION_STATUS_PAST_DUE,
    subs.UNPAID: pb.SUBSCRIPTION_STATUS_UNPAID,
    subs.CANCELED: pb.SUBSCRIPTION_STATUS_CANCELED,
}
_INTERVAL = {subs.MONTHLY: pb.BILLING_INTERVAL_MONTHLY, subs.ANNUAL: pb.BILLING_INTERVAL_ANNUAL}


# ---------------------------------------------------------------------------------------------
# Scalars


def money_out(amount: Decimal) -> common_pb2.Money:
    units, nanos = money.to_units_nanos(amount)
    return common_pb2.Money(currency_code=money.CURRENCY, units=units, nanos=nanos)


def time_out(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


# ---------------------------------------------------------------------------------------------
# Plans and terms


def plan_out(terms: Terms) -> pb.Plan:
    plan = pb.Plan(
        plan_id=terms.plan_id,
        name=terms.name,
        base_fee=money_out(terms.base_fee),
        trial_days=terms.trial_days,
        included_messages=terms.included_messages,
        included_storage_gb=format(terms.included_storage_gb, "f"),
        tenant_overage=money_out(terms.tenant_overage),
        message_overage=money_out(terms.message_overage),
        storage_overage_per_gb=money_out(terms.storage_overage_per_gb),
        support=terms.support,
        message_tiers=[
            common_pb2.MessageTier(
                up_to_messages=t.up_to_messages or 0, unit_price=money_out(t.unit_price)
            )
            for t in terms.message_tiers
        ],
    )
    if terms.included_tenants is not None:
        plan.included_tenants = terms.included_tenants
    if terms.included_master_partners is not None:
        plan.included_master_partners = terms.included_master_partners
    return plan


# ---------------------------------------------------------------------------------------------
# Accounts


def subscription_out(account: AccountView, now: datetime | None = None) -> pb.Subscription:
    period = Period.containing(now or current_context().now)
    return pb.Subscription(
        id=account.subscription_id,
        status=_STATUS[account.status],
        current_period_start=time_out(period.start),
        current_period_end=time_out(period.end),
        trial_ends_at=time_out(account.trial_ends_at),
        cancel_at_period_end=account.cancel_at_period_end,
        plan_id=account.plan_id,
        billing_interval=_INTERVAL[account.billing_interval],
        pending_plan_id=account.pending_plan_id or "",
        pending_plan_effective_at=time_out(account.pending_effective_at),
        canceled_at=time_out(account.canceled_at),
    )


def account_out(account: AccountView, now: datetime | None = None) -> pb.Account:
    return pb.Account(
        account_id=account.account_id,
        customer_id=account.customer_id,
        name=account.name,
        create_time=time_out(account.created_at),
        subscription=subscription_out(account, now),
        usage_threshold_percentages=account.usage_thresholds,
    )


def payment_method_out(account: AccountView) -> pb.PaymentMethod | None:
    if account.payment_method_type is None:
        return None
    return pb.PaymentMethod(
        type=account.payment_method_type,
        last4=account.payment_last4 or "",
        exp_month=account.payment_exp_month or 0,
        exp_year=account.payment_exp_year or 0,
    )


def billing_plan_out(terms: Terms) -> pb.BillingPlan:
    rate = terms.message_tiers[0].unit_price if terms.message_tiers else terms.message_overage
    return pb.BillingPlan(
        name=f"{terms.name} Plan",
        model="base_plus_usage",
        base_fee=money_out(terms.base_fee),
        message_rate=money_out(rate),
        plan_id=terms.plan_id,
        terms=plan_out(terms),
        custom=terms.custom,
        contract_start=time_out(terms.contract_start),
        contract_end=time_out(terms.contract_end),
        account_manager=terms.account_manager,
    )


def account_billing_out(
    view: AccountBilling, now: datetime | None = None
) -> pb.GetAccountBillingResponse:
    account = view.account
    return pb.GetAccountBillingResponse(
        customer_id=account.customer_id,
        subscription=subscription_out(account, now),
        billing_plan=billing_plan_out(view.terms),
        payment_method=payment_method_out(account),
        has_payment_method=account.payment_method_type is not None,
        account_id=account.account_id,
        name=account.name,
    )


def tenant_out(tenant: TenantView) -> pb.Tenant:
    return pb.Tenant(
        tenant_id=tenant.tenant_id,
        account_id=tenant.account_id,
        name=tenant.name,
        create_time=time_out(tenant.created_at),
    )


def master_partner_out(partner: MasterPartnerView) -> pb.MasterPartner:
    return pb.MasterPartner(
        partner_id=partner.partner_id,
        account_id=partner.account_id,
        name=partner.name,
        department=partner.department,
        create_time=time_out(partner.created_at),
    )


# ---------------------------------------------------------------------------------------------
# Usage


def period_out(period: Period) -> common_pb2.BillingPeriod:
    return common_pb2.BillingPeriod(
        label=period.label, start=time_out(period.start), end=time_out(period.end)
    )


def tenant_usage_out(tenant: usage_reports.TenantUsage) -> common_pb2.TenantUsage:
    return common_pb2.TenantUsage(
        tenant_id=tenant.tenant_id,
        name=tenant.name,
        message_count=tenant.messages,
        storage_gb_months=money.decimal_text(tenant.storage_gb_months),
        storage_bytes=tenant.storage_bytes,
    )


def current_usage_out(report: usage_reports.CurrentUsage) -> usage_pb.GetCurrentUsageResponse:
    snapshot = report.snapshot
    return usage_pb.GetCurrentUsageResponse(
        period=period_out(snapshot.period),
        usage_to_date=usage_pb.UsageToDate(
            messages=snapshot.messages,
            active_tenants=snapshot.active_tenants,
            storage_gb_months=money.decimal_text(snapshot.storage_gb_months),
            estimated_charges=money_out(snapshot.total),
            storage_bytes=snapshot.storage_bytes,
            estimated_lines=[
                usage_pb.EstimatedCharge(type=line.type, amount=money_out(line.amount))
                for line in snapshot.lines
            ],
            included_messages=snapshot.included_messages,
        ),
        projection=usage_pb.UsageProjection(
            messages=report.projected_messages, charges=money_out(report.projected_charges)
        ),
    )


def monthly_usage_out(report: usage_reports.MonthlyUsage) -> usage_pb.GetMonthlyUsageResponse:
    snapshot = report.snapshot
    return usage_pb.GetMonthlyUsageResponse(
        period=period_out(snapshot.period),
        total_messages=snapshot.messages,
        partner_breakdown=[
            common_pb2.PartnerUsage(
                partner_id=p.partner_id,
                partner_name=p.name,
                department=p.department,
                message_count=p.messages,
                cost=money_out(p.cost),
            )
            for p in report.partners
        ],
        tenant_breakdown=[tenant_usage_out(t) for t in snapshot.tenants],
        active_tenants=snapshot.active_tenants,
        storage_gb_months=money.decimal_text(snapshot.storage_gb_months),
    )


def history_out(page: usage_reports.HistoryPage) -> usage_pb.GetUsageHistoryResponse:
    return usage_pb.GetUsageHistoryResponse(
        buckets=[
            usage_pb.UsageBucket(
                start=time_out(b.start), messages=b.messages, storage_bytes=b.storage_bytes
            )
            for b in page.buckets
        ],
        next_page_token=page.next_page_token,
    )


def hourly_reports_out(page: hourly_reports.ReportPage) -> usage_pb.ListUsageReportsResponse:
    return usage_pb.ListUsageReportsResponse(
        reports=[
            usage_pb.UsageReport(
                account_id=r.account_id,
                hour=time_out(r.hour),
                revision=r.revision,
                period=r.period,
                tenants=[
                    usage_pb.UsageReportTenant(
                        tenant_id=t.tenant_id, messages=t.messages, storage_bytes=t.storage_bytes
                    )
                    for t in r.tenants
                ],
                partners=[
                    usage_pb.UsageReportPartner(partner_id=p.partner_id, messages=p.messages)
                    for p in r.partners
                ],
                estimated_charges_to_date=money_out(r.estimated_charges),
                create_time=time_out(r.created_at),
                sequence=r.sequence,
            )
            for r in page.reports
        ],
        resume_token=page.resume_token,
    )


# ---------------------------------------------------------------------------------------------
# Invoices

_INVOICE_STATUS = {
    "draft": pb.INVOICE_STATUS_DRAFT,
    "open": pb.INVOICE_STATUS_OPEN,
    "paid": pb.INVOICE_STATUS_PAID,
    "uncollectible": pb.INVOICE_STATUS_UNCOLLECTIBLE,
    "void": pb.INVOICE_STATUS_VOID,
}


def invoice_line_out(line: rating.InvoiceLine) -> pb.InvoiceLine:
    return pb.InvoiceLine(
        type=line.type,
        description=line.description,
        quantity=money.decimal_text(line.quantity),
        unit_price=money_out(_to_nanos(line.unit_price)),
        amount=money_out(line.amount),
        period=line.period or "",
        credit_id=line.credit_id or "",
    )


def credit_out(credit: CreditView) -> pb.Credit:
    return pb.Credit(
        credit_id=credit.credit_id,
        account_id=credit.account_id,
        amount=money_out(credit.amount),
        remaining=money_out(credit.remaining),
        description=credit.description,
        create_time=time_out(credit.created_at),
    )


def _to_nanos(value: Decimal) -> Decimal:
    """Unit prices can be exact fractions (a tiered late charge): show them to the nano."""
    return value.quantize(money.NANO) if value != value.quantize(money.NANO) else value


def invoice_out(view: invoicing.InvoiceView) -> pb.Invoice:
    invoice = view.invoice
    return pb.Invoice(
        invoice_id=invoice.invoice_id,
        account_id=invoice.account_id,
        period=invoice.period,
        status=_INVOICE_STATUS[invoice.status],
        lines=[invoice_line_out(line) for line in view.lines],
        subtotal=money_out(invoice.subtotal),
        total=money_out(invoice.total),
        tenant_breakdown=[
            common_pb2.TenantUsage(**row)  # type: ignore[arg-type]  # JSON of TenantUsage fields
            for row in view.tenant_breakdown
        ],
        issue_time=time_out(invoice.issued_at),
        paid_time=time_out(invoice.paid_at),
        amount_paid=money_out(invoice.amount_paid),
        next_payment_attempt=time_out(invoice.next_payment_attempt_at),
    )


# ---------------------------------------------------------------------------------------------
# Finance


def budget_out(budget: BudgetView) -> pb.Budget:
    return pb.Budget(
        account_id=budget.account_id,
        name=budget.name,
        limit=money_out(budget.limit_amount),
        threshold_percentages=budget.thresholds,
    )


def allocation_out(allocation: finance.Allocation) -> pb.GetCostAllocationResponse:
    return pb.GetCostAllocationResponse(
        allocations=[
            pb.CostAllocation(
                department=d.department,
                message_count=d.messages,
                cost=money_out(d.cost),
                partners=[
                    common_pb2.PartnerUsage(
                        partner_id=p.partner_id,
                        partner_name=p.name,
                        department=p.department or usage_reports.UNALLOCATED,
                        message_count=p.messages,
                        cost=money_out(p.cost),
                    )
                    for p in d.partners
                ],
            )
            for d in allocation.departments
        ],
        total=money_out(allocation.total),
        invoiced=allocation.invoiced,
    )


def audit_out(record: AuditEventView) -> pb.AuditEvent:
    return pb.AuditEvent(
        sequence=record.sequence,
        account_id=record.account_id,
        actor=record.actor,
        action=record.action,
        before_json=record.before_json,
        after_json=record.after_json,
        event_time=time_out(record.at),
        request_id=record.request_id,
        previous_hash=record.previous_hash,
        hash=record.hash,
    )


# ---------------------------------------------------------------------------------------------
# Webhooks

_ENDPOINT_STATUS = {
    "enabled": pb.WEBHOOK_ENDPOINT_STATUS_ENABLED,
    "disabled": pb.WEBHOOK_ENDPOINT_STATUS_DISABLED,
}
_EVENT_STATUS_OUT = {
    "pending": pb.WEBHOOK_EVENT_STATUS_PENDING,
    "delivered": pb.WEBHOOK_EVENT_STATUS_DELIVERED,
    "failed": pb.WEBHOOK_EVENT_STATUS_FAILED,
    "no_endpoint": pb.WEBHOOK_EVENT_STATUS_NO_ENDPOINT,
}


def endpoint_out(endpoint: WebhookEndpointView, *, with_secret: bool) -> pb.WebhookEndpoint:
    return pb.WebhookEndpoint(
        endpoint_id=endpoint.endpoint_id,
        account_id=endpoint.account_id,
        url=endpoint.url,
        event_types=endpoint.event_types,
        description=endpoint.description,
        secret=endpoint.secret if with_secret else "",
        status=_ENDPOINT_STATUS.get(endpoint.status, pb.WEBHOOK_ENDPOINT_STATUS_UNSPECIFIED),
        failure_streak=endpoint.failure_streak,
        failing_since=time_out(endpoint.failing_since),
        disabled_reason=endpoint.disabled_reason,
        create_time=time_out(endpoint.created_at),
    )


def event_log_out(log: webhooks.EventLog) -> pb.WebhookEvent:
    return pb.WebhookEvent(
        event_id=log.event.event_id,
        account_id=log.event.account_id,
        type=log.event.type,
        status=_EVENT_STATUS_OUT[log.status],
        create_time=time_out(log.event.created_at),
        payload_json=log.event.body,
        attempts=[
            pb.WebhookAttempt(
                endpoint_id=a.endpoint_id,
                attempt_number=a.attempt_number,
                attempt_time=time_out(a.attempted_at),
                status_code=a.status_code,
                latency_ms=a.latency_ms,
                error=a.error,
            )
            for a in log.attempts
        ],
    )
