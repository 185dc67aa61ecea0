"""Retention: ``billing-svc purge`` and the scheduler's periodic purge.

What goes, each by its own setting (README, "Data lifecycle and sizing"):

- raw usage events of invoiced periods that ended by the purge horizon (the start of the period
  holding ``now - BILLING_USAGE_RETENTION_DAYS``), optionally exported first; events of periods
  never invoiced stay (and are listed), and so does each tenant's last storage reading before
  the horizon, the level every later storage computation starts from;
- outbox events older than ``BILLING_WEBHOOK_LOG_RETENTION_DAYS`` with their deliveries and
  attempts, once nothing of them is pending;
- idempotency records older than ``BILLING_IDEMPOTENCY_RETENTION_DAYS``;
- hourly roll-ups older than ``BILLING_HOURLY_ROLLUP_RETENTION_DAYS`` of invoiced periods (the
  period counters stay, and so do the roll-ups an open period is billed from), never those of
  periods whose raw events are still kept: the hourly reports of late events are their deltas;
- hourly usage reports of the hours before the same cutoff, but the latest revision of any hour
  whose roll-ups are kept (the next revision's deltas are taken against it); the report cursor
  (``usage_report_head``) is never touched, so no sequence is given out twice.

The audit trail is never purged. Test clocks' accounts are left out of the usage and roll-up
purges: their periods are on a clock's time, not the purge's (issue 14, isolation); their data
goes with ``DeleteTestClock``.

Before deleting a usage event, the purge records the horizon (``retention_state``), and ingestion
refuses anything older than it whatever the retention setting says later: a purged event resent
is refused, never counted twice. On PostgreSQL ingestion share-locks the horizon's row, so the
advance waits for the groups in flight, and no group that read the old horizon is still running
when the first delete starts.

Every delete is a chunk of a bounded number of rows in a write transaction of its own, chosen
beforehand in a read transaction: SQLite has one writer, and ingestion waits behind each chunk
(usage chunks are sized by the time the last one held the write lock, ``_Run.fit_usage_rows``).
With a time budget (the scheduler's), the parts take turns, each with a fair share of it.

On PostgreSQL raw usage is partitioned by month of storage (storage.partitions): the months wholly
before the horizon are dropped whole, after what retention keeps of them has moved to the kept
partition; only what lies elsewhere goes by rows, and the dead dedupe keys in chunks.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from billing_svc.domain import retention as rules
from billing_svc.domain.periods import EARLIEST, Period
from billing_svc.domain.usage import STORAGE, from_us, to_us
from billing_svc.settings import Settings
from billing_svc.storage import partitions
from billing_svc.storage import usage as usage_store
from billing_svc.storage.db import Database
from billing_svc.storage.retention import EVENT_COLUMNS, LAST_PURGE, USAGE_HORIZON, RetentionStore

log = structlog.get_logger("billing_svc.retention")

# The bound of issue 16, point 3: no chunk holds SQLite's write lock (ingestion waits behind it)
# for longer than about this.
LOCK_BOUND_SECONDS = 0.050
# What a chunk costs on SQLite (tools/measure_purge.py; docs/decisions.md "Retention: the purge
# keeps up"): a commit, the same whatever the chunk holds (~3 ms on an idle machine, ~30 ms under
# a load of 10), and a few microseconds per row deleted in key order. And each chunk first
# waits for the write lock behind an ingestion group (0.2-0.5 s under a busy stream): the rows
# per chunk, not the chunks, make a purge keep up. So usage chunks are sized from the last one's
# time beyond the commit (``_Run.fit_usage_rows``): the rows that fit in CHUNK_TARGET_SECONDS
# with a commit as long as the last bookkeeping chunk's (a commit and little else), within
# MIN_CHUNK_ROWS and MAX_CHUNK_ROWS, first CHUNK_ROWS. (The old rule halved a chunk whenever it
# took more than 25 ms, down to 100 rows: under load the commit alone took that, every chunk
# halved, and the purge fell to ~150 events/s behind 2,000-4,000 ingested.)
CHUNK_ROWS = 1000
MIN_CHUNK_ROWS = 250
# 4,000, not 8,000: at 6,000 rows a chunk that took 35 ms once took 70-170 ms another time on an
# idle machine (the soak of 2026-12-02, five month purges); a purge of 4,000-row chunks still
# deletes far more than ingestion stores (docs/decisions.md "Retention: the purge keeps up").
MAX_CHUNK_ROWS = 4000
# A fast chunk makes the next one at most this much bigger (a slow one halves it at most): one
# chunk's time is a noisy estimate of the next one's.
MAX_CHUNK_GROWTH = 1.5
CHUNK_TARGET_SECONDS = 0.035
# The rows' share of a chunk when a commit alone takes about the target (a very loaded machine):
# bigger chunks then cost the bound little more, and smaller ones would not keep it either.
MIN_ROWS_SECONDS = 0.010
# Rows per chunk of the parts with fixed chunks (idempotency records, hourly roll-ups, reports,
# PostgreSQL's dead dedupe keys): narrow rows, deleted by key.
FIXED_CHUNK_ROWS = 2000
LOG_SCAN_ROWS = 20_000  # SQLite's event log: log ids read per read transaction
# SQLite: the log marks of hours this long before the horizon go (but the newest): an event
# received up to this long before it occurred may be older than the horizon (storage.usage).
LOG_MARK_MARGIN_US = usage_store.MARK_MARGIN_US
# Outbox events per chunk: each takes its deliveries and attempts (up to one per endpoint and
# retry) with it.
CHUNK_OUTBOX_EVENTS = 300
# Hourly usage reports per chunk, and their JSON: SQLite frees each page of a deleted report,
# and an account's report may list 10,000 tenants.
CHUNK_REPORT_BYTES = 4 * 1024 * 1024
# How long `billing-svc purge` waits on PostgreSQL for another replica's purge of raw usage.
LOCK_WAIT_SECONDS = 60.0
# How long one scheduler run may purge; an unfinished purge goes on at the next tick. The parts
# (raw usage, webhook log, idempotency records, hourly roll-ups, hourly reports) share it: each
# has its fair share of what is left when its turn comes, and what a part leaves unused goes to
# the parts after it, then to a second round of those left unfinished (``purge``).
SCHEDULER_BUDGET_SECONDS = 10.0
# A part's shortest turn: every part has one each run, even when those before it used up the
# budget (a run overruns it by a few chunks at most); past the first round, no part starts with
# less time left.
MIN_TURN_SECONDS = 0.05
# The parts, in the order of their turns.
PARTS = ("usage", "webhook_log", "idempotency", "hourly_rollups", "usage_reports")


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each kind of record is kept."""

    usage_days: int = rules.DEFAULT_USAGE_RETENTION_DAYS
    webhook_log_days: int = rules.DEFAULT_WEBHOOK_LOG_RETENTION_DAYS
    idempotency_days: int = rules.DEFAULT_IDEMPOTENCY_RETENTION_DAYS
    hourly_rollup_days: int = rules.DEFAULT_HOURLY_ROLLUP_RETENTION_DAYS

    @classmethod
    def of(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            settings.usage_retention_days,
            settings.webhook_log_retention_days,
            settings.idempotency_retention_days,
            settings.hourly_rollup_retention_days,
        )


