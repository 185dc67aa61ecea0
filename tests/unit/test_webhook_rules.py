"""The retry schedule (WEBHOOKS.md: delivery): the step with +/-20 % jitter, at least a
minute after a slow-down answer or a timeout, Retry-After within [delay, 2 x delay]."""

from __future__ import annotations

import pytest

from billing_svc.domain.events import subscribed
from billing_svc.services.deliveries import Outcome, next_delay

SCHEDULE = (5.0, 300.0, 1800.0)


@pytest.mark.parametrize(
    ("attempt", "outcome", "low", "high"),
    [
        (1, Outcome(500, 10), 4.0, 6.0),  # 5 s +/- 20 %
        (2, Outcome(500, 10), 240.0, 360.0),  # 300 s +/- 20 %
        (3, Outcome(0, 10, "ConnectError"), 1440.0, 2160.0),
        (1, Outcome(429, 10), 60.0, 60.0),  # slow down: at least a minute
        (1, Outcome(502, 10), 60.0, 60.0),
        (1, Outcome(504, 10), 60.0, 60.0),
        (1, Outcome(0, 10, timed_out=True), 60.0, 60.0),
        (2, Outcome(429, 10), 240.0, 360.0),  # the step is longer already
        (2, Outcome(503, 10, retry_after_seconds=10), 240.0, 360.0),  # up to the delay
        (2, Outcome(503, 10, retry_after_seconds=10_000), 480.0, 720.0),  # down to 2 x delay
        (1, Outcome(429, 10, retry_after_seconds=90), 90.0, 90.0),  # within [60, 120]
        (1, Outcome(429, 10, retry_after_seconds=3600), 120.0, 120.0),
    ],
    ids=[
        "first",
        "second",
        "third",
        "429",
        "502",
        "504",
        "timeout",
        "429-long-step",
        "retry-after-low",
        "retry-after-high",
        "retry-after-within",
        "retry-after-429-high",
    ],
)
def test_next_delay(attempt: int, outcome: Outcome, low: float, high: float) -> None:
    delays = [next_delay(attempt, SCHEDULE, outcome) for _ in range(50)]
    assert all(low <= d <= high for d in delays), delays  # type: ignore[operator]


def test_the_jitter_spreads_retries() -> None:
    assert len({next_delay(2, SCHEDULE, Outcome(500, 1)) for _ in range(20)}) > 10


def test_the_schedule_runs_out() -> None:
    assert next_delay(3, SCHEDULE, Outcome(500, 1)) is not None
    assert next_delay(4, SCHEDULE, Outcome(500, 1)) is None


def test_the_default_schedule_reaches_about_three_days() -> None:
    from billing_svc.settings import Settings

    schedule = Settings(_env_file=None).retry_schedule_seconds  # type: ignore[call-arg]
    assert len(schedule) + 1 == 10  # attempts: the first, then one per step
    assert 2.5 * 86400 < sum(schedule) < 3.5 * 86400


@pytest.mark.parametrize(
    ("event_type", "endpoint_types", "gets_it"),
    [
        ("billing.invoice_generated", set(), True),  # empty: all events
        ("billing.invoice_generated", {"billing.invoice_generated"}, True),
        ("billing.invoice_generated", {"billing.payment_failed"}, False),
        ("billing.usage_reported", set(), False),  # ... but not this one
        ("billing.usage_reported", {"billing.payment_failed"}, False),
        ("billing.usage_reported", {"billing.usage_reported"}, True),  # named explicitly
        ("billing.usage_reported", {"billing.usage_reported", "billing.payment_failed"}, True),
    ],
    ids=[
        "all",
        "named",
        "other",
        "usage-reported-not-in-all",
        "usage-reported-other",
        "usage-reported-named",
        "usage-reported-named-among-others",
    ],
)
def test_usage_reported_to_billing_systems_hourly_only_to_endpoints_naming_it(
    event_type: str, endpoint_types: set[str], gets_it: bool
) -> None:
    assert subscribed(event_type, endpoint_types) is gets_it
