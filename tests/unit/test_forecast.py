"""The forecast models on synthetic histories with a known answer (issue 15, point 4): "plan
for seasonal usage variations", "use historical data for accurate budget forecasting"."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_svc.domain import forecast
from billing_svc.services.partner_utilization import FALLING, NONE, RISING, STEADY, trend_of


def seasonal_line(t: int) -> float:
    """A pure 12-month season on a straight line."""
    return 1000 + 50 * t + 300 * math.sin(2 * math.pi * t / 12)


@pytest.mark.parametrize(
    ("months", "model"),
    [
        (0, forecast.RUN_RATE),
        (1, forecast.RUN_RATE),
        (3, forecast.RUN_RATE),
        (4, forecast.HOLT),
        (23, forecast.HOLT),
        (24, forecast.HOLT_WINTERS),
        (120, forecast.HOLT_WINTERS),
    ],
)
def test_the_model_follows_the_length_of_the_history(months: int, model: str) -> None:
    assert forecast.choose_model(months) == model


def test_plan_for_seasonal_usage_variations_a_season_on_a_line_is_forecast_closely() -> None:
    history = [seasonal_line(t) for t in range(36)]
    result = forecast.forecast(history, 12)
    assert result.model == forecast.HOLT_WINTERS
    for ahead, value in enumerate(result.values):
        assert value == pytest.approx(seasonal_line(36 + ahead), rel=0.005)
    assert result.backtest_months == 3
    assert result.backtest_mape_percent is not None and result.backtest_mape_percent < 0.5


def test_the_trend_alone_misses_the_season_the_seasonal_model_sees() -> None:
    history = [seasonal_line(t) for t in range(36)]
    seasonal = forecast.forecast(history, 12)
    trend_only = forecast.forecast(history, 12, forecast.HOLT)
    actual = [seasonal_line(36 + t) for t in range(12)]
    assert forecast.mape_percent(actual, seasonal.values) < 0.5
    assert forecast.mape_percent(actual, trend_only.values) > 5


def test_use_historical_data_for_accurate_budget_forecasting_a_line_is_continued() -> None:
    result = forecast.forecast([100 + 10 * t for t in range(8)], 3)
    assert result.model == forecast.HOLT
    assert result.values == pytest.approx([180, 190, 200], abs=0.01)
    assert result.backtest_months == 3


def test_a_short_history_holds_its_last_month_and_backtests_on_what_it_has() -> None:
    result = forecast.forecast([1000, 1200], 2)
    assert (result.model, result.values) == (forecast.RUN_RATE, [1200.0, 1200.0])
    assert result.backtest_months == 1
    assert result.backtest_mape_percent == pytest.approx(100 * 200 / 1200)
    empty = forecast.forecast([], 3)
    assert (empty.values, empty.backtest_months, empty.backtest_mape_percent) == (
        [0.0, 0.0, 0.0],
        0,
        None,
    )


def test_a_24_month_history_has_no_hold_out_yet_and_forecasts_never_go_negative() -> None:
    result = forecast.forecast([seasonal_line(t) for t in range(24)], 1)
    assert (result.model, result.backtest_months) == (forecast.HOLT_WINTERS, 0)
    falling = forecast.forecast([500 - 100 * t for t in range(5)], 6)
    assert min(falling.values) == 0.0


def test_mape_leaves_out_months_without_usage() -> None:
    assert forecast.mape_percent([0, 100, 200], [5, 110, 180]) == pytest.approx(10.0)
    assert forecast.mape_percent([0, 0], [1, 2]) is None


@pytest.mark.parametrize(
    ("actual", "predicted", "expected"),
    [
        ([0.0, -0.0], [5.0, 5.0], None),  # no month with usage
        ([5e-324, 100.0], [1e300, 110.0], 10.0),  # the ratio overflows: no percentage, left out
        ([math.nan, 100.0], [1.0, 90.0], 10.0),
        ([100.0, math.inf], [math.inf, 1.0], None),
        ([1e-300] * 3, [1e8] * 3, None),  # every error finite, their mean in percent is not
        ([1e-300, 100.0], [1e8, 150.0], None),
    ],
)
def test_mape_is_never_inf_or_nan(
    actual: list[float], predicted: list[float], expected: float | None
) -> None:
    result = forecast.mape_percent(actual, predicted)
    assert result == (None if expected is None else pytest.approx(expected))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(), st.floats()), max_size=5))
def test_mape_of_any_floats_is_none_or_a_finite_percentage(
    months: list[tuple[float, float]],
) -> None:
    result = forecast.mape_percent([a for a, _ in months], [p for _, p in months])
    assert result is None or (math.isfinite(result) and result >= 0)


def test_a_hold_out_of_zeros_and_a_near_zero_month_backtests_to_a_number_or_none() -> None:
    for history in (
        [40.0, 30.0, 20.0, 10.0, 0.0, 0.0, 0.0],
        [9.0, 7.0, 5.0, 3.0, 1e-320, 0.0, 0.0],
    ):
        mape = forecast.forecast(history, 1).backtest_mape_percent
        assert mape is None or math.isfinite(mape), (history, mape)


@pytest.mark.parametrize(
    ("counts", "trend"),
    [
        ([0, 0, 0], NONE),
        ([5], STEADY),
        ([100, 101, 99, 100], STEADY),
        ([100, 200, 300], RISING),
        ([300, 200, 100], FALLING),
        ([700, 0, 0, 0, 0, 0], FALLING),
    ],
)
def test_partner_trends(counts: list[int], trend: str) -> None:
    assert trend_of(counts) == trend
