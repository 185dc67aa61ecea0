"""Usage ingestion: validate, dedupe and store groups of batches in one transaction each.

Group commit: the stream and unary RPCs hand their batches to one ``IngestionWriter`` per process,
which stores every batch waiting at that moment in a single transaction, so one commit (one fsync)
serves many batches. An ack is released only after that commit. If a group fails for a reason
other than the database being unavailable, its batches are retried one by one so that one bad
batch cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import structlog
from sqlalchemy.exc import IntegrityError

from billing_svc import metrics
from billing_svc.domain import events
from billing_svc.domain import usage as rules
from billing_svc.domain.catalog import CustomTerms, effective_terms
from billing_svc.domain.errors import DeadlineExceeded, Unavailable
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import MESSAGE, UsageEventIn
from billing_svc.services.finance import check_budgets
from billing_svc.storage import notices, outbox
from billing_svc.storage.db import Database
from billing_svc.storage.usage import UsageStore

log = structlog.get_logger("billing_svc.ingestion")


@dataclass
class Rejection:
    event_id: str
    index: int
    reason: str


@dataclass
class BatchResult:
    """The acknowledgement of one batch."""

    accepted: int = 0
    duplicates: int = 0
    late: int = 0
    rejected: list[Rejection] = field(default_factory=list)


# An accepted event: (event, period label, late). A plain tuple: one is made per event.
_Accepted = tuple[UsageEventIn, str, bool]


def ingest(db: Database, batches: list[list[UsageEventIn]], *, now_us: int,
           retention_days: int = rules.DEFAULT_RETENTION_DAYS) -> list[BatchResult]:
    """Store ``batches`` in one transaction and return one result per batch."""
    for attempt in range(3):
        try:
            with db.write() as session:
                return _ingest(UsageStore(session.connection()), session, batches, now_us,
                               retention_days)
        except IntegrityError:
            # A replica stored one of these events between our check and our insert: run again,
            # it is now a duplicate.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _ingest(store: UsageStore, session, batches: list[list[UsageEventIn]],  # type: ignore[no-untyped-def]
            now_us: int, retention_days: int) -> list[BatchResult]:
    results = [BatchResult() for _ in batches]
    candidates: list[tuple[int, int, UsageEventIn]] = []
    for b, batch in enumerate(batches):
        for i, event in enumerate(batch):
            reason = rules.check_shape(event, now_us, retention_days)
            if reason:
                results[b].rejected.append(Rejection(event.event_id, i, reason))
            else:
                candidates.append((b, i, event))
    if not candidates:
        return results

    account_ids = {e.account_id for _, _, e in candidates}
    accounts = store.accounts(account_ids)
    tenants = store.tenant_owners({e.tenant_id for _, _, e in candidates})
    partners = store.partner_owners({e.partner_id for _, _, e in candidates if e.partner_id})
    invoiced = store.invoiced_periods(accounts)
    ids_by_account: dict[str, set[str]] = defaultdict(set)
    for _, _, e in candidates:
        if e.account_id in accounts:
            ids_by_account[e.account_id].add(e.event_id)
    stored = {acc: store.existing_events(acc, ids) for acc, ids in ids_by_account.items()}

    accepted: list[_Accepted] = []
    in_group: dict[tuple[str, str], UsageEventIn] = {}
    label_of = rules.period_label_of
    for b, i, e in candidates:
        account_id = e.account_id
        if (account_id not in accounts or tenants.get(e.tenant_id) != account_id
                or (e.partner_id and partners.get(e.partner_id) != account_id)):
            results[b].rejected.append(Rejection(e.event_id, i, _reference_problem(
                e, accounts, tenants, partners)))
            continue
        key = (account_id, e.event_id)
        previous = stored[account_id].get(e.event_id)
        earlier = in_group.get(key) if previous is None else None
        if previous is not None or earlier is not None:
            if e.same_content(*previous) if previous is not None else earlier == e:
                results[b].duplicates += 1
            else:
                results[b].rejected.append(Rejection(
                    e.event_id, i, f"event_id {e.event_id!r} was already used with different "
                    "content; a resend must repeat the event exactly"))
            continue
        period = label_of(e.occurred_at_us)  # type: ignore[arg-type]
        late = (account_id, period) in invoiced
        in_group[key] = e
        accepted.append((e, period, late))
        result = results[b]
        result.accepted += 1
        if late:
            result.late += 1

    if accepted:
        _store(store, session, accepted, accounts, now_us)
    for result in results:
        result.rejected.sort(key=lambda rejection: rejection.index)
    return results


def _reference_problem(e: UsageEventIn, accounts: dict, tenants: dict, partners: dict) -> str:
    if e.account_id not in accounts:
        return f"account {e.account_id!r} does not exist"
    if tenants.get(e.tenant_id) != e.account_id:
        return f"tenant {e.tenant_id!r} is not a tenant of account {e.account_id}"
    return f"partner {e.partner_id!r} is not a master partner of account {e.account_id}"


def _store(store: UsageStore, session, accepted: list[_Accepted],  # type: ignore[no-untyped-def]
           accounts: dict[str, tuple], now_us: int) -> None:
    store.insert_events([(*e, period, late, now_us) for e, period, late in accepted])

    period_messages: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    tenant_messages: dict[tuple[str, str, str], int] = defaultdict(int)
    partner_messages: dict[tuple[str, str, str], int] = defaultdict(int)
    hourly: dict[tuple[str, int, str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    readings: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    hour_us = 3_600_000_000
    for (_, account_id, tenant_id, partner_id, kind, quantity, occurred_at_us), period, late \
            in accepted:
        roll = hourly[(account_id, occurred_at_us - occurred_at_us % hour_us, tenant_id,
                       partner_id, kind)]
        if kind == MESSAGE:
            counts = period_messages[(account_id, period)]
            counts[0] += quantity
            if late:
                counts[1] += quantity
            tenant_messages[(account_id, period, tenant_id)] += quantity
            if partner_id:
                partner_messages[(account_id, period, partner_id)] += quantity
            roll[0] += quantity
        else:
            roll[1] = max(roll[1], quantity)
            readings[(account_id, tenant_id)].append((occurred_at_us, quantity))

    store.add_tenant_messages([(*k, v) for k, v in tenant_messages.items()])
    store.add_partner_messages([(*k, v) for k, v in partner_messages.items()])
    store.add_hourly([(*k, v[0], v[1]) for k, v in hourly.items()])

    current = Period.containing(rules.from_us(now_us))
    for (account_id, period), (messages, late) in period_messages.items():
        after = store.add_period_messages(account_id, period, messages, late)
        if late < messages:
            _notify_messages(session, accounts[account_id], Period.parse(period),
                             after - messages, after, now_us)
    for account_id in store.accounts_with_budgets({key[0] for key in period_messages}):
        check_budgets(session, account_id, rules.from_us(now_us))
    storage_accounts = {account_id for account_id, _ in readings}
    for account_id in storage_accounts:
        _apply_storage(store, account_id,
                       {t: r for (acc, t), r in readings.items() if acc == account_id})
        _notify_storage(store, session, accounts[account_id], current, now_us)


def _terms(account_row: tuple):  # type: ignore[no-untyped-def]
    _, plan_id, custom_json, _ = account_row
    return effective_terms(plan_id, CustomTerms.from_json(custom_json) if custom_json else None)


def _notify_messages(session, account_row: tuple, period: Period,  # type: ignore[no-untyped-def]
                     before: int, after: int, now_us: int) -> None:
    """Thresholds at 75/90/100 % (per account) and the message limit, once per period each."""
    account_id, _, _, threshold_text = account_row
    included = _terms(account_row).included_messages
    percentages = tuple(int(p) for p in threshold_text.split(",") if p)
    at = rules.from_us(now_us)
    for percentage in rules.crossed_thresholds(before, after, included, percentages):
        if notices.claim(session, account_id, period.label, f"threshold:{percentage}"):
            outbox.enqueue(session, events.usage_threshold(
                account_id=account_id, threshold_percentage=percentage, current_usage=after,
                plan_limit=included, period=period.label, occurred_at=at))
    if before <= included < after and notices.claim(session, account_id, period.label,
                                                    "limit:monthly_messages"):
        outbox.enqueue(session, events.limit_exceeded(
            account_id=account_id, limit_type="monthly_messages", current_usage=after,
            plan_limit=included, period=period.label, refused=False, occurred_at=at))


def _notify_storage(store: UsageStore, session, account_row: tuple,  # type: ignore[no-untyped-def]
                    period: Period, now_us: int) -> None:
    account_id = account_row[0]
    included_gb = _terms(account_row).included_storage_gb
    level = store.total_storage_level(account_id)
    if level > included_gb * rules.GB_BYTES and notices.claim(
            session, account_id, period.label, "limit:storage_gb"):
        outbox.enqueue(session, events.limit_exceeded(
            account_id=account_id, limit_type="storage_gb",
            current_usage=rules.bytes_to_gb(level), plan_limit=included_gb,
            period=period.label, refused=False, occurred_at=rules.from_us(now_us)))


def _apply_storage(store: UsageStore, account_id: str,
                   readings: dict[str, list[tuple[int, int]]]) -> None:
    """Advance each tenant's storage level through its new readings, adding the byte-time of
    each level to the periods it held in. A reading older than the tenant's latest one (out of
    order) makes that tenant's periods be recomputed from its stored readings."""
    levels = store.storage_levels(account_id, readings)
    additions: dict[tuple[str, str], int] = defaultdict(int)
    new_levels = []
    recompute: dict[str, int] = {}
    for tenant_id, tenant_readings in readings.items():
        tenant_readings.sort()
        level, since = levels.get(tenant_id, (0, None))  # type: ignore[arg-type]
        for occurred_at_us, quantity in tenant_readings:
            if since is not None and occurred_at_us < since:
                recompute[tenant_id] = min(recompute.get(tenant_id, occurred_at_us),
                                           occurred_at_us)
                continue
            if since is not None:
                for label, byte_us in rules.spread_level(level, since, occurred_at_us,
                                                         _period_bounds(since, occurred_at_us)):
                    additions[(label, tenant_id)] += byte_us
            level, since = quantity, occurred_at_us
        new_levels.append((account_id, tenant_id, level, since))
    store.add_byte_us([(account_id, label, tenant, Decimal(v))
                       for (label, tenant), v in additions.items()])
    store.set_storage_levels([row for row in new_levels if row[3] is not None])
    for tenant_id, from_us in recompute.items():
        _recompute_storage(store, account_id, tenant_id, from_us)


