"""Incoming requests -> domain values: every field checked, and a caller's mistake an
``InvalidArgument`` that names the field. The way back, values to proto, is ``convert.py``."""

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
from billing_svc.domain import money
from billing_svc.domain import subscriptions as subs
from billing_svc.domain.bounds import MAX_AMOUNT
from billing_svc.domain.catalog import CustomTerms, MessageTier
from billing_svc.domain.errors import InvalidArgument, shown
from billing_svc.domain.periods import EARLIEST, LATEST, Period
from billing_svc.services import usage_reports
from billing_svc.services.store import IdempotencyKey

_INTERVAL_BACK: dict[int, str] = {
    pb.BILLING_INTERVAL_MONTHLY: subs.MONTHLY,
    pb.BILLING_INTERVAL_ANNUAL: subs.ANNUAL,
}
_INVOICE_STATUS_BACK: dict[int, str] = {
    pb.INVOICE_STATUS_DRAFT: "draft",
    pb.INVOICE_STATUS_OPEN: "open",
    pb.INVOICE_STATUS_PAID: "paid",
    pb.INVOICE_STATUS_UNCOLLECTIBLE: "uncollectible",
    pb.INVOICE_STATUS_VOID: "void",
}


# ---------------------------------------------------------------------------------------------
# Scalars


def money_in(value: common_pb2.Money, field: str) -> Decimal:
    if value.currency_code not in ("", money.CURRENCY):
        raise InvalidArgument(
            f"{field}.currency_code",
            f"{shown(value.currency_code)} is not supported; billing-svc bills USD",
        )
    try:
        amount = money.from_units_nanos(value.units, value.nanos)
    except ValueError as exc:
        raise InvalidArgument(field, str(exc)) from exc
    if abs(amount) > MAX_AMOUNT:
        raise InvalidArgument(field, f"is more than the {MAX_AMOUNT:,} USD billing-svc handles")
    return amount


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
        raise InvalidArgument(prefix + field, f"nanos {stamp.nanos} is not within 0..999999999")
    if not _EARLIEST_SECONDS <= stamp.seconds < _LATEST_SECONDS:
        raise InvalidArgument(
            prefix + field,
            f"seconds {stamp.seconds} is not within {EARLIEST.isoformat()} "
            f"(0) and {LATEST.isoformat()} ({_LATEST_SECONDS}, exclusive)",
        )
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


def page_size_in(value: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return value


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
# Accounts and terms


def custom_terms_in(message: pb.CustomTerms) -> CustomTerms:
    def amount(name: str) -> Decimal | None:
        if not message.HasField(name):
            return None
        return money_in(getattr(message, name), f"terms.{name}")

    storage_gb = None
    if message.included_storage_gb:
        try:
            storage_gb = money.parse_decimal(
                message.included_storage_gb, field="terms.included_storage_gb"
            )
        except ValueError as exc:
            raise InvalidArgument("terms.included_storage_gb", str(exc)) from exc
    tiers = tuple(
        MessageTier(
            tier.up_to_messages or None,
            money_in(tier.unit_price, f"terms.message_tiers[{i}].unit_price"),
        )
        for i, tier in enumerate(message.message_tiers)
    )
    for i, tier in enumerate(message.message_tiers):
        if tier.up_to_messages < 0:
            raise InvalidArgument(
                f"terms.message_tiers[{i}].up_to_messages",
                "must not be negative (0 = no upper bound)",
            )
    return CustomTerms(
        base_fee=amount("base_fee"),
        included_tenants=(
            message.included_tenants if message.HasField("included_tenants") else None
        ),
        included_master_partners=(
            message.included_master_partners
            if message.HasField("included_master_partners")
            else None
        ),
        included_messages=(
            message.included_messages if message.HasField("included_messages") else None
        ),
        included_storage_gb=storage_gb,
        tenant_overage=amount("tenant_overage"),
        message_overage=amount("message_overage"),
        storage_overage_per_gb=amount("storage_overage_per_gb"),
        message_tiers=tiers,
        contract_start=time_in(message, "contract_start", "terms."),
        contract_end=time_in(message, "contract_end", "terms."),
        account_manager=message.account_manager.strip(),
    )


def payment_method_in(message: pb.PaymentMethod) -> subs.PaymentMethodInput:
    return subs.PaymentMethodInput(
        type=message.type.strip(),
        last4=message.last4.strip(),
        exp_month=message.exp_month,
        exp_year=message.exp_year,
    )


# ---------------------------------------------------------------------------------------------
# Usage and invoices


def year_month_in(year: int, month: int) -> Period:
    if not 1 <= month <= 12:
        raise InvalidArgument("month", f"{month} is not within 1..12")
    if not EARLIEST.year <= year < LATEST.year:
        raise InvalidArgument("year", f"{year} is not within {EARLIEST.year}..{LATEST.year - 1}")
    return Period(year, month)


_GRANULARITY = {
    usage_pb.GRANULARITY_HOUR: "hour",
    usage_pb.GRANULARITY_DAY: "day",
    usage_pb.GRANULARITY_MONTH: "month",
}


def history_query_in(request: usage_pb.GetUsageHistoryRequest) -> usage_reports.HistoryQuery:
    if request.granularity not in _GRANULARITY:
        raise InvalidArgument(
            "granularity", "use GRANULARITY_HOUR, GRANULARITY_DAY or GRANULARITY_MONTH"
        )
    start = time_in(request, "start_time")
    end = time_in(request, "end_time") or current_context().now
    if start is None:
        raise InvalidArgument("start_time", "is required")
    if end <= start:
        raise InvalidArgument("end_time", "must be after start_time")
    if request.page_size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return usage_reports.HistoryQuery(
        account_id=request.account_id,
        granularity=_GRANULARITY[request.granularity],
        start=start,
        end=end,
        tenant_id=request.tenant_id,
        page_size=request.page_size,
        page_token=request.page_token,
    )


def invoice_status_in(value: int) -> str | None:
    if value == pb.INVOICE_STATUS_UNSPECIFIED:
        return None
    if value not in _INVOICE_STATUS_BACK:
        raise InvalidArgument("status", f"{value} is not an InvoiceStatus")
    return _INVOICE_STATUS_BACK[value]
