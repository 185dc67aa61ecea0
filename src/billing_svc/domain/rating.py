"""Rating: a period's plan spans, usage and terms in, invoice lines of exact ``Decimal`` out.

Spec §1.2-§1.6. Pure: plain values in, plain values out; no database, no gRPC, no clock. That is
what lets the invoice tests be worked out by hand and lets reconciliation re-rate a closed period
from raw events with the very same code.

Arithmetic is exact: prorations are ``fractions.Fraction`` of microseconds, products of
``Decimal`` values are computed in a context that traps any inexact result, and the only rounding
is each line's amount, half-up to the cent (§1.5). Where the spec is silent the rule is marked
"decision" in a docstring or comment; the README lists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from fractions import Fraction

from billing_svc.domain.bounds import MAX_AMOUNT
from billing_svc.domain.catalog import MessageTier, Terms
from billing_svc.domain.errors import Unratable
from billing_svc.domain.money import ZERO, decimal_text, to_cents
from billing_svc.domain.periods import Period
from billing_svc.domain.subscriptions import ANNUAL, ANNUAL_FEE_MONTHS, MONTHLY

BASE_FEE = "base_fee"
TENANT_OVERAGE = "tenant_overage"
MESSAGE_OVERAGE = "message_overage"
STORAGE_OVERAGE = "storage_overage"
LATE_USAGE = "late_usage"
CREDIT = "credit"
LINE_ORDER = (BASE_FEE, TENANT_OVERAGE, MESSAGE_OVERAGE, STORAGE_OVERAGE, LATE_USAGE, CREDIT)

QUANTITY_PLACES = 9
"""Decision: a quantity that is not a terminating decimal (15/29 of a month) is shown rounded
half-up to 9 places; the amount is always computed from the exact fraction, never from it."""

_MICROSECOND = timedelta(microseconds=1)
# Every product of a quantity and a rate must be exact: a silently rounded product would be a
# billing error, so the context raises instead.
_EXACT = Context(prec=100, traps=[Inexact, InvalidOperation, Overflow, DivisionByZero])


@dataclass(frozen=True)
class PlanSpan:
    """A stretch ``[start, end)`` on one plan and billing interval (``MONTHLY`` or ``ANNUAL``).

    Spans may reach outside the period: only their overlap with it is billed. A span that ends
    where the next begins is that span's predecessor, which is how an annual upgrade finds the
    yearly fee it replaces (pass the span before the period when a change falls on its first
    instant).
    """

    start: datetime
    end: datetime
    terms: Terms
    billing_interval: str


@dataclass(frozen=True)
class PeriodUsage:
    """A period's billable usage, as the caller measured it.

    Contract (decision): when a trial ends inside the period, ``messages`` counts only messages
    that occurred at or after the trial's end, and ``storage_gb_months`` only the GB-months held
    from the trial's end to the period's end (``storage_meter.gb_months`` over that window, still
    divided by the whole period's length). ``active_tenants``: tenants that existed at any
    moment of the period (§1.4).
    """

    messages: int
    active_tenants: int
    storage_gb_months: Decimal


@dataclass(frozen=True)
class LateUsage:
    """Messages that arrived after their period was invoiced (§1.4, late events).

    ``invoiced_messages``: the billable messages that period's invoice (and any earlier late
    lines) already charged for; ``late_messages``: the billable ones not yet charged; ``terms``:
    the terms in force at the end of that period.
    """

    period: str
    invoiced_messages: int
    late_messages: int
    terms: Terms


@dataclass(frozen=True)
class Credit:
    """An amount (> 0) taken off the invoice, e.g. goodwill or a carried-over balance."""

    description: str
    amount: Decimal
    credit_id: str = ""  # the stored credit it comes from, if any


@dataclass(frozen=True)
class InvoiceLine:
    """One invoice line; ``amount`` is rounded half-up to the cent, negative only for credits."""

    type: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    period: str | None = None  # the period a late_usage line bills
    credit_id: str | None = None  # the credit a credit line draws on


# ---------------------------------------------------------------------------------------------
# Public API


def rate_period(
    period: Period,
    spans: Sequence[PlanSpan],
    usage: PeriodUsage,
    *,
    trial_end: datetime | None = None,
    subscription_start: datetime | None = None,
    anniversary: datetime | None = None,
    late: Sequence[LateUsage] = (),
    credits: Sequence[Credit] = (),
) -> list[InvoiceLine]:
    """The lines of ``period``'s invoice, in the spec's order, lines of zero amount left out.

    Nothing is charged before ``subscription_start`` nor before ``trial_end``. The last span
    that overlaps the period (the plan in force at its end, or at an immediate cancellation)
    sets the included amounts and overage rates (§1.3). ``anniversary``: the start of the
    subscription's annual years (default: the later of ``subscription_start`` and
    ``trial_end``; an annual span right after a monthly one starts them afresh, and for later
    periods the caller passes that switch: ``terms.anniversary``); only annual spans use it.
    """
    _check_usage(usage)
    spans = _checked_spans(spans)
    paid_from = _latest(subscription_start, trial_end)
    lines: list[InvoiceLine] = []
    overlapping = [s for s in spans if s.start < period.end and s.end > period.start]
    if overlapping:
        anchor = anniversary or paid_from
        lines.extend(_base_fee_lines(period, spans, paid_from, anchor))
        terms = overlapping[-1].terms
        billable = Fraction(
            sum(
                _micros(*window)
                for span in overlapping
                if (window := _chargeable(span, period, paid_from))
            ),
            _micros(period.start, period.end),
        )
        # Decision: a period with no paid time at all (a whole month of trial) has no usage
        # charges either, whatever usage the caller passes.
        if billable:
            lines.extend(_tenant_lines(usage.active_tenants, terms, billable, period))
            lines.extend(_message_lines(usage.messages, terms))
            lines.extend(_storage_lines(usage.storage_gb_months, terms))
    lines.extend(_late_lines(late))
    lines = [line for line in lines if line.amount]
    _check_bounded(period, lines)
    lines.extend(_credit_lines(credits, invoice_total(lines)))
    return lines


def invoice_total(lines: Iterable[InvoiceLine]) -> Decimal:
    """The invoice total: the sum of the lines' rounded amounts (§1.5)."""
    return sum((line.amount for line in lines), ZERO)


