"""Test support: real databases (SQLite file or a fresh PostgreSQL database), a real server on a
random port, and small helpers to make test data through the public API."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import billing_service_pb2_grpc as billing_grpc
from as2aas.billing.v1 import usage_service_pb2_grpc as usage_grpc
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy.engine import make_url

from billing_svc.app import BillingServer
from billing_svc.clock import SYSTEM_CLOCK, Clock
from billing_svc.domain.periods import Period
from billing_svc.services.context import RequestContext
from billing_svc.settings import Settings
from billing_svc.storage.db import Database

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
    return json.dumps(
        [
            {"name": name, "token": token, "scopes": scopes}
            for name, (token, scopes) in TOKENS.items()
        ]
    )


def on_postgres() -> bool:
    return bool(os.environ.get(PG_URL_ENV))


_sqlite_template: list[str] = []  # this process's migrated SQLite file, made on first use


def _migrated_sqlite_template() -> str:
    """A SQLite file at the head revision, made once per test process: copying it saves each
    test's server the whole migration chain (about a second of CPU), while the server's own
    ``upgrade`` at start still runs (and finds nothing to do)."""
    if not _sqlite_template:
        import atexit
        import shutil
        import tempfile

        from billing_svc.storage.db import Database
        from billing_svc.storage.migrate import upgrade

        directory = tempfile.mkdtemp(prefix="billing-template-")
        atexit.register(shutil.rmtree, directory, True)
        path = f"{directory}/template.db"
        db = Database(f"sqlite:///{path}")
        upgrade(db)
        db.engine.dispose()
        db.read_engine.dispose()
        import sqlite3

        with contextlib.closing(sqlite3.connect(path)) as connection:  # all in the main file
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _sqlite_template.append(path)
    return _sqlite_template[0]


_pg_template: list[str] = []  # this process's migrated PostgreSQL database, made on first use


def _create_database(admin_dsn: str, name: str, template: str = "") -> None:
    import time

    import psycopg

    clause = f' TEMPLATE "{template}"' if template else ""
    for attempt in range(40):
        try:
            with psycopg.connect(admin_dsn, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"{clause}')
            return
        except psycopg.errors.ObjectInUse:  # an autovacuum worker is in the template
            if attempt == 39:
                raise
            time.sleep(0.25)


def _drop_database(admin_dsn: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrated_pg_template(url: Any, admin_dsn: str) -> str:
    """As ``_migrated_sqlite_template``: a database at the head revision, made once per test
    process, that each test's database is created from (``CREATE DATABASE … TEMPLATE``)."""
    if not _pg_template:
        import atexit

        from billing_svc.storage.db import Database
        from billing_svc.storage.migrate import upgrade

        name = f"billing_tpl_{secrets.token_hex(6)}"
        _create_database(admin_dsn, name)
        atexit.register(_drop_database, admin_dsn, name)
        db = Database(url.set(database=name).render_as_string(hide_password=False))
        upgrade(db)
        db.engine.dispose()
        db.read_engine.dispose()
        _pg_template.append(name)
    return _pg_template[0]


