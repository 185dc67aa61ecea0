"""Webhook delivery to a real HTTP receiver, verified with the public ``standardwebhooks``
library (spec §2, WEBHOOKS.md; issue 4)."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import aiohttp
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
    return client.billing.CreateWebhookEndpoint(
        pb.CreateWebhookEndpointRequest(
            account_id=account_id, url=url, event_types=list(types), description="ERP"
        ),
        metadata=WRITER,
    ).endpoint


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
        ((headers, body),) = receiver.wait_for(1)
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


def test_failures_then_success_keep_one_webhook_id_and_log_every_attempt(client: Client) -> None:
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
            events = client.billing.ListWebhookEvents(
                pb.ListWebhookEventsRequest(account_id=account.account_id), metadata=READER
            ).events
            if events and events[0].status == pb.WEBHOOK_EVENT_STATUS_DELIVERED:
                break
            time.sleep(0.05)
        (event,) = events
        assert event.event_id in ids and event.type == "billing.subscription_updated"
        assert [(a.attempt_number, a.status_code) for a in event.attempts] == [
            (1, 500),
            (2, 500),
            (3, 200),
        ]
        assert all(a.endpoint_id == hook.endpoint_id for a in event.attempts)
        assert event.attempts[0].error == "HTTP 500"
        endpoints = client.billing.ListWebhookEndpoints(
            pb.ListWebhookEndpointsRequest(account_id=account.account_id), metadata=READER
        ).endpoints
        assert [(e.endpoint_id, e.secret, e.failure_streak) for e in endpoints] == [
            (hook.endpoint_id, "", 0)
        ]
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
        assert (
            sorted(json.loads(body)["type"] for _, body in got)
            == ["billing.limit_exceeded"] + ["billing.usage_threshold"] * 3
        )
        only = limits.wait_for(1)
        time.sleep(0.3)
        assert [json.loads(body)["type"] for _, body in limits.received()] == [
            "billing.limit_exceeded"
        ]
        assert len(only) == 1
    finally:
        everything.close()
        limits.close()


def test_rotation_signs_with_both_secrets_for_a_day(client: Client) -> None:
    receiver = Receiver()
    try:
        shop = Shop(client, plan_id="startup")
        hook = endpoint(client, shop.account_id, receiver.url)
        rotated = client.billing.RotateWebhookSecret(
            pb.RotateWebhookSecretRequest(endpoint_id=hook.endpoint_id), metadata=WRITER
        ).endpoint
        assert rotated.secret != hook.secret
        shop.record([shop.message("r1", 4000)])
        (request,) = receiver.wait_for(1)
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
        (first,) = receiver.wait_for(1)
        event_id = first[0]["webhook-id"]
        client.billing.RedeliverWebhookEvent(
            pb.RedeliverWebhookEventRequest(event_id=event_id), metadata=WRITER
        )
        second = receiver.wait_for(2)[1]
        assert second[0]["webhook-id"] == event_id and second[1] == first[1]
        client.billing.DeleteWebhookEndpoint(
            pb.DeleteWebhookEndpointRequest(endpoint_id=hook.endpoint_id), metadata=WRITER
        )
        assert (
            client.billing.ListWebhookEndpoints(
                pb.ListWebhookEndpointsRequest(account_id=account.account_id), metadata=READER
            ).endpoints
            == []
        )
        with pytest.raises(grpc.RpcError) as error:
            client.billing.RedeliverWebhookEvent(
                pb.RedeliverWebhookEventRequest(event_id=event_id, endpoint_id=hook.endpoint_id),
                metadata=WRITER,
            )
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
            (listed,) = client.billing.ListWebhookEndpoints(
                pb.ListWebhookEndpointsRequest(account_id=account.account_id), metadata=READER
            ).endpoints
            if listed.status == pb.WEBHOOK_ENDPOINT_STATUS_DISABLED:
                break
            time.sleep(0.05)
        assert listed.endpoint_id == hook.endpoint_id
        assert listed.status == pb.WEBHOOK_ENDPOINT_STATUS_DISABLED
        assert "410" in listed.disabled_reason
        time.sleep(0.5)
        assert len(receiver.received()) == 1
        audit = client.billing.ListAuditEvents(
            pb.ListAuditEventsRequest(
                account_id=account.account_id, action="webhook_endpoint.disabled"
            ),
            metadata=ADMIN,
        ).audit_events
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
        server = ServerThread(settings_for_tests(url, webhook_allow_private_networks=False)).start()
        client = Client(server.target)
        try:
            account = create_account(client)
            for bad in (
                "http://example.com/hook",
                "https://127.0.0.1/hook",
                "https://localhost:8443/x",
                "https://10.1.2.3/x",
                "https://169.254.169.254/latest",
                "https://[::1]/x",
                "https://user:pw@example.com/x",
                "ftp://example.com",
            ):
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
            (first,) = receiver.wait_for(1)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the failed attempt is recorded, retry due
                events = client.billing.ListWebhookEvents(
                    pb.ListWebhookEventsRequest(account_id=account.account_id), metadata=READER
                ).events
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
                clients[index % 2].billing.ChangePlan(
                    pb.ChangePlanRequest(account_id=accounts[index].account_id, plan_id="business"),
                    metadata=WRITER,
                )

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(change, range(30)))
            # And a burst straight into the outbox: both replicas claim at full speed.
            from billing_svc.domain import events
            from billing_svc.storage import outbox

            with replicas[1].db.write() as session:
                for i in range(300):
                    outbox.enqueue(
                        session,
                        events.limit_exceeded(
                            account_id=accounts[i % 30].account_id,
                            limit_type="tenants",
                            current_usage=i,
                            plan_limit=3,
                            period="2026-11",
                            refused=False,
                            occurred_at=datetime.now(UTC),
                        ),
                    )
            receiver.wait_for(330)
            time.sleep(1.0)
            ids = [headers["webhook-id"] for headers, _ in receiver.received()]
            assert len(ids) == len(set(ids)) == 330
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
        server = ServerThread(
            settings_for_tests(
                url,
                webhook_timeout_seconds=1.0,
                webhook_max_concurrency=8,
                webhook_per_endpoint_concurrency=2,
            )
        ).start()
        client = Client(server.target)
        try:
            stuck, fine = create_account(client, name="Stuck"), create_account(client, name="Fine")
            endpoint(client, stuck.account_id, dead.url)
            endpoint(client, fine.account_id, healthy.url)

            def emit(account_id: str, count: int) -> None:
                with server.db.write() as session:
                    for i in range(count):
                        outbox.enqueue(
                            session,
                            events.limit_exceeded(
                                account_id=account_id,
                                limit_type="tenants",
                                current_usage=i,
                                plan_limit=3,
                                period="2026-11",
                                refused=False,
                                occurred_at=datetime.now(UTC),
                            ),
                        )

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


# ---------------------------------------------------------------------------------------------
# The event log: statuses, filters, pages, and a redelivery that ends a failed event.


def events_of(client: Client, account_id: str, **filters: object) -> pb.ListWebhookEventsResponse:
    return client.billing.ListWebhookEvents(
        pb.ListWebhookEventsRequest(account_id=account_id, **filters), metadata=READER
    )  # type: ignore[arg-type]


def wait_until(condition: Callable[[], object], timeout: float = 10) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            assert value, "condition not met in time"
            return value
        time.sleep(0.05)


def test_the_event_log_filters_pages_and_redelivers_a_failed_event(client: Client) -> None:
    failing, healthy = Receiver(plan=[500] * 4), Receiver()  # 4 = every attempt of the schedule
    try:
        account = create_account(client, plan_id="startup")
        endpoint(client, account.account_id, failing.url, "billing.limit_exceeded")
        endpoint(client, account.account_id, healthy.url, "billing.subscription_updated")
        for i in range(11):  # the 11th is over the plan's 10: refused, billing.limit_exceeded
            with pytest.raises(grpc.RpcError) if i == 10 else contextlib.nullcontext():
                client.billing.CreateMasterPartner(
                    pb.CreateMasterPartnerRequest(account_id=account.account_id, name=f"P{i}"),
                    metadata=WRITER,
                )
        for plan_id in ("business", "enterprise"):  # upgrades: billing.subscription_updated
            client.billing.ChangePlan(
                pb.ChangePlanRequest(account_id=account.account_id, plan_id=plan_id),
                metadata=WRITER,
            )
        failing.wait_for(4)
        healthy.wait_for(2)

        (failed,) = wait_until(
            lambda: (
                events_of(client, account.account_id, status=pb.WEBHOOK_EVENT_STATUS_FAILED).events
            )
        )
        assert failed.type == "billing.limit_exceeded"
        assert [(a.attempt_number, a.status_code) for a in failed.attempts] == [
            (1, 500),
            (2, 500),
            (3, 500),
            (4, 500),
        ]
        updates = events_of(
            client, account.account_id, event_type="billing.subscription_updated"
        ).events
        assert [e.status for e in updates] == [pb.WEBHOOK_EVENT_STATUS_DELIVERED] * 2

        pages, token = [], ""
        while True:  # newest first, one per page
            page = events_of(client, account.account_id, page_size=1, page_token=token)
            pages += [e.event_id for e in page.events]
            token = page.next_page_token
            if not token:
                break
        assert pages == sorted(pages, reverse=True) and len(pages) == 3
        assert failed.event_id in pages

        with failing.lock:
            failing.plan.clear()  # the receiver is fixed
        client.billing.RedeliverWebhookEvent(
            pb.RedeliverWebhookEventRequest(event_id=failed.event_id), metadata=WRITER
        )
        headers, _ = failing.wait_for(5)[-1]
        assert headers["webhook-id"] == failed.event_id
        # The receiver answers before the outcome is recorded: wait for the record, not the POST
        # (while it is in flight the event reads as pending, which is not failed either).
        (again,) = wait_until(
            lambda: [
                e
                for e in events_of(client, account.account_id).events
                if e.event_id == failed.event_id and e.status == pb.WEBHOOK_EVENT_STATUS_DELIVERED
            ]
        )
        assert not events_of(
            client, account.account_id, status=pb.WEBHOOK_EVENT_STATUS_FAILED
        ).events
        assert [a.status_code for a in again.attempts] == [500, 500, 500, 500, 200]
    finally:
        failing.close()
        healthy.close()


# ---------------------------------------------------------------------------------------------
# Endpoints failing for days are disabled; answers are bounded in time and size.


def test_an_endpoint_failing_continuously_is_disabled_and_audited(tmp_path) -> None:
    receiver = Receiver(plan=[500] * 1000)
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(
            settings_for_tests(
                url,
                webhook_disable_after_days=1.0 / 86400,  # one second here, 5 days by default
                webhook_retry_schedule=",".join(["0.2"] * 50),
            )
        ).start()
        client = Client(server.target)
        try:
            account = create_account(client)
            hook = endpoint(client, account.account_id, receiver.url)
            client.billing.ChangePlan(
                pb.ChangePlanRequest(account_id=account.account_id, plan_id="business"),
                metadata=WRITER,
            )
            listed = wait_until(
                lambda: [
                    e
                    for e in client.billing.ListWebhookEndpoints(
                        pb.ListWebhookEndpointsRequest(account_id=account.account_id),
                        metadata=READER,
                    ).endpoints
                    if e.status == pb.WEBHOOK_ENDPOINT_STATUS_DISABLED
                ]
            )
            (disabled,) = listed  # type: ignore[misc]
            assert disabled.endpoint_id == hook.endpoint_id
            assert disabled.disabled_reason.startswith("failing continuously since")
            assert disabled.failure_streak >= 2 and disabled.HasField("failing_since")
            tried = len(receiver.received())
            time.sleep(0.6)
            assert len(receiver.received()) == tried  # no more attempts
            (event,) = events_of(client, account.account_id).events
            assert event.status == pb.WEBHOOK_EVENT_STATUS_FAILED
            (audit,) = client.billing.ListAuditEvents(
                pb.ListAuditEventsRequest(
                    account_id=account.account_id, action="webhook_endpoint.disabled"
                ),
                metadata=ADMIN,
            ).audit_events
            assert hook.endpoint_id in audit.after_json and "failing" in audit.after_json
        finally:
            client.close()
            server.stop()
            receiver.close()


class _Odd(http.server.BaseHTTPRequestHandler):
    """Receivers that misbehave, by path: /drip answers one byte every 0.2 s, /huge sends
    50 MB, /redirect answers 302."""

    protocol_version = "HTTP/1.1"
    hits: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        _Odd.hits.append(self.path)
        try:
            if self.path == "/drip":
                self.send_response(200)
                self.send_header("content-length", "1000")
                self.end_headers()
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            elif self.path == "/huge":
                self.send_response(200)
                self.send_header("content-length", str(50 * 2**20))
                self.end_headers()
                chunk = b"y" * 2**16
                for _ in range(50 * 2**4):
                    self.wfile.write(chunk)
            else:
                self.send_response(302)
                self.send_header("location", "http://127.0.0.1:9/elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()
        except OSError:  # the sender hung up: that is the point
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def odd_receiver() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_answers_are_cut_at_the_timeout_and_the_size_limit_and_never_followed(
    tmp_path, odd_receiver: str
) -> None:
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(
            settings_for_tests(url, webhook_timeout_seconds=1.0, webhook_retry_schedule="60")
        ).start()
        client = Client(server.target)
        try:
            account = create_account(client)
            for path in ("/drip", "/huge", "/redirect"):
                endpoint(client, account.account_id, odd_receiver + path)
            started = time.monotonic()
            client.billing.ChangePlan(
                pb.ChangePlanRequest(account_id=account.account_id, plan_id="business"),
                metadata=WRITER,
            )
            event = wait_until(
                lambda: [
                    e for e in events_of(client, account.account_id).events if len(e.attempts) == 3
                ]
            )[0]  # type: ignore[index]
            assert time.monotonic() - started < 5
            endpoint_path = {
                e.endpoint_id: e.url.rsplit("/", 1)[1]
                for e in client.billing.ListWebhookEndpoints(
                    pb.ListWebhookEndpointsRequest(account_id=account.account_id), metadata=READER
                ).endpoints
            }
            by_path = {endpoint_path[a.endpoint_id]: a for a in event.attempts}
            assert by_path["drip"].status_code == 0
            assert by_path["drip"].error == "timed out after 1 s"
            assert 900 <= by_path["drip"].latency_ms < 2000
            assert by_path["huge"].status_code == 200 and by_path["huge"].latency_ms < 1000
            assert (by_path["redirect"].status_code, by_path["redirect"].error) == (302, "HTTP 302")
            assert "/elsewhere" not in _Odd.hits
            with server.db.read() as session:
                from sqlmodel import select

                from billing_svc.storage.tables import WebhookAttempt

                bodies = [
                    a.response_body
                    for a in session.exec(
                        select(WebhookAttempt).where(WebhookAttempt.event_id == event.event_id)
                    )
                ]
            assert max(len(b) for b in bodies) == 2048
        finally:
            client.close()
            server.stop()


# ---------------------------------------------------------------------------------------------
# SSRF at delivery time: the connection goes to the address just checked.


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """``*.test`` names resolve to ``fake_dns[name]``; ``fake_dns["lookups"]`` counts."""
    answers: dict[str, list[str]] = {"lookups": []}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and host.endswith(".test"):
            answers["lookups"].append(host)
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0)) for a in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_a_host_rebound_to_an_internal_address_is_refused_at_delivery(
    tmp_path, fake_dns: dict[str, list[str]]
) -> None:
    receiver = Receiver()
    port = receiver.server.server_address[1]
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(
            settings_for_tests(
                url, webhook_allow_private_networks=False, webhook_retry_schedule="60"
            )
        ).start()
        client = Client(server.target)
        try:
            account = create_account(client)
            fake_dns["hooks.rebind.test"] = ["93.184.216.34"]  # public when registered
            endpoint(client, account.account_id, f"https://hooks.rebind.test:{port}/hooks")
            fake_dns["hooks.rebind.test"] = ["127.0.0.1"]  # ... and internal when delivering
            client.billing.ChangePlan(
                pb.ChangePlanRequest(account_id=account.account_id, plan_id="business"),
                metadata=WRITER,
            )
            (event,) = wait_until(
                lambda: [e for e in events_of(client, account.account_id).events if e.attempts]
            )  # type: ignore[misc]
            (attempt,) = event.attempts
            assert attempt.status_code == 0
            assert attempt.error.startswith("refused:") and "127.0.0.1" in attempt.error
            assert receiver.received() == []
        finally:
            client.close()
            server.stop()
            receiver.close()


def test_the_connection_goes_to_the_address_checked_and_names_the_host(
    client: Client, fake_dns: dict[str, list[str]]
) -> None:
    receiver = Receiver()
    port = receiver.server.server_address[1]
    try:
        account = create_account(client)
        fake_dns["hooks.pinned.test"] = ["127.0.0.1"]
        hook = endpoint(client, account.account_id, f"http://hooks.pinned.test:{port}/hooks")
        assert fake_dns["lookups"] == ["hooks.pinned.test"]  # checked when created
        client.billing.ChangePlan(
            pb.ChangePlanRequest(account_id=account.account_id, plan_id="business"), metadata=WRITER
        )
        (request,) = receiver.wait_for(1)
        assert request[0]["host"] == f"hooks.pinned.test:{port}"
        verify(hook.secret, request)
        # One lookup to connect, by the guard: nothing resolved the name again behind it.
        assert fake_dns["lookups"] == ["hooks.pinned.test"] * 2
    finally:
        receiver.close()


def test_https_checks_the_certificate_against_the_urls_host_name(
    tmp_path, fake_dns: dict[str, list[str]]
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from billing_svc.net.transport import DeliveryClient
    from tests.integration.test_tls import _certificate, _pem_key

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])
    ca = _certificate("webhook test CA", ca_key, ca_name, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("localhost", key, ca.subject, ca_key, server=True)  # localhost only
    (tmp_path / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + _pem_key(key)
    )
    receiver = Receiver()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "server.pem")
    receiver.server.socket = tls.wrap_socket(receiver.server.socket, server_side=True)
    port = receiver.server.server_address[1]
    trust = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    fake_dns["impostor.test"] = ["127.0.0.1"]  # the same address, a name the cert lacks

    async def post(url: str) -> int:
        client = DeliveryClient(allow_private=True, timeout=5, max_connections=4, ssl_context=trust)
        try:
            return (await client.post(url, b"{}", {}, limit=100))[0]
        finally:
            await client.aclose()

    try:
        assert asyncio.run(post(f"https://localhost:{port}/hooks")) == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError, match="certificate"):
            asyncio.run(post(f"https://impostor.test:{port}/hooks"))
        assert len(receiver.received()) == 1
    finally:
        receiver.close()
