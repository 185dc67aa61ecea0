"""Retention rules (issue 16): the purge horizon is always a period's start, and ingestion's
window never reaches before it, whatever the retention setting says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_svc.domain.periods import EARLIEST, Period
from billing_svc.domain.retention import (
    MAX_RETENTION_DAYS,
    outside_retention,
    purgeable,
    usage_horizon,
)
from billing_svc.domain.usage import MESSAGE, UsageEventIn, accept_window, check_shape, to_us
from billing_svc.settings import Settings


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "days", "horizon"),
    [
        # now - days falls on 2025-10-28: the horizon is the start of October 2025
        ("2026-12-02T00:50:00", 400, "2025-10-01T00:00:00"),
        # exactly a period's start: that period is kept whole
        ("2026-12-02T00:00:00", 1, "2026-12-01T00:00:00"),
        ("2026-12-01T00:00:00", 1, "2026-11-01T00:00:00"),
        ("2026-03-01T12:00:00", 29, "2026-01-01T00:00:00"),
        # before the first time the service takes: nothing to purge
        ("1971-01-01T00:00:00", 400, "1970-01-01T00:00:00"),
    ],
)
def test_horizon_is_the_start_of_the_period_holding_the_oldest_kept_moment(
    now: str, days: int, horizon: str
) -> None:
    assert usage_horizon(at(now), days) == at(horizon)


def test_only_periods_ending_by_the_horizon_are_purgeable() -> None:
    horizon = at("2025-10-01T00:00:00")
    assert purgeable(Period(2025, 9), horizon)
    assert not purgeable(Period(2025, 10), horizon)
    assert usage_horizon(at("1971-01-01T00:00:00"), 4000) == EARLIEST


def _message(occurred: datetime) -> UsageEventIn:
    return UsageEventIn("e1", "acc_a", "ten_1", "", MESSAGE, 1, to_us(occurred))


def test_the_horizon_bounds_the_window_whatever_the_retention_says() -> None:
    now_us, horizon_us = to_us(at("2026-12-02T00:00:00")), to_us(at("2026-06-01T00:00:00"))
    assert accept_window(now_us, 400, horizon_us)[0] == horizon_us
    # a horizon older than the retention window changes nothing
    assert accept_window(now_us, 30, horizon_us) == accept_window(now_us, 30)
    before = _message(at("2026-05-31T23:59:59"))
    assert check_shape(before, now_us, 400) is None  # without a purge it is taken
    assert (
        check_shape(before, now_us, 400, horizon_us)
        == outside_retention(at("2026-06-01T00:00:00"))
        == (
            "occurred_at is before 2026-06-01T00:00:00Z, outside retention: usage that old was "
            "purged (billing-svc purge) and is never counted again"
        )
    )
    assert check_shape(_message(at("2026-06-01T00:00:00")), now_us, 400, horizon_us) is None
    # older than the retention window and the horizon: the window's own reason
    assert check_shape(before, now_us, 30, horizon_us) == (
        "occurred_at is older than the 30-day retention window"
    )


@pytest.mark.parametrize(
    "setting",
    [
        "idempotency_retention_days",
        "webhook_log_retention_days",
        "hourly_rollup_retention_days",
        "usage_retention_days",
    ],
)
def test_retention_settings_refuse_less_than_a_day(setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        Settings(_env_file=None, **{setting: 0})  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "setting",
    [
        "idempotency_retention_days",
        "webhook_log_retention_days",
        "hourly_rollup_retention_days",
        "usage_retention_days",
    ],
)
def test_retention_settings_refuse_more_than_a_century(setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        Settings(_env_file=None, **{setting: MAX_RETENTION_DAYS + 1})  # type: ignore[call-arg]
    Settings(_env_file=None, **{setting: MAX_RETENTION_DAYS})  # type: ignore[call-arg]


def test_retention_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (
        settings.usage_retention_days,
        settings.webhook_log_retention_days,
        settings.idempotency_retention_days,
        settings.hourly_rollup_retention_days,
        settings.purge_interval_seconds,
    ) == (400, 90, 30, 400, 3600)
