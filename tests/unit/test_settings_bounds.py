"""Scheduler settings of issue 15 are bounded (red-team): a grace of millions of days made every
hourly-report run overflow (``timedelta``), and a negative or NaN forecast-alert interval made
every scheduler tick fit a model per account."""

from __future__ import annotations

import pytest

from billing_svc.settings import Settings


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("usage_report_grace_seconds", 31 * 86_400 + 1),
        ("usage_report_grace_seconds", 10**15),
        ("forecast_alert_interval_seconds", -1),
        ("forecast_alert_interval_seconds", "nan"),
    ],
)
def test_out_of_range_scheduler_settings_are_refused_by_name(setting: str, value: object) -> None:
    with pytest.raises(ValueError, match=setting):
        Settings(_env_file=None, **{setting: value})  # type: ignore[call-arg]


def test_the_bounds_themselves_are_accepted() -> None:
    settings = Settings(
        _env_file=None,
        usage_report_grace_seconds=31 * 86_400,  # type: ignore[call-arg]
        forecast_alert_interval_seconds=0,
    )
    assert settings.usage_report_grace_seconds == 31 * 86_400
