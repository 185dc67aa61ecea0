"""Exact money: Decimal amounts, half-up rounding to the cent, and largest-remainder splits.

Binary floats never touch money in billing-svc. On the wire an amount is ``Money{currency_code,
units, nanos}`` (google.type.Money); here it is a ``Decimal`` in USD.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from billing_svc.domain.errors import shown

CURRENCY = "USD"
CENT = Decimal("0.01")
NANO = Decimal("0.000000001")
ZERO = Decimal(0)
_NANOS_PER_UNIT = 1_000_000_000


def to_cents(amount: Decimal) -> Decimal:
    """Round half-up to the cent (spec §1.5: each invoice line)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_decimal(text: str, *, field: str = "amount") -> Decimal:
    """Parse an exact decimal from text; ``ValueError`` naming ``field`` when it is not one."""
    if isinstance(text, float):  # pragma: no cover - a programming error, never user input
        raise TypeError("floats are not accepted for money")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation as exc:
        raise ValueError(f"{field}: {shown(text)} is not a decimal number") from exc
    if not value.is_finite():
        raise ValueError(f"{field}: {shown(text)} is not a finite number")
    return value


def decimal_text(value: Decimal) -> str:
    """A decimal as text without exponent or trailing zeros: 3, 2.5, 0.000000001. The one
    formatter for quantities that travel as text (GB-months on the wire, in line descriptions)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def to_units_nanos(amount: Decimal) -> tuple[int, int]:
    """Split an amount into google.type.Money ``(units, nanos)``, both with the amount's sign.

    Amounts finer than a nano cannot be represented and raise ``ValueError``.
    """
    if amount != amount.quantize(NANO, rounding=ROUND_DOWN):
        raise ValueError(f"{amount} has more than 9 decimal places")
    sign = -1 if amount < 0 else 1
    magnitude = abs(amount)
    units = int(magnitude.to_integral_value(rounding=ROUND_DOWN))
    nanos = int((magnitude - units) * _NANOS_PER_UNIT)
    return sign * units, sign * nanos


def from_units_nanos(units: int, nanos: int) -> Decimal:
    """The exact amount of google.type.Money ``(units, nanos)``; ``ValueError`` if invalid."""
    if not -999_999_999 <= nanos <= 999_999_999:
        raise ValueError("nanos must be within [-999999999, 999999999]")
    if (units > 0 and nanos < 0) or (units < 0 and nanos > 0):
        raise ValueError("units and nanos must have the same sign")
    return Decimal(units) + Decimal(nanos) / _NANOS_PER_UNIT


def split_largest_remainder(total: Decimal, weights: Sequence[int]) -> list[Decimal]:
    """Split ``total`` (a whole number of cents) in proportion to ``weights``, to the cent.

    The parts add up exactly to ``total``: each part gets its floor share of cents, and the cents
    left over go one each to the largest remainders (ties: earlier weight first). With all weights
    zero the split is even.
    """
    if not weights:
        return []
    cents_total = int(to_cents(total) / CENT)
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    weight_sum = sum(weights)
    effective = list(weights) if weight_sum else [1] * len(weights)
    weight_sum = sum(effective)
    sign = -1 if cents_total < 0 else 1
    cents_abs = abs(cents_total)
    floors = [cents_abs * w // weight_sum for w in effective]
    remainders = [cents_abs * w % weight_sum for w in effective]
    left = cents_abs - sum(floors)
    order = sorted(range(len(effective)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        floors[i] += 1
    return [Decimal(sign * c) * CENT for c in floors]
