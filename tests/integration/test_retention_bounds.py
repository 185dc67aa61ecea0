"""Retention settings at their edges (red-team of issue 16): the longest allowed purge cleanly (a
window that reaches before 1970 keeps everything), and hourly roll-ups kept shorter than raw
usage never go while a late event of their hours can still come."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing_svc.domain.periods import EARLIEST, Period
from billing_svc.domain.retention import MAX_RETENTION_DAYS
from billing_svc.services import hourly_reports, retention
from billing_svc.services.retention import RetentionPolicy
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade
from tests.integration.test_hourly_reports import all_reports, tenants_of, wait_reports
from tests.integration.test_invoicing import close, imported_shop
from tests.integration.test_usage import now
from tests.support import Client, ServerThread, fresh_database, settings_for_tests


def test_a_purge_with_every_retention_at_its_longest_deletes_nothing_and_completes(
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    policy = RetentionPolicy(*[MAX_RETENTION_DAYS] * 4)
    with fresh_database(str(tmp_path)) as url:
        db = Database(url)
        try:
            upgrade(db)
            summary = retention.purge(db, policy, datetime.now(UTC))
        finally:
            db.dispose()
    assert summary.complete and summary.deleted == 0
    assert summary.horizon == EARLIEST


def test_hourly_rollups_kept_shorter_than_usage_never_make_a_late_revision_negative(
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    """BILLING_HOURLY_ROLLUP_RETENTION_DAYS below BILLING_USAGE_RETENTION_DAYS: an invoiced
    period's roll-ups stay while its late events may still come, so the hourly report of a late
    event is its own count (it was once that count minus all reported before: 4 - 5 = -1)."""
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url)).start()
        client = Client(server.target)
        try:
            shop = imported_shop(client, months_back=3)
            old = Period.containing(now()).previous().previous()
            hour = old.start + timedelta(days=2)
            shop.record([shop.message("a", 5, at=hour + timedelta(minutes=1))])
            (first,) = wait_reports(client, shop.account_id, 1)
            close(client, shop.account_id, old)
            summary = retention.purge(server.db, RetentionPolicy(400, 90, 30, 1), datetime.now(UTC))
            assert summary.complete and summary.hourly_rollups == 0
            ack = shop.record(
                [shop.message("late", 4, at=hour + timedelta(minutes=9))], batch_id="late"
            )
            assert ack.accepted == 1
            _, second = wait_reports(client, shop.account_id, 2)
            assert (second.revision, second.hour) == (2, first.hour)
            assert tenants_of(second) == {shop.tenants[0]: (4, 0)}
        finally:
            client.close()
            server.stop()


def test_an_hour_still_to_be_reported_keeps_its_rollups_through_a_purge(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A late event accepted just before the purge horizon moved past its period: the hour is
    reported from its roll-ups (its own count), and only the next purge takes them. Deleted
    first, the report was everything reported before, negated (0 - 5)."""
    with fresh_database(str(tmp_path)) as url:
        # The scheduler never runs here: the report job runs when the test says.
        server = ServerThread(settings_for_tests(url, scheduler_interval_seconds=3600)).start()
        client = Client(server.target)
        try:
            shop = imported_shop(client, months_back=3)
            old = Period.containing(now()).previous().previous()
            hour = old.start + timedelta(days=2)
            shop.record([shop.message("a", 5, at=hour + timedelta(minutes=1))])
            assert hourly_reports.report_closed_hours(server.db, now(), timedelta(0)) == 1
            shop.record([shop.message("late", 4, at=hour + timedelta(minutes=9))], batch_id="late")
            close(client, shop.account_id, old)
            # One day of raw usage: the horizon moves to this period's start, past `old`.
            policy = RetentionPolicy(1, 90, 30, 1)
            purged = retention.purge(server.db, policy, datetime.now(UTC))
            assert purged.usage_events == 2 and purged.hourly_rollups == 0
            assert hourly_reports.report_closed_hours(server.db, now(), timedelta(0)) == 1
            first, second = all_reports(client, shop.account_id)
            assert (second.revision, second.hour) == (2, first.hour)
            assert tenants_of(second) == {shop.tenants[0]: (4, 0)}
            assert retention.purge(server.db, policy, datetime.now(UTC)).hourly_rollups == 1
        finally:
            client.close()
            server.stop()
