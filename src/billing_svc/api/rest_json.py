"""The seed's plain JSON: what the REST surface answers, made from the gRPC responses.

The seed's examples read amounts as JSON numbers (``"base_fee": 299.00``,
``usage.usage_to_date.estimated_charges > DAILY_BUDGET_LIMIT``) and statuses as lowercase words
(``"active"``), where gRPC-JSON has Money objects, int64 strings and ``SUBSCRIPTION_STATUS_ACTIVE``.
Each body here is a projection of the very message the gRPC method returns, so the two surfaces
cannot drift apart; ``dumps`` writes a ``Decimal`` with its exact digits (``json`` would need a
float, which has none).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, cast

from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as usage_pb
from google.protobuf import timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from billing_svc.domain import money

# String fields of the responses that hold a decimal number (proto has no decimal type).
_DECIMAL_TEXT_FIELDS = frozenset({"storage_gb_months"})


def amount(value: common_pb2.Money) -> Decimal:
    """A Money as a Decimal with at least the cents' two places, more only when they are not
    zero: 299 -> 299.00, 0.05 -> 0.05, 0.0125 -> 0.0125 (the seed's ``299.00`` and ``0.05``)."""
    exact = money.from_units_nanos(value.units, value.nanos).normalize()
    # The exponent is a letter only for NaN and infinities, which no Money is.
    return exact.quantize(Decimal("0.01")) if cast(int, exact.as_tuple().exponent) > -2 else exact


def timestamp(value: timestamp_pb2.Timestamp) -> str:
    """RFC 3339 in UTC as the seed writes it, ``2024-01-01T00:00:00Z`` (fractions only when
    there are some)."""
    return value.ToJsonString()


def account_billing(response: pb.GetAccountBillingResponse) -> dict[str, Any]:
    """The seed's ``GET /v1/accounts/{account}/billing`` response: its keys, in its order, and
    no others (everything else an account has is in ``GetAccountBilling`` over gRPC)."""
    subscription = response.subscription
    plan = response.billing_plan
    method = response.payment_method
    return {
        "customer_id": response.customer_id,
        "subscription": {
            "id": subscription.id,
            "status": _enum_word(
                subscription.DESCRIPTOR.fields_by_name["status"],  # type: ignore[arg-type]  # upb's descriptor, same API
                subscription.status,
            ),
            "current_period_start": timestamp(subscription.current_period_start),
            "current_period_end": timestamp(subscription.current_period_end),
            "trial_ends_at": (
                timestamp(subscription.trial_ends_at)
                if subscription.HasField("trial_ends_at")
                else None
            ),
            "cancel_at_period_end": subscription.cancel_at_period_end,
        },
        "billing_plan": {
            "name": plan.name,
            "model": plan.model,
            "base_fee": amount(plan.base_fee),
            "message_rate": amount(plan.message_rate),
        },
        "payment_method": {
            "type": method.type,
            "last4": method.last4,
            "exp_month": method.exp_month,
            "exp_year": method.exp_year,
        }
        if response.HasField("payment_method")
        else None,
        "has_payment_method": response.has_payment_method,
    }


def current_usage(response: usage_pb.GetCurrentUsageResponse) -> dict[str, Any]:
    """``GET /v1/billing/usage/current``: every field of ``GetCurrentUsageResponse`` in plain JSON
    (docs/rest.md lists them)."""
    return plain(response)


def plain(message: Message) -> dict[str, Any]:
    """Every field of ``message`` (unset ones too, as their default or ``null``): Money as a
    number of USD, Timestamp as RFC 3339, an enum as its lowercase word, int64 as a number, a
    decimal string as a number."""
    return {
        field.name: _value(field, getattr(message, field.name), message)  # type: ignore[arg-type]  # upb's descriptor, same API
        for field in message.DESCRIPTOR.fields
    }


def _value(field: FieldDescriptor, value: Any, parent: Message) -> Any:
    if field.is_repeated:
        return [_one(field, item) for item in value]
    if field.type == FieldDescriptor.TYPE_MESSAGE and not parent.HasField(field.name):
        return None
    return _one(field, value)


def _one(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if isinstance(value, common_pb2.Money):
            return amount(value)
        if isinstance(value, timestamp_pb2.Timestamp):
            return timestamp(value)
        return plain(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return _enum_word(field, value)
    if field.name in _DECIMAL_TEXT_FIELDS:
        return Decimal(value or "0")
    return value


def _enum_word(field: FieldDescriptor, number: int) -> str | None:
    """``SUBSCRIPTION_STATUS_PAST_DUE`` -> ``"past_due"``; the UNSPECIFIED value -> ``None``."""
    enum = field.enum_type
    assert enum is not None, f"{field.name} is not an enum field"
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
    name = enum.values_by_number[number].name if number in enum.values_by_number else None
    if name is None or number == 0:
        return None
    return name.removeprefix(prefix).lower()


def dumps(value: Any) -> str:
    """JSON text of ``value`` (dicts, lists, text, bools, ``None``, ints, ``Decimal``s): a Decimal
    is written with exactly its digits, never through a float."""
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{json.dumps(key)}: {dumps(item)}" for key, item in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(dumps(item) for item in value) + "]"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} has no JSON number")
        return format(value, "f")
    return json.dumps(value)