def graduated_charge(
    messages: int, tiers: Sequence[MessageTier]
) -> list[tuple[int, Decimal, Decimal]]:
    """``(quantity, unit price, exact amount)`` for each tier that ``messages`` reaches.

    Tier bounds are cumulative counts of the messages priced (for rating: the overage
    messages). Decision: the last tier takes every message beyond the previous bound, even when
    it was given a bound of its own, so no message is ever left unpriced.
    """
    if messages < 0:
        raise ValueError(f"messages must not be negative, got {messages}")
    _check_tiers(tiers)
    parts: list[tuple[int, Decimal, Decimal]] = []
    lower = 0
    for index, tier in enumerate(tiers):
        upper = None if index == len(tiers) - 1 else tier.up_to_messages
        quantity = messages - lower if upper is None else min(messages, upper) - lower
        if quantity <= 0:
            break
        parts.append(
            (quantity, tier.unit_price, _EXACT.multiply(Decimal(quantity), tier.unit_price))
        )
        if upper is None:
            break
        lower = upper
    return parts


def overage_messages(messages: int, terms: Terms) -> int:
    """Messages beyond the included amount (never negative)."""
    return max(0, messages - terms.included_messages)


def message_overage(messages: int, terms: Terms) -> Decimal:
    """The exact (unrounded) overage charge for ``messages`` in one period under ``terms``.

    Decision: graduated tiers (custom terms) price the messages beyond the included amount,
    exactly as the flat rate does; tier bounds count those overage messages.
    """
    over = overage_messages(messages, terms)
    if terms.message_tiers:
        return _exact_sum(amount for _, _, amount in graduated_charge(over, terms.message_tiers))
    return _EXACT.multiply(Decimal(over), terms.message_overage)


