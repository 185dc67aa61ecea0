"""Usage events: what a valid event is, and why an invalid one is rejected (spec §1.4).

Pure: the checks that need stored state (does the account exist, is the tenant its own) take that
state as plain arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

from billing_svc.domain.periods import EARLIEST, LATEST
from billing_svc.domain.retention import DEFAULT_USAGE_RETENTION_DAYS, outside_retention

MESSAGE = 1
STORAGE = 2
KINDS = (MESSAGE, STORAGE)

MAX_EVENT_ID_LENGTH = 128
MAX_BATCH_EVENTS = 10_000
FUTURE_TOLERANCE = timedelta(minutes=5)
DEFAULT_RETENTION_DAYS = DEFAULT_USAGE_RETENTION_DAYS  # BILLING_USAGE_RETENTION_DAYS
GB_BYTES = 10**9
_US = 1_000_000
_FUTURE_US = int(FUTURE_TOLERANCE.total_seconds()) * _US
_DAY_US = 86_400 * _US

# Contract limits (spec: "a message event's quantity is at most 10^9; a storage gauge at most
# 10^18 bytes"). The kernel reads these when its module is executed: one source.
MAX_MESSAGE_QUANTITY = 10**9
MAX_STORAGE_BYTES = 10**18
# What every usage counter holds at most: BIGINT on PostgreSQL, SQLite's INTEGER, the int64 of
# the usage replies. An event that would take one past it is rejected (services.ingestion).
MAX_COUNTER = 2**63 - 1

# periods.EARLIEST and LATEST in the forms a wire Timestamp and occurred_at_us take.
EARLIEST_SECONDS = int((EARLIEST - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
LATEST_SECONDS = int((LATEST - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
EARLIEST_US = EARLIEST_SECONDS * _US
LATEST_US = LATEST_SECONDS * _US  # exclusive
NANOS_PER_SECOND = 10**9
# occurred_at_us of a Timestamp that names no time the service takes: each is outside
# [EARLIEST_US, LATEST_US), so no window can take it for a time, and check_shape says why.
NANOS_OUT_OF_RANGE_US = EARLIEST_US - 2
BEFORE_EARLIEST_US = EARLIEST_US - 1
NOT_BEFORE_LATEST_US = LATEST_US


class UsageEventIn(NamedTuple):
    """An event as the producer sent it (``occurred_at_us``: UTC epoch microseconds, or None).

    A named tuple rather than a dataclass: ingestion makes one per event, and tuples are the
    cheapest object Python makes."""

    event_id: str
    account_id: str
    tenant_id: str
    partner_id: str
    kind: int
    quantity: int
    occurred_at_us: int | None

    def same_content(
        self, tenant_id: str, partner_id: str, kind: int, quantity: int, occurred_at_us: int
    ) -> bool:
        return (self.tenant_id, self.partner_id, self.kind, self.quantity, self.occurred_at_us) == (
            tenant_id,
            partner_id,
            kind,
            quantity,
            occurred_at_us,
        )


class UsageBatch:
    """One batch as it arrived: the producer's ``batch_id`` and its events.

    ``native`` is the codec's own view of the batch when the codec decoded it (the compiled one
    of ``billing_svc.native``), and ``codec`` that codec: ingestion checks a plain batch through
    it and has ``codec`` store it, without a Python object per event. ``events`` are made from
    it only for batches that need the Python path. ``bound_account`` is set when the batch came
    from an account-bound token: events of any other account are then rejected.
    """

    __slots__ = ("_events", "batch_id", "bound_account", "codec", "native")

    def __init__(
        self,
        batch_id: str,
        events: Sequence[UsageEventIn] | None = None,
        native: Any = None,
        codec: Any = None,
    ) -> None:
        if (events is None) == (native is None) or (native is None) != (codec is None):
            raise ValueError("a UsageBatch has either its events or a codec's batch and codec")
        self.batch_id = batch_id
        self.native = native
        self.codec = codec
        self._events = events
        self.bound_account = ""

    @property
    def events(self) -> Sequence[UsageEventIn]:
        if self._events is None:
            self._events = self.native.events()
        return self._events

    def __len__(self) -> int:
        return len(self.native if self._events is None else self._events)

    def account_ids(self) -> list[str]:
        """The accounts its events name, sorted (for its log line): from the kernel's summary
        when the kernel took the batch, so that no event becomes a Python object for it."""
        if self._events is None:
            try:
                return sorted(self.native.references()[0])
            except RuntimeError:  # not a batch the kernel stores: the Python path's events
                pass
        return sorted({event.account_id for event in self.events})


def occurred_at_us_of(seconds: int, nanos: int) -> int | None:
    """A wire Timestamp ``(seconds, nanos)`` as ``occurred_at_us``: epoch microseconds; None if
    unset (the epoch reads as unset on the wire); for a Timestamp that names no time the service
    takes, the one of NANOS_OUT_OF_RANGE_US, BEFORE_EARLIEST_US and NOT_BEFORE_LATEST_US that
    says why. Nanos outside [0, 10^9) never shift the time: the kernel's decode does the same."""
    if not 0 <= nanos < NANOS_PER_SECOND:
        return NANOS_OUT_OF_RANGE_US
    if not seconds and not nanos:
        return None
    if seconds < EARLIEST_SECONDS:
        return BEFORE_EARLIEST_US
    if seconds >= LATEST_SECONDS:
        return NOT_BEFORE_LATEST_US
    return seconds * _US + nanos // 1000


