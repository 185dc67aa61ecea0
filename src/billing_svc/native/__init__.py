"""The compiled ingestion kernel (``_usage_kernel.c``), when this installation has one.

``load()`` returns the kernel, bound to the SQLite library the ``sqlite3`` module runs on and
probed end to end on a scratch database, or ``None`` with the reason. The service is correct
without it: ingestion then takes the Python path for every batch, which is the reference the
kernel is tested against. The kernel is built by ``pip install`` when a C compiler is found
(``pyproject.toml``: an optional extension) and can be switched off with
``BILLING_NATIVE_INGESTION=false``.
"""

from __future__ import annotations

import sqlite3
from functools import cache
from types import ModuleType

from billing_svc.domain import usage as rules
from billing_svc.domain.usage import MESSAGE, UsageEventIn

# What the kernel decides by, handed to it at bind(): these constants are the one source.
LIMITS = {
    "max_message_quantity": rules.MAX_MESSAGE_QUANTITY,
    "earliest_seconds": rules.EARLIEST_SECONDS,
    "latest_seconds": rules.LATEST_SECONDS,
    "nanos_out_of_range_us": rules.NANOS_OUT_OF_RANGE_US,
    "before_earliest_us": rules.BEFORE_EARLIEST_US,
    "not_before_latest_us": rules.NOT_BEFORE_LATEST_US,
}

# The probe's table: the same column order as usage_event, in memory.
_PROBE_TABLE = ("CREATE TABLE probe (event_id TEXT, account_id TEXT, tenant_id TEXT, "
                "partner_id TEXT, kind INT, quantity INT, occurred_at_us INT, period TEXT, "
                "late INT, received_at_us INT, PRIMARY KEY (account_id, event_id)) WITHOUT ROWID")
_PROBE_INSERT = "INSERT INTO probe VALUES (?,?,?,?,?,?,?,?,?,?)"


@cache
def load() -> tuple[ModuleType | None, str]:
    """``(kernel, "")`` when the kernel is usable here, else ``(None, why not)``."""
    try:
        from billing_svc.native import _usage_kernel  # type: ignore[attr-defined]  # C extension, no stub
    except ImportError as exc:
        return None, f"not built ({exc}); reinstall with a C compiler present to build it"
    import _sqlite3

    try:
        _usage_kernel.bind(getattr(_sqlite3, "__file__", None), sqlite3.Connection,
                           UsageEventIn, sqlite3.IntegrityError, sqlite3.OperationalError,
                           LIMITS)
        _probe(_usage_kernel)
    except Exception as exc:
        return None, f"its probe failed: {exc!r}"
    return _usage_kernel, ""


def _probe(kernel: ModuleType) -> None:
    """Decode, check and insert a two-event batch, and read it back through Python's sqlite3."""
    from as2aas.billing.v1 import usage_service_pb2 as pb

    stamp = 1_750_000_000
    request = pb.StreamUsageRequest(batch_id="probe", events=[
        pb.UsageEvent(event_id=f"e{i}", account_id="acc", tenant_id="ten", partner_id="prt",
                      kind=MESSAGE,  # type: ignore[arg-type]  # the wire enum's number
                      quantity=i + 1, occurred_at={"seconds": stamp})
        for i in range(2)])
    batch = kernel.decode(request.SerializeToString())
    expected = [UsageEventIn(f"e{i}", "acc", "ten", "prt", MESSAGE, i + 1, stamp * 1_000_000)
                for i in range(2)]
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
