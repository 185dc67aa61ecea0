"""SQLite's one writer: checkpoints off the writers' path, a WAL that stays bounded, and periodic
jobs that take the write lock only when they have something to write."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from billing_svc.clock import SYSTEM_CLOCK
from billing_svc.domain import events
from billing_svc.services import accounts, deliveries
from billing_svc.services.context import Caller, RequestContext, system_context
from billing_svc.storage import outbox
from billing_svc.storage.checkpoint import Checkpointer
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade
from tests.support import on_postgres

pytestmark = pytest.mark.skipif(on_postgres(), reason="SQLite's write lock and WAL")

PAGE = 4096
FRAME = PAGE + 24  # a WAL frame: its header and one page
ADMIN_CTX = RequestContext(Caller("test", frozenset({"admin"})))


def write_transactions(path: Path, count: int, checkpointer: Checkpointer) -> int:
    """``count`` back-to-back transactions of ~22 pages each; the WAL's largest size."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    for pragma in checkpointer.writer_pragmas():
        connection.execute(pragma)
    connection.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")
    largest = 0
    for _ in range(count):
        checkpointer.before_write()
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO t (body) VALUES (?)", [(os.urandom(3000),) for _ in range(20)]
        )
        connection.execute("COMMIT")
        checkpointer.committed()
        largest = max(largest, os.path.getsize(f"{path}-wal"))
    connection.close()
    return largest


class SlowDiskCheckpointer(Checkpointer):
    """Checkpoints that take 20 ms longer, as on a busy disk or with the thread starved of CPU:
    the writer commits many times while one runs."""

    @staticmethod
    def _checkpoint(connection: sqlite3.Connection) -> None:
        time.sleep(0.02)
        Checkpointer._checkpoint(connection)


@pytest.mark.parametrize("kind", [Checkpointer, SlowDiskCheckpointer])
def test_the_wal_stays_bounded_however_fast_the_writer_commits(
    tmp_path: Path, kind: type[Checkpointer]
) -> None:
    path = tmp_path / "busy.db"
    checkpointer = kind(str(path), wal_limit_bytes=64 * FRAME)
    try:
        largest = write_transactions(path, 300, checkpointer)
    finally:
        checkpointer.stop()
    # ~22 frames per transaction and 300 transactions: ~6,600 frames without restarts. With
    # them: the limit, plus the transaction that crossed it.
    assert largest <= (64 + 25) * FRAME + 32, largest // FRAME


def test_stopping_leaves_every_commit_in_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "stop.db"
    checkpointer = Checkpointer(str(path))
    try:
        write_transactions(path, 30, checkpointer)
    finally:
        checkpointer.stop()
    copy = tmp_path / "copy.db"  # the database file alone, without its WAL
    shutil.copyfile(path, copy)
    connection = sqlite3.connect(copy)
    try:
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (30 * 20,)
    finally:
        connection.close()


def test_the_servers_database_checkpoints_in_its_own_thread(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/server.db", background_checkpoints=True)
    assert db.checkpointer is not None
    try:
        with db.write() as session:
            pragmas = session.connection().exec_driver_sql
            assert pragmas("PRAGMA wal_autocheckpoint").scalar() == 0
            assert pragmas("PRAGMA temp_store").scalar() == 2  # MEMORY: savepoint journals
        with db.read() as session:
            assert session.connection().exec_driver_sql("PRAGMA temp_store").scalar() == 0
    finally:
        db.dispose()
    assert not db.checkpointer._thread.is_alive()


# --- periodic jobs ----------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/jobs.db")
    upgrade(database)
    yield database
    database.dispose()


def write_transactions_of(db: Database, job) -> int:  # type: ignore[no-untyped-def]
    begun = []
    listener = lambda connection: begun.append(connection)  # noqa: E731
    event.listen(db.engine, "begin", listener)
    try:
        job()
    finally:
        event.remove(db.engine, "begin", listener)
    return len(begun)


def dispatcher_step(db: Database) -> deliveries.Step:
    return deliveries.step(
        db,
        "test-dispatcher",
        [],
        lease=timedelta(seconds=60),
        claim_limit=10,
        busy={},
        per_endpoint=4,
        schedule=(5.0,),
        disable_after=timedelta(days=5),
    )


def test_an_idle_dispatcher_takes_no_write_lock(db: Database) -> None:
    assert write_transactions_of(db, lambda: dispatcher_step(db)) == 0
    with db.write() as session:  # a change's event, waiting in the outbox to be fanned out
        outbox.enqueue(
            session,
            events.usage_threshold(
                account_id="acc_x",
                threshold_percentage=75,
                current_usage=3750,
                plan_limit=5000,
                period="2026-11",
                occurred_at=SYSTEM_CLOCK.now(),
            ),
        )
    steps: list[deliveries.Step] = []
    assert write_transactions_of(db, lambda: steps.append(dispatcher_step(db))) == 1
    assert steps[0].fanned_out >= 1
    assert write_transactions_of(db, lambda: dispatcher_step(db)) == 0


def test_idle_scheduler_jobs_take_no_write_lock(db: Database) -> None:
    trials = lambda: accounts.end_due_trials(db, system_context("trials"))  # noqa: E731
    changes = lambda: accounts.apply_period_end_changes(  # noqa: E731
        db, system_context("period_end_changes")
    )
    assert write_transactions_of(db, trials) == 0
    assert write_transactions_of(db, changes) == 0
    # A trial that ended 30 days ago (an imported customer) is due: one write ends it.
    accounts.create_account(
        db,
        ADMIN_CTX,
        name="Old",
        plan_id="startup",
        billing_interval="monthly",
        skip_trial=False,
        start_time=SYSTEM_CLOCK.now() - timedelta(days=60),
        usage_thresholds=(),
        key=None,
    )
    ended: list[int] = []
    assert write_transactions_of(db, lambda: ended.append(trials())) == 1
    assert ended == [1]
    assert write_transactions_of(db, trials) == 0
