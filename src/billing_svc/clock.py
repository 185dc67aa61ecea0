"""The one source of the current time, so that a test (or a test clock) can say what "now" is.

The composition (server, CLI, tests) builds one ``Clock`` and hands it to the ``Database``, which
every service, job, dispatcher and writer already receives; nothing else in ``src/`` reads the wall
clock (``tests/unit/test_clock.py`` keeps it so). Monotonic and ``perf_counter`` readings, for
timeouts and metrics, measure durations, not moments, and are not clock reads in this sense.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What time it is: always a timezone-aware UTC ``datetime``."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock: what production runs on."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that moves only when told (``set``, ``advance``): for tests of the time rules."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("a clock's time must be timezone-aware")
        self._now = now.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        self._now = now.astimezone(UTC)

    def advance(self, by: timedelta) -> None:
        self._now += by


SYSTEM_CLOCK: Clock = SystemClock()


def id_time_ms() -> int:
    """Milliseconds of the wall clock, for the sortable prefix of new ids only: ids must sort in
    the order rows were really made, whatever a clock under test says."""
    return time.time_ns() // 1_000_000
