"""Periodic jobs every replica runs: trial ends and period-end plan changes (later: period closing).

Each job is a short transaction whose row claims (``FOR UPDATE SKIP LOCKED`` and status checks)
make running it on several replicas at once safe: every row changes exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from billing_svc.services import accounts
from billing_svc.services.context import system_context
from billing_svc.storage.db import Database

log = structlog.get_logger("billing_svc.scheduler")


def run_due_jobs(db: Database) -> dict[str, int]:
    """Run every periodic job once; returns how many items each one changed."""
    jobs: dict[str, Callable[[], int]] = {
        "trials": lambda: accounts.end_due_trials(db, system_context("trials")),
        "period_end_changes": lambda: accounts.apply_period_end_changes(
            db, system_context("period_end_changes")),
    }
    done: dict[str, int] = {}
    for name, job in jobs.items():
        try:
            done[name] = job()
        except Exception:  # one failing job must not stop the others or the loop
            log.exception("scheduled_job_failed", job=name)
            done[name] = 0
    return done


async def run_forever(db: Database, interval_seconds: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        done = await asyncio.to_thread(run_due_jobs, db)
        if any(done.values()):
            log.info("scheduled_jobs", **done)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
