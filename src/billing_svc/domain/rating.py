"""Rating: a period's usage and terms in, invoice lines of exact ``Decimal`` out (spec §1.2-§1.6).

Pure: no database, no gRPC. Each line is rounded half-up to the cent; an invoice total is the sum
of its rounded lines. Decisions where the spec is silent are marked "decision" and listed in the
README.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing_svc.domain.catalog import MessageTier, Terms
from billing_svc.domain.money import ZERO, to_cents
from billing_svc.domain.periods import Period
from billing_svc.domain.subscriptions import ANNUAL, ANNUAL_FEE_MONTHS

LINE_ORDER = ("base_fee", "tenant_overage", "message_overage", "storage_overage", "late_usage",
              "credit")


@dataclass(frozen=True)
class PlanSpan:
    """A stretch ``[start, end)`` of a period on one plan."""

    start: datetime
    end: datetime
    terms: Terms
    billing_interval: str


@dataclass(frozen=True)
class PeriodUsage:
    """A period's billable usage. ``messages`` excludes messages of a trial (the caller counts
    only messages at or after the trial's end)."""

    messages: int
    active_tenants: int
    storage_gb_months: Decimal


@dataclass(frozen=True)
class LateUsage:
    """Messages that arrived after their period was invoiced."""

    period: str
    invoiced_messages: int
    late_messages: int
    terms: Terms


@dataclass(frozen=True)
class Credit:
    description: str
    amount: Decimal  # > 0 reduces the invoice


@dataclass(frozen=True)
class InvoiceLine:
    type: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    period: str | None = None


def invoice_total(lines: Sequence[InvoiceLine]) -> Decimal:
    """The sum of the (already rounded) lines."""
    return sum((line.amount for line in lines), ZERO)


def graduated_charge(messages: int, tiers: Sequence[MessageTier]) -> list[tuple[int, Decimal,
                                                                               Decimal]]:
    """``(quantity, unit price, exact amount)`` for each tier ``messages`` reaches."""
    parts, lower = [], 0
    for tier in tiers:
        upper = tier.up_to_messages
        in_tier = (messages - lower) if upper is None else min(messages, upper) - lower
        if in_tier <= 0:
            break
        parts.append((in_tier, tier.unit_price, in_tier * tier.unit_price))
        if upper is None:
            break
        lower = upper
    return parts


def overage_messages(messages: int, terms: Terms) -> int:
    return max(0, messages - terms.included_messages)


def message_overage(messages: int, terms: Terms) -> Decimal:
    """The exact (unrounded) charge for ``messages`` in a period under ``terms``.

    Decision: graduated tiers price the messages beyond the included amount.
    """
    over = overage_messages(messages, terms)
    if terms.message_tiers:
        return sum((amount for _, _, amount in graduated_charge(over, terms.message_tiers)), ZERO)
    return over * terms.message_overage


def _fraction(seconds: float | int, period: Period) -> Decimal:
    return Decimal(int(seconds)) / Decimal(period.seconds)


def _chargeable(span: PlanSpan, trial_end: datetime | None,
                subscription_start: datetime | None) -> tuple[datetime, datetime]:
    start = span.start
    if subscription_start is not None:
        start = max(start, subscription_start)
    if trial_end is not None:
        start = max(start, trial_end)
    return start, max(start, span.end)


def _base_fee_lines(period: Period, spans: Sequence[PlanSpan], trial_end: datetime | None,
                    subscription_start: datetime | None) -> list[InvoiceLine]:
    lines = []
    for span in spans:
        start, end = _chargeable(span, trial_end, subscription_start)
        seconds = int((end - start).total_seconds())
        if seconds <= 0:
            continue
        if span.billing_interval == ANNUAL:
            lines.extend(_annual_lines(period, span, subscription_start))
            continue
        fraction = _fraction(seconds, period)
        amount = to_cents(span.terms.base_fee * fraction)
        label = (f"{span.terms.name} plan, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
                 if fraction != 1 else f"{span.terms.name} plan, {period.label}")
        lines.append(InvoiceLine("base_fee", label, fraction, span.terms.base_fee, amount))
    return lines


