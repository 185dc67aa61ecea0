"""Retention (issue 16): ``billing-svc purge`` as a real process beside a real server, the
scheduler's purge, and the purge of each kind of record against back-dated rows."""

from __future__ import annotations

import csv
import gzip
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import grpc
from as2aas.billing.v1 import billing_service_pb2 as pb
from sqlalchemy import text
from sqlmodel import func, select

from billing_svc.domain.periods import Period
from billing_svc.services import retention
from billing_svc.services.retention import RetentionPolicy
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade
from billing_svc.storage.retention import EVENT_COLUMNS, usage_horizon_us
from billing_svc.storage.tables import (
    Account,
    AuditRecord,
    IdempotencyRecord,
    Invoice,
    OutboxEvent,
    UsageEvent,
    UsageHourly,
    UsagePeriod,
    UsageReport,
    UsageReportHead,
    WebhookAttempt,
    WebhookDelivery,
)
from tests.integration.test_invoicing import close
from tests.integration.test_usage import Shop, ts
from tests.support import READER, Client, ServerThread, fresh_database, settings_for_tests

GB = 10**9


def purge_cli(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "billing_svc.cli", "purge", *args],
        text=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "BILLING_DATABASE_URL": url, **env},
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _months_back(period: Period, months: int) -> Period:
    for _ in range(months):
        period = period.previous()
    return period


def _events(db: Database, account_id: str) -> dict[str, tuple]:
    with db.read() as session:
        rows = session.execute(
            text(f"SELECT {', '.join(EVENT_COLUMNS)} FROM usage_event WHERE account_id = :a"),
            {"a": account_id},
        ).all()
    return {row[0]: tuple(row) for row in rows}


def _hourly_periods(db: Database, account_id: str) -> set[str]:
    with db.read() as session:
        hours = (
            session.execute(
                text("SELECT hour_us FROM usage_hourly WHERE account_id = :a"), {"a": account_id}
            )
            .scalars()
            .all()
        )
    return {Period.containing(datetime.fromtimestamp(h / 1e6, UTC)).label for h in hours}


def _count(db: Database, table) -> int:  # type: ignore[no-untyped-def]
    with db.read() as session:
        return session.exec(select(func.count()).select_from(table)).one()


