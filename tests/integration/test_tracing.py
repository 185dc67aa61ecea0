"""OpenTelemetry traces (issue 17, point 7): the spans of RPCs, group commits, period closing and
webhook attempts, recorded in memory by a real server; the W3C ``traceparent`` in and out; and,
with tracing off, nothing recorded and no exporter built."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import usage_service_pb2 as upb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from billing_svc.domain.periods import Period
from billing_svc.storage.tables import Account
from tests.integration.test_invoicing import close, imported_shop, now
from tests.integration.test_usage import PRODUCER, Shop
from tests.integration.test_webhooks import endpoint, trial_ended_account, verify
from tests.support import (
    ADMIN,
    READER,
    Client,
    Receiver,
    ServerThread,
    ServiceProcess,
    fresh_database,
    settings_for_tests,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = [("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01")]
BILLING = "as2aas.billing.v1.BillingService"
USAGE = "as2aas.billing.v1.UsageService"


class Traced:
    """A real server whose spans go to an in-memory exporter."""

    def __init__(self, server: ServerThread, exporter: InMemorySpanExporter) -> None:
        self.server = server
        self.exporter = exporter
        self.client = Client(server.target)

    def spans(
        self,
        name: str,
        where: Callable[[ReadableSpan], bool] = lambda _: True,
        count: int = 1,
        timeout: float = 10,
    ) -> list[ReadableSpan]:
        """The finished spans called ``name`` that ``where`` picks, once there are ``count``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [s for s in self.exporter.get_finished_spans() if s.name == name and where(s)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with fresh_database(str(tmp_path_factory.mktemp("db"))) as url:
        server = ServerThread(settings_for_tests(url), tracer_provider=provider).start()
        running = Traced(server, exporter)
        yield running
        running.client.close()
        server.stop()
    provider.shutdown()


def attribute(name: str, value: object) -> Callable[[ReadableSpan], bool]:
    return lambda span: (span.attributes or {}).get(name) == value


def billing(traced: Traced, account_id: str, metadata: list[tuple[str, str]]) -> None:
    traced.client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=account_id), metadata=metadata
    )


def test_an_rpc_span_continues_the_callers_trace(traced: Traced) -> None:
    account = traced.client.billing.CreateAccount(
        pb.CreateAccountRequest(name="Traced Co", plan_id="startup"), metadata=ADMIN
    ).account
    billing(traced, account.account_id, READER + TRACEPARENT)
    (span,) = traced.spans(
        f"{BILLING}/GetAccountBilling", attribute("billing.account_id", account.account_id)
    )
    assert span.kind == SpanKind.SERVER
    assert span.context.trace_id == int(TRACE_ID, 16)
    assert span.parent is not None and span.parent.is_remote
    assert span.parent.span_id == int(PARENT_ID, 16)
    assert dict(span.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": BILLING,
        "rpc.method": "GetAccountBilling",
        "rpc.grpc.status_code": 0,
        "billing.account_id": account.account_id,
        "billing.caller": "reader",
        "billing.request_id": span.attributes["billing.request_id"],
    }
    assert span.status.status_code == StatusCode.UNSET


def test_a_caller_mistake_is_a_status_code_not_a_span_error(traced: Traced) -> None:
    with pytest.raises(grpc.RpcError) as error:
        billing(traced, "acc_missing_trace", READER + TRACEPARENT)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    (span,) = traced.spans(
        f"{BILLING}/GetAccountBilling", attribute("billing.account_id", "acc_missing_trace")
    )
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert span.status.status_code == StatusCode.UNSET  # the caller's mistake, not ours


def test_without_a_traceparent_an_rpc_starts_a_trace(traced: Traced) -> None:
    account = traced.client.billing.CreateAccount(
        pb.CreateAccountRequest(name="Root Co", plan_id="startup"), metadata=ADMIN
    ).account
    billing(traced, account.account_id, [*READER, ("traceparent", "00-zz-not-a-header")])
    (span,) = traced.spans(
        f"{BILLING}/GetAccountBilling", attribute("billing.account_id", account.account_id)
    )
    assert span.parent is None and span.context.trace_id != int(TRACE_ID, 16)


