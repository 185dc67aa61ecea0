"""Helpers of the token tests: a server on database tokens, streams held open, waiting a while."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc
from as2aas.billing.v1 import usage_service_pb2 as upb

from billing_svc.clock import SYSTEM_CLOCK
from billing_svc.domain.ids import new_id
from billing_svc.domain.tokens import hash_token
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade
from billing_svc.storage.tables import ApiToken
from tests.support import TOKENS, ServerThread, fresh_database, settings_for_tests

T = TypeVar("T")
# What the service promises: a token change is in force on every replica within 5 s.
PROMISED_SECONDS = 5.0


def seed_database_tokens(url: str) -> None:
    """Migrate ``url`` and store the test callers (``tests.support.TOKENS``, same secrets) as
    database tokens, so that the usual helpers work against a server without
    BILLING_AUTH_TOKENS."""
    db = Database(url)
    try:
        upgrade(db)
        with db.write() as session:
            for name, (secret, scopes) in TOKENS.items():
                session.add(
                    ApiToken(
                        name=name,
                        token_sha256=hash_token(secret),
                        scopes=tuple(scopes),
                        created_at=SYSTEM_CLOCK.now(),
                        token_id=new_id("tok"),
                    )
                )
    finally:
        db.dispose()


@contextmanager
def database_token_server(directory: str) -> Iterator[ServerThread]:
    """A real server on a fresh database whose tokens live in the database."""
    with fresh_database(directory) as url:
        seed_database_tokens(url)
        server = ServerThread(settings_for_tests(url, auth_tokens="")).start()
        try:
            yield server
        finally:
            server.stop()


def cli(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``billing-svc ARGS`` on ``url`` as a process of its own (database tokens unless ``env``
    sets BILLING_AUTH_TOKENS)."""
    environment = {k: v for k, v in os.environ.items() if k != "BILLING_AUTH_TOKENS"}
    environment.update(BILLING_DATABASE_URL=url, **env)
    return subprocess.run(
        [sys.executable, "-m", "billing_svc.cli", *args],
        text=True,
        capture_output=True,
        env=environment,
        timeout=120,
    )


def bearer(secret: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {secret}")]


def within(seconds: float, attempt: Callable[[], T], what: str) -> tuple[T, float]:
    """Call ``attempt`` until it returns without raising, for at most ``seconds``; returns its
    result and how long it took."""
    started = time.monotonic()
    seen: dict[str, float] = {}
    while True:
        try:
            return attempt(), time.monotonic() - started
        except Exception as exc:
            text = exc.details() if isinstance(exc, grpc.RpcError) else repr(exc)  # type: ignore[attr-defined]
            seen.setdefault(text, round(time.monotonic() - started, 2))
            if time.monotonic() - started > seconds:
                raise AssertionError(
                    f"{what}: not within {seconds} s; failures (first seen after s): {seen}"
                ) from exc
            time.sleep(0.05)


def refused(call: Callable[[], Any]) -> grpc.RpcError:
    """The error ``call`` fails with (it must fail)."""
    try:
        call()
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call succeeded")


class HeldStream:
    """A ``StreamUsage`` call kept open: batches are sent when asked, acks and the end are
    collected by a thread of its own."""

    def __init__(self, stub: Any, metadata: list[tuple[str, str]]) -> None:
        self._requests: queue.Queue[upb.StreamUsageRequest | None] = queue.Queue()
        self.acks: queue.Queue[upb.StreamUsageResponse] = queue.Queue()
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self._call = stub.StreamUsage(
            iter(self._requests.get, None), metadata=metadata, timeout=120
        )
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        try:
            for ack in self._call:
                self.acks.put(ack)
        except grpc.RpcError as error:
            self.error = error
        finally:
            self.ended.set()

    def send(self, batch: upb.StreamUsageRequest, timeout: float = 30) -> upb.StreamUsageResponse:
        """Send ``batch`` and wait for an ack (the stream's error if it ends instead)."""
        self._requests.put(batch)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self.acks.get(timeout=0.05)
            except queue.Empty:
                if self.ended.is_set() and self.acks.empty():
                    raise self.error or AssertionError("the stream ended without an ack") from None
        raise AssertionError(f"no ack within {timeout} s")

    def send_later(self, batch: upb.StreamUsageRequest) -> None:
        """Send ``batch`` without waiting for its ack."""
        self._requests.put(batch)

    def wait_end(self, timeout: float) -> grpc.RpcError | None:
        """The error the stream ended with (``None``: it ended cleanly); fails if still open."""
        if not self.ended.wait(timeout):
            raise AssertionError(f"the stream is still open after {timeout} s")
        return self.error

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()


def open_stream(client: Any, secret: str, shop: Any) -> HeldStream:
    """A stream of ``secret``'s whose first batch (one event of ``shop``) was acked."""
    stream = HeldStream(client.usage, bearer(secret))
    try:
        ack = stream.send(
            upb.StreamUsageRequest(
                batch_id="first", events=[shop.message(f"held-{time.monotonic_ns()}")]
            ),
            timeout=10,
        )
    except Exception:
        stream.close()
        raise
    assert ack.accepted == 1
    return stream
