"""A clock that runs fast, and ``billing-svc serve`` on it: the soak's months pass in minutes.

Retention purges a billing period at a time, once the period is invoiced and older than the
horizon: on the wall clock a soak would wait a month for its first purge. Test clocks do not
help: the purge leaves test clocks' accounts alone (their data goes with DeleteTestClock). So the
soak runs the service itself on a fast clock, every part of it on that time (ingestion's accept
window, the period closer, the hourly reports, the purge), through the ``Clock`` the composition
hands to the ``Database``, the one source of "now" in ``src/`` (``billing_svc.clock``).

``python -m benchmarks.fastclock`` is ``billing-svc serve`` (settings from ``BILLING_*``) with
``BENCH_FAST_CLOCK`` as its clock; the producer reads the same spec, so both agree on the time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SPEC_ENV = "BENCH_FAST_CLOCK"


@dataclass(frozen=True)
class FastClock:
    """``start`` at wall time ``wall_start`` (``time.time()``), then ``speed`` times the wall."""

    start: datetime
    wall_start: float
    speed: float

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.wall_start) * self.speed)

    def spec(self) -> str:
        return f"{self.start.isoformat()},{self.wall_start!r},{self.speed!r}"

    @classmethod
    def parse(cls, spec: str) -> FastClock:
        start, wall_start, speed = spec.split(",")
        return cls(datetime.fromisoformat(start).astimezone(UTC), float(wall_start), float(speed))


async def _serve(clock: FastClock) -> None:
    from billing_svc import logs
    from billing_svc.app import serve
    from billing_svc.settings import load_settings

    settings = load_settings()
    logs.configure(settings.log_level)
    await serve(settings, clock)


if __name__ == "__main__":
    import os

    asyncio.run(_serve(FastClock.parse(os.environ[SPEC_ENV])))
