"""Storage GB-months from gauge readings (spec §1.4), exactly.

A storage event is a gauge: the bytes a tenant stores as of ``occurred_at``. Each tenant's latest
reading holds until its next one (across period boundaries: the level at a period's start is the
last reading before it). A period's GB-months are the time-weighted average of the sum over
tenants, 1 GB = 10^9 bytes, as cloud object stores bill it:

    GB-months = Σ level_bytes × held_microseconds / (10^9 × period_microseconds)

The numerator is an integer, byte-microseconds, which can be accumulated per tenant and period
as readings arrive (``spread``) and turned into GB-months at the end (``gb_months_of``).

Decision: time is counted in microseconds, not seconds, because that is the resolution of the
timestamps: byte-seconds would either drop the sub-second part or stop being integers. The
numbers outgrow 64 bits (1 TB held for a month is 2.6 × 10^24 byte-microseconds), so store them
as NUMERIC, never BIGINT.

Decision: GB-months are rounded half-up to 9 decimal places (a byte over a month is 10^-9
GB-months), once, at the end; the sum is never built from rounded parts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from billing_svc.domain.periods import Period

GB_BYTES = 10**9
GB_MONTH_PLACES = 9
_MICROSECOND = timedelta(microseconds=1)


class StorageReading(NamedTuple):
    """One gauge reading; a plain ``(occurred_at, tenant_id, level_bytes)`` tuple works too."""

    occurred_at: datetime
    tenant_id: str
    level_bytes: int


def gb_months(
    readings: Iterable[tuple[datetime, str, int]],
    window_start: datetime,
    window_end: datetime,
    period: Period,
) -> Decimal:
    """The GB-months held over ``[window_start, window_end)``, a window inside ``period``,
    as a share of the whole period (a window after a trial ends gives that part's GB-months).

    ``readings`` must include each tenant's last reading before ``window_start`` (its starting
    level; a tenant without one starts at 0 bytes); readings at or after ``window_end`` are
    ignored. Two readings of a tenant at the same instant: the later one in ``readings`` wins.
    """
    if not period.start <= window_start <= window_end <= period.end:
        raise ValueError(
            f"the window {window_start.isoformat()} to {window_end.isoformat()} "
            f"is not inside period {period.label}"
        )
    return gb_months_of(held_byte_microseconds(readings, window_start, window_end), period)


def held_byte_microseconds(
    readings: Iterable[tuple[datetime, str, int]], window_start: datetime, window_end: datetime
) -> int:
    """Σ over tenants of bytes × microseconds held within ``[window_start, window_end)``."""
    if window_end < window_start:
        raise ValueError("the window ends before it starts")
    by_tenant: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for occurred_at, tenant_id, level_bytes in readings:
        if level_bytes < 0:
            raise ValueError(f"tenant {tenant_id}: a storage gauge cannot be negative")
        by_tenant[tenant_id].append((occurred_at, level_bytes))
    total = 0
    for series in by_tenant.values():
        series.sort(key=lambda reading: reading[0])  # stable: same instant keeps input order
        level, held_from = 0, window_start
        for occurred_at, level_bytes in series:
            if occurred_at >= window_end:
                break
            if occurred_at > held_from:
                total += level * _micros(held_from, occurred_at)
                held_from = occurred_at
            level = level_bytes
        total += level * _micros(held_from, window_end)
    return total


def spread(level_bytes: int, since: datetime, until: datetime) -> list[tuple[Period, int]]:
    """The byte-microseconds a level held over ``[since, until)`` adds to each period it
    overlaps, in order (none for a zero level or an empty stretch).

    The incremental form for ingestion: when a tenant's new reading arrives at ``until``, its
    previous level, read at ``since``, contributes ``spread(previous, since, until)``; adding
    these up per tenant and period, plus the current level held from its reading to the end of
    the period (or to now), gives exactly ``held_byte_microseconds``.
    """
    if level_bytes < 0:
        raise ValueError("a storage gauge cannot be negative")
    if level_bytes == 0 or until <= since:
        return []
    parts = []
    period = Period.containing(since)
    while period.start < until:
        overlap = _micros(max(since, period.start), min(until, period.end))
        parts.append((period, level_bytes * overlap))
        period = period.next()
    return parts


def byte_microseconds(level_bytes: int, since: datetime, until: datetime, period: Period) -> int:
    """The part of ``spread(level_bytes, since, until)`` that falls in ``period``."""
    start, end = max(since, period.start), min(until, period.end)
    if level_bytes < 0:
        raise ValueError("a storage gauge cannot be negative")
    return level_bytes * _micros(start, end) if end > start else 0


def gb_months_of(byte_us: int, period: Period) -> Decimal:
    """Byte-microseconds of ``period`` as GB-months, rounded half-up to 9 decimal places."""
    if byte_us < 0:
        raise ValueError("byte-microseconds cannot be negative")
    denominator = GB_BYTES * _micros(period.start, period.end)
    whole, remainder = divmod(byte_us * 10**GB_MONTH_PLACES, denominator)
    if 2 * remainder >= denominator:
        whole += 1
    return Decimal(whole).scaleb(-GB_MONTH_PLACES)


def _micros(start: datetime, end: datetime) -> int:
    return (end - start) // _MICROSECOND
