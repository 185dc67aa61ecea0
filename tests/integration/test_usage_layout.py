"""SQLite's raw usage log and its in-process dedupe index (0017_usage_layout,
storage/event_index.py): collisions never drop or double an event, another process's events and
a killed process's acked events are duplicates, a rolled back transaction leaves no entry, and the
migration keeps every row both ways."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from as2aas.billing.v1 import billing_service_pb2 as bpb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb
from google.protobuf import timestamp_pb2
from hypothesis import HealthCheck, given, settings
from sqlalchemy import text

from billing_svc import native
from billing_svc.api.usage import decode_request
from billing_svc.domain.usage import UsageBatch, period_label_of, to_us
from billing_svc.services.ingestion import ingest
from billing_svc.storage.db import Database
from billing_svc.storage.event_index import HASH_BITS_VARIABLE, PythonTable
from billing_svc.storage.migrate import alembic_config, upgrade
from billing_svc.storage.usage import UsageStore
from tests.integration.test_native_ingestion import (
    COMPILED,
    NOW_US,
    Template,
    dump,
    groups,
    message,
    request,
    run,
)
from tests.support import ADMIN, Client, ServiceProcess, auth, fresh_database, on_postgres

pytestmark = pytest.mark.skipif(on_postgres(), reason="SQLite's event log (PostgreSQL: 0016)")
PRODUCER = auth("producer")
CODECS = [native.PYTHON, *([COMPILED] if COMPILED is not None else [])]


@contextmanager
def hash_bits(bits: int) -> Iterator[None]:
    """Databases opened inside use a hash of ``bits`` bits (the tests' knob)."""
    before = os.environ.get(HASH_BITS_VARIABLE)
    os.environ[HASH_BITS_VARIABLE] = str(bits)
    try:
        yield
    finally:
        if before is None:
            del os.environ[HASH_BITS_VARIABLE]
        else:
            os.environ[HASH_BITS_VARIABLE] = before


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return Template(tmp_path_factory.mktemp("layout"))


def outcome(template: Template, made: list[list[bytes]], name: str, codec: native.UsageCodec):
    db = template.copy(name)
    try:
        acks = run(db, made, kernel=codec)
        return [[asdict(result) for result in group] for group in acks], dump(db)
    finally:
        db.dispose()


def test_colliding_hashes_change_no_ack_and_no_row(template: Template) -> None:
    """With a 2-bit hash nearly every key collides with another: the index only gives
    candidates, the rows decide, so acks and tables are those of the 64-bit hash."""
    reference = COMPILED or native.PYTHON

    @settings(
        max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(groups(template))
    def check(made: list[list[bytes]]) -> None:
        wide = outcome(template, made, "wide", reference)
        for codec in CODECS:
            with hash_bits(2):
                narrow = outcome(template, made, f"narrow-{codec.name}", codec)
            assert narrow == wide

    check()


@pytest.mark.parametrize("codec", CODECS, ids=[codec.name for codec in CODECS])
def test_a_narrow_hash_stores_each_of_many_events_once(
    template: Template, codec: native.UsageCodec
) -> None:
    """600 random ids of one account under an 8-bit hash: ~2.3 entries a hash value, so nearly
    every new event meets candidates that are other events; each is stored once, and resent,
    each is a duplicate."""
    ids = [str(uuid.UUID(int=n * 7919 + 12345)) for n in range(600)]
    first = [
        request(f"b{b}", [message(template, i) for i in ids[b * 100 : b * 100 + 100]])
        for b in range(6)
    ]
    with hash_bits(8):
        db = template.copy(f"narrow-many-{codec.name}")
    try:
        acks = run(db, [first[:3], first[3:]], kernel=codec)
        assert sum(r.accepted for group in acks for r in group) == 600
        again = run(db, [first, first[:1]], kernel=codec)
        assert [r.duplicates for group in again for r in group] == [100] * 7
        assert all(r.accepted == 0 and not r.rejected for group in again for r in group)
        index = db.usage_index
        assert index is not None and len(index.table) == 600
        assert max(len(index.probe(template.accounts[0], i)) for i in ids) > 1  # collisions
        rows = dump(db)["usage_event"]
        assert sorted(row[2] for row in rows) == sorted(ids)  # log_id, account_id, event_id, ...
    finally:
        db.dispose()


def test_a_rolled_back_transaction_leaves_no_entry(template: Template) -> None:
    db = template.copy("rollback")
    account = template.accounts[0]
    tenant = template.tenants[account][0]
    row = ("r1", account, tenant, "", 1, 1, NOW_US, period_label_of(NOW_US), False)
    try:
        with pytest.raises(RuntimeError, match="undo"), db.write() as session:
            store = UsageStore(session.connection())
            store.insert_events([row], received_at_us=NOW_US)
            assert set(store.existing_events(account, ["r1"])) == {"r1"}  # pending is probed
            raise RuntimeError("undo")
        assert db.usage_index is not None and db.usage_index.table.pending == 0
        with db.write() as session:
            store = UsageStore(session.connection())
            assert store.existing_events(account, ["r1"]) == {}
            store.insert_events([row], received_at_us=NOW_US)
        with db.write() as session:
            assert set(UsageStore(session.connection()).existing_events(account, ["r1"])) == {"r1"}
    finally:
        db.dispose()


def test_a_purged_rows_entry_is_no_duplicate(template: Template) -> None:
    """An entry whose row is gone (a purge deleted it) is absent: the event is new again."""
    db = template.copy("stale")
    raw = request("s", [message(template, "gone")])
    try:
        assert run(db, [[raw]], kernel=CODECS[-1])[0][0].accepted == 1
        with db.write() as session:
            session.connection().exec_driver_sql("DELETE FROM usage_event")
        assert run(db, [[raw]], kernel=CODECS[-1])[0][0].accepted == 1
    finally:
        db.dispose()


def test_the_log_marks_where_each_hour_starts(template: Template) -> None:
    db = template.copy("marks")
    hour_us = NOW_US - NOW_US % 3_600_000_000
    try:
        run(
            db,
            [[request("m", [message(template, "m1"), message(template, "m2")])]],
            kernel=CODECS[-1],
        )
        with db.read() as session:
            store = UsageStore(session.connection())
            marks = (
                session.connection()
                .exec_driver_sql("SELECT hour_us, first_log_id FROM usage_log_mark")
                .all()
            )
            first = (
                session.connection()
                .exec_driver_sql(
                    "SELECT MIN(log_id) FROM usage_event WHERE event_id IN ('m1', 'm2')"
                )
                .scalar_one()
            )
            assert [tuple(mark) for mark in marks] == [(hour_us, first)]
            # From two hours on, a scan starts at the mark; before, at the log's start.
            assert store.log_start(hour_us + 2 * 3_600_000_000) == first - 1
            assert store.log_start(hour_us) == 0
    finally:
        db.dispose()


_STAMP = timestamp_pb2.Timestamp()
_STAMP.FromDatetime(datetime.now(UTC).replace(microsecond=0))  # one time: a resend is the same


def _producer_batches(account_id: str, tenant_id: str, ids: list[str]) -> list:
    stamp = _STAMP
    return [
        upb.StreamUsageRequest(
            batch_id=f"p{b}",
            events=[
                upb.UsageEvent(
                    event_id=event_id,
                    account_id=account_id,
                    tenant_id=tenant_id,
                    kind=common_pb2.USAGE_KIND_MESSAGE,
                    quantity=1,
                    occurred_at=stamp,
                )
                for event_id in ids[b : b + 250]
            ],
        )
        for b in range(0, len(ids), 250)
    ]


def _account(client: Client) -> tuple[str, str]:
    account = client.billing.CreateAccount(
        bpb.CreateAccountRequest(name="Log Co", plan_id="enterprise", skip_trial=True),
        metadata=ADMIN,
    ).account
    tenant = client.billing.CreateTenant(
        bpb.CreateTenantRequest(account_id=account.account_id, name="main"), metadata=ADMIN
    ).tenant
    return account.account_id, tenant.tenant_id


def test_events_another_process_stored_between_our_transactions_are_duplicates(
    tmp_path: Path,
) -> None:
    with fresh_database(str(tmp_path)) as url:
        service = ServiceProcess(url).start()
        client = Client(service.target)
        db = Database(url)
        try:
            account_id, tenant_id = _account(client)
            ours = [str(uuid.uuid4()) for _ in range(500)]
            theirs = [str(uuid.uuid4()) for _ in range(500)]
            decode = decode_request(CODECS[-1])

            def here(ids: list[str]) -> list:
                batches = [
                    decode(batch.SerializeToString())
                    for batch in _producer_batches(account_id, tenant_id, ids)
                ]
                assert all(isinstance(batch, UsageBatch) for batch in batches)
                return ingest(db, batches, now_us=to_us(datetime.now(UTC)))  # type: ignore[arg-type]

            assert sum(r.accepted for r in here(ours)) == 500  # our index is built and in use
            acks = list(
                client.usage.StreamUsage(
                    iter(_producer_batches(account_id, tenant_id, theirs)), metadata=PRODUCER
                )
            )
            assert sum(a.accepted for a in acks) == 500
            # Resent here: the other process's rows are caught up under our write lock.
            assert [(r.accepted, r.duplicates) for r in here(theirs)] == [(0, 250), (0, 250)]
            # And ours, resent there, are its duplicates.
            acks = list(
                client.usage.StreamUsage(
                    iter(_producer_batches(account_id, tenant_id, ours)), metadata=PRODUCER
                )
            )
            assert [(a.accepted, a.duplicates) for a in acks] == [(0, 250), (0, 250)]
            assert here([str(uuid.uuid4())])[0].accepted == 1  # new ones are still new
        finally:
            db.dispose()
            client.close()
            service.kill()


@pytest.mark.parametrize("bits", [64, 8])
def test_after_kill_9_every_acked_event_is_a_duplicate(tmp_path: Path, bits: int) -> None:
    with fresh_database(str(tmp_path)) as url:
        env = {HASH_BITS_VARIABLE: str(bits)}
        service = ServiceProcess(url, **env).start()
        client = Client(service.target)
        try:
            account_id, tenant_id = _account(client)
            ids = [str(uuid.uuid4()) for _ in range(3000)]
            batches = _producer_batches(account_id, tenant_id, ids)
            acks = list(client.usage.StreamUsage(iter(batches), metadata=PRODUCER))
            assert sum(a.accepted for a in acks) == 3000
            client.close()
            service.kill()  # SIGKILL: no drain; the index dies with the process
            service = ServiceProcess(url, **env).start()
            client = Client(service.target)
            assert "usage_index_built" in service.output()
            again = list(client.usage.StreamUsage(iter(batches), metadata=PRODUCER))
            assert sum(a.duplicates for a in again) == 3000
            assert sum(a.accepted for a in again) == 0
            usage = client.usage.GetCurrentUsage(
                upb.GetCurrentUsageRequest(account_id=account_id), metadata=auth("usage-reader")
            ).usage_to_date
            assert usage.messages == 3000
        finally:
            client.close()
            service.kill()


# --- the migration ----------------------------------------------------------------------------

BEFORE = "0016_usage_partitions"
_OLD_ROWS = [  # (account, event, received_at_us): keyed order differs from received order
    ("acc_b", "e1", 3_000),
    ("acc_a", "e9", 1_000),
    ("acc_a", "e2", 2_000),
    ("acc_b", "e0", 4_000),
]


def _columns(connection: sa.Connection) -> list[str]:
    return [row[1] for row in connection.exec_driver_sql("PRAGMA table_info(usage_event)")]


def test_the_migration_keeps_every_row_up_and_down(tmp_path: Path) -> None:
    with fresh_database(str(tmp_path), empty=True) as url:
        db = Database(url)
        try:
            upgrade(db, BEFORE)
            with db.engine.begin() as connection:
                for account_id, event_id, received_at_us in _OLD_ROWS:
                    connection.execute(
                        text(
                            "INSERT INTO usage_event (account_id, event_id, tenant_id, "
                            "partner_id, kind, quantity, occurred_at_us, period, late, "
                            "received_at_us) VALUES (:a, :e, 't', '', 1, 2, 5, '1970-01', 0, :r)"
                        ),
                        {"a": account_id, "e": event_id, "r": received_at_us},
                    )
            upgrade(db)
            with db.engine.connect() as connection:
                assert _columns(connection)[0] == "log_id"
                rows = connection.exec_driver_sql(
                    "SELECT log_id, account_id, event_id, quantity FROM usage_event ORDER BY log_id"
                ).all()
                assert [tuple(row) for row in rows] == [
                    (1, "acc_a", "e9", 2),
                    (2, "acc_a", "e2", 2),
                    (3, "acc_b", "e1", 2),
                    (4, "acc_b", "e0", 2),
                ]  # in received order
                indexes = {
                    row[1] for row in connection.exec_driver_sql("PRAGMA index_list(usage_event)")
                }
                assert indexes == {"ix_usage_event_storage"}
            # The migrated rows are known to the index: each is stored.
            with db.write() as session:
                store = UsageStore(session.connection())
                assert set(store.existing_events("acc_a", ["e9", "e2", "e1"])) == {"e9", "e2"}
            config = alembic_config(db)
            with db.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.downgrade(config, BEFORE)
            with db.engine.connect() as connection:
                assert "log_id" not in _columns(connection)
                rows = connection.exec_driver_sql(
                    "SELECT account_id, event_id, received_at_us FROM usage_event"
                ).all()
                assert [tuple(row) for row in rows] == sorted(_OLD_ROWS)  # keyed again
                with pytest.raises(sa.exc.IntegrityError):
                    connection.exec_driver_sql(
                        "INSERT INTO usage_event (account_id, event_id, tenant_id, partner_id, "
                        "kind, quantity, occurred_at_us, period, late, received_at_us) "
                        "VALUES ('acc_a', 'e9', 't', '', 1, 2, 5, '1970-01', 0, 1)"
                    )
        finally:
            db.dispose()


def test_the_python_table_and_the_kernels_answer_alike(tmp_path: Path) -> None:
    """The two implementations of the index (the kernel's when built): same candidates."""
    kernel, _ = native.load()
    tables = [PythonTable(bits=4), *([kernel.Index(os.urandom(16), 4)] if kernel else [])]
    path = tmp_path / "log.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(
        "CREATE TABLE usage_event (log_id INTEGER PRIMARY KEY AUTOINCREMENT, account_id, event_id)"
    )
    connection.executemany(
        "INSERT INTO usage_event (account_id, event_id) VALUES (?, ?)",
        [(f"a{n % 3}", f"e{n}") for n in range(100)],
    )
    for table in tables:
        assert table.catch_up(connection) == 100 and len(table) == 100
        assert table.last_seen == 100
        for n in range(100):
            assert n + 1 in table.probe(f"a{n % 3}", f"e{n}")
        table.add("a0", "new", 101)
        assert 101 in table.probe("a0", "new") and table.pending == 1
        table.rollback()
        assert 101 not in table.probe("a0", "new") and table.last_seen == 100
        table.add("a0", "new", 101)
        table.commit()
        assert 101 in table.probe("a0", "new") and table.last_seen == 101
        with pytest.raises(RuntimeError):
            table.add("a0", "other", 102)
            table.catch_up(connection)
        table.rollback()
    connection.close()


def test_a_purge_reads_the_log_once_for_every_account_over_many_pages(tmp_path: Path) -> None:
    """More events than one page of the log (LOG_SCAN_ROWS log ids), interleaved with another
    account's that stay: every purgeable one goes, in chunks, whatever page it is on."""
    from billing_svc.domain.periods import Period
    from billing_svc.services import retention
    from tests.integration.test_retention import _account_with_periods, _months_back, _now

    now = _now()
    old = _months_back(Period.containing(now), 8)
    events = retention.LOG_SCAN_ROWS * 2 + 500
    with fresh_database(str(tmp_path)) as url:
        db = Database(url)
        try:
            _account_with_periods(db, [old], [], now)
            at_us = to_us(old.start) + 3_600_000_000
            connection = sqlite3.connect(str(db.url.database), isolation_level=None)
            connection.execute("BEGIN")
            connection.executemany(
                "INSERT INTO usage_event (account_id, event_id, tenant_id, partner_id, kind, "
                "quantity, occurred_at_us, period, late, received_at_us) "
                "VALUES (?, ?, 'ten_1', '', 1, 1, ?, ?, 0, ?)",
                [
                    ("acc_1" if n % 3 else "acc_other", f"e{n}", at_us + n, old.label, at_us + n)
                    for n in range(events)
                ],
            )
            connection.execute("COMMIT")
            connection.close()
            summary = retention.purge(db, retention.RetentionPolicy(usage_days=120), now)
            purged = sum(1 for n in range(events) if n % 3)
            # In chunks: no chunk takes more than the sizing's largest (services.retention).
            assert summary.usage_events == purged
            assert summary.usage_chunk_rows_max <= retention.MAX_CHUNK_ROWS
            assert summary.chunks > purged // retention.MAX_CHUNK_ROWS
            assert summary.periods_purged == [("acc_1", old.label)]
            with db.read() as session:
                left = (
                    session.connection()
                    .exec_driver_sql(
                        "SELECT account_id, COUNT(*) FROM usage_event GROUP BY account_id"
                    )
                    .all()
                )
                assert [tuple(row) for row in left] == [("acc_other", events - purged)]
                deleted = (
                    session.connection()
                    .exec_driver_sql(
                        "SELECT events_deleted FROM usage_purged_period WHERE account_id = 'acc_1'"
                    )
                    .scalar_one()
                )
                assert deleted == purged
        finally:
            db.dispose()
