"""``billing.*`` webhook events: their types and exact JSON bodies (spec §2, the seed's payloads).

A body is ``{"type", "timestamp", "data"}``. Amounts are written as JSON numbers with the exact
digits of their ``Decimal`` (``842.00``), never via a binary float.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

USAGE_THRESHOLD = "billing.usage_threshold"
LIMIT_EXCEEDED = "billing.limit_exceeded"
PAYMENT_FAILED = "billing.payment_failed"
PAYMENT_SUCCEEDED = "billing.payment_succeeded"
SUBSCRIPTION_UPDATED = "billing.subscription_updated"
INVOICE_GENERATED = "billing.invoice_generated"
BUDGET_ALERT = "billing.budget_alert"
USAGE_REPORTED = "billing.usage_reported"
APPROVAL_REQUESTED = "billing.approval_requested"
APPROVAL_DECIDED = "billing.approval_decided"

EVENT_TYPES = (
    USAGE_THRESHOLD,
    LIMIT_EXCEEDED,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    SUBSCRIPTION_UPDATED,
    INVOICE_GENERATED,
    BUDGET_ALERT,
    USAGE_REPORTED,
    APPROVAL_REQUESTED,
    APPROVAL_DECIDED,
)

# Types an endpoint gets only when its filter names them: an empty filter ("all events") would
# otherwise receive one report per account and hour (issue 15).
EXPLICIT_ONLY_TYPES = frozenset({USAGE_REPORTED})


def subscribed(event_type: str, endpoint_types: set[str] | frozenset[str]) -> bool:
    """Does an endpoint whose filter is ``endpoint_types`` (empty: all events) get this type?"""
    if event_type in EXPLICIT_ONLY_TYPES:
        return event_type in endpoint_types
    return not endpoint_types or event_type in endpoint_types


# Decimals travel through json.dumps as marked strings, then become bare number literals. The
# random part keeps a caller's string (a budget name, say) from ever posing as a marker.
_DECIMAL_MARK = f"\u0000dec{secrets.token_hex(8)}:"


@dataclass(frozen=True)
class BillingEvent:
    """An event about to be written to the outbox."""

    type: str
    account_id: str
    occurred_at: datetime
    data: dict[str, Any]

    def body(self) -> str:
        """The exact bytes (as text) every endpoint receives and every signature covers."""
        return encode_json(
            {"type": self.type, "timestamp": iso_utc(self.occurred_at), "data": self.data}
        )


def iso_utc(moment: datetime) -> str:
    """``2024-02-01T08:30:00Z``: ISO-8601 in UTC, seconds precision (milliseconds when present)."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_json(value: Any) -> str:
    """Compact JSON in which ``Decimal`` values become number literals with their exact digits."""

    def default(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return _DECIMAL_MARK + format(obj, "f")
        if isinstance(obj, datetime):
            return iso_utc(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    text = json.dumps(value, default=default, separators=(",", ":"), ensure_ascii=False)
    marker = json.dumps(_DECIMAL_MARK)[:-1]  # the escaped marker as it appears inside a string
    while marker in text:
        start = text.index(marker)
        end = text.index('"', start + len(marker))
        literal = text[start + len(marker) : end]
        text = text[:start] + literal + text[end + 1 :]
    return text


def subscription_updated(
    *,
    account_id: str,
    subscription_id: str,
    change: str,
    status: str,
    previous_status: str,
    plan_id: str,
    previous_plan_id: str,
    cancel_at_period_end: bool,
    pending_plan_id: str | None,
    effective_at: datetime,
    occurred_at: datetime,
) -> BillingEvent:
    return BillingEvent(
        SUBSCRIPTION_UPDATED,
        account_id,
        occurred_at,
        {
            "account_id": account_id,
            "subscription_id": subscription_id,
            "change": change,
            "status": status,
            "previous_status": previous_status,
            "plan_id": plan_id,
            "previous_plan_id": previous_plan_id,
            "pending_plan_id": pending_plan_id,
            "cancel_at_period_end": cancel_at_period_end,
            "effective_at": iso_utc(effective_at),
        },
    )


def limit_exceeded(
    *,
    account_id: str,
    limit_type: str,
    current_usage: int | Decimal,
    plan_limit: int | Decimal,
    period: str,
    refused: bool,
    occurred_at: datetime,
) -> BillingEvent:
    """``limit_type``: ``master_partners``, ``tenants``, ``monthly_messages`` or ``storage_gb``."""
    return BillingEvent(
        LIMIT_EXCEEDED,
        account_id,
        occurred_at,
        {
            "account_id": account_id,
            "limit_type": limit_type,
            "current_usage": current_usage,
            "plan_limit": plan_limit,
            "period": period,
            "action": "refused" if refused else "overage_billed",
        },
    )


def usage_threshold(
    *,
    account_id: str,
    threshold_percentage: int,
    current_usage: int,
    plan_limit: int,
    period: str,
    occurred_at: datetime,
) -> BillingEvent:
    return BillingEvent(
        USAGE_THRESHOLD,
        account_id,
        occurred_at,
        {
            "account_id": account_id,
            "threshold_type": "monthly_messages",
            "threshold_percentage": threshold_percentage,
            "current_usage": current_usage,
            "plan_limit": plan_limit,
            "period": period,
        },
    )


def invoice_generated(
    *,
    account_id: str,
    invoice_id: str,
    period: str,
    total: Decimal,
    status: str,
    occurred_at: datetime,
) -> BillingEvent:
    return BillingEvent(
        INVOICE_GENERATED,
        account_id,
        occurred_at,
        {
            "account_id": account_id,
            "invoice_id": invoice_id,
            "period": period,
            "amount_due": total,
            "currency": "USD",
            "status": status,
        },
    )


def payment_succeeded(
    *,
    account_id: str,
    invoice_id: str,
    amount_paid: Decimal,
    payment_method: str,
    paid_at: datetime,
) -> BillingEvent:
    return BillingEvent(
        PAYMENT_SUCCEEDED,
        account_id,
        paid_at,
        {
            "invoice_id": invoice_id,
            "amount_paid": amount_paid,
            "payment_method": payment_method,
            "paid_at": iso_utc(paid_at),
        },
    )


def payment_failed(
    *,
    account_id: str,
    invoice_id: str,
    amount: Decimal,
    failure_reason: str,
    retry_date: datetime | None,
    occurred_at: datetime,
) -> BillingEvent:
    return BillingEvent(
        PAYMENT_FAILED,
        account_id,
        occurred_at,
        {
            "invoice_id": invoice_id,
            "amount": amount,
            "failure_reason": failure_reason,
            "retry_date": iso_utc(retry_date) if retry_date else None,
        },
    )


def budget_alert(
    *,
    account_id: str,
    budget_name: str,
    threshold_percentage: int,
    current_usage: Decimal,
    budget_limit: Decimal,
    period_remaining_days: int,
    occurred_at: datetime,
    forecast_charges: Decimal | None = None,
) -> BillingEvent:
    """``forecast_charges``: an alert on the period's forecast (issue 15), which adds
    ``forecast: true`` and ``forecast_charges``; ``current_usage`` stays the estimate so far.
    Alerts on actual usage carry neither field."""
    data: dict[str, Any] = {
        "account_id": account_id,
        "budget_name": budget_name,
        "threshold_percentage": threshold_percentage,
        "current_usage": current_usage,
        "budget_limit": budget_limit,
        "period_remaining_days": period_remaining_days,
    }
    if forecast_charges is not None:
        data["forecast"] = True
        data["forecast_charges"] = forecast_charges
    return BillingEvent(BUDGET_ALERT, account_id, occurred_at, data)


def usage_reported(
    *,
    account_id: str,
    hour: datetime,
    revision: int,
    sequence: int,
    period: str,
    tenants: list[tuple[str, int, int]],
    partners: list[tuple[str, int]],
    estimated_charges_to_date: Decimal,
    occurred_at: datetime,
) -> BillingEvent:
    """One hourly report revision: ``tenants`` as (tenant_id, message delta, storage bytes at the
    hour's end), ``partners`` as (partner_id, message delta)."""
    return BillingEvent(
        USAGE_REPORTED,
        account_id,
        occurred_at,
        {
            "account_id": account_id,
            "hour": iso_utc(hour),
            "revision": revision,
            "sequence": sequence,
            "period": period,
            "tenants": [
                {"tenant_id": tenant_id, "messages": messages, "storage_bytes": storage}
                for tenant_id, messages, storage in tenants
            ],
            "partners": [
                {"partner_id": partner_id, "messages": messages}
                for partner_id, messages in partners
            ],
            "estimated_charges_to_date": estimated_charges_to_date,
            "currency": "USD",
        },
    )


def approval_requested(
    *,
    account_id: str,
    change_request_id: str,
    kind: str,
    requested_by: str,
    summary: str,
    expires_at: datetime,
    occurred_at: datetime,
) -> BillingEvent:
    """A change held by the account's approval policy (issue 15)."""
    return BillingEvent(
        APPROVAL_REQUESTED,
        account_id,
        occurred_at,
        {
            "account_id": account_id,
            "change_request_id": change_request_id,
            "kind": kind,
            "requested_by": requested_by,
            "summary": summary,
            "expires_at": iso_utc(expires_at),
        },
    )


def approval_decided(
    *,
    account_id: str,
    change_request_id: str,
    decision: str,
    decided_by: str,
    reason: str | None,
    occurred_at: datetime,
) -> BillingEvent:
    """``decision``: ``approved``, ``rejected`` or ``expired``; ``reason`` ``None`` when the
    decider gave none."""
    return BillingEvent(
        APPROVAL_DECIDED,
        account_id,
        occurred_at,
        {
            "account_id": account_id,
            "change_request_id": change_request_id,
            "decision": decision,
            "decided_by": decided_by,
            "reason": reason,
        },
    )