def test_a_usage_stream_has_its_rpc_span_and_a_group_commit_span_linked_to_it(
    traced: Traced,
) -> None:
    shop = Shop(traced.client)
    batches = [
        upb.StreamUsageRequest(
            batch_id=f"t-{b}", events=[shop.message(f"t-{b}-{i}") for i in range(5)]
        )
        for b in range(3)
    ]
    acks = list(traced.client.usage.StreamUsage(iter(batches), metadata=PRODUCER + TRACEPARENT))
    assert [a.accepted for a in acks] == [5, 5, 5]
    (rpc,) = traced.spans(f"{USAGE}/StreamUsage", attribute("billing.caller", "producer"))
    assert rpc.context.trace_id == int(TRACE_ID, 16)
    assert rpc.attributes["rpc.method"] == "StreamUsage"
    assert rpc.attributes["rpc.grpc.status_code"] == 0

    def linked(span: ReadableSpan) -> bool:
        return any(link.context.span_id == rpc.context.span_id for link in span.links)

    commits = traced.spans("usage.group_commit", linked)
    assert commits, "no group commit span links to the stream's span"
    # A commit may hold one batch or several: together they stored the stream's 15 events.
    assert sum(c.attributes["usage.batches"] for c in commits) == 3
    assert sum(c.attributes["usage.events"] for c in commits) == 15
    assert sum(c.attributes["usage.accepted"] for c in commits) == 15
    assert sum(c.attributes["usage.rejected"] for c in commits) == 0
    assert all(c.parent is None for c in commits)  # a commit serves many calls: its own trace


def test_closing_a_period_is_a_span_under_the_rpc(traced: Traced) -> None:
    last = Period.containing(now()).previous()
    shop = imported_shop(traced.client)
    invoice = close(traced.client, shop.account_id, last)
    assert invoice.invoice_id
    (span,) = traced.spans("invoicing.close", attribute("billing.account_id", shop.account_id))
    assert span.attributes["billing.period"] == last.label
    assert span.attributes["billing.invoices_issued"] == 1
    (rpc,) = traced.spans(
        f"{BILLING}/CloseBillingPeriod", attribute("billing.account_id", shop.account_id)
    )
    assert span.parent is not None and span.parent.span_id == rpc.context.span_id
    close(traced.client, shop.account_id, last)  # again: the same invoice, none issued
    again = traced.spans(
        "invoicing.close", attribute("billing.account_id", shop.account_id), count=2
    )
    assert [s.attributes["billing.invoices_issued"] for s in again] == [1, 0]


