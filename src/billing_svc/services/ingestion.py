"""Usage ingestion: validate, dedupe and store a group of batches in one transaction.

``ingest`` stores the batches that ``services.ingestion_writer`` collected from every stream. If a
group fails for a reason other than the database being unavailable, the writer retries its
batches one by one, so that one bad batch cannot fail its neighbours.

Two ways into the tables, one outcome. A batch its codec decoded (``batch.native``, by
``batch.codec``) and found plain (every event a well-formed message event) whose tenants and
partners all check out and whose periods are not invoiced is stored by that codec under a
savepoint (SQLite: its inserts, one savepoint per batch; PostgreSQL: COPY data the codec writes
from the request's bytes, one savepoint for a run of such batches): if one of its keys already
exists, nothing of it stays and it takes the Python path, which works event by event and says
which ones were duplicates, conflicts, late or rejected. Batches are stored in arrival order
either way, and both ways feed one ``_Rollup``, so the counters, thresholds, budgets and storage
levels are written by the same code.

No counter passes its maximum: the rare group that would fill one is redone on the Python path,
which then rejects exactly the events that do not fit (``services.headroom``).
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from billing_svc.domain import events, usage
from billing_svc.domain.catalog import CustomTerms, Terms, effective_terms
from billing_svc.domain.errors import shown
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import MESSAGE, UsageBatch, UsageEventIn
from billing_svc.services.budget_alerts import check_budgets
from billing_svc.services.headroom import Headroom
from billing_svc.storage import notices, outbox, partitions
from billing_svc.storage.db import Database
from billing_svc.storage.retention import usage_horizon_us
from billing_svc.storage.usage import CounterFull, UsageStore


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


# Events of one batch that passed check_shape, with their index in the batch.
_Candidates = list[tuple[int, UsageEventIn]]


def ingest(
    db: Database,
    batches: Sequence[UsageBatch],
    *,
    now_us: int,
    retention_days: int = usage.DEFAULT_RETENTION_DAYS,
    on_clock: bool = False,
) -> list[BatchResult]:
    """Store ``batches`` in one transaction and return one result per batch. ``on_clock``: the
    batches name a test clock's accounts only (``now_us`` is the clock's time)."""
    results: list[BatchResult] = _in_one_transaction(
        db,
        lambda store, session, check_counters: _ingest(
            store, session, batches, now_us, retention_days, check_counters, on_clock
        ),
        [] if on_clock else [now_us],
    )
    return results


def ingest_split(
    db: Database,
    parts: Sequence[tuple[UsageBatch, Sequence[int], int, bool]],
    *,
    retention_days: int = usage.DEFAULT_RETENTION_DAYS,
) -> BatchResult:
    """Store one batch whose events live on several time lines (real accounts, test clocks'
    accounts), in one transaction: each part ``(events, their indexes in the batch, now_us,
    on_clock)`` is judged at its own time (future, retention, late); the results make one."""

    def work(store: UsageStore, session: Session, check_counters: bool) -> BatchResult:
        merged = BatchResult()
        for batch, indexes, now_us, on_clock in parts:
            (result,) = _ingest(
                store, session, [batch], now_us, retention_days, check_counters, on_clock
            )
            merged.accepted += result.accepted
            merged.duplicates += result.duplicates
            merged.late += result.late
            merged.rejected.extend(
                Rejection(r.event_id, indexes[r.index], r.reason) for r in result.rejected
            )
        merged.rejected.sort(key=lambda rejection: rejection.index)
        return merged

    merged: BatchResult = _in_one_transaction(
        db, work, [now_us for _, _, now_us, on_clock in parts if not on_clock]
    )
    return merged


def _in_one_transaction(db: Database, work: Any, received_at_us: Sequence[int]) -> Any:
    """``received_at_us``: the real-time moments the events are stored at (PostgreSQL stores
    them in those months' partitions, which must exist)."""
    check_counters = False
    if not db.is_sqlite and received_at_us:
        partitions.ensure(db, {partitions.bucket_of(at_us) for at_us in received_at_us})
    for attempt in range(3):
        try:
            with db.write() as session:
                return work(UsageStore(session.connection()), session, check_counters)
        except partitions.MissingPartition as missing:
            # This process thought the month had its partition (a purge dropped it, or a
            # downgrade): make it, and again.
            if attempt == 2:
                raise
            partitions.ensure(db, [missing.bucket], refresh=True)
        except CounterFull:
            # Some counter cannot take the group: again, checking each event against them.
            if attempt == 2:
                raise
            check_counters = True
        except IntegrityError:
            # A replica stored one of these events between our check and our insert: run again,
            # it is now a duplicate.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _ingest(
    store: UsageStore,
    session: Session,
    batches: Sequence[UsageBatch],
    now_us: int,
    retention_days: int,
    check_counters: bool,
    on_clock: bool = False,
) -> list[BatchResult]:
    results = [BatchResult() for _ in batches]
    # Nothing older than a purge is taken, whatever the retention says: it was deleted, and would
    # count again (services.retention). The purge leaves test clocks' accounts alone, so the
    # real-time horizon is not theirs: a clock may live in a past the purge went through.
    horizon_us = 0 if on_clock else usage_horizon_us(store.connection, share_lock=True)
    window = usage.accept_window(now_us, retention_days, horizon_us)
    # The kernel inserts on SQLite and writes the COPY data on PostgreSQL. Counters checked
    # event by event: the Python path only.
    native = [
        batch.native
        if store.native_inserts
        and not check_counters
        and batch.native is not None
        and batch.native.plain(*window)
        and _all_own(batch)
        else None
        for batch in batches
    ]
    candidates = {
        index: _check_shapes(batch, results[index], now_us, retention_days, horizon_us)
        for index, batch in enumerate(batches)
        if native[index] is None
    }
    refs = _References.load(store, [n for n in native if n is not None], candidates.values())
    admitted = [kernel_batch is not None and refs.admit(kernel_batch) for kernel_batch in native]
    for index, kernel_batch in enumerate(native):
        if kernel_batch is not None and not admitted[index]:  # the Python path says what is wrong
            candidates[index] = list(enumerate(batches[index].events))  # all pass check_shape
    headroom = Headroom(store, candidates.values(), messages=check_counters)
    rollup = _Rollup()
    # Runs of batches that go the same way, in arrival order.
    start = 0
    while start < len(batches):
        end = start + 1
        while end < len(batches) and admitted[end] == admitted[start]:
            end += 1
        if not admitted[start]:
            _store_events(
                store,
                [(results[i], candidates[i]) for i in range(start, end)],
                refs,
                headroom,
                rollup,
                now_us,
                on_clock,
            )
            start = end
            continue
        stored = store.insert_native(
            batches[start].codec, native[start:end], received_at_us=now_us, on_clock=on_clock
        )
        for index, whole in zip(range(start, end), stored, strict=False):
            if whole:
                results[index].accepted = len(batches[index])
                rollup.add_hourly_messages(native[index].hourly())  # type: ignore[union-attr]  # admitted: native
            else:  # it met a stored key: the Python path says which events are duplicates
                candidates[index] = list(enumerate(batches[index].events))  # all pass check_shape
                _store_events(
                    store,
                    [(results[index], candidates[index])],
                    refs,
                    headroom,
                    rollup,
                    now_us,
                    on_clock,
                )
        start += len(stored)
    if rollup:
        _write_rollup(store, session, rollup, refs, now_us)
    for result in results:
        result.rejected.sort(key=lambda rejection: rejection.index)
    return results


