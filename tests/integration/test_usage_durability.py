"""Acked usage survives a crash: SIGKILL mid-stream, restart, resend everything, exact totals."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import grpc
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb
from google.protobuf import timestamp_pb2

from tests.support import ADMIN, Client, ServiceProcess, auth, fresh_database

PRODUCER = auth("producer")


def test_sigkill_mid_stream_then_resend_counts_every_event_once(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        service = ServiceProcess(url).start()
        client = Client(service.target)
        try:
            account = client.billing.CreateAccount(
                pb.CreateAccountRequest(name="Crash Co", plan_id="enterprise", skip_trial=True),
                metadata=ADMIN,
            ).account
            tenant = client.billing.CreateTenant(
                pb.CreateTenantRequest(account_id=account.account_id, name="main"), metadata=ADMIN
            ).tenant
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(datetime.now(UTC))
            batches = [
                upb.StreamUsageRequest(
                    batch_id=f"b{b}",
                    events=[
                        upb.UsageEvent(
                            event_id=f"e{b}-{i}",
                            account_id=account.account_id,
                            tenant_id=tenant.tenant_id,
                            kind=common_pb2.USAGE_KIND_MESSAGE,
                            quantity=1 + (i % 3),
                            occurred_at=stamp,
                        )
                        for i in range(500)
                    ],
                )
                for b in range(200)
            ]
            expected = sum(e.quantity for b in batches for e in b.events)

            def slow_requests():
                for index, batch in enumerate(batches):
                    if index % 10 == 0:
                        time.sleep(0.02)
                    yield batch

            acked = 0
            stream = client.usage.StreamUsage(slow_requests(), metadata=PRODUCER)
            try:
                for _ in stream:
                    acked += 1
                    if acked == 40:
                        service.kill()  # in the middle of the stream, batches in flight
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert 40 <= acked < len(batches)
            client.close()

            service = ServiceProcess(url).start()
            client = Client(service.target)
            resent = list(client.usage.StreamUsage(iter(batches), metadata=PRODUCER))
            assert sum(a.duplicates for a in resent) >= 40 * 500  # every acked event survived
            assert sum(a.accepted + a.duplicates for a in resent) == 200 * 500
            assert all(not a.rejected for a in resent)
            usage = client.usage.GetCurrentUsage(
                upb.GetCurrentUsageRequest(account_id=account.account_id),
                metadata=auth("usage-reader"),
            ).usage_to_date
            assert usage.messages == expected
        finally:
            client.close()
            service.kill()
