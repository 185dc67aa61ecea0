"""The ingestion codec: how usage request bytes become batches, and plain batches become rows.

Two implementations of one interface, ``UsageCodec``, so that the servicer, the ingestion service
and the store never ask which one is in use: ``CompiledCodec`` (the C kernel, ``_usage_kernel.c``)
decodes the plain case without a Python object per event and inserts it on SQLite; ``PythonCodec``
decodes nothing itself, so every batch is read by the protobuf library and stored event by event.
``codec(enabled)`` picks one at start and says why when it is not the compiled one.

``load()`` returns the kernel, bound to the SQLite library the ``sqlite3`` module runs on and
probed end to end on a scratch database, or ``None`` with the reason. The service is correct
without it: ingestion then takes the Python path for every batch, which is the reference the
kernel is tested against. The kernel is built by ``pip install`` when a C compiler is found
(``pyproject.toml``: an optional extension) and can be switched off with
``BILLING_NATIVE_INGESTION=false``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import cache
from types import ModuleType
from typing import Any, Protocol

from billing_svc.domain.usage import MESSAGE, UsageEventIn


class CompactBatch(Protocol):
    """A batch a codec decoded itself (the kernel's ``Batch``): its events stay in the request's
    bytes until ``events()`` is asked for (the Python path)."""

    @property
    def batch_id(self) -> str: ...

    def __len__(self) -> int: ...

    def events(self) -> list[UsageEventIn]: ...

    def plain(self, oldest_us: int, newest_us: int, /) -> bool:
        """Is every event a message event that check_shape() accepts in this window?"""

    def references(self) -> tuple[set[str], set[tuple[str, str]], set[tuple[str, str]]]:
        """(accounts, {(account, tenant)}, {(account, partner)}) of a plain batch."""

    def hourly(self) -> list[tuple[str, int, str, str, int]]:
        """(account, hour_us, tenant, partner, messages) of a plain batch."""


class UsageCodec(Protocol):
    """What ingestion needs from a codec. ``decode`` returning None is not an error: the
    protobuf library then decodes the bytes, or says what is wrong with them."""

    name: str

    def count_events(self, raw: bytes, *, stop_after: int) -> int | None:
        """The request's top-level events, read without decoding them: an exact count, or (when
        it stops early) a number above ``stop_after`` that ``counts_exactly`` says is a bound;
        None when they cannot be more than ``stop_after`` or the bytes cannot be read."""

    @property
    def counts_exactly(self) -> bool: ...

    def decode(self, raw: bytes) -> CompactBatch | None: ...

    def insert(
        self,
        connection: sqlite3.Connection,
        sql_one: str,
        sql_many: str,
        batches: Sequence[CompactBatch],
        received_at_us: int,
        index: Any = None,
    ) -> list[bool]:
        """Plain batches this codec decoded, in order, each whole under a savepoint, up to the
        first that meets an existing key (False: nothing of it stored): one ``index`` (the
        kernel's ``Index``, storage.event_index) may hold, or the table's primary key holds."""

    def copy_rows(
        self, batches: Sequence[CompactBatch], received_at_us: int, bucket: int
    ) -> tuple[bytes, bytes]:
        """Plain batches this codec decoded as PostgreSQL COPY text data: the rows of
        ``usage_event_key (account_id, event_id, occurred_at_us, bucket)`` and of ``usage_event
        (event_id, …, received_at_us, bucket)`` (storage.usage), one per event, in order."""


class PythonCodec:
    """The reference: decodes nothing itself (the protobuf library reads every batch), so it
    never has a batch to insert."""

    name = "python"
    counts_exactly = False
    _SMALLEST_EVENT = 2  # bytes: its tag and a zero length

    def count_events(self, raw: bytes, *, stop_after: int) -> int | None:
        if len(raw) <= self._SMALLEST_EVENT * stop_after:
            return None
        return count_events(raw, stop_after=stop_after)

    def decode(self, raw: bytes) -> CompactBatch | None:
        return None

    def insert(
        self,
        connection: sqlite3.Connection,
        sql_one: str,
        sql_many: str,
        batches: Sequence[CompactBatch],
        received_at_us: int,
        index: Any = None,
    ) -> list[bool]:
        if batches:
            raise TypeError("PythonCodec decodes no batch, so it has none to insert")
        return []

    def copy_rows(
        self, batches: Sequence[CompactBatch], received_at_us: int, bucket: int
    ) -> tuple[bytes, bytes]:
        if batches:
            raise TypeError("PythonCodec decodes no batch, so it has none to copy")
        return b"", b""


class CompiledCodec:
    """The C kernel, bound to the SQLite library the sqlite3 module runs on (``load()``)."""

    name = "compiled"
    counts_exactly = True

    def __init__(self, kernel: ModuleType) -> None:
        self.kernel = kernel
        # Bound once: they run per request. (A C module is untyped: hence the ignores below.)
        self._decode = kernel.decode
        self._count = kernel.count_events
        self._insert = kernel.insert
        self._copy_rows = kernel.copy_rows

    def count_events(self, raw: bytes, *, stop_after: int) -> int | None:
        return self._count(raw)

    def decode(self, raw: bytes) -> CompactBatch | None:
        return self._decode(raw)

    def insert(
        self,
        connection: sqlite3.Connection,
        sql_one: str,
        sql_many: str,
        batches: Sequence[CompactBatch],
        received_at_us: int,
        index: Any = None,
    ) -> list[bool]:
        return self._insert(connection, sql_one, sql_many, list(batches), received_at_us, index)

    def copy_rows(
        self, batches: Sequence[CompactBatch], received_at_us: int, bucket: int
    ) -> tuple[bytes, bytes]:
        return self._copy_rows(list(batches), received_at_us, bucket)


PYTHON = PythonCodec()


def codec(enabled: bool = True) -> tuple[UsageCodec, str]:
    """The codec to ingest with: the compiled one when it is built, passes its probe and is not
    switched off, else ``PYTHON`` and why (``""`` for the compiled one)."""
    if not enabled:
        return PYTHON, "switched off (BILLING_NATIVE_INGESTION=false)"
    compiled = _compiled()
    if compiled is None:
        return PYTHON, load()[1]
    return compiled, ""


@cache
def _compiled() -> CompiledCodec | None:
    kernel, _ = load()
    return None if kernel is None else CompiledCodec(kernel)


def count_events(raw: bytes, *, stop_after: int) -> int:
    """The ``events`` fields at the request's top level, counted until there are more than
    ``stop_after``: the kernel's count_events in Python (about 0.3 us an event). Bytes it cannot
    read count what was read so far; the protobuf library then says why."""
    count, at, end = 0, 0, len(raw)
    try:
        while at < end and count <= stop_after:
            tag, at = _varint(raw, at)
            wire_type = tag & 7
            if wire_type == 2:
                length, at = _varint(raw, at)
                at += length
                count += tag == 0x12  # field 2, events
            elif wire_type == 0:
                _, at = _varint(raw, at)
            elif wire_type in (1, 5):
                at += 8 if wire_type == 1 else 4
            else:
                break
    except (IndexError, ValueError):
        pass
    return count


def _varint(raw: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("a varint of more than ten bytes")


# The probe's table: the same column order as usage_event, in memory.
_PROBE_TABLE = (
    "CREATE TABLE probe (event_id TEXT, account_id TEXT, tenant_id TEXT, "
    "partner_id TEXT, kind INT, quantity INT, occurred_at_us INT, period TEXT, "
    "late INT, received_at_us INT, PRIMARY KEY (account_id, event_id)) WITHOUT ROWID"
)
_PROBE_INSERT = "INSERT INTO probe VALUES (?,?,?,?,?,?,?,?,?,?)"
_PROBE_LOG = (
    "CREATE TABLE probe_log (log_id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT, "
    "account_id TEXT, tenant_id TEXT, partner_id TEXT, kind INT, quantity INT, "
    "occurred_at_us INT, period TEXT, late INT, received_at_us INT)"
)
_PROBE_LOG_INSERT = (
    "INSERT INTO probe_log (event_id, account_id, tenant_id, partner_id, kind, quantity, "
    "occurred_at_us, period, late, received_at_us) VALUES (?,?,?,?,?,?,?,?,?,?)"
)


@cache
def load() -> tuple[ModuleType | None, str]:
    """``(kernel, "")`` when the kernel is usable here, else ``(None, why not)``."""
    try:
        from billing_svc.native import _usage_kernel  # type: ignore[attr-defined]  # C extension, no stub
    except ModuleNotFoundError as exc:
        return None, f"not built ({exc}); reinstall with a C compiler present to build it"
    except Exception as exc:  # its module init: SQLite or the limits could not be bound
        return None, f"it could not be loaded: {exc!r}"
    try:
        _probe(_usage_kernel)
    except Exception as exc:
        return None, f"its probe failed: {exc!r}"
    return _usage_kernel, ""


def _probe(kernel: ModuleType) -> None:
    """Decode, check and insert a two-event batch, and read it back through Python's sqlite3."""
    from as2aas.billing.v1 import usage_service_pb2 as pb

    stamp = 1_750_000_000
    request = pb.StreamUsageRequest(
        batch_id="probe",
        events=[
            pb.UsageEvent(
                event_id=f"e{i}",
                account_id="acc",
                tenant_id="ten",
                partner_id="prt",
                kind=MESSAGE,  # type: ignore[arg-type]  # the wire enum's number
                quantity=i + 1,
                occurred_at={"seconds": stamp},
            )
            for i in range(2)
        ],
    )
    batch = kernel.decode(request.SerializeToString())
    expected = [
        UsageEventIn(f"e{i}", "acc", "ten", "prt", MESSAGE, i + 1, stamp * 1_000_000)
        for i in range(2)
    ]
    if batch is None or batch.batch_id != "probe" or batch.events() != expected:
        raise RuntimeError("decode() disagrees with the protobuf library")
    if not batch.plain(stamp * 1_000_000, stamp * 1_000_000):
        raise RuntimeError("plain() refused a plain batch")
    connection = sqlite3.connect(":memory:", isolation_level=None)
    try:
        connection.execute(_PROBE_TABLE)
        connection.execute("BEGIN")
        stored = kernel.insert(connection, _PROBE_INSERT, _PROBE_INSERT, [batch, batch], 7)
        if stored != [True, False]:  # the second time, every key exists
            raise RuntimeError(f"insert() stored the same batch twice or never: {stored}")
        rows = connection.execute("SELECT * FROM probe ORDER BY event_id").fetchall()
        connection.execute("ROLLBACK")
    finally:
        connection.close()
    if rows != [(*event, "2025-06", 0, 7) for event in expected]:
        raise RuntimeError(f"insert() wrote {rows!r}")
    _probe_index(kernel, batch)


def _probe_index(kernel: ModuleType, batch: CompactBatch) -> None:
    """The dedupe index with the log layout (storage.event_index): a stored batch's keys are
    pending, then committed, and the same batch again meets them."""
    import os

    connection = sqlite3.connect(":memory:", isolation_level=None)
    try:
        connection.execute(_PROBE_LOG)
        index = kernel.Index(os.urandom(16))
        connection.execute("BEGIN")
        stored = kernel.insert(connection, _PROBE_LOG_INSERT, _PROBE_LOG_INSERT, [batch], 7, index)
        pending = index.pending
        index.commit()
        again = kernel.insert(connection, _PROBE_LOG_INSERT, _PROBE_LOG_INSERT, [batch], 7, index)
        connection.execute("ROLLBACK")
    finally:
        connection.close()
    if stored != [True] or again != [False] or pending != 2 or index.probe("acc", "e1") != [2]:
        raise RuntimeError(f"the index disagrees: {stored}, {again}, {pending} pending")
