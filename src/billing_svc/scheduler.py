"""Periodic jobs every replica runs: trial ends, period-end plan changes, closing ended periods.

Each job is a short transaction whose row claims (``FOR UPDATE SKIP LOCKED``, status checks, the
invoice's unique key) make running it on several replicas at once safe: every change happens once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta

import structlog

from billing_svc.services import accounts, invoicing, test_clocks
from billing_svc.services.context import system_context
from billing_svc.settings import Settings
from billing_svc.storage.db import Database

log = structlog.get_logger("billing_svc.scheduler")


def run_due_jobs(db: Database, settings: Settings) -> dict[str, int]:
    """Run every periodic job once; returns how many items each one changed."""
    jobs: dict[str, Callable[[], int]] = {
        "trials": lambda: accounts.end_due_trials(db, system_context("trials", db.clock)),
        "period_end_changes": lambda: accounts.apply_period_end_changes(
            db, system_context("period_end_changes", db.clock)),
    }
    if settings.auto_close_periods:
        jobs["periods_closed"] = lambda: invoicing.close_due_periods(
            db, system_context("period_closer", db.clock),
            timedelta(seconds=settings.period_close_grace_seconds))
    jobs["test_clock_moments"] = lambda: test_clocks.run_advances(
        db, grace=timedelta(seconds=settings.period_close_grace_seconds),
        close_periods=settings.auto_close_periods)
    done: dict[str, int] = {}
    for name, job in jobs.items():
        try:
            done[name] = job()
        except Exception:  # one failing job must not stop the others or the loop
            log.exception("scheduled_job_failed", job=name)
            done[name] = 0
    return done


async def run_forever(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    while not stop.is_set():
        done = await asyncio.to_thread(run_due_jobs, db, settings)
        if any(done.values()):
            log.info("scheduled_jobs", **done)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.scheduler_interval_seconds)