def _recompute_storage(store: UsageStore, account_id: str, tenant_id: str, from_us: int) -> None:
    start = Period.containing(rules.from_us(from_us))
    start_us = rules.to_us(start.start)
    series = store.storage_readings(account_id, tenant_id, start_us)
    totals: dict[str, int] = defaultdict(int)
    last_us = series[-1][0]
    for label, _, _ in _period_bounds(start_us, last_us + 1):
        totals[label] = 0
    for (t0, level), (t1, _) in itertools.pairwise(series):
        for label, byte_us in rules.spread_level(level, max(t0, start_us), t1,
                                                 _period_bounds(max(t0, start_us), t1)):
            totals[label] += byte_us
    store.set_byte_us([(account_id, label, tenant_id, Decimal(v)) for label, v in totals.items()])
    store.set_storage_levels([(account_id, tenant_id, series[-1][1], last_us)])


def _period_bounds(from_us: int, to_us: int) -> list[tuple[str, int, int]]:
    period = Period.containing(rules.from_us(from_us))
    bounds = []
    while True:
        start_us, end_us = rules.to_us(period.start), rules.to_us(period.end)
        if start_us >= to_us:
            break
        bounds.append((period.label, start_us, end_us))
        period = period.next()
    return bounds


# ---------------------------------------------------------------------------------------------
# Group commit