# ---------------------------------------------------------------------------------------------
# Base fee


def _base_fee_lines(
    period: Period, spans: list[PlanSpan], paid_from: datetime | None, anchor: datetime | None
) -> list[InvoiceLine]:
    lines: list[InvoiceLine] = []
    for index, span in enumerate(spans):
        window = _chargeable(span, period, paid_from)
        if window is None:
            continue
        if span.billing_interval == ANNUAL:
            if anchor is None:
                raise ValueError(
                    "annual billing needs subscription_start or anniversary to "
                    "know when the subscription's years start"
                )
            previous = spans[index - 1] if index and spans[index - 1].end == span.start else None
            # Decision: a switch from monthly to annual starts the subscription's years afresh
            # (Stripe resets the billing anchor alike): the whole yearly fee at the switch, the
            # first renewal a year later. Within the trial the years still start at its end.
            span_anchor = anchor
            if (
                previous is not None
                and previous.billing_interval == MONTHLY
                and span.start > anchor
            ):
                span_anchor = span.start
            lines.extend(_annual_lines(span, window, previous, span_anchor))
        else:
            lines.append(_monthly_line(period, span, window))
    return lines


def _monthly_line(period: Period, span: PlanSpan, window: tuple[datetime, datetime]) -> InvoiceLine:
    """The monthly fee prorated by the exact share of the period's time (microseconds) spent
    on the span after the subscription started and its trial ended (§1.3)."""
    start, end = window
    fee = span.terms.base_fee
    share = Fraction(_micros(start, end), _micros(period.start, period.end))
    if share == 1:
        text = f"{span.terms.name} plan, {period.label}"
    else:
        text = (
            f"{span.terms.name} plan, {_when(start)} to {_when(end)} UTC "
            f"({_seconds_text(start, end)} of {period.seconds:,} seconds)"
        )
    return InvoiceLine(BASE_FEE, text, _quantity(share), fee, _cents(Fraction(fee) * share))


def _annual_lines(
    span: PlanSpan, window: tuple[datetime, datetime], previous: PlanSpan | None, anchor: datetime
) -> list[InvoiceLine]:
    """Decision (§1.2 annual billing): the yearly fee (10 x the monthly fee) is charged whole on
    the invoice of the period in which each subscription year starts, nothing in other months.

    Decision: a change from one annual span to another in the middle of a subscription year (an
    upgrade) charges the yearly fee minus the yearly fee already charged for that year, prorated
    by the share of the year that is left, on the invoice of the period of the change. A lower
    result (a downgrade) is not refunded. A switch from monthly starts a new year (the caller's
    ``anchor`` is then the switch), so it pays the whole yearly fee.
    """
    start, end = window
    yearly = _yearly_fee(span.terms)
    lines = []
    year_start, year_end = _subscription_year(anchor, start)
    if start == span.start and previous is not None and start != year_start and start > anchor:
        already = _yearly_fee(previous.terms) if previous.billing_interval == ANNUAL else ZERO
        difference = yearly - already
        if difference > 0:
            share = Fraction(_micros(start, year_end), _micros(year_start, year_end))
            text = (
                f"{span.terms.name} plan, annual, {_when(start)} to {_when(year_end)} UTC: "
                f"the rest of the subscription year ({_seconds_text(start, year_end)} of "
                f"{_micros(year_start, year_end) // 1_000_000:,} seconds)"
                + (f", less the {previous.terms.name} plan's yearly fee" if already else "")
            )
            lines.append(
                InvoiceLine(
                    BASE_FEE,
                    text,
                    _quantity(share),
                    difference,
                    _cents(Fraction(difference) * share),
                )
            )
    years = max(0, _years_between(anchor, start))
    if _add_years(anchor, years) < start:
        years += 1
    while (year_start := _add_years(anchor, years)) < end:
        year_end = _add_years(anchor, years + 1)
        text = (
            f"{span.terms.name} plan, annual, {_when(year_start)} to {_when(year_end)} UTC "
            f"({ANNUAL_FEE_MONTHS} x {span.terms.base_fee} a month)"
        )
        lines.append(InvoiceLine(BASE_FEE, text, Decimal(1), yearly, to_cents(yearly)))
        years += 1
    return lines