def _all_own(batch: UsageBatch) -> bool:
    """Are all events of the batch its token's account's (or is its token not bound to one)?"""
    return not batch.bound_account or set(batch.native.references()[0]) <= {batch.bound_account}


def _check_shapes(
    batch: UsageBatch, result: BatchResult, now_us: int, retention_days: int, horizon_us: int
) -> _Candidates:
    candidates = []
    bound = batch.bound_account
    for i, event in enumerate(batch.events):
        reason = usage.check_shape(event, now_us, retention_days, horizon_us)
        if not reason and bound and event.account_id != bound:
            reason = (
                f"this token is bound to account {bound} and records usage for it only; "
                "the event names another account"
            )
        if reason:
            result.rejected.append(Rejection(event.event_id, i, reason))
        else:
            candidates.append((i, event))
    return candidates


@dataclass
class _References:
    """What the group's events refer to, read once per group."""

    accounts: dict[str, tuple[Any, ...]]  # account_id -> (id, plan, custom terms, thresholds)
    tenant_owners: dict[str, str]
    partner_owners: dict[str, str]
    invoiced: set[tuple[str, str]]  # (account_id, period label)

    @classmethod
    def load(cls, store: UsageStore, kernel_batches: list[Any], candidates: Any) -> _References:
        account_ids: set[str] = set()
        tenant_ids: set[str] = set()
        partner_ids: set[str] = set()
        for batch in kernel_batches:
            accounts, tenants, partners = batch.references()
            account_ids |= accounts
            tenant_ids.update(tenant for _, tenant in tenants)
            partner_ids.update(partner for _, partner in partners)
        for batch_candidates in candidates:
            for _, e in batch_candidates:
                account_ids.add(e.account_id)
                tenant_ids.add(e.tenant_id)
                if e.partner_id:
                    partner_ids.add(e.partner_id)
        accounts = store.accounts(account_ids)
        return cls(
            accounts,
            store.tenant_owners(tenant_ids),
            store.partner_owners(partner_ids),
            store.invoiced_periods(accounts),
        )

    def admit(self, kernel_batch: Any) -> bool:
        """May the kernel store this batch (its ``plain()`` check passed): are all its tenants
        and partners the named account's own (so the account exists), and is none of its events
        late?"""
        _, tenants, partners = kernel_batch.references()
        label_of = usage.period_label_of
        return (
            all(self.tenant_owners.get(t) == account for account, t in tenants)
            and all(self.partner_owners.get(p) == account for account, p in partners)
            and not any(
                (account, label_of(hour_us)) in self.invoiced
                for account, hour_us, *_ in kernel_batch.hourly()
            )
        )

    def problem(self, e: UsageEventIn) -> str | None:
        if e.account_id not in self.accounts:
            return f"account {shown(e.account_id)} does not exist"
        if self.tenant_owners.get(e.tenant_id) != e.account_id:
            return f"tenant {shown(e.tenant_id)} is not a tenant of account {e.account_id}"
        if e.partner_id and self.partner_owners.get(e.partner_id) != e.account_id:
            return (
                f"partner {shown(e.partner_id)} is not a master partner of account {e.account_id}"
            )
        return None