@dataclass
class _Pending:
    events: list[UsageEventIn]
    done: asyncio.Future[BatchResult]
    deadline: float | None  # time.monotonic() by which the caller needs the ack


class IngestionWriter:
    """Collects batches from every stream of this process and commits them in groups."""

    def __init__(self, db: Database, *, retention_days: int = rules.DEFAULT_RETENTION_DAYS,
                 max_group_events: int = 50_000) -> None:
        self.db = db
        self.retention_days = retention_days
        self.max_group_events = max_group_events
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            self._queue.get_nowait().done.set_exception(
                Unavailable("billing-svc is shutting down; resend this batch"))

    async def submit(self, batch: list[UsageEventIn],
                     deadline: float | None = None) -> BatchResult:
        """Queue ``batch``; the result arrives once its group is committed. A batch whose
        ``deadline`` (monotonic) passes while it waits is not stored at all."""
        done: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(batch, done, deadline))
        return await asyncio.shield(done)

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            size = len(group[0].events)
            while not self._queue.empty() and size < self.max_group_events:
                pending = self._queue.get_nowait()
                group.append(pending)
                size += len(pending.events)
            await self._commit(group)

    async def _commit(self, group: list[_Pending]) -> None:
        now = time.monotonic()
        expired = [p for p in group if p.deadline is not None and p.deadline <= now]
        for pending in expired:
            pending.done.set_exception(DeadlineExceeded(
                "the call's deadline passed before this batch was stored; nothing of it was "
                "stored, resend it"))
        group = [p for p in group if p not in expired]
        if not group:
            return
        now_us = rules.to_us(datetime.now(UTC))
        started = time.perf_counter()
        try:
            results = await asyncio.to_thread(
                ingest, self.db, [p.events for p in group], now_us=now_us,
                retention_days=self.retention_days)
            metrics.BATCH_COMMIT_SECONDS.observe(time.perf_counter() - started)
            metrics.BATCHES_PER_COMMIT.observe(len(group))
        except Exception as exc:
            if len(group) > 1 and not isinstance(exc, Unavailable):
                for pending in group:
                    await self._commit([pending])
                return
            if not isinstance(exc, Unavailable):
                log.exception("ingest_failed", batches=len(group))
            for pending in group:
                if not pending.done.done():
                    pending.done.set_exception(exc)
            return
        for pending, result in zip(group, results, strict=True):
            metrics.USAGE_EVENTS.labels("accepted").inc(result.accepted - result.late)
            metrics.USAGE_EVENTS.labels("late").inc(result.late)
            metrics.USAGE_EVENTS.labels("duplicate").inc(result.duplicates)
            metrics.USAGE_EVENTS.labels("rejected").inc(len(result.rejected))
            if not pending.done.done():
                pending.done.set_result(result)
