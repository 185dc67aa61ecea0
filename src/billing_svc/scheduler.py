"""Periodic jobs every replica runs: trial ends, period-end plan changes, change request expiry,
hourly usage reports, closing ended periods, forecast budget alerts, purging what retention no
longer keeps.

Each job is a short transaction whose row claims (``FOR UPDATE SKIP LOCKED``, status checks, the
invoice's unique key) make running it on several replicas at once safe: every change happens once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import timedelta

import structlog
from opentelemetry import trace

from billing_svc.services import (
    accounts,
    approvals,
    forecast_alerts,
    hourly_reports,
    invoicing,
    retention,
    test_clocks,
)
from billing_svc.services.context import system_context
from billing_svc.settings import Settings
from billing_svc.storage import partitions
from billing_svc.storage.db import Database
from billing_svc.tracing import NO_TRACER

log = structlog.get_logger("billing_svc.scheduler")


def run_due_jobs(
    db: Database, settings: Settings, tracer: trace.Tracer = NO_TRACER
) -> dict[str, int]:
    """Run every periodic job once; returns how many items each one changed."""
    jobs: dict[str, Callable[[], int]] = {
        "trials": lambda: accounts.end_due_trials(db, system_context("trials", db.clock)),
        "period_end_changes": lambda: accounts.apply_period_end_changes(
            db, system_context("period_end_changes", db.clock)
        ),
        "change_requests_expired": lambda: approvals.expire_due(
            db, system_context("change_request_expiry", db.clock)
        ),
    }
    jobs["usage_reports"] = lambda: hourly_reports.report_closed_hours(
        db, db.clock.now(), timedelta(seconds=settings.usage_report_grace_seconds)
    )
    if settings.auto_close_periods:
        jobs["periods_closed"] = lambda: invoicing.close_due_periods(
            db,
            system_context("period_closer", db.clock, tracer),
            timedelta(seconds=settings.period_close_grace_seconds),
        )
    jobs["test_clock_moments"] = lambda: test_clocks.run_advances(
        db,
        grace=timedelta(seconds=settings.period_close_grace_seconds),
        close_periods=settings.auto_close_periods,
        report_grace=timedelta(seconds=settings.usage_report_grace_seconds),
    )
    if _forecast_alerts_due(db, settings):
        jobs["forecast_budget_alerts"] = lambda: forecast_alerts.send_forecast_budget_alerts(
            db, db.clock.now()
        )
    if not db.is_sqlite:
        # This month's partition of raw usage and the next ones, before anyone needs them.
        jobs["usage_partitions_made"] = lambda: partitions.ensure_ahead(db)
    if settings.purge_interval_seconds > 0:
        # Last: an unfinished purge stops at its time budget and goes on at the next tick.
        jobs["purged"] = lambda: retention.purge_if_due(db, settings)
    done: dict[str, int] = {}
    for name, job in jobs.items():
        try:
            done[name] = job()
        except Exception:  # one failing job must not stop the others or the loop
            log.exception("scheduled_job_failed", job=name)
            done[name] = 0
    return done


# When each database's forecast budget check last ran in this process: it fits a model per
# budgeted account, so it runs every BILLING_FORECAST_ALERT_INTERVAL_SECONDS, not every loop.
_forecast_checked_at: dict[int, float] = {}


def _forecast_alerts_due(db: Database, settings: Settings) -> bool:
    now = time.monotonic()
    last = _forecast_checked_at.get(id(db))
    if last is not None and now - last < settings.forecast_alert_interval_seconds:
        return False
    _forecast_checked_at[id(db)] = now
    return True


async def run_forever(
    db: Database, settings: Settings, stop: asyncio.Event, tracer: trace.Tracer = NO_TRACER
) -> None:
    while not stop.is_set():
        done = await asyncio.to_thread(run_due_jobs, db, settings, tracer)
        if any(done.values()):
            log.info("scheduled_jobs", **done)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.scheduler_interval_seconds)