def test_purge_deletes_invoiced_old_usage_keeps_the_rest_and_refuses_it_ever_after(
    tmp_path,
) -> None:
    now = _now()
    horizon = _months_back(Period.containing(now), 5)  # the first period the purge keeps
    retention_days = (now - horizon.start).days  # now - retention_days lies in that period
    old, uninvoiced = _months_back(horizon, 4), _months_back(horizon, 3)
    storage_month, later = horizon, horizon.next()
    with fresh_database(str(tmp_path)) as url:
        # The server keeps 400 days; the purge below keeps fewer: a purge followed by a longer
        # retention setting, which must never take a purged event again.
        server = ServerThread(settings_for_tests(url)).start()
        client = Client(server.target)
        try:
            shop = Shop(client, plan_id="startup", skip_trial=True, start_time=ts(old.start))
            messages = [
                shop.message(
                    f"old-{i}", 100, tenant=i % 2, at=old.start + timedelta(days=3, hours=i)
                )
                for i in range(12)
            ]
            ack = shop.record(
                [
                    *messages,
                    shop.storage("old-gauge-0a", 5, old.start + timedelta(days=1), tenant=0),
                    shop.storage("old-gauge-0b", 7, old.start + timedelta(days=10), tenant=0),
                    shop.storage("old-gauge-1", 3, old.start + timedelta(days=2), tenant=1),
                    *[
                        shop.message(
                            f"open-{i}", 10, at=uninvoiced.start + timedelta(days=2, hours=i)
                        )
                        for i in range(5)
                    ],
                    shop.message("later-1", 10, at=later.start + timedelta(days=2)),
                    shop.storage("later-gauge-0", 2, later.start + timedelta(days=1), tenant=0),
                    shop.storage("later-gauge-1", 1, later.start + timedelta(days=3), tenant=1),
                ]
            )
            assert (ack.accepted, list(ack.rejected)) == (23, [])
            close(client, shop.account_id, old)
            close(client, shop.account_id, later)
            old_messages = shop.monthly(old).total_messages
            audit_before = _count(server.db, AuditRecord)
            before = _events(server.db, shop.account_id)

            export = tmp_path / "purged.csv.gz"
            purged = purge_cli(
                url,
                "--export",
                str(export),
                BILLING_USAGE_RETENTION_DAYS=str(retention_days),
                BILLING_HOURLY_ROLLUP_RETENTION_DAYS=str(retention_days),
            )
            assert purged.returncode == 0, purged.stderr
            after = _events(server.db, shop.account_id)

            # Invoiced and old: gone, but for each tenant's last storage reading before the
            # horizon. Never invoiced: kept, and listed. Younger than the horizon: kept.
            deleted = set(before) - set(after)
            assert deleted == {*(e.event_id for e in messages), "old-gauge-0a"}
            assert {e for e in after if e.startswith("old")} == {"old-gauge-0b", "old-gauge-1"}
            assert {e for e in before if not e.startswith("old")} <= set(after)
            lines = purged.stdout.splitlines()
            assert (
                f"purge horizon: {horizon.start:%Y-%m-%d} (usage before it is refused from "
                "now on)" in lines
            )
            assert (
                f"usage events deleted: 13 from 1 invoiced periods, exported to {export}" in lines
            )
            assert "storage readings kept (each tenant's last before the horizon): 2" in lines
            # Storage held makes the two months after it usage of their own (no events).
            kept = [uninvoiced, uninvoiced.next(), uninvoiced.next().next()]
            assert lines[-3:] == [
                f"  {shop.account_id}\t{uninvoiced.label}\t50 messages",
                f"  {shop.account_id}\t{kept[1].label}\t0 messages",
                f"  {shop.account_id}\t{kept[2].label}\t0 messages",
            ]

            # The export holds exactly the rows deleted, as they were stored.
            with gzip.open(export, "rt", newline="") as handle:
                rows = list(csv.reader(handle))
            assert rows[0] == list(EVENT_COLUMNS)
            assert {row[0]: row for row in rows[1:]} == {
                event_id: [str(int(v) if isinstance(v, bool) else v) for v in before[event_id]]
                for event_id in deleted
            }

            # Counters, hourly roll-ups of open and young periods, the audit trail: kept.
            assert shop.monthly(old).total_messages == old_messages == 1200
            assert _hourly_periods(server.db, shop.account_id) == {uninvoiced.label, later.label}
            assert _count(server.db, AuditRecord) == audit_before

            # Resent, or new, and older than the horizon: refused as outside retention, whatever
            # the server's 400 days say; nothing counts twice.
            again = shop.record(
                [
                    messages[0],
                    shop.message("open-0", 10, at=uninvoiced.start + timedelta(days=2)),
                    shop.message("new-old", 1, at=old.start + timedelta(days=5)),
                ]
            )
            assert again.accepted == again.duplicates == 0
            assert [r.reason for r in again.rejected] == [
                f"occurred_at is before {horizon.start:%Y-%m-%dT%H:%M:%SZ}, outside retention: "
                "usage that old was purged (billing-svc purge) and is never counted again"
            ] * 3
            assert shop.monthly(old).total_messages == 1200
            assert shop.monthly(uninvoiced).total_messages == 50

            # A purged period cannot be re-rated; a later one still can, from the kept readings.
            try:
                client.billing.ReconcilePeriod(
                    pb.ReconcilePeriodRequest(account_id=shop.account_id, period=old.label),
                    metadata=READER,
                )
                raise AssertionError("a purged period was reconciled")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert "raw usage events were purged" in error.details()
                assert "its invoice stands as issued" in error.details()
            assert client.billing.ReconcilePeriod(
                pb.ReconcilePeriodRequest(account_id=shop.account_id, period=later.label),
                metadata=READER,
            ).matches

            # An out-of-order reading after the horizon recomputes from the kept one: tenant 0
            # held 7 GB (read in the purged period) until this 4 GB reading, 15 days in.
            ack = shop.record(
                [shop.storage("late-gauge", 4, storage_month.start + timedelta(days=15), tenant=0)]
            )
            assert ack.accepted == 1
            days = storage_month.seconds // 86_400
            tenants = {
                t.tenant_id: Decimal(t.storage_gb_months)
                for t in shop.monthly(storage_month).tenant_breakdown
            }
            assert tenants[shop.tenants[0]] == (Decimal(7 * 15 + 4 * (days - 15)) / days).quantize(
                Decimal("1e-9"), ROUND_HALF_UP
            )
            assert tenants[shop.tenants[1]] == 3

            # Purging again finds nothing more, and keeps listing the uninvoiced period.
            repeat = retention.purge(server.db, RetentionPolicy(usage_days=retention_days), now)
            assert (repeat.usage_events, repeat.periods_purged) == (0, [])
            assert [(k.account_id, k.period) for k in repeat.uninvoiced] == [
                (shop.account_id, period.label) for period in kept
            ]
        finally:
            client.close()
            server.stop()


