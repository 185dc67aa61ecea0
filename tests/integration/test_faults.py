"""What production does to the service: SIGTERM mid-stream, the database restarting, two
replicas side by side (issue 7)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb
from google.protobuf import timestamp_pb2

from billing_svc.domain.periods import Period
from tests.support import (
    ADMIN,
    WRITER,
    Client,
    Receiver,
    ServiceProcess,
    auth,
    fresh_database,
    on_postgres,
)

PRODUCER = auth("producer")
PG_CLUSTER = os.environ.get("BILLING_TEST_PG_CLUSTER", "")  # e.g. "15 main": may restart it


def _stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _setup(client: Client, **fields) -> tuple[str, str]:
    account = client.billing.CreateAccount(
        pb.CreateAccountRequest(name="Fault Co", plan_id="enterprise", skip_trial=True, **fields),
        metadata=ADMIN,
    ).account
    tenant = client.billing.CreateTenant(
        pb.CreateTenantRequest(
            account_id=account.account_id, name="main", start_time=fields.get("start_time")
        ),
        metadata=ADMIN,
    ).tenant
    return account.account_id, tenant.tenant_id


def _batches(
    account_id: str, tenant_id: str, count: int, size: int = 200, at: datetime | None = None
) -> list[upb.StreamUsageRequest]:
    stamp = _stamp(at or datetime.now(UTC))
    return [
        upb.StreamUsageRequest(
            batch_id=f"b{b}",
            events=[
                upb.UsageEvent(
                    event_id=f"e{b}-{i}",
                    account_id=account_id,
                    tenant_id=tenant_id,
                    kind=common_pb2.USAGE_KIND_MESSAGE,
                    quantity=1,
                    occurred_at=stamp,
                )
                for i in range(size)
            ],
        )
        for b in range(count)
    ]


def _paced(batches: list, every: float = 0.02):
    for batch in batches:
        time.sleep(every)
        yield batch


def _messages(client: Client, account_id: str) -> int:
    return client.usage.GetCurrentUsage(
        upb.GetCurrentUsageRequest(account_id=account_id), metadata=auth("usage-reader")
    ).usage_to_date.messages


def test_sigterm_mid_stream_keeps_acked_batches_and_refuses_the_rest_cleanly(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        service = ServiceProcess(url, BILLING_SHUTDOWN_GRACE_SECONDS="1").start()
        client = Client(service.target)
        account_id, tenant_id = _setup(client)
        batches = _batches(account_id, tenant_id, 300)
        acked = 0
        try:
            for _ in client.usage.StreamUsage(_paced(batches), metadata=PRODUCER):
                acked += 1
                if acked == 20:
                    service.process.terminate()
        except grpc.RpcError as error:
            assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        assert service.process.wait(30) == 0
        assert 20 <= acked < len(batches)
        client.close()
        service = ServiceProcess(url).start()
        client = Client(service.target)
        try:
            resent = list(client.usage.StreamUsage(iter(batches), metadata=PRODUCER))
            assert sum(a.duplicates for a in resent) >= acked * 200
            assert sum(a.accepted + a.duplicates for a in resent) == 300 * 200
            assert _messages(client, account_id) == 300 * 200
        finally:
            client.close()
            service.kill()


@pytest.mark.skipif(
    not (on_postgres() and PG_CLUSTER),
    reason="needs PostgreSQL and BILLING_TEST_PG_CLUSTER to restart it",
)
def test_postgres_restart_mid_stream_then_resend_gives_exact_totals(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        service = ServiceProcess(url).start()
        client = Client(service.target)
        try:
            account_id, tenant_id = _setup(client)
            batches = _batches(account_id, tenant_id, 400)
            acked = 0
            try:
                for _ in client.usage.StreamUsage(_paced(batches, 0.01), metadata=PRODUCER):
                    acked += 1
                    if acked == 30:
                        subprocess.run(
                            ["pg_ctlcluster", *PG_CLUSTER.split(), "restart"],
                            check=True,
                            timeout=60,
                        )
            except grpc.RpcError as error:  # the batches in flight when it went down
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
            assert acked >= 30
            deadline = time.monotonic() + 30  # the service reconnects by itself
            while True:
                try:
                    resent = list(client.usage.StreamUsage(iter(batches), metadata=PRODUCER))
                    break
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.UNAVAILABLE
                    assert time.monotonic() < deadline
                    time.sleep(0.5)
            assert sum(a.accepted + a.duplicates for a in resent) == 400 * 200
            assert _messages(client, account_id) == 400 * 200
        finally:
            client.close()
            service.kill()


@pytest.mark.skipif(not on_postgres(), reason="replicas share a PostgreSQL database")
def test_two_serve_processes_share_one_database(tmp_path) -> None:
    receiver = Receiver()
    last = Period.containing(datetime.now(UTC)).previous()
    with fresh_database(str(tmp_path)) as url:
        replicas = [ServiceProcess(url).start(), ServiceProcess(url).start()]
        clients = [Client(r.target) for r in replicas]
        try:
            # Overlapping ingestion: every batch goes to both replicas at once.
            account_id, tenant_id = _setup(clients[0], start_time=_stamp(last.start))
            clients[0].billing.CreateWebhookEndpoint(
                pb.CreateWebhookEndpointRequest(account_id=account_id, url=receiver.url),
                metadata=WRITER,
            )
            batches = _batches(account_id, tenant_id, 40, 250, at=last.start + timedelta(days=1))
            with ThreadPoolExecutor(4) as pool:
                acks = list(
                    pool.map(
                        lambda job: clients[job[0]].usage.RecordUsage(
                            upb.RecordUsageRequest(events=job[1].events), metadata=PRODUCER
                        ),
                        [(side, batch) for batch in batches for side in (0, 1)],
                    )
                )
            assert sum(a.accepted for a in acks) == 40 * 250
            assert sum(a.duplicates for a in acks) == 40 * 250
            # Concurrent closes from both replicas: one invoice.
            with ThreadPoolExecutor(6) as pool:
                invoices = list(
                    pool.map(
                        lambda i: (
                            clients[i % 2]
                            .billing.CloseBillingPeriod(
                                pb.CloseBillingPeriodRequest(
                                    account_id=account_id, period=last.label
                                ),
                                metadata=WRITER,
                            )
                            .invoice.invoice_id
                        ),
                        range(6),
                    )
                )
            assert len(set(invoices)) == 1
            # A trial ending while both schedulers run: one event, delivered once.
            start = datetime.now(UTC) - timedelta(days=14) + timedelta(seconds=1)
            trial = (
                clients[1]
                .billing.CreateAccount(
                    pb.CreateAccountRequest(
                        name="Trial Co", plan_id="startup", start_time=_stamp(start)
                    ),
                    metadata=ADMIN,
                )
                .account
            )
            clients[1].billing.CreateWebhookEndpoint(
                pb.CreateWebhookEndpointRequest(account_id=trial.account_id, url=receiver.url),
                metadata=WRITER,
            )
            received = receiver.wait_for(2, timeout=20)  # invoice_generated + trial end
            time.sleep(1.5)
            received = receiver.received()
            types = sorted(json.loads(body)["type"] for _, body in received)
            assert types == ["billing.invoice_generated", "billing.subscription_updated"]
            ids = [headers["webhook-id"] for headers, _ in received]
            assert len(ids) == len(set(ids))
        finally:
            for client in clients:
                client.close()
            for replica in replicas:
                replica.kill()
            receiver.close()
