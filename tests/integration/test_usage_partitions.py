"""PostgreSQL at year scale (issue 16, point 4): raw usage partitioned by month of receipt, a
global dedupe key, retention that drops whole months (what it keeps moved aside first) while
ingestion goes on unhindered, and the migration that converts a database with rows in place and
back. PostgreSQL only: SQLite keeps its one table."""

from __future__ import annotations

import csv
import gzip
import threading
import time
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import usage_service_pb2 as upb
from sqlalchemy import text

from billing_svc.clock import FixedClock
from billing_svc.domain.periods import Period
from billing_svc.services import retention
from billing_svc.services.retention import RetentionPolicy
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade
from billing_svc.storage.partitions import bucket_of, partition_name
from billing_svc.storage.retention import EVENT_COLUMNS
from tests.integration.test_invoicing import close
from tests.integration.test_retention import purge_cli
from tests.integration.test_token_migration import _downgrade, _schema_matches_the_tables
from tests.integration.test_usage import PRODUCER, Shop, ts
from tests.support import (
    ADMIN,
    Client,
    ServerThread,
    fresh_database,
    on_postgres,
    settings_for_tests,
)

pytestmark = pytest.mark.skipif(
    not on_postgres(), reason="PostgreSQL's layout: set BILLING_TEST_DATABASE_URL"
)


def _months_back(period: Period, months: int) -> Period:
    for _ in range(months):
        period = period.previous()
    return period


def _dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _where(db: Database, account_id: str) -> dict[str, str]:
    """event id -> the partition its row is in."""
    with db.read() as session:
        return dict(
            session.execute(
                text(
                    "SELECT event_id, tableoid::regclass::text FROM usage_event "
                    "WHERE account_id = :a"
                ),
                {"a": account_id},
            ).all()
        )


def _events(db: Database, account_id: str) -> dict[str, tuple]:
    with db.read() as session:
        rows = session.execute(
            text(f"SELECT {', '.join(EVENT_COLUMNS)} FROM usage_event WHERE account_id = :a"),
            {"a": account_id},
        ).all()
    return {row[0]: tuple(row) for row in rows}


def _keys(db: Database, account_id: str) -> set[str]:
    with db.read() as session:
        return set(
            session.execute(
                text("SELECT event_id FROM usage_event_key WHERE account_id = :a"),
                {"a": account_id},
            ).scalars()
        )


def _tables(db: Database) -> set[str]:
    with db.read() as session:
        return set(
            session.execute(
                text(
                    "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') "
                    "AND relname LIKE 'usage_event%'"
                )
            ).scalars()
        )


