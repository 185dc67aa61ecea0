"""The compiled ingestion kernel against its Python references (billing_svc.native).

Each promise of ``_usage_kernel.c`` is checked against the code it stands in for, on generated
batches: ``decode`` against the protobuf library and ``events_in``, ``plain`` against
``check_shape``, ``references``/``hourly`` against plain Python over the decoded events, the
period label against ``period_label_of``. Storing is checked in
tests/integration/test_native_ingestion.py (it needs a database).
"""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
from collections import defaultdict
from types import ModuleType

import pytest
from as2aas.billing.v1 import usage_service_pb2 as pb
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from billing_svc import native
from billing_svc.api.usage import decode_request, events_in
from billing_svc.domain.errors import InvalidArgument
from billing_svc.domain.usage import (
    LATEST_SECONDS,
    MAX_MESSAGE_QUANTITY,
    MAX_STORAGE_BYTES,
    MESSAGE,
    UsageBatch,
    accept_window,
    check_shape,
    hour_of,
    period_label_of,
)

KERNEL, WHY_NOT = native.load()
COMPILED = native.CompiledCodec(KERNEL) if KERNEL is not None else None
pytestmark = pytest.mark.skipif(KERNEL is None, reason=f"the ingestion kernel: {WHY_NOT}")

NOW_US = 1_795_600_000_000_000  # 2026-11-25
RETENTION_DAYS = 400
WINDOW = accept_window(NOW_US, RETENTION_DAYS)
DAY_US = 86_400 * 10**6
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


# --- generated requests ----------------------------------------------------------------------

