"""SQLite WAL checkpoints in a thread of their own, off the writers' path.

In WAL mode SQLite copies committed pages back into the database file (a checkpoint) from the
connection that commits, once the WAL holds 1,000 pages: a group of usage batches paid for it in
its commit (about a fifth of the ingestion writer's time, measured). The service's write
connections leave that to this thread instead, which checkpoints after every commit in PASSIVE
mode (it blocks neither readers nor writers) while the writer goes on with the next transaction.

The WAL only starts over from its beginning when a write transaction begins with all of it
checkpointed, which a writer that never pauses does not leave time for. So once the WAL is longer
than ``wal_limit_bytes``, the next write transaction first waits until everything committed is
checkpointed, and then starts the WAL over: it stays bounded under any load.

The writer measures the WAL itself, from the file's size, however far behind this thread is:
``journal_size_limit`` (set by ``writer_pragmas``) has SQLite cut the file back to the limit when
the WAL starts over, so the file is longer than the limit only while the WAL is.
"""

from __future__ import annotations

import os
import sqlite3
import threading

import structlog

log = structlog.get_logger("billing_svc.storage")

DEFAULT_WAL_LIMIT_BYTES = 64 * 1024 * 1024
_WAIT_SECONDS = 30.0  # a checkpoint that takes longer is logged, and the writer goes on


class Checkpointer:
    """Checkpoints one SQLite database file, after every ``committed()``."""

    def __init__(self, path: str, *, wal_limit_bytes: int = DEFAULT_WAL_LIMIT_BYTES) -> None:
        self._path = path
        self._wal_path = f"{path}-wal"
        self._limit = wal_limit_bytes
        self._changed = threading.Condition()
        self._commits = 0  # write transactions committed so far
        self._covered = 0  # of those, the ones the last finished checkpoint included
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        self._thread.start()

    def writer_pragmas(self) -> tuple[str, ...]:
        """The settings of a connection that writes to this database."""
        return (
            "PRAGMA wal_autocheckpoint=0",  # this thread's job
            f"PRAGMA journal_size_limit={self._limit}",
        )

    def committed(self) -> None:
        """A write transaction committed: its pages are to be checkpointed."""
        with self._changed:
            self._commits += 1
            self._changed.notify_all()

    def before_write(self) -> None:
        """Call before a write transaction begins: when the WAL is past its limit, wait until
        every commit so far is checkpointed, so that this transaction starts the WAL over."""
        try:
            wal_bytes = os.stat(self._wal_path).st_size
        except FileNotFoundError:
            return
        if wal_bytes <= self._limit:
            return
        with self._changed:
            if not self._thread.is_alive():
                return
            target = self._commits
            if not self._changed.wait_for(
                lambda: self._covered >= target or self._stopping, timeout=_WAIT_SECONDS
            ):
                log.warning("checkpoint_slow", wal_bytes=wal_bytes, waited_seconds=_WAIT_SECONDS)

    def stop(self) -> None:
        """Checkpoint what is left and end the thread."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join()

    def _run(self) -> None:
        try:
            self._checkpoint_after_commits()
        except Exception:  # never expected: writers then stop waiting, and the WAL grows
            log.exception("checkpointer_stopped", path=self._path)

    def _checkpoint_after_commits(self) -> None:
        connection = sqlite3.connect(
            self._path, isolation_level=None, timeout=_WAIT_SECONDS, check_same_thread=False
        )
        try:
            while True:
                with self._changed:
                    self._changed.wait_for(lambda: self._commits > self._covered or self._stopping)
                    target, stopping = self._commits, self._stopping
                self._checkpoint(connection)
                with self._changed:
                    self._covered = target
                    self._changed.notify_all()
                if stopping:
                    return
        finally:
            connection.close()

    @staticmethod
    def _checkpoint(connection: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint."""
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # e.g. a full disk: logged, tried again after the next commit
            log.warning("checkpoint_failed", error=str(exc))
