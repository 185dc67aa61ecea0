"""Ingestion through the compiled kernel against the Python path, on real PostgreSQL databases.

On PostgreSQL the kernel writes the COPY data of plain batches (``usage_event_key`` and
``usage_event``) from the request's bytes, one savepoint for a run of them. The same groups are
ingested twice, from two copies of one database (``CREATE DATABASE … TEMPLATE``), once decoded
by the kernel and once by the protobuf library, and the acks and every table ingestion writes
(the dedupe keys too) are compared. The generated groups are test_native_ingestion's.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy.engine import make_url

from billing_svc import native
from billing_svc.api.usage import decode_request
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import UsageBatch, accept_window, period_label_of
from billing_svc.storage.db import Database
from billing_svc.storage.usage import UsageStore
from tests.integration.test_native_ingestion import (
    ADMIN_CTX,
    COMPILED,
    DUMPS,
    KERNEL,
    LAST_MONTH,
    NOW,
    NOW_US,
    WHY_NOT,
    groups,
    message,
    request,
    run,
)
from tests.support import (
    PG_URL_ENV,
    IngestionAccounts,
    _create_database,
    _drop_database,
    fresh_database,
    on_postgres,
)

pytestmark = [
    pytest.mark.skipif(KERNEL is None, reason=f"the ingestion kernel: {WHY_NOT}"),
    pytest.mark.skipif(not on_postgres(), reason=f"PostgreSQL only ({PG_URL_ENV})"),
]

PG_DUMPS = {
    **DUMPS,
    "usage_event": "SELECT * FROM usage_event ORDER BY account_id, event_id",
    "usage_event_key": "SELECT * FROM usage_event_key ORDER BY account_id, event_id",
}


class PgTemplate:
    """test_native_ingestion's Template on PostgreSQL: a migrated database with two accounts
    (tenants, partners), one of them with last month invoiced, copied for every run."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.name = self.url.database
        self.admin_dsn = self.url.set(
            drivername="postgresql", database="postgres"
        ).render_as_string(hide_password=False)
        self.copies: list[str] = []
        db = Database(url)
        made = IngestionAccounts.create(db, ADMIN_CTX, LAST_MONTH)
        self.accounts = made.accounts
        self.tenants = made.tenants
        self.partners = made.partners
        db.dispose()

    def copy(self, name: str) -> Database:
        copy = f"{self.name}_{name}_{secrets.token_hex(3)}".replace("-", "_")
        _create_database(self.admin_dsn, copy, self.name)
        self.copies.append(copy)
        return Database(self.url.set(database=copy).render_as_string(hide_password=False))

    def drop_copies(self) -> None:
        while self.copies:
            _drop_database(self.admin_dsn, self.copies.pop())


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgTemplate]:
    with fresh_database(str(tmp_path_factory.mktemp("native-pg"))) as url:
        made = PgTemplate(url)
        try:
            yield made
        finally:
            made.drop_copies()


def dump(db: Database) -> dict[str, list[tuple]]:
    with db.engine.connect() as connection:
        return {
            table: [tuple(row) for row in connection.exec_driver_sql(query)]
            for table, query in PG_DUMPS.items()
        }


def both_ways(
    template: PgTemplate, made: list[list[bytes]], name: str, seed: str = ""
) -> tuple[tuple, tuple]:
    outcomes = []
    for kernel in (COMPILED, native.PYTHON):
        db = template.copy(f"{name}_{kernel.name}")
        try:
            if seed:
                with db.engine.begin() as connection:
                    connection.exec_driver_sql(seed)
            acks = run(db, made, kernel=kernel)
            outcomes.append(([[asdict(result) for result in group] for group in acks], dump(db)))
        finally:
            db.dispose()
            template.drop_copies()
    return outcomes[0], outcomes[1]


