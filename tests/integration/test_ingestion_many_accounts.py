"""Groups of batches over many accounts (docs/decisions.md, "Ingestion CPU with many accounts").

The period counters of a whole group are added by one statement per hundred accounts, whose
returned totals are matched back by key; what ingestion remembers across groups (account terms
and thresholds as stored) is keyed by the stored values themselves, so a change another
process or replica commits is seen by the next group. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from billing_svc.domain.catalog import CustomTerms
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import MESSAGE, UsageBatch, UsageEventIn, to_us
from billing_svc.services import accounts
from billing_svc.services.context import Caller, RequestContext
from billing_svc.services.ingestion import ingest
from billing_svc.storage.db import Database
from billing_svc.storage.tables import Account, OutboxEvent, UsagePeriod
from tests.support import fresh_database

ADMIN_CTX = RequestContext(Caller("test", frozenset({"admin"})))
NOW = datetime.now(UTC)
NOW_US = to_us(NOW)
PERIOD = Period.containing(NOW).label
ACCOUNTS = 250  # more than one statement's worth of period counters (100)


@pytest.fixture
def url(tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with fresh_database(str(tmp_path)) as made:
        yield made


def _account(db: Database, number: int, plan_id: str = "startup") -> tuple[str, str, str]:
    account = accounts.create_account(
        db,
        ADMIN_CTX,
        name=f"many {number}",
        plan_id=plan_id,
        billing_interval="monthly",
        skip_trial=True,
        start_time=Period.containing(NOW).start,
        usage_thresholds=(75, 90, 100),
        key=None,
    )
    tenant = accounts.create_tenant(
        db, ADMIN_CTX, account_id=account.account_id, name="t", start_time=None, key=None
    )
    partner = accounts.create_master_partner(
        db,
        ADMIN_CTX,
        account_id=account.account_id,
        name="p",
        department="Ops",
        start_time=None,
        key=None,
    )
    return account.account_id, tenant.tenant_id, partner.partner_id


def _batch(name: str, rows: list[tuple[str, str, str, str, int]]) -> UsageBatch:
    return UsageBatch(
        name,
        [
            UsageEventIn(event_id, account, tenant, partner, MESSAGE, quantity, NOW_US - 1)
            for event_id, account, tenant, partner, quantity in rows
        ],
    )


def _thresholds(db: Database, account_id: str) -> list[tuple[int, int]]:
    with db.read() as session:
        rows = session.exec(
            select(OutboxEvent)
            .where(OutboxEvent.account_id == account_id)
            .where(OutboxEvent.type == "billing.usage_threshold")
        ).all()
        bodies = [json.loads(row.body)["data"] for row in rows]
    return sorted((b["threshold_percentage"], b["current_usage"]) for b in bodies)


def test_a_group_over_many_accounts_counts_and_notifies_each_one(url: str) -> None:
    db = Database(url)
    try:
        made = [_account(db, n) for n in range(ACCOUNTS)]  # startup: 5,000 included messages
        # Two batches over every account: the first takes account n to n + 1 messages (none
        # crosses), the second adds 3,749 to every third account (75 % reached for those).
        first = _batch("b1", [(f"a{n}", a, t, p, n + 1) for n, (a, t, p) in enumerate(made)])
        second = _batch(
            "b2", [(f"b{n}", a, t, p, 3749) for n, (a, t, p) in enumerate(made) if n % 3 == 0]
        )
        results = ingest(db, [first, second], now_us=NOW_US)
        assert [r.accepted for r in results] == [ACCOUNTS, len(range(0, ACCOUNTS, 3))]
        with db.read() as session:
            periods = {
                row.account_id: row.messages
                for row in session.exec(select(UsagePeriod).where(UsagePeriod.period == PERIOD))
            }
        assert periods == {
            a: n + 1 + (3749 if n % 3 == 0 else 0) for n, (a, _, _) in enumerate(made)
        }
        for n, (account_id, _, _) in enumerate(made[:12]):
            # 75 % of 5,000 is 3,750: reached by n + 1 + 3,749 for every third account.
            assert _thresholds(db, account_id) == ([(75, n + 3750)] if n % 3 == 0 else [])
    finally:
        db.dispose()


def test_terms_and_thresholds_another_process_changes_are_seen_by_the_next_group(
    url: str,
) -> None:
    ours, theirs = Database(url), Database(url)  # two processes (or replicas) on one store
    try:
        account_id, tenant, partner = _account(ours, 0)
        ingest(ours, [_batch("g1", [("e1", account_id, tenant, partner, 1000)])], now_us=NOW_US)
        assert _thresholds(ours, account_id) == []
        # Another process lowers the thresholds and raises the included messages.
        with theirs.write() as session:
            account = session.get(Account, account_id)
            assert account is not None
            account.usage_thresholds = (50,)
            account.custom_terms_json = CustomTerms(included_messages=4000).to_json()
            session.add(account)
        # 2,000 of 4,000 is 50 %: our next group uses the new terms and thresholds (under the
        # old ones, 2,000 of 5,000 would cross nothing).
        ingest(ours, [_batch("g2", [("e2", account_id, tenant, partner, 1000)])], now_us=NOW_US)
        assert _thresholds(ours, account_id) == [(50, 2000)]
        # And back: the terms as first stored are those again (a remembered value is keyed by
        # what is stored, never by the account).
        with theirs.write() as session:
            account = session.get(Account, account_id)
            assert account is not None
            account.usage_thresholds = (75, 90, 100)
            account.custom_terms_json = None
            session.add(account)
        ingest(ours, [_batch("g3", [("e3", account_id, tenant, partner, 1750)])], now_us=NOW_US)
        assert _thresholds(ours, account_id) == [(50, 2000), (75, 3750)]
    finally:
        ours.dispose()
        theirs.dispose()