def test_a_purge_drops_whole_months_and_keeps_what_retention_keeps(tmp_path) -> None:
    now = datetime.now(UTC)
    old = _months_back(Period.containing(now), 6)
    received = old.next()  # the month the service stores old's events in
    horizon = received.next()  # the purge's first kept period: the month received is before it
    retention_days = (now - horizon.start).days
    clock = FixedClock(received.start + timedelta(days=2))
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url), clock).start()
        client = Client(server.target)
        try:
            shop = Shop(client, skip_trial=True, start_time=ts(old.start))
            never = Shop(client, skip_trial=True, start_time=ts(old.start))  # never invoiced
            messages = [
                shop.message(f"m{i}", 10, tenant=i % 2, at=old.start + timedelta(days=3, hours=i))
                for i in range(20)
            ]
            ack = shop.record(
                [
                    *messages,
                    shop.storage("g0a", 5, old.start + timedelta(days=1), tenant=0),
                    shop.storage("g0b", 7, old.start + timedelta(days=10), tenant=0),
                    shop.storage("g1", 3, old.start + timedelta(days=2), tenant=1),
                ]
            )
            assert (ack.accepted, list(ack.rejected)) == (23, [])
            assert (
                never.record(
                    [never.message(f"n{i}", 1, at=old.start + timedelta(days=4)) for i in range(5)]
                ).accepted
                == 5
            )
            month = partition_name(bucket_of(int(clock.now().timestamp() * 1e6)))
            assert set(_where(server.db, shop.account_id).values()) == {month}
            close(client, shop.account_id, old)
            # Back in real time: a late event of old arrives, stored in this month's partition.
            clock.set(now)
            late = shop.message("late", 4, at=old.start + timedelta(days=20))
            assert shop.record([late], batch_id="late").late == 1
            old_messages = shop.monthly(old).total_messages
            before = _events(server.db, shop.account_id)
            assert _keys(server.db, shop.account_id) == set(before)

            export = tmp_path / "purged.csv.gz"
            purged = purge_cli(
                url, "--export", str(export), BILLING_USAGE_RETENTION_DAYS=str(retention_days)
            )
            assert purged.returncode == 0, purged.stderr
            assert (
                f"months of raw usage dropped whole (PostgreSQL): {month} (7 events of them kept)"
            ) in purged.stdout.splitlines()
            assert month not in _tables(server.db)

            # Gone: old's messages, the superseded reading and the late event (by rows: it is
            # in a month after the horizon). Kept, in the kept partition: each tenant's last
            # reading before the horizon, and the never-invoiced account's events.
            after = _where(server.db, shop.account_id)
            deleted = set(before) - set(after)
            assert deleted == {*(e.event_id for e in messages), "g0a", "late"}
            assert after == {"g0b": "usage_event_kept", "g1": "usage_event_kept"}
            assert set(_where(server.db, never.account_id).values()) == {"usage_event_kept"}
            assert (
                "storage readings kept (each tenant's last before the horizon): 2"
                in purged.stdout.splitlines()
            )
            with gzip.open(export, "rt", newline="") as handle:
                rows = list(csv.reader(handle))
            assert rows[0] == list(EVENT_COLUMNS)
            assert {row[0]: row for row in rows[1:]} == {
                event_id: [str(int(v) if isinstance(v, bool) else v) for v in before[event_id]]
                for event_id in deleted
            }
            with server.db.read() as session:
                counted = session.execute(
                    text(
                        "SELECT events_deleted, finished_at IS NOT NULL FROM usage_purged_period "
                        "WHERE account_id = :a AND period = :p"
                    ),
                    {"a": shop.account_id, "p": old.label},
                ).one()
            assert tuple(counted) == (22, True)

            # The dedupe keys of the dropped month go (those events are refused at the door);
            # the late event's key waits for its own month, and is no obstacle meanwhile.
            assert _keys(server.db, shop.account_id) == {"late"}
            assert _keys(server.db, never.account_id) == set()
            again = shop.record([messages[0], late], batch_id="again")
            assert again.accepted == again.duplicates == 0 and len(again.rejected) == 2
            assert "outside retention" in again.rejected[0].reason
            assert shop.monthly(old).total_messages == old_messages
            # The late event's id is free again (its row is gone), as on SQLite: its stale key
            # gives way to the new event's.
            assert shop.record([shop.message("late", 1)], batch_id="reuse").accepted == 1
            assert shop.record([shop.message("late", 2)], batch_id="conflict").rejected
        finally:
            client.close()
            server.stop()