class _Rollup:
    """What a group adds to the counters: per (account, hour, tenant, partner, kind) the messages,
    the highest storage reading and the latest one (``[messages, max, last at_us, last
    bytes]``), and each tenant's new storage readings."""

    def __init__(self) -> None:
        self.hourly: dict[tuple[str, int, str, str, int], list[int]] = defaultdict(
            lambda: [0, 0, 0, 0]
        )
        self.readings: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)

    def __bool__(self) -> bool:
        return bool(self.hourly)

    def add_hourly_messages(self, rows: list[tuple[str, int, str, str, int]]) -> None:
        for account_id, hour_us, tenant_id, partner_id, messages in rows:
            self.hourly[(account_id, hour_us, tenant_id, partner_id, MESSAGE)][0] += messages

    def add_event(self, e: UsageEventIn) -> None:
        occurred_at_us: int = e.occurred_at_us  # type: ignore[assignment]  # check_shape has set occurred_at_us
        roll = self.hourly[
            (e.account_id, usage.hour_of(occurred_at_us), e.tenant_id, e.partner_id, e.kind)
        ]
        if e.kind == MESSAGE:
            roll[0] += e.quantity
        else:
            roll[1] = max(roll[1], e.quantity)
            if occurred_at_us >= roll[2]:
                roll[2], roll[3] = occurred_at_us, e.quantity
            self.readings[(e.account_id, e.tenant_id)].append((occurred_at_us, e.quantity))