ids = st.one_of(
    st.sampled_from(["acc_a", "acc_b", "ten_1", "ten_2", "prt_x", ""]),
    st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=126), max_size=12),
    st.text(max_size=6),  # any Unicode, NUL included: the protobuf path's case
)
event_ids = st.one_of(
    st.text(alphabet="abcdef-0123456789", min_size=1, max_size=20),
    st.text(alphabet="x", min_size=126, max_size=131),  # around the 128-character limit
    ids,
)
INT64 = (-(2**63), 2**63 - 1)
quantities = st.one_of(
    st.integers(-3, 5),
    st.sampled_from(
        [
            MAX_MESSAGE_QUANTITY,
            MAX_MESSAGE_QUANTITY + 1,
            MAX_STORAGE_BYTES,
            MAX_STORAGE_BYTES + 1,
            *INT64,
            INT64[0] + 1,
            INT64[1] - 1,
        ]
    ),
    st.integers(*INT64),
)
seconds = st.one_of(
    st.integers(NOW_US // 10**6 - 401 * 86_400, NOW_US // 10**6 + 600),  # the window's edges
    st.sampled_from(
        [0, 1, -1, 2**42, 2**42 + 1, -(2**42) - 1, LATEST_SECONDS - 1, LATEST_SECONDS, *INT64]
    ),  # the service's range of time, int64's
    st.integers(*INT64),
)
nanos = st.one_of(
    st.integers(0, 999_999_999),
    st.sampled_from([-1, 10**9, 2**31 - 1, -(2**31), 999_999_999]),
    st.integers(-(2**31), 2**31 - 1),
)


@st.composite
def usage_events(draw: st.DrawFn) -> pb.UsageEvent:
    event = pb.UsageEvent(
        event_id=draw(event_ids),
        account_id=draw(ids),
        tenant_id=draw(ids),
        partner_id=draw(ids),
        kind=draw(st.sampled_from([0, 1, 1, 1, 2, 3, -1])),
        quantity=draw(quantities),
    )
    if draw(st.booleans()):
        event.occurred_at.seconds = draw(seconds)
        event.occurred_at.nanos = draw(nanos)
    return event


requests = st.builds(
    lambda batch_id, events: pb.StreamUsageRequest(batch_id=batch_id, events=events),
    ids,
    st.lists(usage_events(), max_size=8),
)


@st.composite
def plain_requests(draw: st.DrawFn) -> pb.StreamUsageRequest:
    """Batches the kernel must take whole: well-formed ASCII message events in the window."""
    names = st.text(alphabet="abcdefghjkmnpqrstvwxyz0123456789_", min_size=1, max_size=30)
    events = [
        pb.UsageEvent(
            event_id=draw(st.text(alphabet="abc-0123456789", min_size=1, max_size=128)),
            account_id=draw(st.sampled_from(["acc_a", "acc_b"])),
            tenant_id=draw(names),
            partner_id=draw(st.sampled_from(["", "prt_x", "prt_y"])),
            kind=MESSAGE,
            quantity=draw(st.integers(1, 10**9)),
            occurred_at={
                "seconds": draw(st.integers(WINDOW[0] // 10**6 + 1, WINDOW[1] // 10**6 - 1)),
                "nanos": draw(st.integers(0, 999_999_999)),
            },
        )
        for _ in range(draw(st.integers(0, 40)))
    ]
    return pb.StreamUsageRequest(batch_id=draw(names), events=events)


def reference(raw: bytes) -> tuple[str, list] | None:
    """What the protobuf library makes of ``raw`` (None: it refuses the bytes)."""
    try:
        request = pb.StreamUsageRequest.FromString(raw)
    except DecodeError:
        return None
    return request.batch_id, events_in(request.events)


def unknown_fields(raw: bytes, tag_bytes: bytes) -> bytes:
    """``raw`` with a field this schema does not have appended (a newer producer's)."""
    return raw + tag_bytes


# --- decode -----------------------------------------------------------------------------------


@SETTINGS
@given(requests)
def test_decode_agrees_with_the_protobuf_library(request: pb.StreamUsageRequest) -> None:
    raw = request.SerializeToString()
    batch = KERNEL.decode(raw)
    if batch is not None:  # None leaves the bytes to the protobuf library
        assert (batch.batch_id, batch.events()) == reference(raw)
        assert len(batch) == len(request.events)


@SETTINGS
@given(plain_requests())
def test_decode_takes_every_plain_batch(request: pb.StreamUsageRequest) -> None:
    raw = request.SerializeToString()
    batch = KERNEL.decode(raw)
    assert batch is not None
    assert (batch.batch_id, batch.events()) == reference(raw)
    assert batch.plain(*WINDOW)


@SETTINGS
@given(requests, st.data())
@example(pb.StreamUsageRequest(batch_id="b"), None)
def test_damaged_bytes_are_refused_or_read_as_the_protobuf_library_reads_them(
    request: pb.StreamUsageRequest, data: st.DataObject | None
) -> None:
    raw = bytearray(request.SerializeToString())
    if data is not None and raw:
        for _ in range(data.draw(st.integers(1, 3))):
            at = data.draw(st.integers(0, len(raw) - 1))
            raw[at] = data.draw(st.integers(0, 255))
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    batch = KERNEL.decode(bytes(raw))
    if batch is not None:
        assert (batch.batch_id, batch.events()) == reference(bytes(raw))


@pytest.mark.parametrize(
    "extra",
    [
        b"\x48\x07",  # field 9, varint
        b"\x51" + b"\x00" * 8,  # field 10, fixed64
        b"\x5a\x03abc",  # field 11, bytes
        b"\x65" + b"\x00" * 4,  # field 12, fixed32
    ],
    ids=["varint", "fixed64", "bytes", "fixed32"],
)
def test_fields_a_newer_producer_adds_are_skipped(extra: bytes) -> None:
    event = pb.UsageEvent(
        event_id="e1",
        account_id="acc_a",
        tenant_id="ten_1",
        kind=MESSAGE,
        quantity=2,
        occurred_at={"seconds": NOW_US // 10**6},
    )
    raw = pb.StreamUsageRequest(batch_id="b", events=[event]).SerializeToString()
    event_raw = event.SerializeToString() + extra
    with_unknown = b"\x0a\x01b" + b"\x12" + bytes([len(event_raw)]) + event_raw + extra
    assert reference(with_unknown) == reference(raw)
    batch = KERNEL.decode(with_unknown)
    assert batch is not None, "an unknown field must not push the batch off the fast path"
    assert batch.events() == reference(raw)[1]  # type: ignore[index]


def varint(value: int, size: int) -> bytes:
    """``value`` as a varint of exactly ``size`` bytes (padded with empty 7-bit groups)."""
    groups = []
    for _ in range(size):
        groups.append(value & 0x7F)
        value >>= 7
    assert value == 0
    return bytes([g | 0x80 for g in groups[:-1]] + [groups[-1]])


def overlong_request(where: str, size: int) -> bytes:
    """A valid one-event request with one tag or length written in ``size`` bytes."""
    stamp = b"\x08" + varint(NOW_US // 10**6, 5)
    stamp_field = (varint(0x3A, size) if where == "timestamp tag" else b"\x3a") + (
        varint(len(stamp), size) if where == "timestamp length" else bytes([len(stamp)])
    )
    event = b"\x0a\x02e1\x12\x05acc_a\x1a\x05ten_1\x28\x01\x30\x02" + stamp_field + stamp
    batch_id = (
        (varint(0x0A, size) if where == "batch_id tag" else b"\x0a")
        + (varint(1, size) if where == "batch_id length" else b"\x01")
        + b"b"
    )
    return (
        batch_id
        + b"\x12"
        + (varint(len(event), size) if where == "event length" else bytes([len(event)]))
        + event
    )


@pytest.mark.parametrize("size", range(1, 11))
@pytest.mark.parametrize(
    "where",
    ["batch_id tag", "batch_id length", "event length", "timestamp tag", "timestamp length"],
)
def test_tags_and_lengths_longer_than_the_protobuf_library_takes_are_left_to_it(
    where: str, size: int
) -> None:
    """The protobuf library reads a tag or a length of at most 5 bytes and calls a longer one
    corrupt: the kernel must never take what it refuses."""
    raw = overlong_request(where, size)
    expected = reference(raw)
    assert (expected is not None) is (size <= 5), "the request is built as intended"
    batch = KERNEL.decode(raw)
    if size <= 5:
        assert batch is not None and (batch.batch_id, batch.events()) == expected
    else:
        assert batch is None


def test_an_oversized_batch_is_refused_before_it_is_decoded() -> None:
    from billing_svc.domain.usage import MAX_BATCH_EVENTS

    raw = b"\x0a\x01b" + b"\x12\x00" * (MAX_BATCH_EVENTS + 1)  # 10,001 empty events
    assert KERNEL.count_events(raw) == MAX_BATCH_EVENTS + 1
    assert KERNEL.count_events(b"\x12\xff") is None  # unreadable: the library says why
    refused = decode_request(COMPILED)(raw)
    assert isinstance(refused, InvalidArgument)
    assert f"{MAX_BATCH_EVENTS + 1} events in one batch" in str(refused)
    # Counted in Python: tests/unit/test_usage_request.py
    python_path = decode_request(native.PYTHON)(raw)
    assert isinstance(python_path, InvalidArgument)
    assert f"more than {MAX_BATCH_EVENTS} events in one batch" in str(python_path)


def test_the_deserializer_turns_bytes_that_are_no_request_into_invalid_argument() -> None:
    for kernel in (COMPILED, native.PYTHON):
        outcome = decode_request(kernel)(b"\x12\xff\x01garbage")
        assert isinstance(outcome, InvalidArgument)
        assert "not a valid usage batch" in str(outcome)
        good = decode_request(kernel)(pb.StreamUsageRequest(batch_id="b").SerializeToString())
        assert isinstance(good, UsageBatch) and good.batch_id == "b"


# --- timestamps -------------------------------------------------------------------------------

NOW_S = NOW_US // 10**6
NANOS_WRONG = "occurred_at.nanos is outside 0 to 999,999,999"


@pytest.mark.parametrize(
    ("seconds", "nanos", "reason"),
    [
        (NOW_S, 0, None),
        (NOW_S, 999_999_999, None),
        (NOW_S, -1, NANOS_WRONG),
        (NOW_S, 10**9, NANOS_WRONG),
        (NOW_S, 2**31 - 1, NANOS_WRONG),  # was read as ~2,147 s later
        (NOW_S, -(2**31), NANOS_WRONG),
        (0, -1, NANOS_WRONG),
        (0, 0, "occurred_at is missing"),  # the epoch reads as unset on the wire
        (-1, 999_999_999, "before 1970-01-01T00:00:00Z"),
        (-(2**63), 0, "before 1970-01-01T00:00:00Z"),
        (LATEST_SECONDS, 0, "not before 9999-01-01T00:00:00Z"),
        (2**63 - 1, 999_999_999, "not before 9999-01-01T00:00:00Z"),
        (2**42 + 1, 0, "not before 9999-01-01T00:00:00Z"),
        (LATEST_SECONDS - 1, 999_999_999, "more than 5 minutes in the future"),
        (1, 0, "older than the 400-day retention window"),
    ],
)
def test_a_timestamp_is_read_alike_both_ways_and_nanos_never_shift_it(
    seconds: int, nanos: int, reason: str | None
) -> None:
    event = pb.UsageEvent(
        event_id="e1",
        account_id="acc_a",
        tenant_id="ten_1",
        kind=MESSAGE,
        quantity=1,
        occurred_at={"seconds": seconds, "nanos": nanos},
    )
    raw = pb.StreamUsageRequest(batch_id="b", events=[event]).SerializeToString()
    batch = KERNEL.decode(raw)
    assert batch is not None, "any int64 seconds and int32 nanos are the kernel's to decode"
    [decoded] = batch.events()
    assert [decoded] == reference(raw)[1]  # type: ignore[index]
    found = check_shape(decoded, NOW_US, RETENTION_DAYS)
    if reason is None:
        assert found is None and batch.plain(*WINDOW)
        assert decoded.occurred_at_us == seconds * 10**6 + nanos // 1000
    else:
        assert found is not None and reason in found
        assert not batch.plain(*WINDOW)


def test_the_kernel_reads_its_limits_from_the_python_constants() -> None:
    from billing_svc.domain import usage as rules

    limits = KERNEL.limits()
    assert set(limits) == {
        "MAX_MESSAGE_QUANTITY",
        "EARLIEST_SECONDS",
        "LATEST_SECONDS",
        "NANOS_OUT_OF_RANGE_US",
        "BEFORE_EARLIEST_US",
        "NOT_BEFORE_LATEST_US",
    }
    assert limits == {name: getattr(rules, name) for name in limits}


def fresh_kernel() -> ModuleType:
    """A second instance of the kernel module, executed now (multi-phase init allows it)."""
    spec = importlib.util.find_spec("billing_svc.native._usage_kernel")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_kernel_module_has_its_own_state_taken_from_the_constants_when_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from billing_svc.domain import usage as rules

    monkeypatch.setattr(rules, "MAX_MESSAGE_QUANTITY", 5)
    small = fresh_kernel()
    monkeypatch.undo()
    assert small is not KERNEL and small.Batch is not KERNEL.Batch
    assert small.limits()["MAX_MESSAGE_QUANTITY"] == 5
    assert KERNEL.limits()["MAX_MESSAGE_QUANTITY"] == MAX_MESSAGE_QUANTITY
    six = pb.StreamUsageRequest(
        batch_id="b",
        events=[
            pb.UsageEvent(
                event_id="e1",
                account_id="acc_a",
                tenant_id="ten_1",
                kind=MESSAGE,
                quantity=6,
                occurred_at={"seconds": NOW_S},
            )
        ],
    ).SerializeToString()
    assert not small.decode(six).plain(*WINDOW)
    assert KERNEL.decode(six).plain(*WINDOW)
    with pytest.raises(TypeError, match="Batch"):  # a batch of one module is not the other's
        small.insert(sqlite3.connect(":memory:"), "SELECT 1", "SELECT 1", [KERNEL.decode(six)], 0)


def test_limits_out_of_the_kernels_range_stop_its_import(monkeypatch: pytest.MonkeyPatch) -> None:
    from billing_svc.domain import usage as rules

    monkeypatch.setattr(rules, "MAX_MESSAGE_QUANTITY", 2**40)
    with pytest.raises(ValueError, match="out of the kernel's range"):
        fresh_kernel()
    monkeypatch.delattr(rules, "LATEST_SECONDS")
    with pytest.raises(AttributeError, match="LATEST_SECONDS"):
        fresh_kernel()


# --- plain, references, hourly ----------------------------------------------------------------


@SETTINGS
@given(st.one_of(requests, plain_requests()))
def test_plain_is_check_shape_for_message_events(request: pb.StreamUsageRequest) -> None:
    batch = KERNEL.decode(request.SerializeToString())
    if batch is None:
        return
    expected = all(
        check_shape(e, NOW_US, RETENTION_DAYS) is None and e.kind == MESSAGE for e in batch.events()
    )
    assert batch.plain(*WINDOW) is expected


@SETTINGS
@given(plain_requests())
def test_references_and_hourly_sums_agree_with_the_events(request: pb.StreamUsageRequest) -> None:
    batch = KERNEL.decode(request.SerializeToString())
    assert batch.plain(*WINDOW)
    events = batch.events()
    sums: dict[tuple, int] = defaultdict(int)
    for e in events:
        sums[(e.account_id, hour_of(e.occurred_at_us), e.tenant_id, e.partner_id)] += e.quantity
    assert batch.references() == (
        {e.account_id for e in events},
        {(e.account_id, e.tenant_id) for e in events},
        {(e.account_id, e.partner_id) for e in events if e.partner_id},
    )
    hourly = batch.hourly()
    assert len(hourly) == len(sums)
    assert {(a, h, t, p): n for a, h, t, p, n in hourly} == sums


@pytest.mark.parametrize(
    ("quantity", "plain"),
    [
        (1, True),
        (10**9, True),
        (10**9 + 1, False),
        (0, False),
        (-1, False),
        (2**63 - 1, False),
        (-(2**63), False),
    ],
)
def test_plain_message_quantities_run_from_one_to_a_billion(quantity: int, plain: bool) -> None:
    """The contract's limit, which the kernel is given at bind(): beyond a billion messages an
    event takes the Python path, which rejects it; no sum of a plain batch can overflow."""
    request = pb.StreamUsageRequest(
        batch_id="b",
        events=[
            pb.UsageEvent(
                event_id="e1",
                account_id="acc_a",
                tenant_id="ten_1",
                kind=MESSAGE,
                quantity=quantity,
                occurred_at={"seconds": NOW_US // 10**6},
            )
        ],
    )
    assert KERNEL.decode(request.SerializeToString()).plain(*WINDOW) is plain


def test_a_batch_that_is_not_plain_is_never_summarized_or_stored() -> None:
    request = pb.StreamUsageRequest(
        batch_id="b",
        events=[
            pb.UsageEvent(
                event_id="e1",
                account_id="acc_a",
                tenant_id="ten_1",
                kind=MESSAGE,
                quantity=0,
                occurred_at={"seconds": NOW_US // 10**6},
            )
        ],
    )
    batch = KERNEL.decode(request.SerializeToString())
    assert not batch.plain(*WINDOW)
    for call in (batch.references, batch.hourly):
        with pytest.raises(RuntimeError, match="plain"):
            call()
    import sqlite3

    with pytest.raises(RuntimeError, match="plain"):
        KERNEL.insert(sqlite3.connect(":memory:"), "SELECT 1", "SELECT 1", [batch], 0)


# --- period labels ----------------------------------------------------------------------------


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 2_932_896))  # 1970-01-01 to 9999-12-31
@example(0)
@example(59)  # 1970-03-01
@example(11_016)  # 2000-02-29
@example(2_932_896)
def test_the_kernels_period_label_is_period_label_of(day: int) -> None:
    assert KERNEL.month_label_of_day(day) == period_label_of(day * DAY_US)


# --- the connection's handle, by documented means ---------------------------------------------


def test_every_connection_opened_after_the_import_answers_its_own_handle() -> None:
    """The kernel registered its entry point in the SQLite that sqlite3 runs on: otherwise
    connections sqlite3 opens would not have the function."""
    first, second = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    [(one,)] = first.execute("SELECT billing_usage_kernel_handle()").fetchall()
    [(two,)] = second.execute("SELECT billing_usage_kernel_handle()").fetchall()
    assert isinstance(one, int) and isinstance(two, int) and one != two
    # Not from a schema a database brings along (a view or a trigger).
    first.execute("CREATE VIEW leak AS SELECT billing_usage_kernel_handle()")
    with pytest.raises(sqlite3.OperationalError, match="unsafe use"):
        first.execute("SELECT * FROM leak").fetchall()
    first.close()
    batch = KERNEL.decode(pb.StreamUsageRequest(batch_id="b").SerializeToString())
    assert batch.plain(*WINDOW)
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        KERNEL.insert(first, "SELECT 1", "SELECT 1", [batch], 0)


def test_a_connection_opened_before_the_kernel_was_imported_is_refused_clearly() -> None:
    """Why storage.db loads the kernel before a database opens its first connection."""
    script = """
import sqlite3
import subprocess
import sys
early = sqlite3.connect(":memory:", isolation_level=None)
from billing_svc import native
kernel, why = native.load()
assert kernel is not None, why
from as2aas.billing.v1 import usage_service_pb2 as pb
batch = kernel.decode(pb.StreamUsageRequest(batch_id="b").SerializeToString())
assert batch.plain(0, 2**62)
early.execute("BEGIN")
try:
    kernel.insert(early, "SELECT 1", "SELECT 1", [batch], 0)
except sqlite3.OperationalError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "no such function: billing_usage_kernel_handle" in done.stdout
