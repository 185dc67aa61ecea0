"""Counter headroom: which events of a group can be counted without a counter passing its maximum.

Every usage counter is a 64-bit integer (``usage.MAX_COUNTER``). A message event adds at most
10^9, so a counter needs some 9·10^9 events to fill: reading every counter a group touches, for
every group, would cost the hot path queries that almost never find anything. Instead the counter
upserts refuse to overflow (``storage.usage.CounterFull``), and only then is the group redone
with ``Headroom(..., messages=True)``, which reads the group's counters once and rejects exactly
the events that do not fit, in arrival order.

Storage sums are not stored counters but sums that reads make and answer in int64 fields: an
account's bytes summed over its tenants' latest readings (GetCurrentUsage, the storage notice)
and an hour's storage maxima summed over its tenants (GetUsageHistory). No upsert can guard
them, so a group with storage readings always reads them: two queries per group with readings
(message-only groups, the hot path, read nothing).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from billing_svc.domain import usage
from billing_svc.domain.usage import MAX_COUNTER, MESSAGE, STORAGE, UsageEventIn
from billing_svc.storage.usage import UsageStore


class Headroom:
    """What the counters can still take, read once per group; ``refuse`` each event in the order
    the group counts them."""

    def __init__(
        self,
        store: UsageStore,
        candidates: Iterable[Iterable[tuple[int, UsageEventIn]]],
        *,
        messages: bool,
    ) -> None:
        """``messages``: check message counters too (the redo after a ``CounterFull``)."""
        self.messages = messages
        self.counters: dict[tuple[Any, ...], int] = {}
        self.levels: dict[tuple[str, str], tuple[int, int]] = {}  # (account, tenant): (at, bytes)
        self.maxima: dict[tuple[str, int, str, str], int] = {}
        self.account_bytes: dict[str, int] = defaultdict(int)
        self.hour_bytes: dict[tuple[str, int], int] = defaultdict(int)
        candidates = list(candidates)
        if messages:
            counted = [e for batch in candidates for _, e in batch if e.kind == MESSAGE]
            self.counters = store.message_counters(
                {
                    (e.account_id, usage.period_label_of(e.occurred_at_us))  # type: ignore[arg-type]  # check_shape has set occurred_at_us
                    for e in counted
                },
                {
                    (e.account_id, usage.hour_of(e.occurred_at_us))  # type: ignore[arg-type]  # check_shape has set occurred_at_us
                    for e in counted
                },
            )
        readings = [e for batch in candidates for _, e in batch if e.kind == STORAGE]
        self.checks = messages or bool(readings)  # False: refuse() would take every event
        if readings:
            self.levels, self.maxima = store.storage_counters(
                {e.account_id for e in readings},
                {
                    (e.account_id, usage.hour_of(e.occurred_at_us))  # type: ignore[arg-type]  # check_shape has set occurred_at_us
                    for e in readings
                },
            )
            for (account_id, _), (_, level_bytes) in self.levels.items():
                self.account_bytes[account_id] += level_bytes
            for (account_id, hour_us, _, _), level_bytes in self.maxima.items():
                self.hour_bytes[(account_id, hour_us)] += level_bytes

    def refuse(self, e: UsageEventIn, period: str, late: bool) -> str | None:
        """Why ``e`` (new, of ``period``, ``late`` or not) cannot be counted; ``None``: it can,
        and what it adds is taken from the headroom."""
        if e.kind == MESSAGE:
            return self._count_messages(e, period, late) if self.messages else None
        return self._hold_storage(e)

    def _count_messages(self, e: UsageEventIn, period: str, late: bool) -> str | None:
        hour_us = usage.hour_of(e.occurred_at_us)  # type: ignore[arg-type]  # check_shape has set occurred_at_us
        keys: list[tuple[Any, ...]] = [("period", e.account_id, period)]
        if late:
            keys.append(("late", e.account_id, period))
        keys.append(("tenant", e.account_id, period, e.tenant_id))
        if e.partner_id:
            keys.append(("partner", e.account_id, period, e.partner_id))
        keys.append(("hourly", e.account_id, hour_us, e.tenant_id, e.partner_id))
        counters, quantity = self.counters, e.quantity
        for key in keys:
            if counters.get(key, 0) > MAX_COUNTER - quantity:
                return usage.counter_full(_counter_name(key), quantity)
        for key in keys:
            counters[key] = counters.get(key, 0) + quantity
        return None

    def _hold_storage(self, e: UsageEventIn) -> str | None:
        at_us: int = e.occurred_at_us  # type: ignore[assignment]  # check_shape has set occurred_at_us
        reading_at, level = self.levels.get((e.account_id, e.tenant_id), (None, 0))
        # The tenant's latest reading after this one; at the same instant the larger counts, an
        # upper bound of whichever the storage level ends up with.
        if reading_at is None or at_us > reading_at:
            latest = (at_us, e.quantity)
        else:
            latest = (reading_at, max(level, e.quantity) if at_us == reading_at else level)
        account_bytes = self.account_bytes[e.account_id] - level + latest[1]
        hour_us = usage.hour_of(at_us)
        key = (e.account_id, hour_us, e.tenant_id, e.partner_id)
        held = self.maxima.get(key, 0)
        hour_bytes = self.hour_bytes[(e.account_id, hour_us)] - held + max(held, e.quantity)
        if account_bytes > MAX_COUNTER:
            return usage.counter_full(
                "the account's stored bytes summed over its tenants", e.quantity
            )
        if hour_bytes > MAX_COUNTER:
            return usage.counter_full(
                f"the account's stored bytes summed over its tenants in "
                f"the hour from {_hour(hour_us)}",
                e.quantity,
            )
        self.levels[(e.account_id, e.tenant_id)] = latest
        self.account_bytes[e.account_id] = account_bytes
        self.maxima[key] = max(held, e.quantity)
        self.hour_bytes[(e.account_id, hour_us)] = hour_bytes
        return None


def _counter_name(key: tuple[Any, ...]) -> str:
    kind = key[0]
    if kind == "hourly":
        return f"the tenant's hourly messages from {_hour(key[2])}"
    whose = {
        "period": "the account's messages",
        "late": "the account's late messages",
        "tenant": "the tenant's messages",
        "partner": "the partner's messages",
    }[kind]
    return f"{whose} of {key[2]}"


def _hour(hour_us: int) -> str:
    return f"{usage.from_us(hour_us):%Y-%m-%dT%H:%M}Z"
