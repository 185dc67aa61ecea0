"""SQLite WAL checkpoints in a thread of their own, off the writers' path.

In WAL mode SQLite copies committed pages back into the database file (a checkpoint) from the
connection that commits, once the WAL holds 1,000 pages: a group of usage batches paid for it in
its commit (about a fifth of the ingestion writer's time, measured). The service's write
connections leave that to this thread instead, which checkpoints after every commit in PASSIVE
mode (it blocks neither readers nor writers) while the writer goes on with the next transaction.

The WAL only starts over from its beginning when a write transaction begins with all of it
checkpointed, which a writer that never pauses does not leave time for. So once the WAL has grown
past ``wal_limit_frames``, the next write transaction first waits until everything committed is
checkpointed, and then starts the WAL over: it stays bounded under any load.
"""

from __future__ import annotations

import sqlite3
import threading

import structlog

log = structlog.get_logger("billing_svc.storage")

DEFAULT_WAL_LIMIT_FRAMES = 16_384  # 64 MiB of 4 KiB pages
_WAIT_SECONDS = 30.0  # a checkpoint that takes longer is logged, and the writer goes on


class Checkpointer:
    """Checkpoints one SQLite database file, after every ``committed()``."""

    def __init__(self, path: str, *, wal_limit_frames: int = DEFAULT_WAL_LIMIT_FRAMES) -> None:
        self._path = path
        self._limit = wal_limit_frames
        self._changed = threading.Condition()
        self._commits = 0  # write transactions committed so far
        self._covered = 0  # of those, the ones the last finished checkpoint included
        self._wal_frames = 0  # the WAL's length at the last checkpoint
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer",
                                        daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """A write transaction committed: its pages are to be checkpointed."""
        with self._changed:
            self._commits += 1
            self._changed.notify_all()

    def before_write(self) -> None:
        """Call before a write transaction begins: when the WAL is past its limit, wait until
        every commit so far is checkpointed, so that this transaction starts the WAL over."""
        with self._changed:
            if self._wal_frames <= self._limit or not self._thread.is_alive():
                return
            target = self._commits
            if not self._changed.wait_for(lambda: self._covered >= target or self._stopping,
                                          timeout=_WAIT_SECONDS):
                log.warning("checkpoint_slow", wal_frames=self._wal_frames,
                            waited_seconds=_WAIT_SECONDS)

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
        connection = sqlite3.connect(self._path, isolation_level=None, timeout=_WAIT_SECONDS,
                                     check_same_thread=False)
        try:
            while True:
                with self._changed:
                    self._changed.wait_for(
                        lambda: self._commits > self._covered or self._stopping)
                    target, stopping = self._commits, self._stopping
                wal_frames = self._checkpoint(connection)
                with self._changed:
                    self._covered = target
                    if wal_frames is not None:
                        self._wal_frames = wal_frames
                    self._changed.notify_all()
                if stopping:
                    return
        finally:
            connection.close()

    @staticmethod
    def _checkpoint(connection: sqlite3.Connection) -> int | None:
        """One PASSIVE checkpoint; the WAL's length in frames, or None if it failed."""
        try:
            _, wal_frames, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return int(wal_frames)
        except sqlite3.Error as exc:  # e.g. a full disk: logged, tried again after the next commit
            log.warning("checkpoint_failed", error=str(exc))
            return None