def _store_events(
    store: UsageStore,
    batches: list[tuple[BatchResult, _Candidates]],
    refs: _References,
    headroom: Headroom,
    rollup: _Rollup,
    now_us: int,
    on_clock: bool = False,
) -> None:
    """The Python path: classify each candidate (rejected, duplicate, conflict, late, beyond a
    counter's headroom or new) against the stored events and the ones before it, then insert
    the new ones."""
    ids_by_account: dict[str, set[str]] = defaultdict(set)
    for _, candidates in batches:
        for _, e in candidates:
            if e.account_id in refs.accounts:
                ids_by_account[e.account_id].add(e.event_id)
    stored = {acc: store.existing_events(acc, ids) for acc, ids in ids_by_account.items()}
    rows = []
    seen: dict[tuple[str, str], UsageEventIn] = {}
    label_of = usage.period_label_of
    refuse = headroom.refuse if headroom.checks else None
    for result, candidates in batches:
        for i, e in candidates:
            problem = refs.problem(e)
            if problem:
                result.rejected.append(Rejection(e.event_id, i, problem))
                continue
            previous = stored[e.account_id].get(e.event_id)
            earlier = seen.get((e.account_id, e.event_id)) if previous is None else None
            if previous is not None or earlier is not None:
                if e.same_content(*previous) if previous is not None else earlier == e:
                    result.duplicates += 1
                else:
                    result.rejected.append(
                        Rejection(
                            e.event_id,
                            i,
                            f"event_id {shown(e.event_id)} was already used with "
                            "different content; a resend must repeat the event exactly",
                        )
                    )
                continue
            period = label_of(e.occurred_at_us)  # type: ignore[arg-type]  # check_shape has set occurred_at_us
            late = (e.account_id, period) in refs.invoiced
            if refuse is not None and (full := refuse(e, period, late)):
                result.rejected.append(Rejection(e.event_id, i, full))
                continue
            seen[(e.account_id, e.event_id)] = e
            rows.append((*e, period, late))
            result.accepted += 1
            result.late += late
            rollup.add_event(e)
    store.insert_events(rows, received_at_us=now_us, on_clock=on_clock)


def _write_rollup(
    store: UsageStore, session: Session, rollup: _Rollup, refs: _References, now_us: int
) -> None:
    """Add the group's usage to the counters and roll-ups, then send the notices it crossed.

    Lateness is per (account, period): every event of an invoiced period is late, so a period's
    late messages are all its messages of the group or none."""
    period_messages: dict[tuple[str, str], int] = defaultdict(int)
    tenant_messages: dict[tuple[str, str, str], int] = defaultdict(int)
    partner_messages: dict[tuple[str, str, str], int] = defaultdict(int)
    label_of = usage.period_label_of
    for (account_id, hour_us, tenant_id, partner_id, kind), (messages, *_) in rollup.hourly.items():
        if kind == MESSAGE:
            period = label_of(hour_us)
            period_messages[(account_id, period)] += messages
            tenant_messages[(account_id, period, tenant_id)] += messages
            if partner_id:
                partner_messages[(account_id, period, partner_id)] += messages
    store.add_tenant_messages([(*k, v) for k, v in tenant_messages.items()])
    store.add_partner_messages([(*k, v) for k, v in partner_messages.items()])
    store.add_hourly([(*k, *v) for k, v in rollup.hourly.items()])  # type: ignore[misc]  # unpacking drops item types
    store.mark_reports_due(list({(key[0], key[1]) for key in rollup.hourly}), now_us)

    accounts = refs.accounts
    totals = store.add_periods_messages(
        [
            (account_id, period, messages, messages if (account_id, period) in refs.invoiced else 0)
            for (account_id, period), messages in period_messages.items()
        ]
    )
    for (account_id, period), messages in period_messages.items():
        late = (account_id, period) in refs.invoiced
        after = totals[(account_id, period)]
        if not late:
            _notify_messages(session, accounts[account_id], period, after - messages, after, now_us)
    for account_id in store.accounts_with_budgets({key[0] for key in period_messages}):
        check_budgets(session, account_id, usage.from_us(now_us))
    current = Period.containing(usage.from_us(now_us))
    for account_id in {account_id for account_id, _ in rollup.readings}:
        _apply_storage(
            store,
            account_id,
            {t: r for (acc, t), r in rollup.readings.items() if acc == account_id},
        )
        _notify_storage(store, session, accounts[account_id], current, now_us)


def _terms(account_row: tuple[Any, ...]) -> Terms:
    _, plan_id, custom_json, _ = account_row
    return _terms_of(plan_id, custom_json)


@functools.lru_cache(maxsize=4096)
def _terms_of(plan_id: str, custom_json: str | None) -> Terms:
    """The terms of a plan and custom terms as stored: a function of the stored values alone
    (the catalog is fixed), so remembered by them; an account whose terms change is read with
    its new values by its next group and finds other terms."""
    return effective_terms(plan_id, CustomTerms.from_json(custom_json) if custom_json else None)


