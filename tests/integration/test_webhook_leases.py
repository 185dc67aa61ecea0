"""The outbox's delivery steps against a real database, without HTTP (WEBHOOKS.md: durability
and replicas): leases, outcomes recorded only under one's own lease, per-endpoint limits, the
schedule stored in the row, and leases given back at shutdown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from billing_svc.domain import events
from billing_svc.services import accounts, deliveries, webhooks
from billing_svc.services.context import Caller, RequestContext
from billing_svc.services.deliveries import Claimed, Outcome
from billing_svc.storage import outbox
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade
from billing_svc.storage.tables import WebhookAttempt, WebhookDelivery
from tests.support import fresh_database

ADMIN = RequestContext(Caller("test", frozenset({"admin"})))
SCHEDULE = (60.0, 300.0)


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    with fresh_database(str(tmp_path)) as url:
        database = Database(url)
        upgrade(database)
        yield database
        database.dispose()


def account_with_endpoints(db: Database, count: int) -> tuple[str, list[str]]:
    account = accounts.create_account(
        db,
        ADMIN,
        name="Leases",
        plan_id="startup",
        billing_interval="monthly",
        skip_trial=True,
        start_time=None,
        usage_thresholds=(),
        key=None,
    )
    hooks = [
        webhooks.create_endpoint(
            db,
            ADMIN,
            account_id=account.account_id,
            url=f"http://127.0.0.1:9/{i}",
            event_types=[],
            description="",
            allow_private=True,
            key=None,
        ).endpoint_id
        for i in range(count)
    ]
    return account.account_id, hooks


def emit(db: Database, account_id: str, count: int = 1) -> None:
    with db.write() as session:
        for i in range(count):
            outbox.enqueue(
                session,
                events.limit_exceeded(
                    account_id=account_id,
                    limit_type="tenants",
                    current_usage=i,
                    plan_limit=3,
                    period="2026-11",
                    refused=False,
                    occurred_at=datetime.now(UTC),
                ),
            )


def step(
    db: Database,
    owner: str,
    outcomes=(),
    *,
    lease: float = 60,
    limit: int = 100,
    busy: dict[str, int] | None = None,
    per_endpoint: int = 4,
) -> deliveries.Step:
    return deliveries.step(
        db,
        owner,
        list(outcomes),
        lease=timedelta(seconds=lease),
        claim_limit=limit,
        busy=busy or {},
        per_endpoint=per_endpoint,
        schedule=SCHEDULE,
        disable_after=timedelta(days=5),
    )


def outcome(claimed: Claimed, status: int) -> tuple[Claimed, Outcome, datetime]:
    return claimed, Outcome(status, 5, "" if status == 200 else f"HTTP {status}"), datetime.now(UTC)


def rows(db: Database) -> list[WebhookDelivery]:
    with db.read() as session:
        return list(session.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_a_lease_keeps_others_off_and_an_expired_one_is_taken_over(db: Database) -> None:
    account_id, _ = account_with_endpoints(db, 1)
    emit(db, account_id)
    # 2 s: the next claim must come well within the lease even on a loaded machine
    (first,) = step(db, "replica-a", lease=2).claimed
    assert first.attempt_number == 1 and first.body.startswith(b'{"type":')
    assert step(db, "replica-b").claimed == []  # leased
    time.sleep(2.1)
    (taken,) = step(db, "replica-b").claimed  # replica-a died: its lease ran out
    assert taken.delivery_id == first.delivery_id and taken.attempt_number == 1
    # replica-a comes back with an answer: no longer its lease, so not recorded
    assert step(db, "replica-a", [outcome(first, 200)]).recorded == 0
    assert step(db, "replica-b", [outcome(taken, 500)]).recorded == 1
    (delivery,) = rows(db)
    assert (delivery.status, delivery.attempts, delivery.lease_owner) == ("pending", 1, None)
    wait = (delivery.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert 40 < wait < 75  # the first step of the schedule, 60 s +/- 20 %
    assert step(db, "replica-b").claimed == []  # not due yet
    # Recording the same outcome twice (a retried step) writes one attempt.
    assert step(db, "replica-b", [outcome(taken, 500)]).recorded == 0
    with db.read() as session:
        assert len(list(session.exec(select(WebhookAttempt)))) == 1


def test_each_endpoint_gets_at_most_its_share_of_slots(db: Database) -> None:
    account_id, (one, two) = account_with_endpoints(db, 2)
    emit(db, account_id, 10)  # 20 deliveries, 10 per endpoint
    claimed = step(db, "r", per_endpoint=3).claimed
    assert sorted(c.endpoint_id for c in claimed) == [one] * 3 + [two] * 3
    # This process has 3 in flight to `one` already: only `two` may get more.
    more = step(db, "r", busy={one: 3, two: 1}, per_endpoint=3, limit=10).claimed
    assert [c.endpoint_id for c in more] == [two] * 2


def test_a_long_backlog_delays_another_endpoint_by_one_cycle_at_most(db: Database) -> None:
    busy_account, (backlogged,) = account_with_endpoints(db, 1)
    emit(db, busy_account, 300)  # older than anything else: the head of the due index
    other_account, (quiet,) = account_with_endpoints(db, 1)
    emit(db, other_account, 1)
    step(db, "r", limit=0)  # fan out only
    # A claim ranks only the head of the due rows (all the backlog's here): the backlogged
    # endpoint gets its share...
    first = [c.endpoint_id for c in step(db, "r", limit=5, per_endpoint=2).claimed]
    assert first.count(backlogged) == 2
    # ... and with its slots taken it is left out of the next claim: the quiet one is served.
    second = [
        c.endpoint_id for c in step(db, "r", limit=5, per_endpoint=2, busy={backlogged: 2}).claimed
    ]
    assert backlogged not in second and quiet in first + second


def test_a_delivered_outcome_finishes_and_shutdown_gives_leases_back(db: Database) -> None:
    account_id, _ = account_with_endpoints(db, 1)
    emit(db, account_id, 2)
    done, abandoned = step(db, "r").claimed
    assert step(db, "r", [outcome(done, 204)]).recorded == 1
    deliveries.release(db, "r", [abandoned.delivery_id])
    finished, pending = rows(db)
    assert (finished.status, finished.attempts) == ("delivered", 1)
    assert (pending.status, pending.lease_owner, pending.attempts) == ("pending", None, 0)
    (again,) = step(db, "other").claimed  # due again at once, for anyone
    assert again.delivery_id == abandoned.delivery_id


def test_the_schedule_runs_out_into_failed_and_410_disables(db: Database) -> None:
    account_id, _ = account_with_endpoints(db, 1)
    emit(db, account_id, 2)
    first, second = step(db, "r").claimed
    step(db, "r", [outcome(first, 500)])
    with db.write() as session:  # as if the retries had come due
        for delivery in session.exec(select(WebhookDelivery)):
            delivery.next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)
            session.add(delivery)
    # 410 disables the endpoint: the due retry of `first` is not claimed, it fails.
    assert step(db, "r", [outcome(second, 410)]).claimed == []
    assert {d.status for d in rows(db)} == {"failed"}
    (endpoint,) = webhooks.list_endpoints(db, account_id=account_id, page_size=0, page_token="")[0]
    assert endpoint.status == "disabled" and "410" in endpoint.disabled_reason