def _yearly_fee(terms: Terms) -> Decimal:
    return _EXACT.multiply(terms.base_fee, Decimal(ANNUAL_FEE_MONTHS))


def _subscription_year(anchor: datetime, moment: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` of the subscription year containing ``moment`` (the first year when
    ``moment`` is before ``anchor``)."""
    years = max(0, _years_between(anchor, moment))
    return _add_years(anchor, years), _add_years(anchor, years + 1)


def _years_between(anchor: datetime, moment: datetime) -> int:
    years = moment.year - anchor.year
    if _add_years(anchor, years) > moment:
        years -= 1
    return years


def _add_years(anchor: datetime, years: int) -> datetime:
    """Decision: a year started on February 29 has its anniversary on February 28 in years
    that are not leap years."""
    try:
        return anchor.replace(year=anchor.year + years)
    except ValueError:
        return anchor.replace(year=anchor.year + years, day=28)


# ---------------------------------------------------------------------------------------------
# Usage


def _tenant_lines(
    active_tenants: int, terms: Terms, billable: Fraction, period: Period
) -> list[InvoiceLine]:
    """(active − included) × rate, never negative; ``None`` included = unlimited (§1.4).

    Decision: the charge is prorated by the share of the period that is billable (after the
    subscription started and its trial ended, before an immediate cancellation).
    """
    if terms.included_tenants is None:
        return []
    extra = max(0, active_tenants - terms.included_tenants)
    if not extra:
        return []
    tenant_months = extra * billable
    text = f"{extra} active tenants over the {terms.included_tenants} included"
    if billable != 1:
        text += f", prorated to the billable {_quantity(billable)} of {period.label}"
    return [
        InvoiceLine(
            TENANT_OVERAGE,
            text,
            _quantity(tenant_months),
            terms.tenant_overage,
            _cents(tenant_months * Fraction(terms.tenant_overage)),
        )
    ]


def _message_lines(messages: int, terms: Terms) -> list[InvoiceLine]:
    over = overage_messages(messages, terms)
    if not over:
        return []
    if not terms.message_tiers:
        return [
            InvoiceLine(
                MESSAGE_OVERAGE,
                f"{over:,} messages over the {terms.included_messages:,} included",
                Decimal(over),
                terms.message_overage,
                to_cents(_EXACT.multiply(Decimal(over), terms.message_overage)),
            )
        ]
    lines, lower = [], 0
    parts = graduated_charge(over, terms.message_tiers)
    for index, (quantity, price, amount) in enumerate(parts):
        tier = terms.message_tiers[index]
        is_last = index == len(terms.message_tiers) - 1
        bounds = f"{lower + 1:,} and above" if is_last else f"{lower + 1:,}-{tier.up_to_messages:,}"
        lines.append(
            InvoiceLine(
                MESSAGE_OVERAGE,
                f"{quantity:,} messages over the {terms.included_messages:,} "
                f"included, tier {index + 1} (overage messages {bounds})",
                Decimal(quantity),
                price,
                to_cents(amount),
            )
        )
        lower += quantity
    return lines


def _storage_lines(gb_months: Decimal, terms: Terms) -> list[InvoiceLine]:
    """(GB-months − included GB) × rate per GB-month, never negative (§1.4)."""
    extra = _EXACT.subtract(gb_months, terms.included_storage_gb)
    if extra <= 0:
        return []
    return [
        InvoiceLine(
            STORAGE_OVERAGE,
            f"{decimal_text(extra)} GB-months over the "
            f"{decimal_text(terms.included_storage_gb)} GB included",
            extra,
            terms.storage_overage_per_gb,
            to_cents(_EXACT.multiply(extra, terms.storage_overage_per_gb)),
        )
    ]


def _late_lines(late: Sequence[LateUsage]) -> list[InvoiceLine]:
    """One line per late period, oldest first (decision), charging only what the late messages
    add to their own period's overage: overage(invoiced + late) − overage(invoiced), under the
    terms in force at that period's end.

    Decision: the quantity is the late messages beyond the included amount (the ones charged);
    the description also gives all the late messages. With tiers the unit price is the
    average over the tiers touched.
    """
    labels = [Period.parse(item.period).label for item in late]
    if len(set(labels)) != len(labels):
        raise ValueError("late usage names a period twice; add its messages up first")
    lines = []
    for item in sorted(late, key=lambda item: item.period):
        if item.invoiced_messages < 0 or item.late_messages < 0:
            raise ValueError(f"late usage of {item.period}: message counts must not be negative")
        total = item.invoiced_messages + item.late_messages
        charged = overage_messages(total, item.terms) - overage_messages(
            item.invoiced_messages, item.terms
        )
        if not charged:
            continue
        amount = message_overage(total, item.terms) - message_overage(
            item.invoiced_messages, item.terms
        )
        unit = (
            _quantity(Fraction(amount) / charged)
            if item.terms.message_tiers
            else item.terms.message_overage
        )
        lines.append(
            InvoiceLine(
                LATE_USAGE,
                f"{item.late_messages:,} messages of {item.period} received after it "
                f"was invoiced, {charged:,} of them over the {item.terms.included_messages:,} "
                f"included by the {item.terms.name} plan",
                Decimal(charged),
                unit,
                to_cents(amount),
                period=item.period,
            )
        )
    return lines


def _credit_lines(credits: Sequence[Credit], subtotal: Decimal) -> list[InvoiceLine]:
    """Credits in the order given, each rounded to the cent. Decision: a credit is capped at
    what is left of the invoice, so the total is never negative; the part not applied is not
    carried anywhere by rating (the caller may carry it to the next invoice)."""
    lines, left = [], subtotal
    for credit in credits:
        if credit.amount <= 0:
            raise ValueError(f"credit {credit.description!r}: amount must be > 0")
        wanted = to_cents(credit.amount)
        applied = min(wanted, left)
        if applied <= 0:
            continue
        text = credit.description
        if applied != wanted:
            text += f" ({wanted} credit, {applied} applied: capped at the invoice total)"
        lines.append(
            InvoiceLine(
                CREDIT, text, Decimal(1), -applied, -applied, credit_id=credit.credit_id or None
            )
        )
        left -= applied
    return lines


# ---------------------------------------------------------------------------------------------
# Checks and exact arithmetic


def _checked_spans(spans: Sequence[PlanSpan]) -> list[PlanSpan]:
    """The spans with empty ones dropped; ``ValueError`` unless they are ordered and disjoint."""
    previous_end: datetime | None = None
    kept = []
    for span in spans:
        if span.start.tzinfo is None or span.end.tzinfo is None:
            raise ValueError("plan spans need timezone-aware (UTC) datetimes")
        if span.end < span.start:
            raise ValueError(f"plan span ends ({span.end}) before it starts ({span.start})")
        if span.billing_interval not in (MONTHLY, ANNUAL):
            raise ValueError(
                f"billing interval {span.billing_interval!r} is not {MONTHLY!r} or {ANNUAL!r}"
            )
        if previous_end is not None and span.start < previous_end:
            raise ValueError("plan spans must be in order and must not overlap")
        previous_end = span.end
        if span.end > span.start:
            kept.append(span)
    return kept


def _check_usage(usage: PeriodUsage) -> None:
    if usage.messages < 0 or usage.active_tenants < 0 or usage.storage_gb_months < 0:
        raise ValueError(f"usage must not be negative: {usage}")


def _check_tiers(tiers: Sequence[MessageTier]) -> None:
    if not tiers:
        raise ValueError("graduated pricing needs at least one tier")
    lower = 0
    for index, tier in enumerate(tiers):
        if tier.unit_price < 0:
            raise ValueError(f"tier {index + 1}: unit price must not be negative")
        if tier.up_to_messages is None:
            if index != len(tiers) - 1:
                raise ValueError(f"tier {index + 1}: only the last tier may be unbounded")
        elif tier.up_to_messages <= lower:
            raise ValueError(f"tier {index + 1}: bounds must increase from tier to tier")
        else:
            lower = tier.up_to_messages


def _check_bounded(period: Period, lines: Sequence[InvoiceLine]) -> None:
    """Decision: an invoice's charges hold at most ``MAX_AMOUNT`` (the wire's and the money
    columns' limit). Within the bounds of terms and usage a period's own lines stay far below
    it; late usage of many huge periods can pass it, and is refused, naming the lines."""
    charges = invoice_total(lines)
    if charges <= MAX_AMOUNT:
        return
    by_type: dict[str, Decimal] = {}
    for line in lines:
        by_type[line.type] = by_type.get(line.type, ZERO) + line.amount
    parts = ", ".join(f"{kind} {amount:,}" for kind, amount in by_type.items())
    raise Unratable(
        f"the charges of {period.label} come to {charges:,} USD ({parts}), more "
        f"than the {MAX_AMOUNT:,} USD an invoice can hold; the usage counted for "
        "it cannot be billed as it is"
    )


def _exact_sum(values: Iterable[Decimal]) -> Decimal:
    total = ZERO
    for value in values:
        total = _EXACT.add(total, value)
    return total


def _latest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return max(present) if present else None


def _chargeable(
    span: PlanSpan, period: Period, paid_from: datetime | None
) -> tuple[datetime, datetime] | None:
    """The part of ``span`` inside the period and after ``paid_from``, or ``None``."""
    start = max(span.start, period.start)
    if paid_from is not None:
        start = max(start, paid_from)
    end = min(span.end, period.end)
    return (start, end) if end > start else None


def _micros(start: datetime, end: datetime) -> int:
    return (end - start) // _MICROSECOND


def _round_half_up(value: Fraction, places: int) -> Decimal:
    scaled = value * 10**places
    whole, remainder = divmod(abs(scaled.numerator), scaled.denominator)
    if 2 * remainder >= scaled.denominator:
        whole += 1
    return Decimal(-whole if value < 0 else whole).scaleb(-places)


def _cents(value: Fraction) -> Decimal:
    """An exact rational amount rounded half-up to the cent, like ``money.to_cents``."""
    return _round_half_up(value, 2)


def _quantity(value: Fraction) -> Decimal:
    """``value`` as an exact Decimal when it has at most ``QUANTITY_PLACES`` decimals (1, 0.5),
    else rounded half-up to that many places."""
    for places in range(QUANTITY_PLACES + 1):
        scaled = value * 10**places
        if scaled.denominator == 1:
            return Decimal(scaled.numerator).scaleb(-places)
    return _round_half_up(value, QUANTITY_PLACES)


def _when(moment: datetime) -> str:
    if moment.microsecond:
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M")


def _seconds_text(start: datetime, end: datetime) -> str:
    micros = _micros(start, end)
    if micros % 1_000_000 == 0:
        return f"{micros // 1_000_000:,}"
    return f"{micros // 1_000_000:,}.{micros % 1_000_000:06d}".rstrip("0")
