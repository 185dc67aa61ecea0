"""Ingestion through the compiled kernel against the Python path, on real SQLite files.

The kernel stores plain batches without a Python object per event; everything else takes the
Python path. Both must leave the same acknowledgements and the same rows: the same random groups
of batches are ingested twice, from two copies of one database, once decoded by the kernel and
once by the protobuf library, and every table ingestion writes is compared.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from as2aas.billing.v1 import usage_service_pb2 as pb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_svc import native
from billing_svc.api.usage import decode_request
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import (
    LATEST_SECONDS,
    MAX_COUNTER,
    MESSAGE,
    STORAGE,
    UsageBatch,
    accept_window,
    to_us,
)
from billing_svc.services.context import Caller, RequestContext
from billing_svc.services.ingestion import BatchResult, ingest
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade
from billing_svc.storage.usage import UsageStore
from tests.support import (
    Client,
    IngestionAccounts,
    ServerThread,
    auth,
    on_postgres,
    settings_for_tests,
)

KERNEL, WHY_NOT = native.load()
COMPILED = native.CompiledCodec(KERNEL) if KERNEL is not None else None
pytestmark = [
    pytest.mark.skipif(KERNEL is None, reason=f"the ingestion kernel: {WHY_NOT}"),
    pytest.mark.skipif(on_postgres(), reason="the kernel stores on SQLite only"),
]

NOW = datetime.now(UTC)
NOW_US = to_us(NOW)
LAST_MONTH = Period.containing(NOW).previous()
ADMIN_CTX = RequestContext(Caller("test", frozenset({"admin"})))
# Tables ingestion writes, each dumped in key order (outbox rows without their random ids).
DUMPS = {
    "usage_event": "SELECT * FROM usage_event ORDER BY account_id, event_id",
    "usage_period": "SELECT * FROM usage_period ORDER BY 1, 2",
    "usage_tenant_period": "SELECT * FROM usage_tenant_period ORDER BY 1, 2, 3",
    "usage_partner_period": "SELECT * FROM usage_partner_period ORDER BY 1, 2, 3",
    "usage_hourly": "SELECT * FROM usage_hourly ORDER BY 1, 2, 3, 4, 5",
    "storage_level": "SELECT * FROM storage_level ORDER BY 1, 2",
    "period_notice": "SELECT account_id, period, notice_key FROM period_notice ORDER BY 1, 2, 3",
    "outbox_event": "SELECT account_id, type, body FROM outbox_event ORDER BY 1, 2, 3",
}


class Template:
    """A migrated database with two accounts (tenants, partners), one of them with last month
    invoiced (its events from last month are late), copied for every run."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "template.db"
        db = Database(f"sqlite:///{self.path}")
        upgrade(db)
        made = IngestionAccounts.create(db, ADMIN_CTX, LAST_MONTH)
        self.accounts = made.accounts
        self.tenants = made.tenants
        self.partners = made.partners
        db.dispose()

    def copy(self, name: str) -> Database:
        target = self.directory / f"{name}.db"
        shutil.copyfile(self.path, target)
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        return Database(f"sqlite:///{target}")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return Template(tmp_path_factory.mktemp("native"))


def dump(db: Database) -> dict[str, list[tuple]]:
    connection = sqlite3.connect(str(db.url.database))
    try:
        return {table: connection.execute(query).fetchall() for table, query in DUMPS.items()}
    finally:
        connection.close()


def run(
    db: Database, groups: list[list[bytes]], *, kernel: native.UsageCodec
) -> list[list[BatchResult]]:
    decode = decode_request(kernel)
    acks = []
    for group in groups:
        batches = [decode(raw) for raw in group]
        assert all(isinstance(batch, UsageBatch) for batch in batches)
        acks.append(ingest(db, batches, now_us=NOW_US))  # type: ignore[arg-type]
    return acks


def both_ways(
    template: Template, groups: list[list[bytes]], name: str, seed: str = ""
) -> tuple[list, list]:
    """Acks and tables after ``groups`` through the kernel, then through the Python path, from
    copies of the template (``seed``: SQL run on each copy first)."""
    outcomes = []
    for kernel in (COMPILED, native.PYTHON):
        db = template.copy(f"{name}-{kernel.name}")
        if seed:
            connection = sqlite3.connect(str(db.url.database))
            with connection:
                connection.execute(seed)
            connection.close()
        try:
            acks = run(db, groups, kernel=kernel)
            outcomes.append(([[asdict(result) for result in group] for group in acks], dump(db)))
        finally:
            db.dispose()
    return outcomes[0], outcomes[1]