def accept_window(
    now_us: int, retention_days: int, horizon_us: int = EARLIEST_US
) -> tuple[int, int]:
    """The oldest and the newest ``occurred_at_us`` accepted at ``now_us``: the retention window,
    never before the purge horizon ``horizon_us`` (whatever the retention says now, usage older
    than a purge was purged, and counting it again would count it twice), within the service's
    range of time."""
    oldest_us, newest_us = now_us - retention_days * _DAY_US, now_us + _FUTURE_US
    if horizon_us > oldest_us:
        oldest_us = horizon_us
    # Not max()/min(): check_shape runs this per event, and they cost it ~40 % more.
    return (
        oldest_us if oldest_us > EARLIEST_US else EARLIEST_US,
        newest_us if newest_us < LATEST_US else LATEST_US - 1,
    )


def check_shape(
    event: UsageEventIn, now_us: int, retention_days: int, horizon_us: int = EARLIEST_US
) -> str | None:
    """The reason ``event`` is invalid on its own, or ``None``. Stored-state checks come after."""
    occurred = event.occurred_at_us
    oldest_us, newest_us = accept_window(now_us, retention_days, horizon_us)
    # The common case in one expression; the reasons below are only worked out for bad events.
    if (
        0 < len(event.event_id) <= MAX_EVENT_ID_LENGTH
        and event.account_id
        and event.tenant_id
        and "\x00" not in event.event_id
        and "\x00" not in event.account_id
        and "\x00" not in event.tenant_id
        and "\x00" not in event.partner_id
        and occurred is not None
        and oldest_us <= occurred <= newest_us
        and (
            (event.kind == MESSAGE and 1 <= event.quantity <= MAX_MESSAGE_QUANTITY)
            or (event.kind == STORAGE and 0 <= event.quantity <= MAX_STORAGE_BYTES)
        )
    ):
        return None
    if not event.event_id:
        return "event_id is empty; every event needs the producer's idempotency key"
    if any(
        "\x00" in text
        for text in (event.event_id, event.account_id, event.tenant_id, event.partner_id)
    ):
        return "an id contains a NUL character"
    if len(event.event_id) > MAX_EVENT_ID_LENGTH:
        return f"event_id is longer than {MAX_EVENT_ID_LENGTH} characters"
    if not event.account_id:
        return "account_id is empty"
    if not event.tenant_id:
        return "tenant_id is empty; usage is counted per tenant"
    if event.kind not in KINDS:
        return "kind is unspecified; use USAGE_KIND_MESSAGE or USAGE_KIND_STORAGE"
    if event.kind == MESSAGE and event.quantity < 1:
        return f"quantity {event.quantity} is below 1; a message event counts at least 1 message"
    if event.kind == STORAGE and event.quantity < 0:
        return f"quantity {event.quantity} is negative; a storage gauge is bytes stored (>= 0)"
    if event.kind == MESSAGE and event.quantity > MAX_MESSAGE_QUANTITY:
        return (
            f"quantity {event.quantity} is above {MAX_MESSAGE_QUANTITY:,}, the most one "
            "message event counts; split the count over several events"
        )
    if event.kind == STORAGE and event.quantity > MAX_STORAGE_BYTES:
        return (
            f"quantity {event.quantity} is above {MAX_STORAGE_BYTES:,} bytes (10^18), the "
            "largest storage gauge accepted"
        )
    if event.occurred_at_us is None:
        return "occurred_at is missing"
    if event.occurred_at_us == NANOS_OUT_OF_RANGE_US:
        return (
            f"occurred_at.nanos is outside 0 to {NANOS_PER_SECOND - 1:,}; nanos are the "
            "fraction of occurred_at's second"
        )
    if event.occurred_at_us < EARLIEST_US:
        return f"occurred_at is before {EARLIEST:%Y-%m-%dT%H:%M:%SZ}, the earliest time taken"
    if event.occurred_at_us >= LATEST_US:
        return f"occurred_at is not before {LATEST:%Y-%m-%dT%H:%M:%SZ}, the end of the time taken"
    if event.occurred_at_us > newest_us:
        return "occurred_at is more than 5 minutes in the future; check the producer's clock"
    if event.occurred_at_us < oldest_us:
        if event.occurred_at_us < now_us - retention_days * _DAY_US:
            return f"occurred_at is older than the {retention_days}-day retention window"
        return outside_retention(from_us(horizon_us))  # the window reaches back past a purge
    return None