def _notify_messages(
    session: Session,
    account_row: tuple[Any, ...],
    period: str,
    before: int,
    after: int,
    now_us: int,
) -> None:
    """Thresholds at 75/90/100 % (per account) and the message limit, once per period each."""
    account_id, _, _, percentages = account_row
    included = _terms(account_row).included_messages
    crossed = usage.crossed_thresholds(before, after, included, percentages)
    if not crossed and not before <= included < after:
        return
    at = usage.from_us(now_us)
    for percentage in crossed:
        if notices.claim(session, account_id, period, f"threshold:{percentage}"):
            outbox.enqueue(
                session,
                events.usage_threshold(
                    account_id=account_id,
                    threshold_percentage=percentage,
                    current_usage=after,
                    plan_limit=included,
                    period=period,
                    occurred_at=at,
                ),
            )
    if before <= included < after and notices.claim(
        session, account_id, period, "limit:monthly_messages"
    ):
        outbox.enqueue(
            session,
            events.limit_exceeded(
                account_id=account_id,
                limit_type="monthly_messages",
                current_usage=after,
                plan_limit=included,
                period=period,
                refused=False,
                occurred_at=at,
            ),
        )


def _notify_storage(
    store: UsageStore, session: Session, account_row: tuple[Any, ...], period: Period, now_us: int
) -> None:
    account_id = account_row[0]
    included_gb = _terms(account_row).included_storage_gb
    level = store.total_storage_level(account_id)
    if level > included_gb * usage.GB_BYTES and notices.claim(
        session, account_id, period.label, "limit:storage_gb"
    ):
        outbox.enqueue(
            session,
            events.limit_exceeded(
                account_id=account_id,
                limit_type="storage_gb",
                current_usage=usage.bytes_to_gb(level),
                plan_limit=included_gb,
                period=period.label,
                refused=False,
                occurred_at=usage.from_us(now_us),
            ),
        )


def _apply_storage(
    store: UsageStore, account_id: str, readings: dict[str, list[tuple[int, int]]]
) -> None:
    """Advance each tenant's storage level through its new readings, adding the byte-time of
    each level to the periods it held in. A reading older than the tenant's latest one (out of
    order) makes that tenant's periods be recomputed from its stored readings."""
    levels = store.storage_levels(account_id, readings)
    additions: dict[tuple[str, str], int] = defaultdict(int)
    new_levels = []
    recompute: dict[str, int] = {}
    for tenant_id, tenant_readings in readings.items():
        tenant_readings.sort()
        level, since = levels.get(tenant_id, (0, None))
        for occurred_at_us, quantity in tenant_readings:
            if since is not None and occurred_at_us < since:
                recompute[tenant_id] = min(recompute.get(tenant_id, occurred_at_us), occurred_at_us)
                continue
            if since is not None:
                for label, byte_us in usage.spread_level(
                    level, since, occurred_at_us, _period_bounds(since, occurred_at_us)
                ):
                    additions[(label, tenant_id)] += byte_us
            level, since = quantity, occurred_at_us
        new_levels.append((account_id, tenant_id, level, since))
    store.add_byte_us(
        [(account_id, label, tenant, Decimal(v)) for (label, tenant), v in additions.items()]
    )
    store.set_storage_levels([row for row in new_levels if row[3] is not None])  # type: ignore[misc]  # no None: filtered
    for tenant_id, from_us in recompute.items():
        _recompute_storage(store, account_id, tenant_id, from_us)


def _recompute_storage(store: UsageStore, account_id: str, tenant_id: str, from_us: int) -> None:
    start = Period.containing(usage.from_us(from_us))
    start_us = usage.to_us(start.start)
    series = store.storage_readings(account_id, tenant_id, start_us)
    totals: dict[str, int] = defaultdict(int)
    last_us = series[-1][0]
    for label, _, _ in _period_bounds(start_us, last_us + 1):
        totals[label] = 0
    for (t0, level), (t1, _) in itertools.pairwise(series):
        for label, byte_us in usage.spread_level(
            level, max(t0, start_us), t1, _period_bounds(max(t0, start_us), t1)
        ):
            totals[label] += byte_us
    store.set_byte_us([(account_id, label, tenant_id, Decimal(v)) for label, v in totals.items()])
    store.set_storage_levels([(account_id, tenant_id, series[-1][1], last_us)])


def _period_bounds(from_us: int, to_us: int) -> list[tuple[str, int, int]]:
    period = Period.containing(usage.from_us(from_us))
    bounds = []
    while True:
        start_us, end_us = usage.to_us(period.start), usage.to_us(period.end)
        if start_us >= to_us:
            break
        bounds.append((period.label, start_us, end_us))
        period = period.next()
    return bounds