def message(
    template: Template,
    event_id: str,
    *,
    account: int = 0,
    tenant: int = 0,
    partner: int | None = 0,
    quantity: int = 1,
    at: datetime = NOW,
) -> pb.UsageEvent:
    account_id = template.accounts[account]
    return pb.UsageEvent(
        event_id=event_id,
        account_id=account_id,
        tenant_id=template.tenants[account_id][tenant],
        partner_id=template.partners[account_id][partner] if partner is not None else "",
        kind=MESSAGE,
        quantity=quantity,
        occurred_at={"seconds": int(at.timestamp()), "nanos": at.microsecond * 1000},
    )


def request(batch_id: str, events: list[pb.UsageEvent]) -> bytes:
    return pb.StreamUsageRequest(batch_id=batch_id, events=events).SerializeToString()


# --- generated groups -------------------------------------------------------------------------

WHEN = st.sampled_from(
    [
        NOW - timedelta(minutes=1),
        NOW - timedelta(hours=3),
        LAST_MONTH.start + timedelta(days=3),
        NOW + timedelta(hours=1),
    ]
)


@st.composite
def events(draw: st.DrawFn, template: Template, plain: bool) -> pb.UsageEvent:
    account = draw(st.integers(0, 1))
    account_id = template.accounts[account]
    at = draw(
        WHEN
        if not plain
        else st.sampled_from([NOW - timedelta(minutes=1), NOW - timedelta(hours=3)])
    )
    event = pb.UsageEvent(
        event_id=draw(st.sampled_from([f"e{i}" for i in range(8)])),  # resends and conflicts
        account_id=account_id,
        tenant_id=draw(st.sampled_from(template.tenants[account_id])),
        partner_id=draw(st.sampled_from(["", *template.partners[account_id]])),
        kind=MESSAGE,
        quantity=draw(st.integers(1, 4000)),
        occurred_at={"seconds": int(at.timestamp())},
    )
    if plain:
        return event
    trouble = draw(
        st.sampled_from(
            [
                "none",
                "none",
                "storage",
                "zero",
                "account",
                "tenant",
                "partner",
                "unset",
                "huge",
                "nanos",
                "timeless",
            ]
        )
    )
    if trouble == "storage":
        event.kind, event.quantity, event.partner_id = STORAGE, draw(st.integers(0, 10**12)), ""
    elif trouble == "zero":
        event.quantity = 0
    elif trouble == "account":
        event.account_id = "acc_missing"
    elif trouble == "tenant":
        event.tenant_id = template.tenants[template.accounts[1 - account]][0]
    elif trouble == "partner":
        event.partner_id = template.partners[template.accounts[1 - account]][0]
    elif trouble == "unset":
        event.ClearField("occurred_at")
    elif trouble == "huge":  # beyond the contract's limits, up to int64's
        event.quantity = draw(st.sampled_from([10**9 + 1, 10**18 + 1, 2**63 - 1, -(2**63)]))
        event.kind = draw(st.sampled_from([MESSAGE, STORAGE]))
    elif trouble == "nanos":
        event.occurred_at.nanos = draw(st.sampled_from([-1, 10**9, 2**31 - 1, -(2**31)]))
    elif trouble == "timeless":  # seconds outside 1970 to 9999
        event.occurred_at.seconds = draw(st.sampled_from([-1, LATEST_SECONDS, 2**63 - 1]))
    return event


@st.composite
def groups(draw: st.DrawFn, template: Template) -> list[list[bytes]]:
    made = []
    for g in range(draw(st.integers(1, 3))):
        group = []
        for b in range(draw(st.integers(1, 4))):
            plain = draw(st.booleans())
            group.append(request(f"g{g}b{b}", draw(st.lists(events(template, plain), max_size=6))))
        made.append(group)
    return made


