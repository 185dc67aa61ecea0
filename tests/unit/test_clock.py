"""One clock: nothing in ``src/`` reads the wall clock except ``billing_svc/clock.py``."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from billing_svc.clock import FixedClock, SystemClock

SRC = Path(__file__).resolve().parents[2] / "src" / "billing_svc"
CLOCK_MODULE = SRC / "clock.py"

# Calls that read the wall clock. time.monotonic / perf_counter measure durations and are fine.
_WALL_CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "localtime"),
    ("time", "gmtime"),
    ("time", "ctime"),
    ("func", "now"),
    ("func", "current_timestamp"),
    ("func", "localtimestamp"),
}
_WALL_CLOCK_NAMES = {("time", "time"), ("time", "time_ns"), ("datetime", "now")}
_SQL_NOW = (
    "current_timestamp",
    "now()",
    "localtimestamp",
    "clock_timestamp",
    "datetime('now')",
    "strftime('%s','now')",
)


def _wall_clock_reads(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    where = str(path).removeprefix(f"{SRC}/")
    imported: dict[str, tuple[str, str]] = {}  # "from time import time as t": t -> time.time
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("time", "datetime"):
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                owner = func.value
                owner_name = (
                    owner.id
                    if isinstance(owner, ast.Name)
                    else owner.attr
                    if isinstance(owner, ast.Attribute)
                    else ""
                )
                if (owner_name, func.attr) in _WALL_CLOCK_CALLS:
                    found.append(f"{where}:{node.lineno} {owner_name}.{func.attr}()")
            elif isinstance(func, ast.Name) and imported.get(func.id) in _WALL_CLOCK_NAMES:
                found.append(f"{where}:{node.lineno} {func.id}()")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.lower().replace(" ", "")
            if any(marker.replace(" ", "") in text for marker in _SQL_NOW):
                found.append(f"{where}:{node.lineno} SQL now: {node.value!r}")
    return found


def test_no_module_but_the_clock_reads_the_wall_clock() -> None:
    sources = [p for p in SRC.rglob("*.py") if p != CLOCK_MODULE and "generated" not in p.parts]
    assert len(sources) > 50  # the scan sees the code base
    reads = [read for path in sources for read in _wall_clock_reads(path)]
    assert reads == [], (
        "read the time from the injected clock (db.clock, ctx.now, "
        f"storage.db.clock_of(session)), not the wall clock: {reads}"
    )


@pytest.mark.parametrize(
    "source",
    [
        "import datetime\nx = datetime.datetime.now(datetime.UTC)\n",
        "from datetime import datetime, UTC\nx = datetime.now(UTC)\n",
        "from datetime import datetime\nx = datetime.utcnow()\n",
        "import time\nx = time.time()\n",
        "from time import time\nx = time()\n",
        "from time import time_ns as ns\nx = ns()\n",
        "from sqlalchemy import func\nx = func.now()\n",
        'q = "UPDATE t SET at = CURRENT_TIMESTAMP"\n',
    ],
)
def test_the_scan_finds_each_kind_of_wall_clock_read(tmp_path: Path, source: str) -> None:
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert len(_wall_clock_reads(path)) == 1


@pytest.mark.parametrize(
    "source",
    [
        "import time\nx = time.monotonic()\ny = time.perf_counter()\n",
        "from datetime import datetime\nx = datetime.fromtimestamp(0)\n",
        "def f(clock):\n    return clock.now()\n",
    ],
)
def test_durations_and_injected_clocks_are_not_flagged(tmp_path: Path, source: str) -> None:
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert _wall_clock_reads(path) == []


def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert abs((now - datetime.now(UTC)).total_seconds()) < 5


def test_fixed_clock_moves_only_when_told() -> None:
    start = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    clock = FixedClock(start)
    assert clock.now() == clock.now() == start
    clock.advance(timedelta(days=3))
    assert clock.now() == start + timedelta(days=3)
    clock.set(datetime(2026, 4, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == datetime(2026, 4, 1, 0, 0, tzinfo=UTC)
    assert clock.now().tzinfo == UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2026, 3, 10))


def test_deleting_a_test_clock_covers_every_table_of_account_data() -> None:
    """A table with an account_id that DeleteTestClock does not know of would keep a deleted
    clock account's rows (or, with a foreign key, make the delete fail)."""
    from sqlmodel import SQLModel

    from billing_svc.services import test_clocks

    handled_apart = {"account", "audit_record", "outbox_event", "webhook_endpoint", "api_token"}
    covered = {table.__tablename__ for table in test_clocks._BY_ACCOUNT}
    with_account = {t.name for t in SQLModel.metadata.sorted_tables if "account_id" in t.c}
    assert with_account - handled_apart - covered == set()