def test_ingestion_never_waits_behind_a_purge_dropping_a_month(tmp_path) -> None:
    """Batches stream in while `billing-svc purge` moves, detaches and drops a month of 30,000
    events: every batch is acknowledged, and no ingestion statement waits for a lock for 1 s
    (polled in pg_stat_activity every 10 ms; the figure is printed)."""
    now = datetime.now(UTC)
    old = _months_back(Period.containing(now), 6)
    received = old.next()
    retention_days = (now - received.next().start).days
    clock = FixedClock(received.start + timedelta(days=2))
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url), clock).start()
        client = Client(server.target)
        try:
            shop = Shop(client, skip_trial=True, start_time=ts(old.start))
            for n in range(30):
                ack = shop.record(
                    [
                        shop.message(
                            f"old-{n}-{i}",
                            1,
                            tenant=i % 2,
                            at=old.start + timedelta(days=1, seconds=n * 1000 + i),
                        )
                        for i in range(1000)
                    ],
                    batch_id=f"old-{n}",
                )
                assert ack.accepted == 1000
            close(client, shop.account_id, old)
            clock.set(now)
            month = partition_name(bucket_of(int((received.start.timestamp() + 2 * 86400) * 1e6)))
            assert month in _tables(server.db)

            stop = threading.Event()
            acks: list[tuple[int, float]] = []
            waits: dict[tuple[int, str], list[float]] = {}

            def ingest(prefix: str) -> None:
                own = Client(server.target)
                n = 0
                try:
                    while not stop.is_set():
                        started = time.monotonic()
                        ack = _record(
                            own,
                            [
                                shop.message(f"{prefix}-{n}-{i}", 1, tenant=i % 2)
                                for i in range(200)
                            ],
                            f"{prefix}-{n}",
                        )
                        acks.append((ack.accepted, time.monotonic() - started))
                        n += 1
                except grpc.RpcError as error:  # an ack that never came fails the test
                    acks.append((-1, time.monotonic() - started))
                    raise AssertionError(error.details()) from error
                finally:
                    own.close()

            def watch() -> None:
                with psycopg.connect(_dsn(url), autocommit=True) as conn:
                    while not stop.is_set():
                        seen = time.monotonic()
                        for pid, started in conn.execute(
                            "SELECT pid, query_start::text FROM pg_stat_activity "
                            "WHERE datname = current_database() AND wait_event_type = "
                            "'Lock' AND application_name <> 'purge' "
                            "AND pid <> pg_backend_pid()"
                        ).fetchall():
                            waits.setdefault((pid, started), [seen, seen])[1] = seen
                        time.sleep(0.01)

            threads = [
                threading.Thread(target=ingest, args=("a",)),
                threading.Thread(target=ingest, args=("b",)),
                threading.Thread(target=watch),
            ]
            for thread in threads:
                thread.start()
            try:
                time.sleep(0.5)
                purged = purge_cli(
                    url, BILLING_USAGE_RETENTION_DAYS=str(retention_days), PGAPPNAME="purge"
                )
                time.sleep(0.5)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(30)
            assert purged.returncode == 0, purged.stderr
            assert month not in _tables(server.db)
            assert "usage events deleted: 30000 from 1 invoiced periods" in purged.stdout
            assert acks and all(accepted == 200 for accepted, _ in acks)
            longest_wait = max((last - first for first, last in waits.values()), default=0.0)
            print(
                f"\n{len(acks)} batches during the purge; longest ack "
                f"{max(s for _, s in acks) * 1000:.0f} ms; longest lock wait seen "
                f"{longest_wait * 1000:.0f} ms"
            )
            assert longest_wait < 1.0
        finally:
            client.close()
            server.stop()