@dataclass(frozen=True)
class KeptPeriod:
    """A period before the horizon that was never invoiced: its raw events stay."""

    account_id: str
    period: str
    messages: int


@dataclass
class PurgeSummary:
    now: datetime
    horizon: datetime
    complete: bool = True  # False: the time budget ran out first (the next run goes on)
    unfinished: list[str] = field(default_factory=list)  # the parts the time budget cut short
    periods_purged: list[tuple[str, str]] = field(default_factory=list)
    usage_events: int = 0
    exported: int = 0
    storage_readings_kept: int = 0
    uninvoiced: list[KeptPeriod] = field(default_factory=list)
    outbox_events: int = 0
    deliveries: int = 0
    attempts: int = 0
    idempotency_records: int = 0
    hourly_rollups: int = 0
    usage_reports: int = 0
    # PostgreSQL: months of raw events dropped whole, the events of them kept (moved to the
    # kept partition), and dead dedupe keys deleted.
    partitions_dropped: list[str] = field(default_factory=list)
    usage_events_kept: int = 0
    usage_keys: int = 0
    log_marks: int = 0  # SQLite: hourly marks of the event log (usage_log_mark) deleted
    chunks: int = 0
    chunk_seconds: list[float] = field(default_factory=list)
    # The same holds by kind of chunk: "bookkeeping" (the horizon, a period's start and end: a
    # commit and little else), then each part's own ("usage", "webhook_log", ...).
    chunk_seconds_by_kind: dict[str, list[float]] = field(default_factory=dict)
    usage_chunk_rows_max: int = 0  # the most raw events one chunk deleted
    lock_wait_seconds: float = 0.0  # the chunks' waits for the write lock (SQLite: ingestion's)

    @property
    def deleted(self) -> int:
        return (
            self.usage_events
            + self.outbox_events
            + self.deliveries
            + self.attempts
            + self.idempotency_records
            + self.hourly_rollups
            + self.usage_reports
        )

    @property
    def longest_chunk_seconds(self) -> float:
        return max(self.chunk_seconds, default=0.0)

    def chunk_holds_ms(self) -> dict[str, dict[str, float]]:
        """How long each kind of chunk held the write lock: ``{kind: {"chunks", "p50_ms",
        "p99_ms", "max_ms", "over_bound"}}``, ``over_bound`` the chunks past LOCK_BOUND_SECONDS
        (what the scheduler's log reports, per run)."""
        return {
            kind: _distribution_ms(seconds)
            for kind, seconds in sorted(self.chunk_seconds_by_kind.items())
        }


