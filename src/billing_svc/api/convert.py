"""Proto messages <-> domain values. No rules here: only shapes, with field names for errors."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal

from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as usage_pb
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from billing_svc.api.interceptor import current_context
from billing_svc.domain import money, rating
from billing_svc.domain import subscriptions as subs
from billing_svc.domain.bounds import MAX_AMOUNT
from billing_svc.domain.catalog import CustomTerms, MessageTier, Terms
from billing_svc.domain.errors import InvalidArgument, shown
from billing_svc.domain.periods import EARLIEST, LATEST, Period
from billing_svc.services import finance, hourly_reports, invoicing, usage_reports, webhooks
from billing_svc.services.accounts import AccountBilling
from billing_svc.storage.idempotency import IdempotencyKey
from billing_svc.storage.tables import (
    Account,
    AccountCredit,
    AuditRecord,
    Budget,
    MasterPartner,
    Tenant,
    WebhookEndpoint,
)

_STATUS = {
    subs.TRIALING: pb.SUBSCRIPTION_STATUS_TRIALING,
    subs.ACTIVE: pb.SUBSCRIPTION_STATUS_ACTIVE,
    subs.PAST_DUE: pb.SUBSCRIPTION_STATUS_PAST_DUE,
    subs.UNPAID: pb.SUBSCRIPTION_STATUS_UNPAID,
    subs.CANCELED: pb.SUBSCRIPTION_STATUS_CANCELED,
}
_INTERVAL = {subs.MONTHLY: pb.BILLING_INTERVAL_MONTHLY, subs.ANNUAL: pb.BILLING_INTERVAL_ANNUAL}
_INTERVAL_BACK: dict[int, str] = {v: k for k, v in _INTERVAL.items()}


# ---------------------------------------------------------------------------------------------
# Scalars


def money_out(amount: Decimal) -> common_pb2.Money:
    units, nanos = money.to_units_nanos(amount)
    return common_pb2.Money(currency_code=money.CURRENCY, units=units, nanos=nanos)


def money_in(value: common_pb2.Money, field: str) -> Decimal:
    if value.currency_code not in ("", money.CURRENCY):
        raise InvalidArgument(f"{field}.currency_code", f"{shown(value.currency_code)} is not "
                              "supported; billing-svc bills USD")
    try:
        amount = money.from_units_nanos(value.units, value.nanos)
    except ValueError as exc:
        raise InvalidArgument(field, str(exc)) from exc
    if abs(amount) > MAX_AMOUNT:
        raise InvalidArgument(field, f"is more than the {MAX_AMOUNT:,} USD billing-svc handles")
    return amount


def time_out(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


_EARLIEST_SECONDS = int(EARLIEST.timestamp())
_LATEST_SECONDS = int(LATEST.timestamp())


def time_in(message: Message, field: str, prefix: str = "") -> datetime | None:
    """Timestamp field ``field`` of ``message`` as an aware UTC datetime; ``None`` if unset.

    The one check of every timestamp a request carries: nanos within [0, 10^9) and the moment
    within [``EARLIEST``, ``LATEST``), else ``InvalidArgument`` naming ``prefix + field``.
    """
    if not message.HasField(field):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    if not 0 <= stamp.nanos < 1_000_000_000:
        raise InvalidArgument(prefix + field,
                              f"nanos {stamp.nanos} is not within 0..999999999")
    if not _EARLIEST_SECONDS <= stamp.seconds < _LATEST_SECONDS:
        raise InvalidArgument(prefix + field,
                              f"seconds {stamp.seconds} is not within {EARLIEST.isoformat()} "
                              f"(0) and {LATEST.isoformat()} ({_LATEST_SECONDS}, exclusive)")
    return stamp.ToDatetime(tzinfo=UTC)


def period_in(label: str, field: str = "period") -> Period:
    try:
        return Period.parse(label)
    except ValueError as exc:
        raise InvalidArgument(field, str(exc)) from exc


def interval_in(value: int, field: str, *, default: str | None) -> str | None:
    if value == pb.BILLING_INTERVAL_UNSPECIFIED:
        return default
    if value not in _INTERVAL_BACK:
        raise InvalidArgument(field, f"{value} is not a BillingInterval")
    return _INTERVAL_BACK[value]


def idempotency_key(method: str, request: Message, caller: str) -> IdempotencyKey | None:
    """The AIP-155 key of a create request, or ``None`` when it carries no ``request_id``."""
    request_id: str = getattr(request, "request_id", "")
    if not request_id:
        return None
    if len(request_id) > 100:
        raise InvalidArgument("request_id", "is longer than 100 characters")
    rest = type(request)()
    rest.CopyFrom(request)
    rest.ClearField("request_id")
    digest = hashlib.sha256(caller.encode() + b"\0" + rest.SerializeToString(deterministic=True))
    return IdempotencyKey(method, request_id, digest.hexdigest())


# ---------------------------------------------------------------------------------------------
# Plans and terms


def plan_out(terms: Terms) -> pb.Plan:
    plan = pb.Plan(
        plan_id=terms.plan_id, name=terms.name, base_fee=money_out(terms.base_fee),
        trial_days=terms.trial_days, included_messages=terms.included_messages,
        included_storage_gb=format(terms.included_storage_gb, "f"),
        tenant_overage=money_out(terms.tenant_overage),
        message_overage=money_out(terms.message_overage),
        storage_overage_per_gb=money_out(terms.storage_overage_per_gb), support=terms.support,
        message_tiers=[common_pb2.MessageTier(up_to_messages=t.up_to_messages or 0,
                                              unit_price=money_out(t.unit_price))
                       for t in terms.message_tiers],
    )
    if terms.included_tenants is not None:
        plan.included_tenants = terms.included_tenants
    if terms.included_master_partners is not None:
        plan.included_master_partners = terms.included_master_partners
    return plan


def custom_terms_in(message: pb.CustomTerms) -> CustomTerms:
    def amount(name: str) -> Decimal | None:
        if not message.HasField(name):
            return None
        return money_in(getattr(message, name), f"terms.{name}")

    storage_gb = None
    if message.included_storage_gb:
        try:
            storage_gb = money.parse_decimal(message.included_storage_gb,
                                             field="terms.included_storage_gb")
        except ValueError as exc:
            raise InvalidArgument("terms.included_storage_gb", str(exc)) from exc
    tiers = tuple(
        MessageTier(tier.up_to_messages or None,
                    money_in(tier.unit_price, f"terms.message_tiers[{i}].unit_price"))
        for i, tier in enumerate(message.message_tiers)
    )
    for i, tier in enumerate(message.message_tiers):
        if tier.up_to_messages < 0:
            raise InvalidArgument(f"terms.message_tiers[{i}].up_to_messages",
                                  "must not be negative (0 = no upper bound)")
    return CustomTerms(
        base_fee=amount("base_fee"),
        included_tenants=(message.included_tenants
                          if message.HasField("included_tenants") else None),
        included_master_partners=(message.included_master_partners
                                  if message.HasField("included_master_partners") else None),
        included_messages=(message.included_messages
                           if message.HasField("included_messages") else None),
        included_storage_gb=storage_gb,
        tenant_overage=amount("tenant_overage"),
        message_overage=amount("message_overage"),
        storage_overage_per_gb=amount("storage_overage_per_gb"),
        message_tiers=tiers,
        contract_start=time_in(message, "contract_start", "terms."),
        contract_end=time_in(message, "contract_end", "terms."),
        account_manager=message.account_manager.strip(),
    )


# ---------------------------------------------------------------------------------------------
# Accounts


def subscription_out(account: Account, now: datetime | None = None) -> pb.Subscription:
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


def account_out(account: Account, now: datetime | None = None) -> pb.Account:
    return pb.Account(
        account_id=account.account_id, customer_id=account.customer_id, name=account.name,
        create_time=time_out(account.created_at), subscription=subscription_out(account, now),
        usage_threshold_percentages=account.usage_thresholds,
    )


def payment_method_out(account: Account) -> pb.PaymentMethod | None:
    if account.payment_method_type is None:
        return None
    return pb.PaymentMethod(type=account.payment_method_type, last4=account.payment_last4 or "",
                            exp_month=account.payment_exp_month or 0,
                            exp_year=account.payment_exp_year or 0)


def payment_method_in(message: pb.PaymentMethod) -> subs.PaymentMethodInput:
    return subs.PaymentMethodInput(type=message.type.strip(), last4=message.last4.strip(),
                                   exp_month=message.exp_month, exp_year=message.exp_year)


def billing_plan_out(terms: Terms) -> pb.BillingPlan:
    rate = terms.message_tiers[0].unit_price if terms.message_tiers else terms.message_overage
    return pb.BillingPlan(
        name=f"{terms.name} Plan", model="base_plus_usage", base_fee=money_out(terms.base_fee),
        message_rate=money_out(rate), plan_id=terms.plan_id, terms=plan_out(terms),
        custom=terms.custom, contract_start=time_out(terms.contract_start),
        contract_end=time_out(terms.contract_end), account_manager=terms.account_manager,
    )


def account_billing_out(view: AccountBilling,
                        now: datetime | None = None) -> pb.GetAccountBillingResponse:
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


def tenant_out(tenant: Tenant) -> pb.Tenant:
    return pb.Tenant(tenant_id=tenant.tenant_id, account_id=tenant.account_id, name=tenant.name,
                     create_time=time_out(tenant.created_at))


def master_partner_out(partner: MasterPartner) -> pb.MasterPartner:
    return pb.MasterPartner(partner_id=partner.partner_id, account_id=partner.account_id,
                            name=partner.name, department=partner.department,
                            create_time=time_out(partner.created_at))


# ---------------------------------------------------------------------------------------------
# Usage


def period_out(period: Period) -> common_pb2.BillingPeriod:
    return common_pb2.BillingPeriod(label=period.label, start=time_out(period.start),
                                    end=time_out(period.end))


def year_month_in(year: int, month: int) -> Period:
    if not 1 <= month <= 12:
        raise InvalidArgument("month", f"{month} is not within 1..12")
    if not EARLIEST.year <= year < LATEST.year:
        raise InvalidArgument("year", f"{year} is not within {EARLIEST.year}..{LATEST.year - 1}")
    return Period(year, month)


def _decimal_text(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def tenant_usage_out(tenant: usage_reports.TenantUsage) -> common_pb2.TenantUsage:
    return common_pb2.TenantUsage(
        tenant_id=tenant.tenant_id, name=tenant.name, message_count=tenant.messages,
        storage_gb_months=_decimal_text(tenant.storage_gb_months),
        storage_bytes=tenant.storage_bytes)


def current_usage_out(report: usage_reports.CurrentUsage) -> usage_pb.GetCurrentUsageResponse:
    snapshot = report.snapshot
    return usage_pb.GetCurrentUsageResponse(
        period=period_out(snapshot.period),
        usage_to_date=usage_pb.UsageToDate(
            messages=snapshot.messages, active_tenants=snapshot.active_tenants,
            storage_gb_months=_decimal_text(snapshot.storage_gb_months),
            estimated_charges=money_out(snapshot.total), storage_bytes=snapshot.storage_bytes,
            estimated_lines=[usage_pb.EstimatedCharge(type=line.type,
                                                      amount=money_out(line.amount))
                             for line in snapshot.lines],
            included_messages=snapshot.included_messages),
        projection=usage_pb.UsageProjection(messages=report.projected_messages,
                                            charges=money_out(report.projected_charges)),
    )


def monthly_usage_out(report: usage_reports.MonthlyUsage) -> usage_pb.GetMonthlyUsageResponse:
    snapshot = report.snapshot
    return usage_pb.GetMonthlyUsageResponse(
        period=period_out(snapshot.period), total_messages=snapshot.messages,
        partner_breakdown=[common_pb2.PartnerUsage(
            partner_id=p.partner_id, partner_name=p.name, department=p.department,
            message_count=p.messages, cost=money_out(p.cost)) for p in report.partners],
        tenant_breakdown=[tenant_usage_out(t) for t in snapshot.tenants],
        active_tenants=snapshot.active_tenants,
        storage_gb_months=_decimal_text(snapshot.storage_gb_months),
    )


_GRANULARITY = {usage_pb.GRANULARITY_HOUR: "hour", usage_pb.GRANULARITY_DAY: "day",
                usage_pb.GRANULARITY_MONTH: "month"}


def history_query_in(request: usage_pb.GetUsageHistoryRequest) -> usage_reports.HistoryQuery:
    if request.granularity not in _GRANULARITY:
        raise InvalidArgument("granularity", "use GRANULARITY_HOUR, GRANULARITY_DAY or "
                              "GRANULARITY_MONTH")
    start = time_in(request, "start_time")
    end = time_in(request, "end_time") or current_context().now
    if start is None:
        raise InvalidArgument("start_time", "is required")
    if end <= start:
        raise InvalidArgument("end_time", "must be after start_time")
    if request.page_size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return usage_reports.HistoryQuery(
        account_id=request.account_id, granularity=_GRANULARITY[request.granularity],
        start=start, end=end, tenant_id=request.tenant_id, page_size=request.page_size,
        page_token=request.page_token)


def history_out(page: usage_reports.HistoryPage) -> usage_pb.GetUsageHistoryResponse:
    return usage_pb.GetUsageHistoryResponse(
        buckets=[usage_pb.UsageBucket(start=time_out(b.start), messages=b.messages,
                                      storage_bytes=b.storage_bytes) for b in page.buckets],
        next_page_token=page.next_page_token)


def hourly_reports_out(page: hourly_reports.ReportPage) -> usage_pb.ListUsageReportsResponse:
    return usage_pb.ListUsageReportsResponse(reports=[usage_pb.UsageReport(
        account_id=r.account_id, hour=time_out(r.hour), revision=r.revision, period=r.period,
        tenants=[usage_pb.UsageReportTenant(tenant_id=t.tenant_id, messages=t.messages,
                                            storage_bytes=t.storage_bytes) for t in r.tenants],
        partners=[usage_pb.UsageReportPartner(partner_id=p.partner_id, messages=p.messages)
                  for p in r.partners],
        estimated_charges_to_date=money_out(r.estimated_charges),
        create_time=time_out(r.created_at), sequence=r.sequence) for r in page.reports],
        resume_token=page.resume_token)


# ---------------------------------------------------------------------------------------------
# Invoices

_INVOICE_STATUS = {
    "draft": pb.INVOICE_STATUS_DRAFT, "open": pb.INVOICE_STATUS_OPEN,
    "paid": pb.INVOICE_STATUS_PAID, "uncollectible": pb.INVOICE_STATUS_UNCOLLECTIBLE,
    "void": pb.INVOICE_STATUS_VOID,
}
_INVOICE_STATUS_BACK: dict[int, str] = {v: k for k, v in _INVOICE_STATUS.items()}


def invoice_status_in(value: int) -> str | None:
    if value == pb.INVOICE_STATUS_UNSPECIFIED:
        return None
    if value not in _INVOICE_STATUS_BACK:
        raise InvalidArgument("status", f"{value} is not an InvoiceStatus")
    return _INVOICE_STATUS_BACK[value]


def page_size_in(value: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return value


def invoice_line_out(line: rating.InvoiceLine) -> pb.InvoiceLine:
    return pb.InvoiceLine(type=line.type, description=line.description,
                          quantity=_decimal_text(line.quantity),
                          unit_price=money_out(_to_nanos(line.unit_price)),
                          amount=money_out(line.amount), period=line.period or "",
                          credit_id=line.credit_id or "")


def credit_out(credit: AccountCredit) -> pb.Credit:
    return pb.Credit(credit_id=credit.credit_id, account_id=credit.account_id,
                     amount=money_out(credit.amount), remaining=money_out(credit.remaining),
                     description=credit.description, create_time=time_out(credit.created_at))


def _to_nanos(value: Decimal) -> Decimal:
    """Unit prices can be exact fractions (a tiered late charge): show them to the nano."""
    return value.quantize(money.NANO) if value != value.quantize(money.NANO) else value


def invoice_out(view: invoicing.InvoiceView) -> pb.Invoice:
    invoice = view.invoice
    return pb.Invoice(
        invoice_id=invoice.invoice_id, account_id=invoice.account_id, period=invoice.period,
        status=_INVOICE_STATUS[invoice.status],
        lines=[invoice_line_out(line) for line in view.lines],
        subtotal=money_out(invoice.subtotal), total=money_out(invoice.total),
        tenant_breakdown=[common_pb2.TenantUsage(**row)  # type: ignore[arg-type]  # JSON of TenantUsage fields
                          for row in view.tenant_breakdown],
        issue_time=time_out(invoice.issued_at), paid_time=time_out(invoice.paid_at),
        amount_paid=money_out(invoice.amount_paid),
        next_payment_attempt=time_out(invoice.next_payment_attempt_at),
    )


# ---------------------------------------------------------------------------------------------
# Finance


def decimal_text(value: Decimal) -> str:
    return _decimal_text(value)


def budget_out(budget: Budget) -> pb.Budget:
    return pb.Budget(account_id=budget.account_id, name=budget.name,
                     limit=money_out(budget.limit_amount),
                     threshold_percentages=budget.thresholds)


def allocation_out(allocation: finance.Allocation) -> pb.GetCostAllocationResponse:
    return pb.GetCostAllocationResponse(
        allocations=[pb.CostAllocation(
            department=d.department, message_count=d.messages, cost=money_out(d.cost),
            partners=[common_pb2.PartnerUsage(
                partner_id=p.partner_id, partner_name=p.name,
                department=p.department or usage_reports.UNALLOCATED,
                message_count=p.messages, cost=money_out(p.cost)) for p in d.partners])
            for d in allocation.departments],
        total=money_out(allocation.total), invoiced=allocation.invoiced)


def audit_out(record: AuditRecord) -> pb.AuditEvent:
    return pb.AuditEvent(
        sequence=record.sequence, account_id=record.account_id, actor=record.actor,
        action=record.action, before_json=record.before_json, after_json=record.after_json,
        event_time=time_out(record.at), request_id=record.request_id,
        previous_hash=record.previous_hash, hash=record.hash)


# ---------------------------------------------------------------------------------------------
# Webhooks

_ENDPOINT_STATUS = {"enabled": pb.WEBHOOK_ENDPOINT_STATUS_ENABLED,
                    "disabled": pb.WEBHOOK_ENDPOINT_STATUS_DISABLED}
_EVENT_STATUS_OUT = {"pending": pb.WEBHOOK_EVENT_STATUS_PENDING,
                     "delivered": pb.WEBHOOK_EVENT_STATUS_DELIVERED,
                     "failed": pb.WEBHOOK_EVENT_STATUS_FAILED,
                     "no_endpoint": pb.WEBHOOK_EVENT_STATUS_NO_ENDPOINT}


def endpoint_out(endpoint: WebhookEndpoint, *, with_secret: bool) -> pb.WebhookEndpoint:
    return pb.WebhookEndpoint(
        endpoint_id=endpoint.endpoint_id, account_id=endpoint.account_id, url=endpoint.url,
        event_types=endpoint.event_types,
        description=endpoint.description, secret=endpoint.secret if with_secret else "",
        status=_ENDPOINT_STATUS.get(endpoint.status, pb.WEBHOOK_ENDPOINT_STATUS_UNSPECIFIED),
        failure_streak=endpoint.failure_streak, failing_since=time_out(endpoint.failing_since),
        disabled_reason=endpoint.disabled_reason, create_time=time_out(endpoint.created_at))


def event_log_out(log: webhooks.EventLog) -> pb.WebhookEvent:
    return pb.WebhookEvent(
        event_id=log.event.event_id, account_id=log.event.account_id, type=log.event.type,
        status=_EVENT_STATUS_OUT[log.status], create_time=time_out(log.event.created_at),
        payload_json=log.event.body,
        attempts=[pb.WebhookAttempt(endpoint_id=a.endpoint_id, attempt_number=a.attempt_number,
                                    attempt_time=time_out(a.attempted_at),
                                    status_code=a.status_code, latency_ms=a.latency_ms,
                                    error=a.error) for a in log.attempts])