@contextmanager
def fresh_database(directory: str, *, empty: bool = False) -> Iterator[str]:
    """A new database URL: a SQLite file in ``directory``, or a new PostgreSQL database on the
    server named by ``BILLING_TEST_DATABASE_URL`` (dropped afterwards). SQLite files start
    migrated to the head revision (a copy of one migrated file) unless ``empty``: the tests of
    the migrations themselves start from nothing. PostgreSQL databases likewise, from a migrated
    template database."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        path = f"{directory}/billing-{secrets.token_hex(4)}.db"
        if not empty:
            import shutil

            shutil.copyfile(_migrated_sqlite_template(), path)
        yield f"sqlite:///{path}"
        return
    import psycopg

    url = make_url(base)
    name = f"billing_t_{secrets.token_hex(6)}"
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    template = "" if empty else _migrated_pg_template(url, admin_dsn)
    _create_database(admin_dsn, name, template)
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        import time

        # An autovacuum worker (a superuser process) may be in the database: FORCE cannot end
        # it without pg_signal_backend, but it finishes on its own within moments.
        for attempt in range(20):
            try:
                with psycopg.connect(admin_dsn, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
                if attempt == 19:
                    raise
                time.sleep(0.5)


def settings_for_tests(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "listen": "127.0.0.1:0",
        "auth_tokens": tokens_json(),
        "webhook_allow_private_networks": True,
        "scheduler_interval_seconds": 0.2,
        "shutdown_grace_seconds": 2.0,
        "webhook_retry_schedule": "0.2,0.2,0.2",
        "webhook_dispatch_interval_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class ServerThread:
    """A real billing-svc (``BillingServer``) on a random port, in a thread with its own loop."""

    def __init__(
        self, settings: Settings, clock: Clock = SYSTEM_CLOCK, **server_options: Any
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.server_options = server_options  # BillingServer's keyword arguments
        self.loop = asyncio.new_event_loop()
        self.server: BillingServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        self.server = BillingServer(self.settings, self.clock, **self.server_options)
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


def create_account(
    client: Client,
    *,
    plan_id: str = "startup",
    name: str = "Acme Corp",
    metadata: list[tuple[str, str]] | None = None,
    **fields: Any,
) -> pb.Account:
    response = client.billing.CreateAccount(
        pb.CreateAccountRequest(name=name, plan_id=plan_id, **fields), metadata=metadata or ADMIN
    )
    return response.account


@dataclass
class IngestionAccounts:
    """Two accounts (Enterprise and Startup, no trial, thresholds 75/90/100), each with two
    tenants and two master partners, the first with ``invoiced`` closed: the fixture the
    kernel's differential tests (SQLite and PostgreSQL) ingest into."""

    accounts: list[str] = field(default_factory=list)
    tenants: dict[str, list[str]] = field(default_factory=dict)
    partners: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def create(cls, db: Database, ctx: RequestContext, invoiced: Period) -> IngestionAccounts:
        """Make them in ``db`` as ``ctx`` (an admin), starting the period before ``invoiced``."""
        from billing_svc.services import accounts, invoicing

        made = cls()
        start = invoiced.previous().start
        for plan_id in ("enterprise", "startup"):
            account_id = accounts.create_account(
                db,
                ctx,
                name=plan_id,
                plan_id=plan_id,
                billing_interval="monthly",
                skip_trial=True,
                start_time=start,
                usage_thresholds=(75, 90, 100),
                key=None,
            ).account_id
            made.accounts.append(account_id)
            made.tenants[account_id] = [
                accounts.create_tenant(
                    db, ctx, account_id=account_id, name=f"t{i}", start_time=start, key=None
                ).tenant_id
                for i in range(2)
            ]
            made.partners[account_id] = [
                accounts.create_master_partner(
                    db,
                    ctx,
                    account_id=account_id,
                    name=f"p{i}",
                    department="Ops",
                    start_time=start,
                    key=None,
                ).partner_id
                for i in range(2)
            ]
        invoicing.close_period(db, ctx, account_id=made.accounts[0], period=invoiced)
        return made


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """``billing-svc serve`` as a real child process (for kills, restarts and signals)."""

    def __init__(self, database_url: str, **env: str) -> None:
        import sys

        self.database_url = database_url
        self.port = free_port()
        self.env = {
            **os.environ,
            "BILLING_DATABASE_URL": database_url,
            "BILLING_LISTEN": f"127.0.0.1:{self.port}",
            "BILLING_AUTH_TOKENS": tokens_json(),
            "BILLING_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
            "BILLING_SCHEDULER_INTERVAL_SECONDS": "0.2",
            "BILLING_WEBHOOK_DISPATCH_INTERVAL_SECONDS": "0.05",
            **env,
        }
        self.command = [sys.executable, "-m", "billing_svc.cli", "serve"]
        self.process: Any = None
        self.output_path: str = ""

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> ServiceProcess:
        """Start ``serve`` and wait until it answers SERVING (returns as soon as it does; the
        long limit is for a loaded machine, where starting took over 30 s)."""
        import subprocess
        import tempfile
        import time

        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with tempfile.NamedTemporaryFile(
            "w+b", prefix="billing-svc-", suffix=".log", delete=False
        ) as log:
            self.output_path = log.name
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"billing-svc exited early:\n{self.output()}")
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return self
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"billing-svc did not become SERVING:\n{self.output()}")

    def output(self) -> str:
        with open(self.output_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait; returns the exit code."""
        self.process.terminate()
        return int(self.process.wait(timeout))


class _ReceiverServer(http.server.ThreadingHTTPServer):
    # The standard library listens with a backlog of 5: a burst of connections from two
    # dispatchers overflows it, Linux then drops the handshake's last ACK, and requests are
    # accepted seconds later, after the sender has timed out (and waits 60 s to retry).
    request_queue_size = 1024


class Receiver:
    """A real HTTP webhook receiver on 127.0.0.1 (a thread). ``plan`` lists the status codes
    to answer in turn (then 200); ``delay`` makes every answer slow."""

    def __init__(self, plan: list[int] | None = None, delay: float = 0.0) -> None:
        import http.server
        import threading

        self.plan = list(plan or [])
        self.delay = delay
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # HTTP/1.1 keep-alive, and one buffered write per response (headers and body in
            # one packet: separate small writes meet delayed ACKs and stall ~40 ms).
            protocol_version = "HTTP/1.1"
            wbufsize = 65536

            def do_POST(self) -> None:
                import time

                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                headers["x-bench-received"] = repr(time.time())
                with receiver.lock:
                    receiver.requests.append((headers, body))
                    code = receiver.plan.pop(0) if receiver.plan else 200
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(code)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _ReceiverServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def received(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout: float = 15) -> list[tuple[dict[str, str], bytes]]:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received()
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"received {len(self.received())} requests, wanted {count}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DeadEndpoint:
    """An endpoint that accepts TCP connections (the kernel does) but never answers."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hooks"

    def close(self) -> None:
        self.sock.close()