def test_a_purge_stopped_midway_finishes_the_months_it_left_detached(tmp_path) -> None:
    """A purge stopped in a month's DETACH … CONCURRENTLY (the partition left 'detach pending')
    or after it (a table no longer attached) finishes that month at its next run, and counts
    its events once."""
    now = datetime.now(UTC)
    old = _months_back(Period.containing(now), 7)
    first, second = old.next(), old.next().next()  # the months old's events are stored in
    retention_days = (now - second.next().start).days
    clock = FixedClock(first.start + timedelta(days=2))
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url), clock).start()
        client = Client(server.target)
        try:
            shop = Shop(client, skip_trial=True, start_time=ts(old.start))
            assert (
                shop.record(
                    [shop.message(f"a{i}", 1, at=old.start + timedelta(hours=i)) for i in range(30)]
                ).accepted
                == 30
            )
            clock.set(second.start + timedelta(days=2))
            assert (
                shop.record(
                    [
                        shop.message(f"b{i}", 1, at=old.start + timedelta(days=2, hours=i))
                        for i in range(20)
                    ],
                    batch_id="b",
                ).accepted
                == 20
            )
            close(client, shop.account_id, old)
            clock.set(now)
            pending = partition_name(bucket_of(int(first.start.timestamp() * 1e6)))
            detached = partition_name(bucket_of(int(second.start.timestamp() * 1e6)))
            with (
                psycopg.connect(_dsn(url), autocommit=True) as reader,
                psycopg.connect(_dsn(url), autocommit=True) as ddl,
            ):
                # A transaction that read the month holds the concurrent detach in its second
                # step; a timeout then stops it there.
                with reader.transaction():
                    reader.execute(f"SELECT count(*) FROM {pending}")
                    ddl.execute("SET statement_timeout = '500ms'")
                    with pytest.raises(psycopg.errors.QueryCanceled):
                        ddl.execute(
                            f"ALTER TABLE usage_event DETACH PARTITION {pending} CONCURRENTLY"
                        )
                ddl.execute(f"ALTER TABLE usage_event DETACH PARTITION {detached}")
                states = dict(
                    ddl.execute(
                        "SELECT c.relname, i.inhdetachpending FROM pg_inherits i JOIN pg_class c "
                        "ON c.oid = i.inhrelid WHERE i.inhparent = 'usage_event'::regclass"
                    ).fetchall()
                )
            assert states[pending] is True and detached not in states
            # The purge of old had started (it is recorded before the first month goes).
            with server.db.write() as session:
                session.execute(
                    text(
                        "INSERT INTO usage_purged_period (account_id, period, horizon_us, "
                        "started_at, events_deleted) VALUES (:a, :p, 0, :at, 0)"
                    ),
                    {"a": shop.account_id, "p": old.label, "at": now},
                )

            summary = retention.purge(server.db, RetentionPolicy(usage_days=retention_days), now)
            assert summary.partitions_dropped == [pending, detached]
            assert summary.usage_events == 50 and summary.periods_purged == [
                (shop.account_id, old.label)
            ]
            assert not {pending, detached} & _tables(server.db)
            with server.db.read() as session:
                counted = session.execute(
                    text("SELECT events_deleted FROM usage_purged_period WHERE account_id = :a"),
                    {"a": shop.account_id},
                ).scalar_one()
            assert counted == 50
            assert _keys(server.db, shop.account_id) == set()
        finally:
            client.close()
            server.stop()


