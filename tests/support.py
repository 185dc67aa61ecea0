"""Test support: real databases (SQLite file or a fresh PostgreSQL database), a real server on a
random port, and small helpers to make test data through the public API."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import billing_service_pb2_grpc as billing_grpc
from as2aas.billing.v1 import usage_service_pb2_grpc as usage_grpc
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy.engine import make_url

from billing_svc.api.server import BillingServer
from billing_svc.settings import Settings

PG_URL_ENV = "BILLING_TEST_DATABASE_URL"

TOKENS: dict[str, tuple[str, list[str]]] = {
    "admin": ("tok-admin", ["admin"]),
    "writer": ("tok-writer", ["billing:write", "billing:read"]),
    "reader": ("tok-reader", ["billing:read"]),
    "producer": ("tok-producer", ["usage:write"]),
    "usage-reader": ("tok-usage-reader", ["usage:read"]),
}


def auth(caller: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {TOKENS[caller][0]}")]


ADMIN = auth("admin")
WRITER = auth("writer")
READER = auth("reader")


def tokens_json() -> str:
    return json.dumps([{"name": name, "token": token, "scopes": scopes}
                       for name, (token, scopes) in TOKENS.items()])


def on_postgres() -> bool:
    return bool(os.environ.get(PG_URL_ENV))


@contextmanager
def fresh_database(directory: str) -> Iterator[str]:
    """A new, empty database URL: a SQLite file in ``directory``, or a new PostgreSQL database
    on the server named by ``BILLING_TEST_DATABASE_URL`` (dropped afterwards)."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        yield f"sqlite:///{directory}/billing-{secrets.token_hex(4)}.db"
        return
    import psycopg

    url = make_url(base)
    name = f"billing_t_{secrets.token_hex(6)}"
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settings_for_tests(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "listen": "127.0.0.1:0",
        "auth_tokens": tokens_json(),
        "webhook_allow_private_networks": True,
        "scheduler_interval_seconds": 0.2,
        "shutdown_grace_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class ServerThread:
    """A real billing-svc (``BillingServer``) on a random port, in a thread with its own loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.server: BillingServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        self.server = BillingServer(self.settings)
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(60)
        return self

    @property
    def target(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    @property
    def db(self):  # type: ignore[no-untyped-def]
        assert self.server is not None
        return self.server.db

    def stop(self) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class Client:
    """Generated stubs over one channel."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.billing = billing_grpc.BillingServiceStub(self.channel)
        self.usage = usage_grpc.UsageServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()


def bad_request_fields(error: grpc.RpcError) -> list[str]:
    """The field names of the google.rpc.BadRequest details on an INVALID_ARGUMENT error."""
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            fields = []
            for detail in status.details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    fields.extend(v.field for v in bad.field_violations)
            return fields
    return []


def create_account(client: Client, *, plan_id: str = "startup", name: str = "Acme Corp",
                   metadata: list[tuple[str, str]] | None = None, **fields: Any) -> pb.Account:
    response = client.billing.CreateAccount(
        pb.CreateAccountRequest(name=name, plan_id=plan_id, **fields), metadata=metadata or ADMIN)
    return response.account