def test_the_kernel_path_and_the_python_path_leave_the_same_acks_and_rows(
    template: PgTemplate,
) -> None:
    stored_by_kernel = 0

    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(groups(template))
    def check(made: list[list[bytes]]) -> None:
        nonlocal stored_by_kernel
        window = accept_window(NOW_US, 400)
        decoded = [KERNEL.decode(raw) for group in made for raw in group]
        stored_by_kernel += sum(
            1 for batch in decoded if batch is not None and len(batch) and batch.plain(*window)
        )
        kernel_way, python_way = both_ways(template, made, "eq")
        assert kernel_way[0] == python_way[0]  # acks
        assert kernel_way[1] == python_way[1]  # rows

    check()
    assert stored_by_kernel > 10, "the generated groups must exercise the kernel path"


def test_a_batch_that_meets_a_stored_key_undoes_its_run_and_keeps_arrival_order(
    template: PgTemplate,
) -> None:
    """Batch 2 resends e-a (stored by an earlier group) and brings e-b; batch 3 brings e-b
    again: the run's COPY meets e-a, nothing of it stays, and the Python path takes the run in
    arrival order (batch 2's e-b new, batch 3's a duplicate)."""
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
    assert len(kernel_way[1]["usage_event_key"]) == 4


def test_a_resent_group_is_all_duplicates_and_counts_nothing(template: PgTemplate) -> None:
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
    assert len(kernel_way[1]["usage_event"]) == len(kernel_way[1]["usage_event_key"]) == 90


def test_copy_rows_are_the_rows_the_python_path_writes(template: PgTemplate) -> None:
    """Ids with the characters COPY's text format escapes (backslash, tab, newline, carriage
    return) and others it does not, a partner or none, times over several hours."""
    odd = ["k\\0", "k\t1", "k\n2", "k\r3", "k\\N", "k\\.", "\\.", "k 'q\"", "k\x01\x7f"]
    events = [
        message(
            template,
            odd[i] if i < len(odd) else f"k{i}",
            tenant=i % 2,
            partner=None if i % 3 else 1,
            quantity=i + 1,
            at=NOW - timedelta(minutes=7 * i),
        )
        for i in range(45)
    ]
    raw = request("rows", events)
    tables = []
    for kernel in (COMPILED, native.PYTHON):
        db = template.copy(f"rows_{kernel.name}")
        decoded = decode_request(kernel)(raw)
        assert isinstance(decoded, UsageBatch)
        try:
            with db.write() as session:
                store = UsageStore(session.connection())
                if kernel is COMPILED:
                    assert decoded.native.plain(*accept_window(NOW_US, 400))
                    assert store.insert_native(
                        COMPILED, [decoded.native], received_at_us=NOW_US
                    ) == [True]
                else:
                    store.insert_events(
                        [(*e, period_label_of(e.occurred_at_us), False) for e in decoded.events],
                        received_at_us=NOW_US,
                    )
            found = dump(db)
            tables.append((found["usage_event"], found["usage_event_key"]))
        finally:
            db.dispose()
            template.drop_copies()
    assert tables[0] == tables[1]
    assert sorted(row[1] for row in tables[0][0]) == sorted(
        e.event_id for e in events
    )  # (account, event)


def test_the_kernel_stores_a_test_clocks_events_in_the_kept_partition(
    template: PgTemplate,
) -> None:
    batch = KERNEL.decode(request("clock", [message(template, "c1"), message(template, "c2")]))
    assert batch.plain(*accept_window(NOW_US, 400))
    db = template.copy("clock")
    try:
        with db.write() as session:
            store = UsageStore(session.connection())
            assert store.insert_native(COMPILED, [batch], received_at_us=NOW_US, on_clock=True) == [
                True
            ]
            buckets = (
                session.connection()
                .exec_driver_sql(
                    "SELECT (SELECT array_agg(DISTINCT bucket) FROM usage_event_kept), "
                    "(SELECT array_agg(DISTINCT bucket) FROM usage_event_key)"
                )
                .one()
            )
        assert tuple(buckets) == ([0], [0])
    finally:
        db.dispose()
        template.drop_copies()