def test_the_migration_converts_a_database_with_rows_and_back(tmp_path) -> None:
    now = datetime.now(UTC)
    a_year_ago = int((now - timedelta(days=365)).timestamp() * 1e6)
    with fresh_database(str(tmp_path), empty=True) as url:
        settings = settings_for_tests(url)
        server = ServerThread(settings).start()
        client = Client(server.target)
        try:
            shop = Shop(
                client, skip_trial=True, start_time=ts(Period.containing(now).previous().start)
            )
            assert shop.record([shop.message(f"e{i}", 1) for i in range(5)]).accepted == 5
            sim = client.billing.CreateTestClock(
                pb.CreateTestClockRequest(
                    name="sim", frozen_time=ts(datetime(2026, 1, 10, tzinfo=UTC))
                ),
                metadata=ADMIN,
            ).test_clock
            on_clock = client.billing.CreateAccount(
                pb.CreateAccountRequest(
                    name="Sim Co", plan_id="startup", test_clock_id=sim.test_clock_id
                ),
                metadata=ADMIN,
            ).account.account_id
            tenant = client.billing.CreateTenant(
                pb.CreateTenantRequest(account_id=on_clock, name="T"), metadata=ADMIN
            ).tenant.tenant_id
            ack = _record(
                client,
                [
                    upb.UsageEvent(
                        event_id="c1",
                        account_id=on_clock,
                        tenant_id=tenant,
                        kind=1,
                        quantity=1,
                        occurred_at=ts(datetime(2026, 1, 10, tzinfo=UTC)),
                    )
                ],
            )
            assert ack.accepted == 1
        finally:
            client.close()
            server.stop()
        this_month = partition_name(bucket_of(int(now.timestamp() * 1e6)))
        db = Database(url)
        try:
            assert set(_where(db, shop.account_id).values()) == {this_month}
            assert set(_where(db, on_clock).values()) == {"usage_event_kept"}
            # Down: one table with its primary key again, every row in it.
            _downgrade(db, "0015_typed_lists")
            assert not {"usage_event_key", "usage_event_kept", this_month} & _tables(db)
            with db.engine.begin() as connection:
                assert (
                    connection.execute(text("SELECT count(*) FROM usage_event")).scalar_one() == 6
                )
                # A row stored a year ago, as the old layout held it.
                connection.execute(
                    text(
                        "INSERT INTO usage_event (account_id, event_id, tenant_id, partner_id, "
                        "kind, quantity, occurred_at_us, period, late, received_at_us) VALUES "
                        "(:a, 'year-old', :t, '', 1, 1, :at, :p, false, :at)"
                    ),
                    {
                        "a": shop.account_id,
                        "t": shop.tenants[0],
                        "at": a_year_ago,
                        "p": Period.containing(now - timedelta(days=365)).label,
                    },
                )
            # Up: every row in the partition of the month it was received in (a clock's
            # account's in the kept one), every row with its dedupe key.
            upgrade(db, settings=settings)
            year_old = partition_name(bucket_of(a_year_ago))
            where = _where(db, shop.account_id)
            assert where == {**{f"e{i}": this_month for i in range(5)}, "year-old": year_old}
            assert set(_where(db, on_clock).values()) == {"usage_event_kept"}
            assert _keys(db, shop.account_id) == set(where)
            assert _keys(db, on_clock) == {"c1"}
            _schema_matches_the_tables(db)
        finally:
            db.dispose()
        server = ServerThread(settings).start()
        client = Client(server.target)
        try:
            # The keys filled by the migration are the exactly-once guarantee: a resend is a
            # duplicate, a reuse of an id with other content a conflict.
            resend = _record(client, [_stored_as_sent(url, shop, "e1")])
            assert (resend.accepted, resend.duplicates) == (0, 1)
            reused = _record(client, [shop.message("e2", 99)])
            assert reused.accepted == 0 and "already used" in reused.rejected[0].reason
            assert _record(client, [shop.message("e9", 1)]).accepted == 1
            assert _record(client, [shop.message("year-old", 1)]).rejected  # a conflict too
            # A deleted test clock takes its accounts' dedupe keys with it.
            client.billing.DeleteTestClock(
                pb.DeleteTestClockRequest(test_clock_id=sim.test_clock_id), metadata=ADMIN
            )
            assert _keys(server.db, on_clock) == set()
            assert _keys(server.db, shop.account_id)
        finally:
            client.close()
            server.stop()


def _record(
    client: Client, events: list[upb.UsageEvent], batch_id: str = "r"
) -> upb.RecordUsageResponse:
    return client.usage.RecordUsage(
        upb.RecordUsageRequest(batch_id=batch_id, events=events), metadata=PRODUCER
    )


def _stored_as_sent(url: str, shop: Shop, event_id: str) -> upb.UsageEvent:
    """The event as stored, to resend exactly."""
    with psycopg.connect(_dsn(url)) as conn:
        row = conn.execute(
            "SELECT tenant_id, partner_id, kind, quantity, occurred_at_us FROM "
            "usage_event WHERE account_id = %s AND event_id = %s",
            (shop.account_id, event_id),
        ).fetchone()
    assert row is not None
    tenant_id, partner_id, kind, quantity, occurred_at_us = row
    return upb.UsageEvent(
        event_id=event_id,
        account_id=shop.account_id,
        tenant_id=tenant_id,
        partner_id=partner_id,
        kind=kind,
        quantity=quantity,
        occurred_at=ts(datetime.fromtimestamp(occurred_at_us / 1e6, UTC)),
    )
