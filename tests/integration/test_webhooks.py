"""Webhook delivery to a real HTTP receiver, verified with the public ``standardwebhooks``
library (spec §2, WEBHOOKS.md; issue 4)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from standardwebhooks.webhooks import Webhook

from tests.integration.test_usage import Shop, ts
from tests.support import (
    ADMIN,
    READER,
    WRITER,
    Client,
    Receiver,
    ServerThread,
    ServiceProcess,
    bad_request_fields,
    create_account,
    fresh_database,
    on_postgres,
    settings_for_tests,
)


def endpoint(client: Client, account_id: str, url: str, *types: str) -> pb.WebhookEndpoint:
    return client.billing.CreateWebhookEndpoint(pb.CreateWebhookEndpointRequest(
        account_id=account_id, url=url, event_types=list(types), description="ERP"),
        metadata=WRITER).endpoint


def trial_ended_account(client: Client) -> pb.Account:
    """An account whose trial ends a moment from now: a billing.subscription_updated event."""
    start = datetime.now(UTC) - timedelta(days=14) + timedelta(seconds=1)
    return create_account(client, plan_id="startup", start_time=ts(start))


def verify(secret: str, request: tuple[dict[str, str], bytes]) -> dict:
    headers, body = request
    return Webhook(secret).verify(body, headers)


def test_deliveries_are_signed_standard_webhooks(client: Client) -> None:
    receiver = Receiver()
    try:
        account = trial_ended_account(client)
        hook = endpoint(client, account.account_id, receiver.url)
        assert hook.secret.startswith("whsec_") and hook.endpoint_id.startswith("we_")
        (headers, body), = receiver.wait_for(1)
        payload = verify(hook.secret, (headers, body))
        assert payload["type"] == "billing.subscription_updated"
        assert payload["data"]["account_id"] == account.account_id
        assert payload["data"]["status"] == "past_due"
        assert payload["timestamp"].endswith("Z")
        assert headers["webhook-id"].startswith("msg_") and "." not in headers["webhook-id"]
        assert headers["webhook-signature"].startswith("v1,")
        assert set(json.loads(body)) == {"type", "timestamp", "data"}
        with pytest.raises(Exception):  # noqa: B017 - any verification error will do
            Webhook("whsec_" + "A" * 32).verify(body, headers)
    finally:
        receiver.close()


def test_failures_then_success_keep_one_webhook_id_and_log_every_attempt(
        client: Client) -> None:
    receiver = Receiver(plan=[500, 500])
    try:
        account = trial_ended_account(client)
        hook = endpoint(client, account.account_id, receiver.url)
        requests = receiver.wait_for(3)
        ids = {headers["webhook-id"] for headers, _ in requests}
        assert len(ids) == 1
        verify(hook.secret, requests[-1])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            events = client.billing.ListWebhookEvents(pb.ListWebhookEventsRequest(
                account_id=account.account_id), metadata=READER).events
            if events and events[0].status == pb.WEBHOOK_EVENT_STATUS_DELIVERED:
                break
            time.sleep(0.05)
        event, = events
        assert event.event_id in ids and event.type == "billing.subscription_updated"
        assert [(a.attempt_number, a.status_code) for a in event.attempts] == [
            (1, 500), (2, 500), (3, 200)]
        assert all(a.endpoint_id == hook.endpoint_id for a in event.attempts)
        assert event.attempts[0].error == "HTTP 500"
        endpoints = client.billing.ListWebhookEndpoints(pb.ListWebhookEndpointsRequest(
            account_id=account.account_id), metadata=READER).endpoints
        assert [(e.endpoint_id, e.secret, e.failure_streak) for e in endpoints] == [
            (hook.endpoint_id, "", 0)]
    finally:
        receiver.close()


def test_endpoints_get_only_the_types_they_subscribed_to(client: Client) -> None:
    everything, limits = Receiver(), Receiver()
    try:
        shop = Shop(client, plan_id="startup")
        endpoint(client, shop.account_id, everything.url)
        endpoint(client, shop.account_id, limits.url, "billing.limit_exceeded")
        shop.record([shop.message("w1", 3750)])  # 75 % threshold
        shop.record([shop.message("w2", 2000)])  # 90 %, 100 % and the message limit
        got = everything.wait_for(4)
        assert sorted(json.loads(body)["type"] for _, body in got) == [
            "billing.limit_exceeded"] + ["billing.usage_threshold"] * 3
        only = limits.wait_for(1)
        time.sleep(0.3)
        assert [json.loads(body)["type"] for _, body in limits.received()] == [
            "billing.limit_exceeded"]
        assert len(only) == 1
    finally:
        everything.close()
        limits.close()


def test_rotation_signs_with_both_secrets_for_a_day(client: Client) -> None:
    receiver = Receiver()
    try:
        shop = Shop(client, plan_id="startup")
        hook = endpoint(client, shop.account_id, receiver.url)
        rotated = client.billing.RotateWebhookSecret(pb.RotateWebhookSecretRequest(
            endpoint_id=hook.endpoint_id), metadata=WRITER).endpoint
        assert rotated.secret != hook.secret
        shop.record([shop.message("r1", 4000)])
        request, = receiver.wait_for(1)
        assert len(request[0]["webhook-signature"].split(" ")) == 2
        verify(rotated.secret, request)
        verify(hook.secret, request)
    finally:
        receiver.close()


def test_redelivery_and_deletion(client: Client) -> None:
    receiver = Receiver()
    try:
        account = trial_ended_account(client)
        hook = endpoint(client, account.account_id, receiver.url)
        first, = receiver.wait_for(1)
        event_id = first[0]["webhook-id"]
        client.billing.RedeliverWebhookEvent(pb.RedeliverWebhookEventRequest(
            event_id=event_id), metadata=WRITER)
        second = receiver.wait_for(2)[1]
        assert second[0]["webhook-id"] == event_id and second[1] == first[1]
        client.billing.DeleteWebhookEndpoint(pb.DeleteWebhookEndpointRequest(
            endpoint_id=hook.endpoint_id), metadata=WRITER)
        assert client.billing.ListWebhookEndpoints(pb.ListWebhookEndpointsRequest(
            account_id=account.account_id), metadata=READER).endpoints == []
        with pytest.raises(grpc.RpcError) as error:
            client.billing.RedeliverWebhookEvent(pb.RedeliverWebhookEventRequest(
                event_id=event_id, endpoint_id=hook.endpoint_id), metadata=WRITER)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        receiver.close()


def test_410_gone_disables_the_endpoint_and_stops_retries(client: Client) -> None:
    receiver = Receiver(plan=[410])
    try:
        account = trial_ended_account(client)
        hook = endpoint(client, account.account_id, receiver.url)
        receiver.wait_for(1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            listed, = client.billing.ListWebhookEndpoints(pb.ListWebhookEndpointsRequest(
                account_id=account.account_id), metadata=READER).endpoints
            if listed.status == pb.WEBHOOK_ENDPOINT_STATUS_DISABLED:
                break
            time.sleep(0.05)
        assert listed.endpoint_id == hook.endpoint_id
        assert listed.status == pb.WEBHOOK_ENDPOINT_STATUS_DISABLED
        assert "410" in listed.disabled_reason
        time.sleep(0.5)
        assert len(receiver.received()) == 1
        audit = client.billing.ListAuditEvents(pb.ListAuditEventsRequest(
            account_id=account.account_id, action="webhook_endpoint.disabled"),
            metadata=ADMIN).audit_events
        assert len(audit) == 1 and "410" in audit[0].after_json
    finally:
        receiver.close()


def test_one_dead_endpoint_does_not_delay_the_others(client: Client) -> None:
    slow, fast = Receiver(delay=3.0), Receiver()
    try:
        shop = Shop(client, plan_id="startup")
        endpoint(client, shop.account_id, slow.url)
        endpoint(client, shop.account_id, fast.url)
        started = time.monotonic()
        shop.record([shop.message("iso1", 5001)])  # four events at once
        fast.wait_for(4, timeout=2.5)
        assert time.monotonic() - started < 2.5
    finally:
        slow.close()
        fast.close()


def test_the_url_guard_refuses_internal_addresses(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(
            url, webhook_allow_private_networks=False)).start()
        client = Client(server.target)
        try:
            account = create_account(client)
            for bad in ("http://example.com/hook", "https://127.0.0.1/hook",
                        "https://localhost:8443/x", "https://10.1.2.3/x",
                        "https://169.254.169.254/latest", "https://[::1]/x",
                        "https://user:pw@example.com/x", "ftp://example.com"):
                with pytest.raises(grpc.RpcError) as error:
                    endpoint(client, account.account_id, bad)
                assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
                assert bad_request_fields(error.value) == ["url"]
        finally:
            client.close()
            server.stop()


def test_a_pending_retry_survives_sigkill_and_restart(tmp_path) -> None:
    receiver = Receiver(plan=[500])
    with fresh_database(str(tmp_path)) as url:
        service = ServiceProcess(url, BILLING_WEBHOOK_RETRY_SCHEDULE="2").start()
        client = Client(service.target)
        try:
            account = trial_ended_account(client)
            endpoint(client, account.account_id, receiver.url)
            first, = receiver.wait_for(1)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the failed attempt is recorded, retry due
                events = client.billing.ListWebhookEvents(pb.ListWebhookEventsRequest(
                    account_id=account.account_id), metadata=READER).events
                if events and events[0].attempts:
                    break
                time.sleep(0.05)
            assert events[0].status == pb.WEBHOOK_EVENT_STATUS_PENDING
            service.kill()  # the retry is due in ~2 s and lives only in the database
            client.close()
            service = ServiceProcess(url, BILLING_WEBHOOK_RETRY_SCHEDULE="2").start()
            second = receiver.wait_for(2, timeout=20)[1]
            assert second[0]["webhook-id"] == first[0]["webhook-id"]
            assert second[1] == first[1]
        finally:
            service.kill()
            receiver.close()


@pytest.mark.skipif(not on_postgres(), reason="replicas share a PostgreSQL database")
def test_two_replicas_share_the_outbox_without_sending_twice(tmp_path) -> None:
    receiver = Receiver()
    with fresh_database(str(tmp_path)) as url:
        replicas = [ServerThread(settings_for_tests(url)).start() for _ in range(2)]
        clients = [Client(r.target) for r in replicas]
        try:
            accounts = [create_account(clients[0], name=f"R{i}") for i in range(30)]
            for account in accounts:
                endpoint(clients[0], account.account_id, receiver.url)

            def change(index: int) -> None:
                clients[index % 2].billing.ChangePlan(pb.ChangePlanRequest(
                    account_id=accounts[index].account_id, plan_id="business"),
                    metadata=WRITER)

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(change, range(30)))
            receiver.wait_for(30)
            time.sleep(1.0)
            ids = [headers["webhook-id"] for headers, _ in receiver.received()]
            assert len(ids) == len(set(ids)) == 30
        finally:
            for c in clients:
                c.close()
            for r in replicas:
                r.stop()
            receiver.close()


def test_a_dead_endpoints_backlog_does_not_starve_healthy_endpoints(tmp_path) -> None:
    from billing_svc.domain import events
    from billing_svc.storage import outbox
    from tests.support import DeadEndpoint

    dead, healthy = DeadEndpoint(), Receiver()
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(
            url, webhook_timeout_seconds=1.0, webhook_max_concurrency=8,
            webhook_per_endpoint_concurrency=2)).start()
        client = Client(server.target)
        try:
            stuck, fine = create_account(client, name="Stuck"), create_account(client, name="Fine")
            endpoint(client, stuck.account_id, dead.url)
            endpoint(client, fine.account_id, healthy.url)

            def emit(account_id: str, count: int) -> None:
                with server.db.write() as session:
                    for i in range(count):
                        outbox.enqueue(session, events.limit_exceeded(
                            account_id=account_id, limit_type="tenants", current_usage=i,
                            plan_limit=3, period="2026-11", refused=False,
                            occurred_at=datetime.now(UTC)))

            emit(stuck.account_id, 60)  # older than the healthy event: first in line
            time.sleep(0.3)
            started = time.monotonic()
            emit(fine.account_id, 1)
            healthy.wait_for(1, timeout=5)
            assert time.monotonic() - started < 3
        finally:
            client.close()
            server.stop()
            dead.close()
            healthy.close()
