"""Forecasts of a monthly series from its history (issue 15, point 4), with the model's own
backtest error.

The seed asks customers to "use historical data for accurate budget forecasting" and to "plan
for seasonal usage variations": a run rate knows neither. The model is chosen by how much history
there is, because a 12-month season can only be told apart from noise with two of them:

- ``holt_winters``: exponential smoothing with an additive trend and an additive 12-month season
  (statsmodels' ``ExponentialSmoothing``), from 24 complete months on;
- ``holt``: the same with the trend only, from 4 complete months;
- ``run_rate``: below that, the latest month held flat.

Forecasts of quantities are floats here (they are estimates); the caller rounds them to whole
messages or to GB-month decimals before any money is computed from them with ``rating``.

Pure: no database, no clock; statsmodels is imported on first use (it takes a second to load,
which the service's start and the CLI need not pay).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

HOLT_WINTERS = "holt_winters"
HOLT = "holt"
RUN_RATE = "run_rate"
MODELS = (HOLT_WINTERS, HOLT, RUN_RATE)

SEASON_MONTHS = 12
SEASONAL_MIN_MONTHS = 2 * SEASON_MONTHS
TREND_MIN_MONTHS = 4
BACKTEST_MONTHS = 3
"""Decision: the backtest holds out the last 3 complete months (fewer when the history is too
short to fit the same model on the rest), fits the same model on the months before them and compares
its forecast with what happened: the MAPE a customer can weigh the forecast by."""

# The fewest months each model is fitted on in a backtest. statsmodels initialises a trend and a
# season from two whole seasons, so a Holt-Winters backtest needs 24 months before its hold-out:
# a history of 24 to 26 months has a shorter hold-out (none at 24).
_FIT_MIN_MONTHS = {HOLT_WINTERS: SEASONAL_MIN_MONTHS, HOLT: 3, RUN_RATE: 1}


@dataclass(frozen=True)
class SeriesForecast:
    """``values[i]``: the forecast ``i + 1`` months after the history's last month."""

    model: str
    values: list[float]
    backtest_months: int
    backtest_mape_percent: float | None  # None: no hold-out, or no held-out month with usage


def choose_model(history_months: int) -> str:
    if history_months >= SEASONAL_MIN_MONTHS:
        return HOLT_WINTERS
    if history_months >= TREND_MIN_MONTHS:
        return HOLT
    return RUN_RATE


def forecast(
    history: Sequence[float], months: int, model: str | None = None, *, backtest: bool = True
) -> SeriesForecast:
    """Forecast ``months`` months after ``history`` (oldest first) with ``model`` (default: the
    one ``choose_model`` picks for the history's length), with the backtest of that model
    unless ``backtest`` is false (a second fit the budget job does not need)."""
    if months < 0:
        raise ValueError(f"months must not be negative, got {months}")
    values = [float(v) for v in history]
    model = model or choose_model(len(values))
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}")
    predicted = predict(values, months, model)
    held_out = min(BACKTEST_MONTHS, len(values) - _FIT_MIN_MONTHS[model])
    if held_out <= 0 or not backtest:
        return SeriesForecast(model, predicted, 0, None)
    fitted_on, actual = values[:-held_out], values[-held_out:]
    return SeriesForecast(
        model, predicted, held_out, mape_percent(actual, predict(fitted_on, held_out, model))
    )


def predict(history: Sequence[float], months: int, model: str) -> list[float]:
    """The model's point forecasts, never negative (usage is not)."""
    if months == 0:
        return []
    if not history:
        return [0.0] * months
    if model == RUN_RATE or len(set(history)) == 1:
        # A constant series is its own forecast; the smoothing fits would only add noise.
        return [max(float(history[-1]), 0.0)] * months
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    seasonal = model == HOLT_WINTERS
    with warnings.catch_warnings():
        # Convergence and "optimization failed" warnings: the fit is still the best found.
        warnings.simplefilter("ignore")
        fitted = ExponentialSmoothing(
            list(history),
            trend="add",
            seasonal="add" if seasonal else None,
            seasonal_periods=SEASON_MONTHS if seasonal else None,
            initialization_method="estimated",
        ).fit()
        result = [float(v) for v in fitted.forecast(months)]
    if not all(math.isfinite(v) for v in result):
        return [max(float(history[-1]), 0.0)] * months
    return [max(v, 0.0) for v in result]


def mape_percent(actual: Sequence[float], predicted: Sequence[float]) -> float | None:
    """Mean absolute percentage error over the months whose actual value is not 0; never inf or
    NaN (a double on the wire, a number in JSON)."""
    errors = []
    for a, p in zip(actual, predicted, strict=True):
        if a == 0 or not (math.isfinite(a) and math.isfinite(p)):
            continue
        # An actual so near 0 that the ratio overflows has no percentage either: left out too.
        error = abs(a - p) / abs(a)
        if math.isfinite(error):
            errors.append(error)
    if not errors:
        return None
    # Each term divided first: a sum of errors near the largest double would overflow.
    mean = sum(error / len(errors) for error in errors)
    return 100.0 * mean if math.isfinite(100.0 * mean) else None
