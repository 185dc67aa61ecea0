"""The service as operators and callers meet it: auth, health, reflection, logs, SIGTERM."""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sqlmodel import select

from billing_svc.api.auth import METHOD_SCOPES
from billing_svc.storage.tables import ApiToken
from tests.support import (
    ADMIN,
    READER,
    Client,
    ServerThread,
    ServiceProcess,
    auth,
    fresh_database,
    settings_for_tests,
)


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ([], grpc.StatusCode.UNAUTHENTICATED),
        ([("authorization", "Bearer wrong")], grpc.StatusCode.UNAUTHENTICATED),
        ([("authorization", "Basic dG9rLWFkbWlu")], grpc.StatusCode.UNAUTHENTICATED),
        (READER, grpc.StatusCode.PERMISSION_DENIED),
        (auth("producer"), grpc.StatusCode.PERMISSION_DENIED),
    ],
)
def test_create_account_auth_matrix(client: Client, metadata: list, code: grpc.StatusCode) -> None:
    with pytest.raises(grpc.RpcError) as error:
        client.billing.CreateAccount(
            pb.CreateAccountRequest(name="A", plan_id="startup"), metadata=metadata
        )
    assert error.value.code() == code


def test_every_rpc_of_the_contract_has_a_scope() -> None:
    from as2aas.billing.v1 import billing_service_pb2, usage_service_pb2

    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (billing_service_pb2, usage_service_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert methods == set(METHOD_SCOPES)


def test_each_scope_opens_only_its_rpcs(client: Client) -> None:
    plans = pb.ListPlansRequest()
    client.billing.ListPlans(plans, metadata=READER)
    client.billing.ListPlans(plans, metadata=auth("writer"))
    client.billing.ListPlans(plans, metadata=ADMIN)
    for caller in ("producer", "usage-reader"):
        with pytest.raises(grpc.RpcError) as error:
            client.billing.ListPlans(plans, metadata=auth(caller))
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "billing:read" in error.value.details()


def test_health_and_reflection_need_no_token(client: Client) -> None:
    health = health_pb2_grpc.HealthStub(client.channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest()).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    assert (
        health.Check(
            health_pb2.HealthCheckRequest(service="as2aas.billing.v1.BillingService")
        ).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    responses = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"as2aas.billing.v1.BillingService", "as2aas.billing.v1.UsageService"} <= names


def test_first_start_without_tokens_creates_one_admin_token_and_keeps_only_its_hash(
    tmp_path, capfd: pytest.CaptureFixture[str]
) -> None:
    with fresh_database(str(tmp_path)) as url:
        first = ServerThread(settings_for_tests(url, auth_tokens="")).start()
        printed = capfd.readouterr().err
        assert "created the first admin token" in printed
        token = printed.strip().split()[-1]
        client = Client(first.target)
        try:
            with pytest.raises(grpc.RpcError) as error:
                client.billing.ListPlans(pb.ListPlansRequest(), metadata=ADMIN)
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
            client.billing.ListPlans(
                pb.ListPlansRequest(), metadata=[("authorization", f"Bearer {token}")]
            )
            with first.db.read() as session:
                rows = session.exec(select(ApiToken)).all()
            assert [(r.name, r.token_sha256) for r in rows] == [
                ("admin", hashlib.sha256(token.encode()).hexdigest())
            ]
        finally:
            client.close()
            first.stop()
        second = ServerThread(settings_for_tests(url, auth_tokens="")).start()
        second.stop()
        assert "created the first admin token" not in capfd.readouterr().err
        if url.startswith("sqlite:///"):
            with open(url.removeprefix("sqlite:///"), "rb") as handle:
                assert token.encode() not in handle.read()


def test_serve_logs_one_json_line_per_rpc_and_exits_0_on_sigterm(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        service = ServiceProcess(url, BILLING_SHUTDOWN_GRACE_SECONDS="5").start()
        client = Client(service.target)
        try:
            account = client.billing.CreateAccount(
                pb.CreateAccountRequest(name="Log Co", plan_id="startup", request_id="req-log-1"),
                metadata=auth("writer"),
            ).account
            with pytest.raises(grpc.RpcError):
                client.billing.GetAccountBilling(
                    pb.GetAccountBillingRequest(account_id="acc_missing"), metadata=READER
                )
            # A call in flight when SIGTERM arrives still completes.
            results = []
            slow = threading.Thread(
                target=lambda: results.append(
                    client.billing.ListPlans(pb.ListPlansRequest(), metadata=READER)
                )
            )
            slow.start()
            time.sleep(0.05)
            code = service.terminate()
            slow.join(10)
        finally:
            client.close()
            service.kill()
        assert code == 0
        assert results and results[0].plans
        lines = [json.loads(line) for line in service.output().splitlines() if line.startswith("{")]
        rpcs = [line for line in lines if line.get("event") == "rpc"]
        created = next(line for line in rpcs if line["rpc"].endswith("/CreateAccount"))
        assert created["caller"] == "writer"
        assert created["code"] == "OK"
        assert created["request_id"] == "req-log-1"
        assert created["duration_ms"] >= 0
        missing = next(line for line in rpcs if line["rpc"].endswith("/GetAccountBilling"))
        assert (missing["code"], missing["account_id"], missing["caller"]) == (
            "NOT_FOUND",
            "acc_missing",
            "reader",
        )
        assert missing["request_id"].startswith("req_")
        assert account.account_id
        assert any(line.get("event") == "stopped" for line in lines)


def test_sigterm_is_clean_even_when_idle(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        service = ServiceProcess(url).start()
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(30) == 0


def test_an_unexpected_failure_is_internal_with_the_request_id_and_serving_goes_on(
    tmp_path,
) -> None:
    from sqlalchemy import text

    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url)).start()
        client = Client(server.target)
        try:
            account = client.billing.CreateAccount(
                pb.CreateAccountRequest(name="Broken Co", plan_id="startup"), metadata=ADMIN
            ).account
            with server.db.write() as session:  # a real fault: a table disappears
                session.execute(text("DROP TABLE master_partner"))
            with pytest.raises(grpc.RpcError) as error:
                client.billing.CreateMasterPartner(
                    pb.CreateMasterPartnerRequest(account_id=account.account_id, name="P"),
                    metadata=[*ADMIN, ("x-request-id", "req-broken-1")],
                )
            assert error.value.code() == grpc.StatusCode.INTERNAL
            assert "req-broken-1" in error.value.details()
            assert "Traceback" not in error.value.details()
            assert client.billing.ListPlans(pb.ListPlansRequest(), metadata=READER).plans
        finally:
            client.close()
            server.stop()


def test_metrics_are_scraped_over_http(tmp_path) -> None:
    import httpx
    from as2aas.billing.v1 import usage_service_pb2 as upb

    from tests.support import free_port

    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(
            settings_for_tests(url, metrics_listen=f"127.0.0.1:{free_port()}")
        ).start()
        client = Client(server.target)
        try:
            account = client.billing.CreateAccount(
                pb.CreateAccountRequest(name="Metrics Co", plan_id="startup"), metadata=ADMIN
            ).account
            with pytest.raises(grpc.RpcError):
                client.billing.GetAccountBilling(
                    pb.GetAccountBillingRequest(account_id="acc_nope"), metadata=READER
                )
            client.usage.RecordUsage(
                upb.RecordUsageRequest(
                    events=[
                        upb.UsageEvent(
                            event_id="x", account_id=account.account_id, tenant_id="ten_nope"
                        )
                    ]
                ),
                metadata=auth("producer"),
            )
            body = httpx.get(f"http://127.0.0.1:{server.server.metrics_port}/metrics").text
        finally:
            client.close()
            server.stop()
    assert (
        'billing_rpc_total{code="OK",method="/as2aas.billing.v1.BillingService/CreateAccount"}'
    ) in body
    assert (
        'billing_rpc_total{code="NOT_FOUND",method="/as2aas.billing.v1.BillingService/'
        'GetAccountBilling"}'
    ) in body
    assert "billing_rpc_duration_seconds_bucket" in body
    assert 'billing_usage_events_total{outcome="rejected"}' in body
    assert "billing_usage_group_commit_seconds_count" in body
    assert "billing_outbox_pending_events" in body
    assert "billing_outbox_oldest_pending_age_seconds" in body
