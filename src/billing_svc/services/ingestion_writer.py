"""Group commit: every stream's batches stored by one writer thread, many batches per transaction.

The stream and unary RPCs hand their batches to one ``IngestionWriter`` per process. Its thread
takes every batch waiting at that moment as one group and stores it with ``ingestion.ingest`` in a
single transaction, so one commit (one fsync) serves many batches; an ack is released only after
that commit. It takes the next group as soon as one is committed, without waiting for the event
loop in between, and hands each group's results back to the event loop with one call.

Each commit is a span of its own (a group serves many calls, so it is no one call's child): it
links to the spans of the calls whose batches it stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from opentelemetry import trace

from billing_svc import metrics, tracing
from billing_svc.domain import usage
from billing_svc.domain.errors import DeadlineExceeded, Unavailable
from billing_svc.domain.usage import UsageBatch
from billing_svc.services.ingestion import BatchResult, ingest, ingest_split
from billing_svc.services.test_clocks import AccountClocks
from billing_svc.storage.db import Database

log = structlog.get_logger("billing_svc.ingestion")


@dataclass
class _Pending:
    batch: UsageBatch
    done: asyncio.Future[BatchResult]
    deadline: float | None  # time.monotonic() by which the caller needs the ack
    caller_span: trace.SpanContext  # the submitting call's span (invalid when not traced)


class IngestionWriter:
    """Collects batches from every stream of this process and commits them in groups.

    The groups are stored by one thread of its own, which takes the next group as soon as one is
    committed (without waiting for the event loop in between) and hands the results back to the
    event loop with one call per group."""

    def __init__(
        self,
        db: Database,
        *,
        retention_days: int = usage.DEFAULT_RETENTION_DAYS,
        max_group_events: int = 50_000,
        tracer: trace.Tracer = tracing.NO_TRACER,
        clocks: AccountClocks | None = None,
    ) -> None:
        self.db = db
        self.tracer = tracer
        self.clocks = clocks
        self.retention_days = retention_days
        self.max_group_events = max_group_events
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Finish the group being stored; refuse the batches still waiting."""
        self._stopping = True
        self._queue.put(None)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        refused = Unavailable("billing-svc is shutting down; resend this batch")
        with contextlib.suppress(queue.Empty):
            while True:
                pending = self._queue.get_nowait()
                if pending is not None and not pending.done.done():
                    pending.done.set_exception(refused)

    async def submit(self, batch: UsageBatch, deadline: float | None = None) -> BatchResult:
        """Queue ``batch``; the result arrives once its group is committed. A batch whose
        ``deadline`` (monotonic) passes while it waits is not stored at all."""
        done: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._queue.put(
            _Pending(batch, done, deadline, trace.get_current_span().get_span_context())
        )
        return await asyncio.shield(done)

    def _run(self) -> None:
        while not self._stopping:
            first = self._queue.get()
            if first is None:
                continue
            group, size = [first], len(first.batch)
            with contextlib.suppress(queue.Empty):
                while size < self.max_group_events:
                    pending = self._queue.get_nowait()
                    if pending is None:
                        break
                    group.append(pending)
                    size += len(pending.batch)
            outcomes: list[tuple[_Pending, BatchResult | BaseException]] = []
            try:
                self._commit(group, outcomes)
            except Exception as exc:  # a bug: these batches fail, the writer goes on
                log.exception("ingest_writer_failed", batches=len(group))
                settled = {id(pending) for pending, _ in outcomes}
                outcomes += [(pending, exc) for pending in group if id(pending) not in settled]
            assert self._loop is not None
            self._loop.call_soon_threadsafe(_settle, outcomes)

    def _commit(
        self, group: list[_Pending], outcomes: list[tuple[_Pending, BatchResult | BaseException]]
    ) -> None:
        now = time.monotonic()
        live = []
        for pending in group:
            if pending.deadline is not None and pending.deadline <= now:
                outcomes.append(
                    (
                        pending,
                        DeadlineExceeded(
                            "the call's deadline passed before this batch was stored; nothing of "
                            "it was stored, resend it"
                        ),
                    )
                )
            else:
                live.append(pending)
        if not live:
            return
        live, on_clocks, mixed = self._split_clock_batches(live)
        for pending, clock_now in on_clocks:
            self._store([pending], usage.to_us(clock_now), outcomes, on_clock=True)
        for pending, times in mixed:
            self._store_mixed(pending, times, outcomes)
        if live:
            self._store(live, usage.to_us(self.db.clock.now()), outcomes)

    def _split_clock_batches(
        self, live: list[_Pending]
    ) -> tuple[
        list[_Pending], list[tuple[_Pending, datetime]], list[tuple[_Pending, dict[str, datetime]]]
    ]:
        """The batches of real accounts; those naming only one test clock's accounts, with that
        clock's time: each is stored on its own, judged against its clock (future, retention,
        thresholds), through the kernel too (its acceptance window is the group's, here the
        batch's own); and those mixing time lines (accounts of several clocks, or of a clock and
        real ones), with each clock account's time: they take the Python path, each event
        judged at its own account's time (``_store_mixed``)."""
        clocks = self.clocks
        if clocks is None:
            return live, [], []
        real: list[_Pending] = []
        on_clocks: list[tuple[_Pending, datetime]] = []
        mixed: list[tuple[_Pending, dict[str, datetime]]] = []
        # The kernel names a batch's accounts only for a batch it can take whole; any other
        # goes the Python path, which decodes its events anyway.
        window = usage.accept_window(usage.to_us(self.db.clock.now()), self.retention_days)
        for pending in live:
            batch = pending.batch
            named = (
                batch.native.references()[0]
                if batch.native is not None and batch.native.plain(*window)
                else {event.account_id for event in batch.events}
            )
            times: dict[str, datetime] = {}
            on_real = False
            for account_id in named:
                # An id no account can have (PostgreSQL refuses NUL in text) is rejected later.
                clock_now = (
                    clocks.now_for(account_id)
                    if account_id and "\x00" not in account_id and not clocks.known_real(account_id)
                    else None
                )
                if clock_now is None:
                    on_real = True  # a real account (or an unknown one: rejected anyway)
                else:
                    times[account_id] = clock_now
            if not times:
                real.append(pending)
            elif not on_real and len(set(times.values())) == 1:
                on_clocks.append((pending, next(iter(times.values()))))
            else:
                mixed.append((pending, times))
        return real, on_clocks, mixed

    def _store_mixed(
        self,
        pending: _Pending,
        times: dict[str, datetime],
        outcomes: list[tuple[_Pending, BatchResult | BaseException]],
    ) -> None:
        """One batch mixing time lines, in one transaction, a part per time line."""
        batch = pending.batch
        wall_us = usage.to_us(self.db.clock.now())
        parts: dict[tuple[int, bool], tuple[list[Any], list[int]]] = {}
        for index, event in enumerate(batch.events):
            moment = times.get(event.account_id)
            key = (usage.to_us(moment), True) if moment is not None else (wall_us, False)
            events, indexes = parts.setdefault(key, ([], []))
            events.append(event)
            indexes.append(index)
        split = []
        for (now_us, on_clock), (events, indexes) in parts.items():
            part = UsageBatch(batch.batch_id, events=events)
            part.bound_account = batch.bound_account
            split.append((part, indexes, now_us, on_clock))
        try:
            with self._span([pending]):
                result = ingest_split(self.db, split, retention_days=self.retention_days)
        except Exception as exc:
            if not isinstance(exc, Unavailable):
                log.exception("ingest_failed", batches=1)
            outcomes.append((pending, exc))
            return
        metrics.USAGE_EVENTS.labels("accepted").inc(result.accepted - result.late)
        metrics.USAGE_EVENTS.labels("late").inc(result.late)
        metrics.USAGE_EVENTS.labels("duplicate").inc(result.duplicates)
        metrics.USAGE_EVENTS.labels("rejected").inc(len(result.rejected))
        outcomes.append((pending, result))

    def _store(
        self,
        live: list[_Pending],
        now_us: int,
        outcomes: list[tuple[_Pending, BatchResult | BaseException]],
        on_clock: bool = False,
    ) -> None:
        started = time.perf_counter()
        try:
            with self._span(live) as span:
                results = ingest(
                    self.db,
                    [p.batch for p in live],
                    now_us=now_us,
                    retention_days=self.retention_days,
                    on_clock=on_clock,
                )
                _count(span, results)
        except Exception as exc:
            if len(live) > 1 and not isinstance(exc, Unavailable):
                for pending in live:  # one bad batch must not fail its neighbours
                    self._commit([pending], outcomes)
                return
            if not isinstance(exc, Unavailable):
                log.exception("ingest_failed", batches=len(live))
            outcomes.extend((pending, exc) for pending in live)
            return
        metrics.BATCH_COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCHES_PER_COMMIT.observe(len(live))
        for pending, result in zip(live, results, strict=True):
            metrics.USAGE_EVENTS.labels("accepted").inc(result.accepted - result.late)
            metrics.USAGE_EVENTS.labels("late").inc(result.late)
            metrics.USAGE_EVENTS.labels("duplicate").inc(result.duplicates)
            metrics.USAGE_EVENTS.labels("rejected").inc(len(result.rejected))
            outcomes.append((pending, result))

    def _span(self, live: list[_Pending]) -> contextlib.AbstractContextManager[trace.Span]:
        """The span of one commit (its transaction), current while it lasts."""
        links = [trace.Link(p.caller_span) for p in live if p.caller_span.is_valid]
        return self.tracer.start_as_current_span(
            "usage.group_commit",
            kind=trace.SpanKind.INTERNAL,
            links=links,
            attributes={
                "usage.batches": len(live),
                "usage.events": sum(len(p.batch) for p in live),
            },
        )


def _count(span: trace.Span, results: list[BatchResult]) -> None:
    if span.is_recording():
        span.set_attributes(
            {
                "usage.accepted": sum(r.accepted for r in results),
                "usage.duplicates": sum(r.duplicates for r in results),
                "usage.late": sum(r.late for r in results),
                "usage.rejected": sum(len(r.rejected) for r in results),
            }
        )


def _settle(outcomes: list[tuple[_Pending, BatchResult | BaseException]]) -> None:
    """On the event loop: release the acks (or errors) of a committed group."""
    for pending, outcome in outcomes:
        if pending.done.done():
            continue
        if isinstance(outcome, BaseException):
            pending.done.set_exception(outcome)
        else:
            pending.done.set_result(outcome)