def to_us(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def from_us(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def hour_of(micros: int) -> int:
    """The start of the UTC hour containing ``micros``."""
    return micros - micros % (3600 * _US)


def counter_full(counter: str, quantity: int) -> str:
    """The reason an event is rejected because ``counter`` cannot take its ``quantity``."""
    return (
        f"quantity {quantity} would take {counter} past {MAX_COUNTER:,} (2^63-1), the most "
        "it can hold; the event is not counted"
    )


def crossed_thresholds(
    before: int, after: int, included: int, percentages: tuple[int, ...]
) -> list[int]:
    """Threshold percentages of ``included`` that a count crossed going from before to after."""
    if included <= 0:
        return []
    # a count c has reached p % when c * 100 >= included * p (exact integers, no rounding)
    return [p for p in percentages if before * 100 < included * p <= after * 100]


def spread_level(
    level_bytes: int, from_us: int, to_us: int, period_bounds_us: list[tuple[str, int, int]]
) -> list[tuple[str, int]]:
    """Byte-microseconds a storage level held over ``[from_us, to_us)`` adds to each period.

    ``period_bounds_us`` lists ``(label, start_us, end_us)`` of the periods that may overlap.
    """
    if level_bytes == 0 or to_us <= from_us:
        return []
    spread = []
    for label, start, end in period_bounds_us:
        overlap = min(to_us, end) - max(from_us, start)
        if overlap > 0:
            spread.append((label, level_bytes * overlap))
    return spread


def bytes_to_gb(level_bytes: int) -> Decimal:
    return Decimal(level_bytes) / GB_BYTES


def period_label_of(micros: int) -> str:
    """``YYYY-MM`` of the UTC month containing ``micros`` (cached per day: it runs per event)."""
    return _label_of_day(micros // _DAY_US)


@lru_cache(maxsize=4096)
def _label_of_day(day: int) -> str:
    moment = from_us(day * _DAY_US)
    return f"{moment.year:04d}-{moment.month:02d}"
