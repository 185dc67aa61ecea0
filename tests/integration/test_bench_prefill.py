"""The scale benchmarks' pre-fill (benchmarks/prefill.py) makes a store the service takes as
its own: the counters it reads match the raw events, and a pre-filled event resent is a
duplicate. Benchmarks are not tests; this keeps their harness from rotting unseen when the
storage layout changes."""

from __future__ import annotations

from datetime import UTC, datetime

from as2aas.billing.v1 import usage_service_pb2 as upb
from sqlalchemy import create_engine

from benchmarks.ids import StreamPlan, prefill_ids
from benchmarks.prefill import STORED_EVENTS_SQL, create_accounts, prefill_usage
from benchmarks.producer import encode_batch
from tests.support import Client, ServerThread, auth, fresh_database, settings_for_tests


def _stream(client: Client, batches: list[bytes]) -> list[upb.StreamUsageResponse]:
    call = client.channel.stream_stream(
        "/as2aas.billing.v1.UsageService/StreamUsage",
        request_serializer=lambda b: b,
        response_deserializer=upb.StreamUsageResponse.FromString,
    )
    return list(call(iter(batches), metadata=auth("producer")))


def test_a_prefilled_store_is_consistent_for_the_service(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url)).start()
        try:
            accounts = create_accounts(server.target, 3, tenants=2, partners=3, workers=2)
        finally:
            server.stop()
        assert [a.account_id for a in accounts] == sorted(a.account_id for a in accounts)
        now = datetime.now(UTC)
        assert prefill_usage(url, accounts, 500, "uuid4", 7, now) == 1500
        # What the bare floor copies from the store: every stored event, once.
        engine = create_engine(url)
        with engine.connect() as connection:
            assert connection.exec_driver_sql(
                f"SELECT count(*), count(DISTINCT event_id) FROM ({STORED_EVENTS_SQL}) AS stored"
            ).one() == (1500, 1500)
        engine.dispose()

        server = ServerThread(settings_for_tests(url)).start()
        client = Client(server.target)
        try:
            for account in accounts:
                usage = client.usage.GetCurrentUsage(
                    upb.GetCurrentUsageRequest(account_id=account.account_id),
                    metadata=auth("usage-reader"),
                ).usage_to_date
                assert usage.messages == 500
                assert usage.active_tenants == 2
            # The stored keys are where ingestion looks for them: every one resent is a
            # duplicate, and new events add to the pre-filled counters.
            occurred = int(now.timestamp()) - 1
            account = accounts[1]
            resent = [
                (account, event_id, account.tenants[j % 2], account.partners[j % 3])
                for j, event_id in enumerate(prefill_ids("uuid4", 7, 1, 500))
            ]
            acks = _stream(client, [encode_batch("resend", resent, occurred)])
            assert (acks[0].accepted, acks[0].duplicates, len(acks[0].rejected)) == (0, 500, 0)
            plan = StreamPlan(
                "uuid4", 7, streams=1, events=300, batch_size=100, accounts_per_batch=3
            )
            batches = [
                encode_batch(f"new-{i}", batch, occurred)
                for i, batch in enumerate(plan.batches(0, accounts))
            ]
            assert sum(ack.accepted for ack in _stream(client, batches)) == 300
            total = sum(
                client.usage.GetCurrentUsage(
                    upb.GetCurrentUsageRequest(account_id=account.account_id),
                    metadata=auth("usage-reader"),
                ).usage_to_date.messages
                for account in accounts
            )
            assert total == 1800
        finally:
            client.close()
            server.stop()


def test_the_scale_suite_reuses_a_cached_base_store(tmp_path) -> None:
    """``--cache DIR``: the accounts made through the API once are the next run's, copied."""
    import os

    from benchmarks.scale import TENANTS, SqliteBackend

    cache = str(tmp_path / "cache")
    first = SqliteBackend(str(tmp_path / "one"), cache)
    os.makedirs(first.directory)
    made = first.make_base(2)
    assert len(made) == 2 and all(len(a.tenants) == TENANTS for a in made)

    second = SqliteBackend(str(tmp_path / "two"), cache)
    os.makedirs(second.directory)
    assert second.make_base(2) == made
    engine = create_engine(f"sqlite:///{second.base}")
    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT account_id FROM account ORDER BY 1").all()
    engine.dispose()
    assert [row[0] for row in stored] == [a.account_id for a in made]
    # Another number of accounts is another entry, made anew.
    third = SqliteBackend(str(tmp_path / "three"), cache)
    os.makedirs(third.directory)
    assert {a.account_id for a in third.make_base(1)}.isdisjoint(a.account_id for a in made)