def test_purge_keeps_everything_younger_than_its_window_and_every_pending_delivery(
    tmp_path,
) -> None:
    now = _now()
    with fresh_database(str(tmp_path)) as url:
        db = Database(url)
        upgrade(db)
        old, young = now - timedelta(days=91), now - timedelta(days=89)
        with db.write() as session:
            for event_id, created, fanned_out, statuses in (
                ("evt_old_delivered", old, True, ["delivered", "failed"]),
                ("evt_old_failed", old, True, ["failed"]),
                ("evt_old_no_endpoint", old, True, []),
                ("evt_old_pending", old, True, ["delivered", "pending"]),
                ("evt_old_not_fanned_out", old, False, []),
                ("evt_young_delivered", young, True, ["delivered"]),
            ):
                session.add(
                    OutboxEvent(
                        event_id=event_id,
                        account_id="acc_1",
                        type="billing.x",
                        body="{}",
                        occurred_at=created,
                        created_at=created,
                        fanned_out=fanned_out,
                    )
                )
                for n, status in enumerate(statuses):
                    delivery = WebhookDelivery(
                        event_id=event_id,
                        endpoint_id=f"we_{n}",
                        status=status,
                        attempts=1,
                        next_attempt_at=created,
                        created_at=created,
                    )
                    session.add(delivery)
                    session.flush()
                    session.add(
                        WebhookAttempt(
                            delivery_id=delivery.id,
                            event_id=event_id,
                            endpoint_id=f"we_{n}",
                            attempt_number=1,
                            attempted_at=created,
                            status_code=500,
                        )
                    )
            for request_id, days in (("r-old", 31), ("r-young", 29)):
                session.add(
                    IdempotencyRecord(
                        token_id="tok_1",
                        method="CreateAccount",
                        request_id=request_id,
                        caller="c",
                        fingerprint="f",
                        result_id="acc_1",
                        created_at=now - timedelta(days=days),
                    )
                )
            session.execute(
                text(
                    "INSERT INTO usage_hourly (account_id, hour_us, tenant_id, partner_id, kind, "
                    "messages, storage_bytes_max) VALUES ('acc_1', 0, 'ten_1', '', 1, 5, 0)"
                )
            )

        summary = retention.purge(db, RetentionPolicy(), now)

        with db.read() as session:
            events = set(session.exec(select(OutboxEvent.event_id)).all())
            deliveries = session.exec(
                select(WebhookDelivery.event_id, WebhookDelivery.status)
            ).all()
            attempts = session.exec(select(WebhookAttempt.event_id)).all()
            requests = set(session.exec(select(IdempotencyRecord.request_id)).all())
        assert events == {"evt_old_pending", "evt_old_not_fanned_out", "evt_young_delivered"}
        assert sorted(deliveries) == [
            ("evt_old_pending", "delivered"),
            ("evt_old_pending", "pending"),
            ("evt_young_delivered", "delivered"),
        ]
        assert sorted(attempts) == ["evt_old_pending", "evt_old_pending", "evt_young_delivered"]
        assert requests == {"r-young"}
        assert (
            summary.outbox_events,
            summary.deliveries,
            summary.attempts,
            summary.idempotency_records,
        ) == (3, 3, 3, 1)
        # An hourly roll-up of a period never invoiced stays, however old.
        assert summary.hourly_rollups == 0
        # Every chunk holds SQLite's write lock briefly (the budget is ~50 ms; tests are slower).
        assert summary.chunks and summary.longest_chunk_seconds < 1.0
        db.dispose()