def _distribution_ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)

    def at(share: float) -> float:
        return round(ordered[min(int(len(ordered) * share), len(ordered) - 1)] * 1000, 1)

    return {
        "chunks": len(ordered),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 1),
        "over_bound": sum(1 for held in ordered if held > LOCK_BOUND_SECONDS),
    }


class CsvGzExport:
    """The purged usage events as gzip-compressed CSV, header first, one row per event.

    Each chunk is its own gzip member (concatenated members are one valid gzip file), written
    and synced before the chunk's transaction commits, and cut off again if it does not: the file
    holds exactly the events that were deleted."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115 (closed by close())
        self._write([EVENT_COLUMNS])

    def _write(self, rows: list[Any]) -> None:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        self._file.write(gzip.compress(text.getvalue().encode(), compresslevel=6))
        self._file.flush()
        os.fsync(self._file.fileno())

    @contextmanager
    def chunk(self) -> Iterator[Callable[[list[tuple[Any, ...]]], None]]:
        mark = self._file.tell()
        try:
            yield lambda rows: self._write([_export_row(row) for row in rows]) if rows else None
        except BaseException:
            self._file.seek(mark)
            self._file.truncate()
            raise

    def close(self) -> None:
        self._file.close()


def _export_row(row: tuple[Any, ...]) -> list[Any]:
    late = EVENT_COLUMNS.index("late")
    return [int(bool(value)) if i == late else value for i, value in enumerate(row)]


class _Run:
    """One purge: its summary, time budget (the run's and the current part's turn) and progress
    reports, and its timed chunks."""

    def __init__(
        self,
        db: Database,
        summary: PurgeSummary,
        budget_seconds: float | None,
        on_progress: Callable[[PurgeSummary], None] | None,
    ) -> None:
        self.db = db
        self.summary = summary
        self.deadline = time.monotonic() + budget_seconds if budget_seconds else None
        self.turn_deadline: float | None = self.deadline
        self.on_progress = on_progress
        self.usage_rows = CHUNK_ROWS
        self.commit_seconds = 0.0  # the last bookkeeping chunk's time
        self.stopped = False  # the current part's turn (or the run's budget) ran out
        self.turn_chunks = 0
        self.part = PARTS[0]  # whose turn it is: the kind of its deleting chunks

    def seconds_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def start_turn(self, part: str, share: float) -> None:
        """``part``'s turn, which may take ``share`` of the time left (all of it without a
        budget), and MIN_TURN_SECONDS at least: time for a chunk, even when the parts before took
        it all."""
        self.part = part
        self.stopped = False
        self.turn_chunks = 0
        left = self.seconds_left()
        self.turn_deadline = (
            None if left is None else time.monotonic() + max(left * share, MIN_TURN_SECONDS)
        )

    def fit_usage_rows(self, rows: int) -> None:
        """Size the next usage chunk by the time the last one, of ``rows`` rows, held the write
        lock beyond a commit: the rows that fit in CHUNK_TARGET_SECONDS, at most halving or
        growing by MAX_CHUNK_GROWTH at a time, within MIN_CHUNK_ROWS and MAX_CHUNK_ROWS. A short
        chunk (an account's last) says little about a full one: only a slow one shrinks the
        next."""
        last = self.summary.chunk_seconds[-1]
        if rows <= 0 or (rows < self.usage_rows // 2 and last <= CHUNK_TARGET_SECONDS):
            return
        commit = min(self.commit_seconds, last * 0.9)
        rows_seconds = max(CHUNK_TARGET_SECONDS - commit, MIN_ROWS_SECONDS)
        scale = rows_seconds / (last - commit) if last > commit else MAX_CHUNK_GROWTH
        wanted = round(rows * min(MAX_CHUNK_GROWTH, max(0.5, scale)))
        if last > CHUNK_TARGET_SECONDS:
            wanted = min(wanted, self.usage_rows)  # never grow after a slow chunk
        self.usage_rows = min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, wanted))

    def out_of_time(self) -> bool:
        """Is the turn over? Never before its first chunk: each turn makes some headway."""
        if (
            self.turn_chunks
            and self.turn_deadline is not None
            and time.monotonic() > self.turn_deadline
        ):
            self.stopped = True
            return True
        return False

    @contextmanager
    def read(self) -> Iterator[RetentionStore]:
        with self.db.read() as session:
            yield RetentionStore(session.connection())

    @contextmanager
    def chunk(self, deletes: bool = True) -> Iterator[RetentionStore]:
        """A write transaction of one chunk, timed from its first statement (SQLite: where
        ``BEGIN IMMEDIATE`` takes the write lock) to the end of its commit. ``deletes``: False
        for the bookkeeping around the deletes (the horizon, a period's start and end), which
        does not count as the turn's headway."""
        asked = time.perf_counter()
        with self.db.write() as session:
            started = time.perf_counter()
            self.summary.lock_wait_seconds += started - asked
            yield RetentionStore(session.connection())
        held = time.perf_counter() - started
        self.summary.chunk_seconds.append(held)
        kind = self.part if deletes else "bookkeeping"
        self.summary.chunk_seconds_by_kind.setdefault(kind, []).append(held)
        self.summary.chunks += 1
        self.turn_chunks += deletes
        if not deletes:  # a commit and little else: what a chunk costs beyond its rows
            self.commit_seconds = self.summary.chunk_seconds[-1]
        if self.on_progress is not None:
            self.on_progress(self.summary)


def purge(
    db: Database,
    policy: RetentionPolicy,
    now: datetime,
    *,
    export: CsvGzExport | None = None,
    budget_seconds: float | None = None,
    on_progress: Callable[[PurgeSummary], None] | None = None,
) -> PurgeSummary:
    """Purge what ``policy`` no longer keeps at ``now``; see the module docstring."""
    summary = PurgeSummary(now=now, horizon=rules.usage_horizon(now, policy.usage_days))
    run = _Run(db, summary, budget_seconds, on_progress)
    # Never past the usage horizon: a late event of an hour whose roll-ups were gone would make a
    # revision from nothing, its delta the late count minus everything reported before.
    rollups_before = min(now - timedelta(days=policy.hourly_rollup_days), summary.horizon)
    parts: dict[str, Callable[[], None]] = {
        "usage": lambda: _purge_usage(run, export),
        "webhook_log": lambda: _purge_webhook_log(
            run, now - timedelta(days=policy.webhook_log_days)
        ),
        "idempotency": lambda: _purge_idempotency(
            run, now - timedelta(days=policy.idempotency_days)
        ),
        "hourly_rollups": lambda: _purge_hourly(run, rollups_before),
        # After the roll-ups, so that the reports of the hours they emptied go in the same run.
        "usage_reports": lambda: _purge_reports(run, rollups_before),
    }
    summary.unfinished = _take_turns(run, [parts[name] for name in PARTS], PARTS)
    summary.complete = summary.complete and not summary.unfinished
    return summary


def _take_turns(run: _Run, parts: list[Callable[[], None]], names: tuple[str, ...]) -> list[str]:
    """Run every part, each in a turn of its fair share of the time left (what one leaves unused
    goes to the next), then again those the time cut short, in rounds while the run has time left:
    a backlog of one cannot starve the others. Returns the unfinished parts."""
    pending = list(zip(names, parts, strict=True))
    first_round = True
    while pending:
        unfinished = []
        for turn, (name, part) in enumerate(pending):
            left = run.seconds_left()
            if not first_round and left is not None and left < MIN_TURN_SECONDS:
                unfinished.append((name, part))
                continue
            run.start_turn(name, 1 / (len(pending) - turn))
            part()
            if run.stopped:
                unfinished.append((name, part))
        left = run.seconds_left()
        # Each round ends: a stopped turn lasts MIN_TURN_SECONDS at least.
        if not unfinished or left is None or left < MIN_TURN_SECONDS:
            return [name for name, _ in unfinished]
        pending, first_round = unfinished, False
    return []


def purge_if_due(db: Database, settings: Settings) -> int:
    """The scheduler's purge: run when the last complete one is older than
    ``BILLING_PURGE_INTERVAL_SECONDS`` (or the last one ran out of time), for at most
    ``SCHEDULER_BUDGET_SECONDS``. Returns the rows deleted."""
    now = db.clock.now()  # the purges take ``now`` from here on
    with db.read() as session:
        last_us = RetentionStore(session.connection()).state_us(LAST_PURGE)
    if last_us is not None and to_us(now) - last_us < settings.purge_interval_seconds * 1e6:
        return 0
    summary = purge(db, RetentionPolicy.of(settings), now, budget_seconds=SCHEDULER_BUDGET_SECONDS)
    if summary.complete:
        with db.write() as session:
            RetentionStore(session.connection()).set_state_us(LAST_PURGE, to_us(now), now)
    if summary.deleted or summary.uninvoiced or summary.usage_keys or summary.partitions_dropped:
        log.info(
            "purged",
            complete=summary.complete,
            unfinished=summary.unfinished,
            horizon=summary.horizon.isoformat(),
            usage_events=summary.usage_events,
            outbox_events=summary.outbox_events,
            deliveries=summary.deliveries,
            attempts=summary.attempts,
            idempotency_records=summary.idempotency_records,
            hourly_rollups=summary.hourly_rollups,
            usage_reports=summary.usage_reports,
            usage_keys=summary.usage_keys,  # PostgreSQL: dead dedupe keys
            log_marks=summary.log_marks,  # SQLite: the event log's hourly marks
            months_dropped=summary.partitions_dropped,  # PostgreSQL: partitions dropped whole
            usage_events_kept=summary.usage_events_kept,
            uninvoiced_periods_kept=len(summary.uninvoiced),
            longest_chunk_ms=round(summary.longest_chunk_seconds * 1000, 1),
            chunks=summary.chunks,
            # Per kind of chunk, how long each held the write lock (issue 16 point 3: ~50 ms).
            chunk_holds=summary.chunk_holds_ms(),
            lock_wait_ms=round(summary.lock_wait_seconds * 1000, 1),
            largest_usage_chunk=summary.usage_chunk_rows_max,
        )
    return summary.deleted


def _purge_usage(run: _Run, export: CsvGzExport | None) -> None:
    summary = run.summary
    horizon_us = to_us(summary.horizon)
    with run.chunk(deletes=False) as store:
        store.set_state_us(USAGE_HORIZON, horizon_us, summary.now)
    first_kept = Period.containing(summary.horizon).label
    with run.read() as store:
        started = store.purged_periods()
        on_clocks = store.clock_accounts()
        todo = {
            pair
            for pair in store.periods_before(first_kept)
            if not started.get(pair) and pair[0] not in on_clocks
        }
        invoiced = store.invoiced(todo)
        kept = sorted(todo - invoiced)
        messages = store.period_messages(kept)
    summary.uninvoiced = [KeptPeriod(a, p, messages.get((a, p), 0)) for a, p in kept]
    by_account: dict[str, list[str]] = defaultdict(list)
    for account_id, period in sorted(invoiced):
        by_account[account_id].append(period)
    # Readings kept at an earlier purge that a later one has superseded go too.
    done_before: dict[str, list[str]] = defaultdict(list)
    for (account_id, period), finished in sorted(started.items()):
        if finished:
            done_before[account_id].append(period)
    # Each kept period starts from the level its tenants' last readings before it set.
    starts_kept: dict[str, list[int]] = defaultdict(list)
    for account_id, period in kept:
        starts_kept[account_id].append(to_us(Period.parse(period).start))
    if not run.db.is_sqlite:
        _purge_usage_partitioned(run, export, by_account, done_before, starts_kept)
        return
    _purge_usage_log(run, export, by_account, done_before, starts_kept)


def _purge_usage_log(
    run: _Run,
    export: CsvGzExport | None,
    by_account: dict[str, list[str]],
    done_before: dict[str, list[str]],
    starts_kept: dict[str, list[int]],
) -> None:
    """SQLite: raw events are an append-only log with no index by account (0017_usage_layout),
    so every account's events of ``by_account``'s periods (and superseded storage readings of
    ``done_before``'s) are found in one read of the log, in log order, from the first event
    received in the earliest of those periods, ``LOG_SCAN_ROWS`` log ids at a time; each chunk
    deletes what was found, by log id, but for each tenant's last reading before the horizon
    and before each kept period (``starts_kept``)."""
    summary = run.summary
    if not by_account:
        return
    horizon_us = to_us(summary.horizon)
    # One bookkeeping chunk for every account's start (recorded before the first delete:
    # ReconcilePeriod refuses them), one for the ends: each waits for the write lock behind an
    # ingestion group. A purge that stops before its end is taken up again by the next run.
    with run.chunk(deletes=False) as store:
        for account_id, periods in by_account.items():
            store.start_purging(account_id, periods, horizon_us, summary.now)
    purged = {(a, p) for a, periods in by_account.items() for p in periods}
    readings = {(a, p) for a, periods in done_before.items() if a in by_account for p in periods}
    keep: set[tuple[str, str, int]] = set()
    with run.read() as store:
        for account_id in by_account:
            for boundary_us in (horizon_us, *starts_kept[account_id]):
                keep.update(
                    (account_id, tenant, at)
                    for tenant, at in store.latest_readings_before(account_id, boundary_us).items()
                )
        earliest = min(Period.parse(period).start for _, period in purged | readings)
        after = store.usage.log_start(to_us(earliest))
        # Events older than the horizon are refused from now on: none comes after this one.
        end = store.log_end()
    found: list[int] = []
    done = after >= end
    while not done:
        if run.out_of_time():
            return
        with run.read() as store:
            page = store.log_page(after, LOG_SCAN_ROWS, horizon_us)
        after += LOG_SCAN_ROWS
        done = after >= end
        for log_id, account_id, period, kind, tenant_id, at_us in page:
            if (account_id, period) in purged or (
                kind == STORAGE and (account_id, period) in readings
            ):
                if kind == STORAGE and (account_id, tenant_id, at_us) in keep:
                    summary.storage_readings_kept += 1
                else:
                    found.append(log_id)
        while found and (done or len(found) >= run.usage_rows):
            if run.out_of_time():
                return
            chunk, found = found[: run.usage_rows], found[run.usage_rows :]
            _delete_log_chunk(run, chunk, horizon_us, export)
    with run.chunk(deletes=False) as store:
        for account_id, periods in by_account.items():
            store.finish_purging(account_id, periods, summary.now)
        # The marks of the hours whose events are gone (all of them but the newest).
        summary.log_marks += store.delete_log_marks_before(
            horizon_us - LOG_MARK_MARGIN_US, FIXED_CHUNK_ROWS
        )
    summary.periods_purged.extend((a, p) for a, periods in by_account.items() for p in periods)


def _delete_log_chunk(
    run: _Run, log_ids: list[int], horizon_us: int, export: CsvGzExport | None
) -> None:
    summary = run.summary
    account, period = EVENT_COLUMNS.index("account_id"), EVENT_COLUMNS.index("period")
    exporting = export.chunk() if export is not None else _no_export()
    with exporting as write, run.chunk() as store:
        rows = store.delete_log_events(log_ids, horizon_us)
        by_account: dict[str, Counter[str]] = defaultdict(Counter)
        for row in rows:
            by_account[row[account]][row[period]] += 1
        for account_id, deleted in by_account.items():
            store.count_deleted(account_id, deleted)
        write(rows)
    run.fit_usage_rows(len(rows))
    summary.usage_chunk_rows_max = max(summary.usage_chunk_rows_max, len(rows))
    summary.usage_events += len(rows)
    summary.exported += len(rows) if export is not None else 0


def _purge_account_events(
    run: _Run,
    account_id: str,
    periods: list[str],
    storage_periods: list[str],
    boundaries_us: list[int],
    export: CsvGzExport | None,
) -> bool:
    """Delete the account's events of ``periods`` and its superseded storage readings of
    ``storage_periods``, chunk by chunk, but for each tenant's last reading before each of
    ``boundaries_us`` (the horizon first, then the starts of kept periods); False if the time
    ran out first."""
    summary = run.summary
    horizon_us = boundaries_us[0]
    keep: set[tuple[str, int]] = set()
    with run.read() as store:
        for boundary_us in boundaries_us:
            keep.update(store.latest_readings_before(account_id, boundary_us).items())
    after = ""
    while True:
        if run.out_of_time():
            return False
        with run.read() as store:
            candidates = store.usage_candidates(
                account_id, after, periods, storage_periods, run.usage_rows, horizon_us
            )
        if not candidates:
            return True
        after = candidates[-1][0]
        event_ids = [
            event_id
            for event_id, tenant_id, kind, at_us in candidates
            if not (kind == STORAGE and (tenant_id, at_us) in keep)
        ]
        summary.storage_readings_kept += len(candidates) - len(event_ids)
        if not event_ids:
            continue
        exporting = export.chunk() if export is not None else _no_export()
        with exporting as write, run.chunk() as store:
            rows = store.delete_usage_events(account_id, event_ids, horizon_us)
            store.count_deleted(
                account_id, Counter(row[EVENT_COLUMNS.index("period")] for row in rows)
            )
            write(rows)
        run.fit_usage_rows(len(rows))
        summary.usage_chunk_rows_max = max(summary.usage_chunk_rows_max, len(rows))
        summary.usage_events += len(rows)
        summary.exported += len(rows) if export is not None else 0


def _purge_usage_partitioned(
    run: _Run,
    export: CsvGzExport | None,
    by_account: dict[str, list[str]],
    done_before: dict[str, list[str]],
    starts_kept: dict[str, list[int]],
) -> None:
    """PostgreSQL: the months of raw events wholly before the horizon go whole (what is kept of
    them moves to the kept partition first, then the month is detached concurrently and
    dropped); the purged periods' events elsewhere (back-dated ones, received in a later month)
    go by rows as on SQLite; then the dead dedupe keys go, in chunks (storage.partitions)."""
    summary = run.summary
    horizon_us = to_us(summary.horizon)
    with partitions.PartitionPurge(run.db) as months:
        # The scheduler's run tries; `billing-svc purge` waits a while for the other replica.
        if not months.lock(0 if run.deadline is not None else LOCK_WAIT_SECONDS):
            summary.complete = False  # another replica is purging usage: the next run goes on
            return
        for account_id, periods in by_account.items():
            if run.out_of_time():
                return
            with run.chunk(deletes=False) as store:
                store.start_purging(account_id, periods, horizon_us, summary.now)
        keep: set[tuple[str, str, int]] = set()
        with run.read() as store:
            for account_id in by_account:
                for boundary_us in (horizon_us, *starts_kept[account_id]):
                    keep.update(
                        (account_id, tenant, at)
                        for tenant, at in store.latest_readings_before(
                            account_id, boundary_us
                        ).items()
                    )
        months.load(
            [
                (account_id, period)
                for account_id, periods in by_account.items()
                for period in (*periods, *done_before[account_id])
            ],
            keep,
        )
        for bucket, state in months.droppable(horizon_us):
            if run.out_of_time():
                return
            _drop_month(run, months, bucket, state, export)
        # Still under the lock: another replica's month moves must not meet these deletes.
        for account_id, periods in by_account.items():
            if run.out_of_time():
                return
            if not _purge_account_events(
                run,
                account_id,
                periods,
                done_before[account_id],
                [horizon_us, *starts_kept[account_id]],
                export,
            ):
                return
            with run.chunk(deletes=False) as store:
                store.finish_purging(account_id, periods, summary.now)
            summary.periods_purged.extend((account_id, period) for period in periods)
        while not run.out_of_time():
            with run.chunk() as store:
                swept = partitions.sweep_keys_chunk(store.connection, horizon_us, FIXED_CHUNK_ROWS)
            run.summary.usage_keys += swept
            if swept < FIXED_CHUNK_ROWS:
                return


def _drop_month(
    run: _Run,
    months: partitions.PartitionPurge,
    bucket: int,
    state: str,
    export: CsvGzExport | None,
) -> None:
    """One month before the horizon: keep what is kept, export the rest if asked, drop it."""
    summary = run.summary
    started = time.perf_counter()
    if state == "attached":
        # The storage readings among them are counted by the row pass that follows.
        summary.usage_events_kept += months.move_kept(bucket, to_us(summary.horizon))
    months.detach(bucket, state)
    if export is not None:
        for rows in months.rows(bucket, ", ".join(EVENT_COLUMNS)):
            with export.chunk() as write:
                write(rows)
            summary.exported += len(rows)
    counts = months.counts(bucket)
    months.drop(bucket, counts)
    summary.usage_events += sum(counts.values())
    summary.partitions_dropped.append(partitions.partition_name(bucket))
    run.turn_chunks += 1  # headway, as a chunk is
    log.info(
        "usage_month_dropped",
        partition=partitions.partition_name(bucket),
        events=sum(counts.values()),
        seconds=round(time.perf_counter() - started, 3),
    )
    if run.on_progress is not None:
        run.on_progress(summary)


@contextmanager
def _no_export() -> Iterator[Callable[[list[tuple[Any, ...]]], None]]:
    yield lambda rows: None


def _purge_webhook_log(run: _Run, before: datetime) -> None:
    summary = run.summary
    after: tuple[datetime, str] | None = None
    while not run.out_of_time():
        with run.read() as store:
            candidates = store.finished_outbox_events(before, after, CHUNK_OUTBOX_EVENTS)
        if not candidates:
            return
        after = candidates[-1]
        with run.chunk() as store:
            events, deliveries, attempts = store.delete_webhook_log(
                [event_id for _, event_id in candidates]
            )
        summary.outbox_events += events
        summary.deliveries += deliveries
        summary.attempts += attempts


def _purge_idempotency(run: _Run, before: datetime) -> None:
    while not run.out_of_time():
        with run.chunk() as store:
            deleted = store.delete_idempotency_records(before, FIXED_CHUNK_ROWS)
        run.summary.idempotency_records += deleted
        if deleted < FIXED_CHUNK_ROWS:
            return


def _purge_hourly(run: _Run, before: datetime) -> None:
    """Hourly roll-ups of invoiced periods that ended by the period holding ``before``: an open
    period's billable messages after a trial are read from them."""
    # A retention reaching before 1970 keeps every period (and no Period is that old).
    with run.read() as store:
        on_clocks = store.clock_accounts()
        invoiced = [
            (account_id, label)
            for account_id, label in store.invoiced_periods_before(
                Period.containing(max(before, EARLIEST)).label
            )
            if account_id not in on_clocks
        ]
    ranges: dict[str, list[list[int]]] = defaultdict(list)
    for account_id, label in invoiced:
        period = Period.parse(label)
        start_us, end_us = to_us(period.start), to_us(period.end)
        spans = ranges[account_id]
        if spans and spans[-1][1] == start_us:
            spans[-1][1] = end_us
        else:
            spans.append([start_us, end_us])
    for account_id, spans in ranges.items():
        for start_us, end_us in spans:
            with run.read() as store:
                # An hour still to be reported (its last events came before the horizon moved)
                # is reported from these roll-ups first; the next purge takes them.
                if not store.has_hourly(account_id, start_us, end_us) or store.has_report_due(
                    account_id, start_us, end_us
                ):
                    continue
            while True:
                if run.out_of_time():
                    return
                with run.chunk() as store:
                    deleted = store.delete_hourly(account_id, start_us, end_us, FIXED_CHUNK_ROWS)
                run.summary.hourly_rollups += deleted
                if deleted < FIXED_CHUNK_ROWS:
                    break


def _purge_reports(run: _Run, before: datetime) -> None:
    """Hourly usage reports of the hours before ``before`` (the roll-ups' cutoff), but the latest
    revision of each hour whose roll-ups are kept: after ``_purge_hourly``, so that the reports
    of the hours it emptied go in the same run."""
    before_us = to_us(max(before, EARLIEST))
    after = 0
    while not run.out_of_time():
        with run.read() as store:
            candidates = store.purgeable_reports(before_us, after, FIXED_CHUNK_ROWS)
        if not candidates:
            return
        sequences: list[int] = []
        chunk_bytes = 0
        for sequence, stored_bytes in candidates:
            chunk_bytes += stored_bytes
            if sequences and chunk_bytes > CHUNK_REPORT_BYTES:
                break
            sequences.append(sequence)
        after = sequences[-1]
        with run.chunk() as store:
            run.summary.usage_reports += store.delete_reports(sequences, before_us)


def horizon_of(db: Database) -> datetime | None:
    """The purge horizon recorded, or None if nothing was ever purged."""
    with db.read() as session:
        value = RetentionStore(session.connection()).state_us(USAGE_HORIZON)
    return from_us(value) if value else None
