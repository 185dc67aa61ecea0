"""Engines and transactions for SQLite (embedded default) and PostgreSQL (production, replicas).

Use ``db.write()`` for a transaction that changes state and ``db.read()`` for one that only reads.
On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` (so two writers never deadlock on a
lock upgrade) and writers of this process queue on a lock instead of spinning on ``SQLITE_BUSY``;
readers use their own connections and never wait for writers (WAL). With
``background_checkpoints`` (the server) a thread of its own checkpoints the WAL after every commit,
so that writers never pay for it (``storage/checkpoint.py``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, create_engine

from billing_svc import native
from billing_svc.clock import SYSTEM_CLOCK, Clock
from billing_svc.domain.errors import Unavailable
from billing_svc.operator_errors import OperatorError
from billing_svc.storage.checkpoint import Checkpointer
from billing_svc.storage.event_index import USAGE_INDEX_KEY, EventIndex

SQLITE_BUSY_TIMEOUT_MS = 30_000


class FairLock:
    """A lock its waiters get in the order they asked for it: ``release`` hands it to the first
    waiter. ``threading.Lock`` does not: the ingestion writer releases and at once asks again
    for its next group, and got it back before a waiting thread woke, so that the purge's and
    the scheduler's transactions waited ~0.5 s each behind a busy stream (measured in the soak,
    docs/decisions.md "Retention")."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    @property
    def waiting(self) -> int:
        """Threads waiting for the lock."""
        with self._mutex:
            return len(self._waiters)

    def acquire(self) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # released by ``release``: the lock is this thread's from then on

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()  # still held: by the next waiter now
            else:
                self._held = False

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Database:
    """One database: its engines and its transaction boundaries."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        background_checkpoints: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.url = make_url(url)
        self.clock = clock  # the composition's one clock; everything holding the db reads it
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._write_lock = FairLock() if self.is_sqlite else None
        self.checkpointer: Checkpointer | None = None
        # SQLite's exactly-once index of raw usage events (storage/event_index.py): this
        # Database's, in this process.
        self.usage_index: EventIndex | None = None
        if self.is_sqlite:
            # Before this database's first connection: the ingestion kernel's import adds to
            # every connection opened after it the SQL function it finds the connection's
            # sqlite3 handle by (billing_svc.native, docs/decisions.md).
            native.load()
            self.usage_index = EventIndex()
            on_disk = bool(self.url.database) and self.url.database != ":memory:"
            if on_disk:
                folder = Path(self.url.database).parent  # type: ignore[arg-type]  # on_disk: the URL names a file
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise OperatorError(
                        f"cannot create {folder}, the SQLite database's directory "
                        f"(BILLING_DATABASE_URL): {exc.strerror}"
                    ) from None
                if background_checkpoints:
                    self.checkpointer = Checkpointer(self.url.database)  # type: ignore[arg-type]  # on_disk: the URL names a file
            self.engine = self._sqlite_engine(immediate=True)
            self.read_engine = self._sqlite_engine(immediate=False)
        else:
            self.engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                pool_recycle=1800,
            )
            self.read_engine = self.engine

    def _sqlite_engine(self, *, immediate: bool) -> Engine:
        engine = create_engine(
            self.url,
            connect_args={
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "isolation_level": None,
            },
            pool_size=8,
            max_overflow=8,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: an acknowledged commit survives power loss, not only a process crash.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if immediate:
                record.info[USAGE_INDEX_KEY] = self.usage_index
                # Savepoint journals (one per usage batch) in memory: spilled to a temporary
                # file past 64 KiB, they cost ingestion ~20 % (measured).
                cursor.execute("PRAGMA temp_store=MEMORY")
                for pragma in self.checkpointer.writer_pragmas() if self.checkpointer else ():
                    cursor.execute(pragma)
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A read-write transaction: commits when the block ends, rolls back if it raises."""
        lock, checkpointer, index = self._write_lock, self.checkpointer, self.usage_index
        if lock is not None:
            lock.acquire()
        try:
            if checkpointer is not None:
                checkpointer.before_write()
            if index is not None:
                index.begin()
            try:
                with (
                    _translate_errors(),
                    Session(
                        self.engine, expire_on_commit=False, info={"clock": self.clock}
                    ) as session,
                    session.begin(),
                ):
                    yield session
            except BaseException:
                if index is not None:
                    index.rolled_back()
                raise
            if index is not None:
                index.committed()  # only now: the COMMIT returned
            if checkpointer is not None:
                checkpointer.committed()
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (a consistent snapshot on both databases)."""
        with (
            _translate_errors(),
            Session(
                self.read_engine, expire_on_commit=False, info={"clock": self.clock}
            ) as session,
            session.begin(),
        ):
            yield session

    def warm_usage_index(self) -> int:
        """Read the raw usage log into this process's index before traffic (SQLite; 0
        elsewhere): the first write transaction then reads only what came after."""
        if self.usage_index is None:
            return 0
        assert self._write_lock is not None  # SQLite
        with self._write_lock, self.read_engine.connect() as connection:
            driver = connection.connection.driver_connection
            added = self.usage_index.warm(driver)  # type: ignore[arg-type]  # SQLite: a sqlite3.Connection
            connection.rollback()
            return added

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
        if self.checkpointer is not None:
            self.checkpointer.stop()


def clock_of(session: Session) -> Clock:
    """The clock of the ``Database`` that opened ``session``: storage helpers get a session, not
    the database."""
    return session.info.get("clock") or SYSTEM_CLOCK


@contextmanager
def _translate_errors() -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        if getattr(exc, "connection_invalidated", False) or _is_connection_error(exc):
            raise Unavailable("the database is unreachable right now; retry shortly") from exc
        raise
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable("the database connection was lost; retry shortly") from exc
        raise


def _is_connection_error(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return any(
        marker in text
        for marker in (
            "connection",
            "server closed",
            "terminating",
            "could not connect",
            "database is locked",
        )
    )
