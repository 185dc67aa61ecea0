"""Retention: how long each kind of record is kept, and where raw usage may be purged.

Pure. Raw usage events are purged a whole billing period at a time: the purge horizon is always
the start of a period, so that every period is either untouched or entirely before the horizon.
That keeps two promises cheap: an out-of-order storage reading (never older than the horizon)
recomputes its period from the tenant's readings since the period started plus the last one
before it, which the purge keeps; and ``ReconcilePeriod`` knows a period was purged from one row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from billing_svc.domain.periods import EARLIEST, Period

# The defaults of the BILLING_*_RETENTION_DAYS settings (README, "Data lifecycle and sizing").
DEFAULT_USAGE_RETENTION_DAYS = 400  # a year of raw events, plus a month of late usage
DEFAULT_WEBHOOK_LOG_RETENTION_DAYS = 90
DEFAULT_IDEMPOTENCY_RETENTION_DAYS = 30
DEFAULT_HOURLY_ROLLUP_RETENTION_DAYS = 400
# A retried create must find its first call's record: callers retry within minutes, and a day
# is what the most patient client libraries (Stripe's idempotency keys: 24 h) promise.
MIN_IDEMPOTENCY_RETENTION_DAYS = 1
# Decision: at most a century, for every retention setting. Longer is "keep forever" in effect,
# and a setting of millions of days made ``now - timedelta(days=…)`` overflow in every purge.
MAX_RETENTION_DAYS = 36_500


def usage_horizon(now: datetime, retention_days: int) -> datetime:
    """The purge horizon at ``now``: the start of the period containing the oldest moment the
    retention keeps. Raw events of invoiced periods before it may be purged."""
    oldest = now - timedelta(days=retention_days)
    return Period.containing(oldest).start if oldest > EARLIEST else EARLIEST


def purgeable(period: Period, horizon: datetime) -> bool:
    """May ``period``'s raw events go (if it is invoiced): does it end by the horizon?"""
    return period.end <= horizon


def outside_retention(horizon: datetime) -> str:
    """The rejection reason of an event older than the purge horizon."""
    return (
        f"occurred_at is before {horizon:%Y-%m-%dT%H:%M:%SZ}, outside retention: usage "
        "that old was purged (billing-svc purge) and is never counted again"
    )
