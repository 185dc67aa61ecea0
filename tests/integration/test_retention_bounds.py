"""The longest retention settings allowed purge cleanly (red-team of issue 16): a window that
reaches before 1970 keeps everything, and the purge says so instead of failing."""

from __future__ import annotations

from datetime import UTC, datetime

from billing_svc.domain.periods import EARLIEST
from billing_svc.domain.retention import MAX_RETENTION_DAYS
from billing_svc.services import retention
from billing_svc.services.retention import RetentionPolicy
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade
from tests.support import fresh_database


def test_a_purge_with_every_retention_at_its_longest_deletes_nothing_and_completes(
        tmp_path) -> None:  # type: ignore[no-untyped-def]
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
