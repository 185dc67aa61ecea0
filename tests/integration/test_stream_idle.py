"""A StreamUsage stream that sends nothing is closed and frees its slot; one whose batch waits for
its commit is not idle (issue 12, point 8)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from as2aas.billing.v1 import usage_service_pb2 as upb
from sqlalchemy import text

from tests.integration.test_usage import Shop
from tests.support import Client, ServerThread, auth, fresh_database, settings_for_tests

PRODUCER = auth("producer")


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with fresh_database(str(tmp_path_factory.mktemp("idle"))) as url:
        running = ServerThread(
            settings_for_tests(url, stream_idle_seconds=0.5, max_streams_per_caller=2)
        ).start()
        yield running
        running.stop()


@pytest.fixture
def client(idle_server: ServerThread) -> Iterator[Client]:
    opened = Client(idle_server.target)
    yield opened
    opened.close()


def _then_silent(
    batches: list[upb.StreamUsageRequest], hang_up: threading.Event
) -> Iterator[upb.StreamUsageRequest]:
    """``batches``, then nothing (the stream stays open) until ``hang_up``."""
    yield from batches
    hang_up.wait(60)


def _outcome(
    responses: Iterator[upb.StreamUsageResponse],
) -> tuple[list[upb.StreamUsageResponse], grpc.RpcError | None]:
    acks = []
    try:
        for ack in responses:
            acks.append(ack)
    except grpc.RpcError as error:
        return acks, error
    return acks, None


def test_silent_streams_are_closed_with_unavailable_and_free_their_slots(client: Client) -> None:
    hang_up = threading.Event()
    try:
        silent = [
            client.usage.StreamUsage(_then_silent([], hang_up), metadata=PRODUCER, timeout=30)
            for _ in range(2)
        ]
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(_outcome, silent))
        for acks, error in outcomes:
            assert acks == []
            assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE, error
            assert "BILLING_STREAM_IDLE_SECONDS" in error.details()
            assert "resend the batches that were not acked" in error.details()
        # Both slots of this caller (BILLING_MAX_STREAMS_PER_CALLER=2) are free again.
        shop = Shop(client)
        batches = [
            upb.StreamUsageRequest(batch_id=f"b{i}", events=[shop.message(f"e{i}")])
            for i in range(2)
        ]
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(
                pool.map(
                    _outcome,
                    [
                        client.usage.StreamUsage(iter([batch]), metadata=PRODUCER, timeout=30)
                        for batch in batches
                    ],
                )
            )
        assert [(acks[0].accepted, error) for acks, error in outcomes] == [(1, None), (1, None)]
    finally:
        hang_up.set()


def _hold_write_lock(
    server: ServerThread, locked: threading.Event, released: threading.Event, seconds: float
) -> None:
    with server.db.write() as session:  # SQLite: BEGIN IMMEDIATE holds the one write lock
        if server.db.url.get_backend_name() == "postgresql":
            session.execute(text("LOCK TABLE usage_event IN EXCLUSIVE MODE"))
        locked.set()
        released.wait(seconds)
    released.set()


def test_a_batch_waiting_for_its_commit_keeps_its_stream_open(
    client: Client, idle_server: ServerThread
) -> None:
    shop = Shop(client)
    hang_up, locked, released = threading.Event(), threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(idle_server, locked, released, 2.0))
    holder.start()
    try:
        assert locked.wait(10)
        batch = upb.StreamUsageRequest(batch_id="slow", events=[shop.message("slow-1")])
        acks, error = _outcome(
            client.usage.StreamUsage(_then_silent([batch], hang_up), metadata=PRODUCER, timeout=30)
        )
        # The batch waited for the lock, several idle periods: it was acked all the same, and
        # only the silence after its ack closed the stream.
        assert released.is_set()
        assert [(a.batch_id, a.accepted) for a in acks] == [("slow", 1)]
        assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        hang_up.set()
        released.set()
        holder.join(10)