def test_the_scheduler_purges(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(
            settings_for_tests(url, purge_interval_seconds=0.2, idempotency_retention_days=1)
        ).start()
        try:
            with server.db.write() as session:
                for request_id, hours in (("r-old", 25), ("r-young", 23)):
                    session.add(
                        IdempotencyRecord(
                            token_id="tok_1",
                            method="CreateAccount",
                            request_id=request_id,
                            caller="c",
                            fingerprint="f",
                            result_id="acc_1",
                            created_at=_now() - timedelta(hours=hours),
                        )
                    )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with server.db.read() as session:
                    requests = set(session.exec(select(IdempotencyRecord.request_id)).all())
                if "r-old" not in requests:
                    break
                time.sleep(0.1)
            assert requests == {"r-young"}
            assert retention.horizon_of(server.db) is not None
        finally:
            server.stop()


def _account_with_periods(
    db: Database, invoiced: list[Period], others: list[Period], now: datetime
) -> None:
    first = min(invoiced + others)
    with db.write() as session:
        session.add(
            Account(
                account_id="acc_1",
                customer_id="cus_1",
                subscription_id="sub_1",
                name="A",
                plan_id="startup",
                billing_interval="monthly",
                status="active",
                created_at=first.start,
                registered_at=first.start,
                updated_at=first.start,
            )
        )
        session.flush()
        for n, period in enumerate(invoiced):
            session.add(
                Invoice(
                    invoice_id=f"inv_{n}",
                    account_id="acc_1",
                    period=period.label,
                    status="paid",
                    subtotal=Decimal(0),
                    total=Decimal(0),
                    lines_json="[]",
                    tenant_breakdown_json="[]",
                    created_at=now,
                )
            )
        for period in invoiced + others:
            session.add(UsagePeriod(account_id="acc_1", period=period.label, messages=1))


def _add_events(db: Database, events: list[tuple[str, int, int, datetime]]) -> None:
    """``(event_id, kind, quantity, occurred_at)`` of tenant ten_1 of acc_1."""
    with db.write() as session:
        for event_id, kind, quantity, at in events:
            at_us = round(at.timestamp() * 1e6)
            session.add(
                UsageEvent(
                    account_id="acc_1",
                    event_id=event_id,
                    tenant_id="ten_1",
                    kind=kind,
                    quantity=quantity,
                    occurred_at_us=at_us,
                    period=Period.containing(at).label,
                    received_at_us=at_us,
                )
            )


def test_a_period_kept_between_purged_ones_keeps_the_reading_it_starts_from(tmp_path) -> None:
    now = _now()
    first = _months_back(Period.containing(now), 9)
    kept, third = first.next(), first.next().next()
    with fresh_database(str(tmp_path)) as url:
        db = Database(url)
        upgrade(db)
        _account_with_periods(db, [first, third], [kept], now)
        _add_events(
            db,
            [
                ("g1", 2, 2 * GB, first.start + timedelta(days=1)),
                ("g2", 2, 5 * GB, first.start + timedelta(days=9)),
                ("m1", 1, 1, first.start + timedelta(days=2)),
                ("m2", 1, 1, kept.start + timedelta(days=2)),
                ("g3", 2, 7 * GB, third.start + timedelta(days=3)),
                ("g4", 2, 1 * GB, third.start + timedelta(days=1)),
            ],
        )
        summary = retention.purge(db, RetentionPolicy(usage_days=120), now)
        # g2 sets the kept period's starting level, g3 the horizon's: both stay.
        assert set(_events(db, "acc_1")) == {"g2", "m2", "g3"}
        assert (summary.usage_events, summary.storage_readings_kept) == (3, 2)
        db.dispose()


def test_a_purge_waits_for_the_ingestion_groups_in_flight(tmp_path) -> None:
    """A group that read the old horizon (share-locked on PostgreSQL; SQLite has one writer)
    commits before the purge's first delete: it cannot store an event the purge deletes."""
    now = _now()
    old = _months_back(Period.containing(now), 8)
    with fresh_database(str(tmp_path)) as url:
        db = Database(url)
        upgrade(db)
        _account_with_periods(db, [old], [], now)
        _add_events(db, [(f"e{n}", 1, 1, old.start + timedelta(hours=n)) for n in range(3)])
        held, release = threading.Event(), threading.Event()

        def group_in_flight() -> None:
            with db.write() as session:
                usage_horizon_us(session.connection(), share_lock=True)
                held.set()
                release.wait(20)

        group = threading.Thread(target=group_in_flight)
        group.start()
        assert held.wait(10)
        summaries: list[retention.PurgeSummary] = []
        purge = threading.Thread(
            target=lambda: summaries.append(
                retention.purge(db, RetentionPolicy(usage_days=120), now)
            )
        )
        purge.start()
        time.sleep(1.0)
        try:
            assert purge.is_alive()
            assert _count(db, UsageEvent) == 3
        finally:
            release.set()
            group.join(20)
            purge.join(20)
        assert summaries[0].usage_events == 3 and _count(db, UsageEvent) == 0
        db.dispose()


def test_purge_help_and_an_unwritable_export(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/help.db"
    shown = purge_cli(url, "--help")
    assert shown.returncode == 0 and "--export FILE" in shown.stdout
    refused = purge_cli(url, "--export", str(tmp_path / "no-such-dir" / "x.csv.gz"))
    assert refused.returncode == 2 and "cannot write" in refused.stderr


def test_usage_event_table_is_what_the_export_names() -> None:
    assert set(EVENT_COLUMNS) == set(UsageEvent.model_fields)


def test_hourly_reports_go_with_their_hours_but_the_latest_revision_of_kept_roll_ups(
    tmp_path,
) -> None:
    now = _now()
    current = Period.containing(now)
    old, uninvoiced, young = _months_back(current, 9), _months_back(current, 8), current.previous()
    hour = 3_600_000_000

    def at(period: Period) -> int:
        return round((period.start + timedelta(days=1)).timestamp() * 1e6)

    # (account, hour, revisions, has roll-ups): sequences are given out in this order.
    hours = [
        ("acc_1", at(old), 2, True),  # invoiced: the roll-ups go, then every revision
        ("acc_1", at(uninvoiced), 3, True),  # roll-ups kept: the latest revision stays
        ("acc_1", at(uninvoiced) + hour, 1, False),  # no roll-ups: nothing to revise
        ("acc_1", at(young), 2, True),  # younger than the window: all stay
        ("acc_1", at(young) + hour, 1, False),
        ("acc_clk", at(old), 2, False),
    ]  # a test clock's hours are on its own time
    with fresh_database(str(tmp_path)) as url:
        db = Database(url)
        upgrade(db)
        _account_with_periods(db, [old, young], [uninvoiced], now)
        sequence = 0
        with db.write() as session:
            session.add(
                Account(
                    account_id="acc_clk",
                    customer_id="cus_clk",
                    subscription_id="sub_clk",
                    name="C",
                    plan_id="startup",
                    billing_interval="monthly",
                    status="active",
                    created_at=old.start,
                    registered_at=old.start,
                    updated_at=old.start,
                    test_clock_id="clk_1",
                )
            )
            for account_id, hour_us, revisions, rollups in hours:
                if rollups:
                    session.add(
                        UsageHourly(
                            account_id=account_id,
                            hour_us=hour_us,
                            tenant_id="ten_1",
                            partner_id="",
                            kind=1,
                            messages=5,
                        )
                    )
                for revision in range(1, revisions + 1):
                    sequence += 1
                    session.add(
                        UsageReport(
                            sequence=sequence,
                            account_id=account_id,
                            hour_us=hour_us,
                            revision=revision,
                            period=Period.containing(
                                datetime.fromtimestamp(hour_us / 1e6, UTC)
                            ).label,
                            tenants_json="[]",
                            partners_json="[]",
                            totals_json="{}",
                            estimated_charges=Decimal(0),
                            created_at=datetime.fromtimestamp(hour_us / 1e6, UTC),
                        )
                    )
            head = session.get(UsageReportHead, 1)
            head.sequence = sequence
            session.add(head)

        policy = RetentionPolicy(usage_days=120, hourly_rollup_days=120)
        summary = retention.purge(db, policy, now)

        with db.read() as session:
            left = session.exec(
                select(UsageReport.account_id, UsageReport.hour_us, UsageReport.revision)
            ).all()
            assert session.get(UsageReportHead, 1).sequence == sequence
        assert sorted(left) == sorted(
            [
                ("acc_1", at(uninvoiced), 3),
                ("acc_1", at(young), 1),
                ("acc_1", at(young), 2),
                ("acc_1", at(young) + hour, 1),
                ("acc_clk", at(old), 1),
                ("acc_clk", at(old), 2),
            ]
        )
        assert summary.usage_reports == 2 + 2 + 1 and summary.hourly_rollups == 1
        assert retention.purge(db, policy, now).usage_reports == 0
        db.dispose()