def _annual_lines(period: Period, span: PlanSpan,
                  subscription_start: datetime | None) -> list[InvoiceLine]:
    """Decision: the yearly fee (10 x monthly) is billed whole on the invoice of the month each
    subscription year starts in (the anniversary month of the subscription's start)."""
    if period.month != (subscription_start or span.start).month:
        return []
    yearly = span.terms.base_fee * ANNUAL_FEE_MONTHS
    return [InvoiceLine("base_fee", f"{span.terms.name} plan, annual ({period.label} to "
                        f"{Period(period.year + 1, period.month).previous().label})",
                        Decimal(1), yearly, to_cents(yearly))]


def rate_period(period: Period, spans: Sequence[PlanSpan], usage: PeriodUsage, *,
                trial_end: datetime | None = None, subscription_start: datetime | None = None,
                late: Sequence[LateUsage] = (), credits: Sequence[Credit] = ()
                ) -> list[InvoiceLine]:
    """The invoice lines of ``period`` in the spec's order, zero lines left out.

    The plan in force at the period's end (the last span) sets the included amounts and rates.
    Decision: tenant and storage overage are scaled by the fraction of the period after the trial
    (and after the subscription started); messages are counted by the caller after the trial.
    """
    if not spans:
        return []
    terms = spans[-1].terms
    lines = _base_fee_lines(period, spans, trial_end, subscription_start)
    start, end = _chargeable(PlanSpan(period.start, period.end, terms, ""), trial_end,
                             subscription_start)
    billable_fraction = _fraction((end - start).total_seconds(), period)

    if terms.included_tenants is not None and billable_fraction > 0:
        extra = max(0, usage.active_tenants - terms.included_tenants)
        if extra and terms.tenant_overage:
            quantity = extra * billable_fraction
            lines.append(InvoiceLine(
                "tenant_overage", f"{extra} tenants over the {terms.included_tenants} included",
                quantity, terms.tenant_overage, to_cents(quantity * terms.tenant_overage)))

    over = overage_messages(usage.messages, terms)
    if over:
        if terms.message_tiers:
            lower = 0
            for quantity, price, amount in graduated_charge(over, terms.message_tiers):
                lines.append(InvoiceLine(
                    "message_overage", f"messages over the {terms.included_messages:,} included,"
                    f" tier {lower + 1:,}-{lower + quantity:,}", Decimal(quantity), price,
                    to_cents(amount)))
                lower += quantity
        elif terms.message_overage:
            lines.append(InvoiceLine(
                "message_overage", f"{over:,} messages over the {terms.included_messages:,} "
                "included", Decimal(over), terms.message_overage,
                to_cents(over * terms.message_overage)))

    gb_months = usage.storage_gb_months * billable_fraction if billable_fraction != 1 else \
        usage.storage_gb_months
    extra_gb = max(ZERO, gb_months - terms.included_storage_gb)
    if extra_gb and terms.storage_overage_per_gb:
        lines.append(InvoiceLine(
            "storage_overage", f"{_plain(extra_gb)} GB-months over the "
            f"{_plain(terms.included_storage_gb)} included", extra_gb,
            terms.storage_overage_per_gb, to_cents(extra_gb * terms.storage_overage_per_gb)))

    for item in late:
        amount = (message_overage(item.invoiced_messages + item.late_messages, item.terms)
                  - message_overage(item.invoiced_messages, item.terms))
        rounded = to_cents(amount)
        if rounded:
            unit = item.terms.message_overage if not item.terms.message_tiers else \
                amount / item.late_messages
            lines.append(InvoiceLine(
                "late_usage", f"{item.late_messages:,} messages of {item.period} received "
                "after it was invoiced", Decimal(item.late_messages), unit, rounded,
                period=item.period))

    subtotal = invoice_total(lines)
    for credit in credits:
        applied = min(to_cents(credit.amount), subtotal)  # decision: credits never go below 0
        if applied > 0:
            lines.append(InvoiceLine("credit", credit.description, Decimal(1), -applied,
                                     -applied))
            subtotal -= applied
    return [line for line in lines if line.amount != 0]


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text