def test_the_kernel_path_and_the_python_path_leave_the_same_acks_and_rows(
    template: Template,
) -> None:
    stored_by_kernel = 0

    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(groups(template))
    def check(made: list[list[bytes]]) -> None:
        nonlocal stored_by_kernel
        window = accept_window(NOW_US, 400)
        decoded = [KERNEL.decode(raw) for group in made for raw in group]
        stored_by_kernel += sum(
            1 for batch in decoded if batch is not None and len(batch) and batch.plain(*window)
        )
        kernel_way, python_way = both_ways(template, made, "equivalence")
        assert kernel_way[0] == python_way[0]  # acks
        assert kernel_way[1] == python_way[1]  # rows

    check()
    assert stored_by_kernel > 20, "the generated groups must exercise the kernel path"


def test_both_ways_reject_the_same_events_at_a_counters_maximum(template: Template) -> None:
    """A counter seeded near its maximum: the group that would pass it is redone on the Python
    path whichever way it came, and the same events are rejected."""
    full = 0
    period = Period.containing(NOW).label

    @settings(
        max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(
        groups(template),
        st.integers(0, 12_000),
        st.sampled_from(
            [
                "INSERT INTO usage_period (account_id, period, messages, late_messages, "
                "late_billed_messages) VALUES ('{a}', '{p}', {v}, 0, 0)",
                "INSERT INTO usage_tenant_period (account_id, period, tenant_id, messages, "
                "storage_byte_us) VALUES ('{a}', '{p}', '{t}', {v}, '0')",
            ]
        ),
    )
    def check(made: list[list[bytes]], room: int, seed: str) -> None:
        nonlocal full
        account_id = template.accounts[0]
        kernel_way, python_way = both_ways(
            template,
            made,
            "full",
            seed.format(
                a=account_id, p=period, t=template.tenants[account_id][0], v=MAX_COUNTER - room
            ),
        )
        assert kernel_way == python_way
        full += sum(
            "the most it can hold" in rejection["reason"]
            for group in kernel_way[0]
            for ack in group
            for rejection in ack["rejected"]
        )

    check()
    assert full > 0, "the generated groups must reach the counter's maximum"


def test_a_batch_that_meets_a_stored_key_takes_the_python_path_in_arrival_order(
    template: Template,
) -> None:
    """Batch 2 resends e-a (stored by an earlier group) and brings e-b; batch 3 brings e-b
    again. In arrival order batch 2's e-b is new and batch 3's a duplicate: the kernel stops at
    batch 2 instead of storing batch 3 first."""
    first = [request("earlier", [message(template, "e-a")])]
    group = [
        request("1", [message(template, "e-c", quantity=2)]),
        request("2", [message(template, "e-a"), message(template, "e-b", quantity=3)]),
        request("3", [message(template, "e-b", quantity=3)]),
        request("4", [message(template, "e-d", quantity=5)]),
    ]
    kernel_way, python_way = both_ways(template, [first, group], "order")
    assert kernel_way == python_way
    acks = kernel_way[0][1]
    assert [(a["accepted"], a["duplicates"]) for a in acks] == [(1, 0), (1, 1), (0, 1), (1, 0)]
    messages = {row[0:2]: row[2] for row in kernel_way[1]["usage_period"]}
    assert messages[(template.accounts[0], Period.containing(NOW).label)] == 1 + 2 + 3 + 5


def test_a_resent_group_is_all_duplicates_and_counts_nothing(template: Template) -> None:
    group = [
        request(
            str(b),
            [message(template, f"r{b}-{i}", tenant=i % 2, quantity=i + 1) for i in range(30)],
        )
        for b in range(3)
    ]
    kernel_way, python_way = both_ways(template, [group, group], "resend")
    assert kernel_way == python_way
    assert [a["accepted"] for a in kernel_way[0][0]] == [30, 30, 30]
    assert [(a["accepted"], a["duplicates"]) for a in kernel_way[0][1]] == [(0, 30)] * 3
    assert len(kernel_way[1]["usage_event"]) == 90


def test_late_usage_and_foreign_references_leave_the_kernel_path(template: Template) -> None:
    """Plain batches the kernel must not store: each is refused by one check, and the Python
    path says what is wrong with which event."""
    mine, theirs = template.accounts
    late = message(template, "late-1", at=LAST_MONTH.start + timedelta(days=2))
    foreign_tenant = message(template, "f-tenant")
    foreign_tenant.tenant_id = template.tenants[theirs][0]
    foreign_partner = message(template, "f-partner")
    foreign_partner.partner_id = template.partners[theirs][0]
    unknown_account = message(template, "f-account")
    unknown_account.account_id = "acc_missing"
    group = [request("late", [late])] + [
        request(name, [message(template, f"ok-{name}"), event])
        for name, event in (
            ("tenant", foreign_tenant),
            ("partner", foreign_partner),
            ("account", unknown_account),
        )
    ]
    assert all(KERNEL.decode(raw).plain(*accept_window(NOW_US, 400)) for raw in group)
    kernel_way, python_way = both_ways(template, [group], "refused")
    assert kernel_way == python_way
    late_ack, *acks = kernel_way[0][0]
    assert (late_ack["accepted"], late_ack["late"]) == (1, 1)
    assert [(a["accepted"], [r["reason"] for r in a["rejected"]]) for a in acks] == [
        (1, [f"tenant {foreign_tenant.tenant_id!r} is not a tenant of account {mine}"]),
        (1, [f"partner {foreign_partner.partner_id!r} is not a master partner of account {mine}"]),
        (1, ["account 'acc_missing' does not exist"]),
    ]


# --- the kernel's own contract ----------------------------------------------------------------


def test_kernel_rows_are_the_rows_the_python_path_writes(template: Template) -> None:
    events = [
        message(
            template,
            f"k{i}",
            tenant=i % 2,
            partner=None if i % 3 else 1,
            quantity=i + 1,
            at=NOW - timedelta(minutes=i),
        )
        for i in range(45)
    ]
    raw = request("rows", events)
    rows = []
    for kernel in (COMPILED, native.PYTHON):
        db = template.copy(f"rows-{kernel.name}")
        batch = decode_request(kernel)(raw)
        assert isinstance(batch, UsageBatch)
        with db.write() as session:
            store = UsageStore(session.connection())
            if kernel is COMPILED:
                assert batch.native.plain(*accept_window(NOW_US, 400))
                assert store.insert_native(COMPILED, [batch.native], received_at_us=NOW_US) == [
                    True
                ]
            else:
                from billing_svc.domain.usage import period_label_of

                store.insert_events(
                    [(*e, period_label_of(e.occurred_at_us), False) for e in batch.events],
                    received_at_us=NOW_US,
                )
        rows.append(dump(db)["usage_event"])
        db.dispose()
    assert rows[0] == rows[1]
    assert len(rows[0]) == 45  # 45 = two statements of 20 rows and five of one


def test_the_kernel_stops_at_the_first_batch_that_meets_a_stored_key(template: Template) -> None:
    window = accept_window(NOW_US, 400)
    batches = [
        KERNEL.decode(request(name, [message(template, event_id) for event_id in ids]))
        for name, ids in (("a", ["s1", "s2"]), ("b", ["s3", "s1"]), ("c", ["s4"]))
    ]
    assert all(batch.plain(*window) for batch in batches)
    db = template.copy("stops")
    try:
        with db.write() as session:
            store = UsageStore(session.connection())
            assert store.insert_native(COMPILED, batches, received_at_us=NOW_US) == [True, False]
            stored = [
                row[0]
                for row in session.connection().exec_driver_sql(
                    "SELECT event_id FROM usage_event ORDER BY event_id"
                )
            ]
        assert stored == ["s1", "s2"]  # nothing of b (its s3 rolled back), c not tried
        with pytest.raises(RuntimeError, match="transaction"):
            KERNEL.insert(
                sqlite3.connect(str(db.url.database)), "SELECT 1", "SELECT 1", batches[2:], NOW_US
            )
        with db.write() as session, pytest.raises(ValueError, match="10 parameters"):
            KERNEL.insert(
                session.connection().connection.driver_connection,
                "INSERT INTO usage_event (event_id) VALUES (?)",
                "SELECT 1",
                batches[2:],
                NOW_US,
            )
    finally:
        db.dispose()


def test_a_database_error_in_the_kernel_is_reported_as_sqlalchemy_reports_it(
    template: Template,
) -> None:
    """So that db.py maps it like any other (a lost database is UNAVAILABLE, say)."""
    from sqlalchemy.exc import OperationalError

    batch = KERNEL.decode(request("gone", [message(template, "g1")]))
    assert batch.plain(*accept_window(NOW_US, 400))
    db = template.copy("gone")
    try:
        with pytest.raises(OperationalError, match="no such table"), db.write() as session:
            session.connection().exec_driver_sql("DROP TABLE usage_event")
            UsageStore(session.connection()).insert_native(COMPILED, [batch], received_at_us=NOW_US)
    finally:
        db.dispose()


# --- over gRPC --------------------------------------------------------------------------------


@pytest.mark.parametrize("native_ingestion", [True, False], ids=["kernel", "python"])
def test_bytes_that_are_no_usage_request_are_invalid_argument_and_the_server_goes_on(
    tmp_path: Path, native_ingestion: bool
) -> None:
    server = ServerThread(
        settings_for_tests(f"sqlite:///{tmp_path}/s.db", native_ingestion=native_ingestion)
    ).start()
    client = Client(server.target)
    garbage = b"\x12\xff\x01not protobuf"
    producer = auth("producer")
    try:
        for method, call in (
            (
                "RecordUsage",
                client.channel.unary_unary(
                    "/as2aas.billing.v1.UsageService/RecordUsage",
                    request_serializer=lambda raw: raw,
                    response_deserializer=pb.RecordUsageResponse.FromString,
                ),
            ),
            (
                "StreamUsage",
                client.channel.stream_stream(
                    "/as2aas.billing.v1.UsageService/StreamUsage",
                    request_serializer=lambda raw: raw,
                    response_deserializer=pb.StreamUsageResponse.FromString,
                ),
            ),
        ):
            with pytest.raises(grpc.RpcError) as failure:
                if method == "RecordUsage":
                    call(garbage, metadata=producer, timeout=10)
                else:
                    list(call(iter([garbage]), metadata=producer, timeout=10))
            assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
            assert "not a valid usage batch" in failure.value.details()
        ack = client.usage.RecordUsage(pb.RecordUsageRequest(batch_id="after"), metadata=producer)
        assert ack.batch_id == "after"
    finally:
        client.close()
        server.stop()


def test_with_the_kernel_switched_off_usage_is_still_counted(tmp_path: Path) -> None:
    from as2aas.billing.v1 import billing_service_pb2 as bpb

    server = ServerThread(
        settings_for_tests(f"sqlite:///{tmp_path}/s.db", native_ingestion=False)
    ).start()
    client = Client(server.target)
    try:
        admin = auth("admin")
        account = client.billing.CreateAccount(
            bpb.CreateAccountRequest(name="Off", plan_id="startup"), metadata=admin
        ).account.account_id
        tenant = client.billing.CreateTenant(
            bpb.CreateTenantRequest(account_id=account, name="t"), metadata=admin
        ).tenant.tenant_id
        event = pb.UsageEvent(
            event_id="e1",
            account_id=account,
            tenant_id=tenant,
            kind=MESSAGE,
            quantity=7,
            occurred_at={"seconds": int(NOW.timestamp())},
        )
        for expected in ((1, 0), (0, 1)):
            ack = client.usage.RecordUsage(
                pb.RecordUsageRequest(batch_id="b", events=[event]), metadata=auth("producer")
            )
            assert (ack.accepted, ack.duplicates) == expected
        usage = client.usage.GetCurrentUsage(
            pb.GetCurrentUsageRequest(account_id=account), metadata=auth("usage-reader")
        ).usage_to_date
        assert usage.messages == 7
    finally:
        client.close()
        server.stop()


def test_outbox_bodies_name_the_same_figures_either_way(template: Template) -> None:
    """Crossing 75 % of the Startup plan's 5,000 messages from a kernel-stored batch."""
    group = [request("big", [message(template, "big-1", account=1, quantity=3800)])]
    kernel_way, python_way = both_ways(template, [group], "outbox")
    assert kernel_way == python_way
    bodies = [
        json.loads(body)
        for _, kind, body in kernel_way[1]["outbox_event"]
        if kind == "billing.usage_threshold"
    ]
    assert [(b["data"]["threshold_percentage"], b["data"]["current_usage"]) for b in bodies] == [
        (75, 3800)
    ]