def test_the_automatic_closer_traces_each_closing_transaction(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with fresh_database(str(tmp_path_factory.mktemp("db"))) as url:
        server = ServerThread(
            settings_for_tests(url, period_close_grace_seconds=0), tracer_provider=provider
        ).start()
        traced = Traced(server, exporter)
        try:
            shop = imported_shop(traced.client, months_back=1)
            last = Period.containing(now()).previous()
            # The closer bills only periods that ended after the account was registered: as if
            # it had been registered last month, so that the scheduler closes that month now.
            with server.db.write() as session:
                account = session.get(Account, shop.account_id)
                assert account is not None
                account.registered_at = last.start
                session.add(account)
            spans = traced.spans(
                "invoicing.close",
                lambda s: (
                    s.attributes["billing.period"] == last.label
                    and s.attributes["billing.invoices_issued"] == 1
                ),
            )
        finally:
            traced.client.close()
            server.stop()
    provider.shutdown()
    (span,) = spans
    assert span.parent is None  # the scheduler's: no call behind it
    assert span.attributes["billing.accounts"] == 1  # the only account of this database
    assert shop.account_id


def test_a_webhook_attempt_is_a_span_whose_traceparent_the_receiver_gets(traced: Traced) -> None:
    receiver = Receiver(plan=[503])
    try:
        account = trial_ended_account(traced.client)
        hook = endpoint(traced.client, account.account_id, receiver.url)
        failed, delivered = receiver.wait_for(2)
        for request in (failed, delivered):
            headers, _ = request
            assert verify(hook.secret, request)["data"]["account_id"] == account.account_id
            version, trace_id, span_id, flags = headers["traceparent"].split("-")
            assert version == "00" and int(flags, 16) & 1  # sampled
            (span,) = traced.spans(
                "webhook.attempt", lambda s, t=trace_id: s.context.trace_id == int(t, 16)
            )
            assert span.context.span_id == int(span_id, 16)
            assert span.kind == SpanKind.CLIENT
            assert span.attributes["webhook.endpoint_id"] == hook.endpoint_id
            assert span.attributes["webhook.event_id"] == headers["webhook-id"]
        statuses = {
            s.attributes["webhook.attempt"]: (
                s.attributes["http.response.status_code"],
                s.status.status_code,
            )
            for s in traced.spans(
                "webhook.attempt", attribute("webhook.endpoint_id", hook.endpoint_id), count=2
            )
        }
        assert statuses == {1: (503, StatusCode.ERROR), 2: (200, StatusCode.UNSET)}
        assert failed[0]["traceparent"] != delivered[0]["traceparent"]  # a trace per attempt
    finally:
        receiver.close()


def test_off_by_default_nothing_is_recorded_and_no_exporter_is_built(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    receiver = Receiver()
    with fresh_database(str(tmp_path_factory.mktemp("db"))) as url:
        server = ServerThread(settings_for_tests(url)).start()
        client = Client(server.target)
        try:
            assert server.server is not None
            assert not server.server.tracing.enabled
            assert server.server.tracing.owned_provider is None
            account = trial_ended_account(client)
            hook = endpoint(client, account.account_id, receiver.url)
            (request,) = receiver.wait_for(1)
            verify(hook.secret, request)
            assert "traceparent" not in request[0]
        finally:
            client.close()
            server.stop()
            receiver.close()
    # In a process of its own, a server started and stopped with the settings' defaults: the
    # SDK (and so any exporter) is never even imported.
    probe = (
        "import asyncio, sys\n"
        "from billing_svc import tracing\n"
        "from billing_svc.app import BillingServer\n"
        "from billing_svc.settings import Settings\n"
        "async def main():\n"
        "    server = BillingServer(Settings(_env_file=None, listen='127.0.0.1:0',\n"
        "                                    database_url=sys.argv[1]))\n"
        "    await server.start()\n"
        "    await server.stop()\n"
        "    assert server.tracing is tracing.OFF\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')"
        " or m.startswith('opentelemetry.exporter')))\n"
    )
    database = tmp_path_factory.mktemp("probe") / "billing.db"
    out = subprocess.run(
        [sys.executable, "-c", probe, f"sqlite:///{database}"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def _export_requests(receiver: Receiver) -> list[trace_service_pb2.ExportTraceServiceRequest]:
    return [
        trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        for _, body in receiver.received()
    ]


@pytest.mark.parametrize("exporter", ["otlp", "console"])
def test_billing_otel_exporter_otlp_posts_spans_to_the_otlp_endpoint(
    tmp_path_factory: pytest.TempPathFactory, exporter: str
) -> None:
    """``billing-svc serve`` with BILLING_OTEL_EXPORTER=otlp sends its spans, as OTLP/HTTP, to
    OTEL_EXPORTER_OTLP_ENDPOINT (a real HTTP collector here) by the time it has stopped; with
    ``console`` it writes them to stderr instead (off, the SDK is not even imported: see
    ``test_off_by_default_nothing_is_recorded_and_no_exporter_is_built``)."""
    rpc_name = f"{BILLING}/CreateAccount"
    collector = Receiver()
    base = collector.url.removesuffix("/hooks")
    with fresh_database(str(tmp_path_factory.mktemp("db"))) as url:
        service = ServiceProcess(
            url, BILLING_OTEL_EXPORTER=exporter, OTEL_EXPORTER_OTLP_ENDPOINT=base
        ).start()
        try:
            client = Client(service.target)
            client.billing.CreateAccount(
                pb.CreateAccountRequest(name="Exported Co", plan_id="startup"),
                metadata=ADMIN + TRACEPARENT,
            )
            client.close()
            assert service.terminate() == 0
            output = service.output()
        finally:
            service.kill()
            collector.close()
    assert (f'"name": "{rpc_name}"' in output) == (exporter == "console"), output[-2000:]
    if exporter != "otlp":
        assert collector.received() == []
        return
    paths = {headers.get("content-type") for headers, _ in collector.received()}
    assert paths == {"application/x-protobuf"}
    spans = [
        (resource.resource, span)
        for request in _export_requests(collector)
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    rpc = [(resource, span) for resource, span in spans if span.name == rpc_name]
    assert len(rpc) == 1
    resource, span = rpc[0]
    assert span.trace_id.hex() == TRACE_ID and span.parent_span_id.hex() == PARENT_ID
    service_name = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service_name == "billing-svc"
