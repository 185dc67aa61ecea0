"""The seed's REST surface (issue 17, point 6): its two calls over a real HTTP port, the seed's
exact JSON, bearer tokens and scopes as on gRPC, account-bound tokens, JSON errors, TLS."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import grpc
import httpx
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import billing_service_pb2_grpc as billing_grpc

from billing_svc.api.rest_json import dumps
from billing_svc.domain.periods import Period
from billing_svc.services import tokens
from billing_svc.services.context import Caller, RequestContext
from tests.integration import test_tls
from tests.integration.test_usage import Shop, ts
from tests.integration.token_support import seed_database_tokens
from tests.support import (
    ADMIN,
    TOKENS,
    Client,
    ServerThread,
    ServiceProcess,
    free_port,
    fresh_database,
    settings_for_tests,
)

pki = test_tls.pki  # the TLS tests' certificates: a CA, a server and a client certificate


@dataclass
class Rest:
    server: ServerThread
    client: Client
    base: str
    mine: Shop
    theirs: Shop
    bound_secret: str


def http_server(url: str, **overrides: str) -> ServerThread:
    return ServerThread(settings_for_tests(url, http_listen="127.0.0.1:0", **overrides)).start()


@pytest.fixture(scope="module")
def rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rest]:
    # Database tokens: the only kind that can be bound to an account.
    with fresh_database(str(tmp_path_factory.mktemp("rest"))) as url:
        seed_database_tokens(url)
        server = http_server(url, auth_tokens="")
        client = Client(server.target)
        try:
            start = ts(Period.containing(datetime.now(UTC)).start)
            mine = Shop(client, plan_id="business", skip_trial=True, start_time=start)
            theirs = Shop(client, plan_id="startup", skip_trial=True, start_time=start)
            operator = RequestContext(Caller("operator", frozenset({"admin"})))
            secret = tokens.create_token(
                server.db,
                operator,
                name="pk_live_mine",
                scopes=["billing:read", "usage:read"],
                account_id=mine.account_id,
            )
            # The server reloads database tokens every second: wait until the new one is in.
            base = f"http://127.0.0.1:{server.server.http_port}"
            for _ in range(100):
                if _get(base, f"/v1/accounts/{mine.account_id}/billing", secret).status_code == 200:
                    break
                time.sleep(0.1)
            yield Rest(server, client, base, mine, theirs, secret)
        finally:
            client.close()
            server.stop()


def _get(
    base: str, path: str, token: str | None, *, headers: dict[str, str] | None = None, **kwargs
) -> httpx.Response:
    sent = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(base + path, headers={**sent, **(headers or {})}, timeout=10, **kwargs)


def token(name: str) -> str:
    return TOKENS[name][0]


def error_of(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return response.status_code, body["error"]["code"]


def test_account_billing_is_the_seeds_response_to_the_digit(rest: Rest) -> None:
    account = rest.mine.account
    rest.client.billing.SetPaymentMethod(
        pb.SetPaymentMethodRequest(
            account_id=account.account_id,
            payment_method=pb.PaymentMethod(type="card", last4="4242", exp_month=12, exp_year=2035),
        ),
        metadata=ADMIN,
    )
    period = Period.containing(datetime.now(UTC))
    response = _get(rest.base, f"/v1/accounts/{account.account_id}/billing", token("reader"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.text == (
        f'{{"customer_id": "{account.customer_id}", '
        f'"subscription": {{"id": "{account.subscription.id}", "status": "active", '
        f'"current_period_start": "{period.start:%Y-%m-%dT%H:%M:%SZ}", '
        f'"current_period_end": "{period.end:%Y-%m-%dT%H:%M:%SZ}", '
        '"trial_ends_at": null, "cancel_at_period_end": false}, '
        '"billing_plan": {"name": "Business Plan", "model": "base_plus_usage", '
        '"base_fee": 299.00, "message_rate": 0.03}, '
        '"payment_method": {"type": "card", "last4": "4242", "exp_month": 12, '
        '"exp_year": 2035}, '
        '"has_payment_method": true}'
    )
    assert response.headers["x-request-id"].startswith("req_")


def test_account_billing_of_a_trial_without_a_payment_method(rest: Rest) -> None:
    shop = Shop(rest.client, plan_id="startup")
    body = _get(rest.base, f"/v1/accounts/{shop.account_id}/billing", token("admin")).json(
        parse_float=Decimal
    )
    assert body["subscription"]["status"] == "trialing"
    expected_end = shop.account.subscription.trial_ends_at.ToJsonString()
    assert body["subscription"]["trial_ends_at"] == expected_end
    assert body["payment_method"] is None and body["has_payment_method"] is False
    assert body["billing_plan"]["base_fee"] == Decimal("99.00")
    assert body["billing_plan"]["message_rate"] == Decimal("0.05")


def test_current_usage_mirrors_get_current_usage(rest: Rest) -> None:
    shop = Shop(
        rest.client,
        plan_id="business",
        skip_trial=True,
        start_time=ts(Period.containing(datetime.now(UTC)).start),
    )
    shop.record([shop.message("m1", quantity=25_100)])
    response = _get(
        rest.base, f"/v1/billing/usage/current?account_id={shop.account_id}", token("usage-reader")
    )
    assert response.status_code == 200
    assert '"estimated_charges": 302.00' in response.text  # 299 + 100 messages at $0.03
    body = response.json(parse_float=Decimal)
    grpc_view = shop.current()
    period = grpc_view.period
    assert body["period"] == {
        "label": period.label,
        "start": period.start.ToJsonString(),
        "end": period.end.ToJsonString(),
    }
    assert body["usage_to_date"] == {
        "messages": 25_100,
        "active_tenants": 2,
        "storage_gb_months": Decimal(grpc_view.usage_to_date.storage_gb_months),
        "estimated_charges": Decimal("302.00"),
        "storage_bytes": 0,
        "estimated_lines": [
            {"type": "base_fee", "amount": Decimal("299.00")},
            {"type": "message_overage", "amount": Decimal("3.00")},
        ],
        "included_messages": 25_000,
    }
    # The run-rate projection moves with the clock: its shape, and no less than so far.
    assert set(body["projection"]) == {"messages", "charges"}
    assert body["projection"]["messages"] >= 25_100
    assert body["projection"]["charges"] >= Decimal("302.00")
    assert len(str(body["projection"]["charges"]).split(".")[1]) == 2


def test_an_account_bound_token_reads_its_own_account_only(rest: Rest) -> None:
    secret, mine, theirs = rest.bound_secret, rest.mine.account_id, rest.theirs.account_id
    own = _get(rest.base, "/v1/billing/usage/current", secret)
    assert own.status_code == 200
    assert own.json()["usage_to_date"]["included_messages"] == 25_000  # business: mine
    assert (
        _get(rest.base, f"/v1/billing/usage/current?account_id={mine}", secret).status_code == 200
    )
    assert error_of(_get(rest.base, f"/v1/billing/usage/current?account_id={theirs}", secret)) == (
        403,
        "PERMISSION_DENIED",
    )
    assert _get(rest.base, f"/v1/accounts/{mine}/billing", secret).status_code == 200
    assert error_of(_get(rest.base, f"/v1/accounts/{theirs}/billing", secret)) == (
        403,
        "PERMISSION_DENIED",
    )


@pytest.mark.parametrize(
    ("path", "caller", "expected"),
    [
        ("/v1/accounts/{mine}/billing", None, (401, "UNAUTHENTICATED")),
        ("/v1/accounts/{mine}/billing", "not-a-token", (401, "UNAUTHENTICATED")),
        ("/v1/billing/usage/current?account_id={mine}", None, (401, "UNAUTHENTICATED")),
        ("/v1/accounts/{mine}/billing", "usage-reader", (403, "PERMISSION_DENIED")),
        ("/v1/billing/usage/current?account_id={mine}", "reader", (403, "PERMISSION_DENIED")),
        ("/v1/billing/usage/current?account_id={mine}", "producer", (403, "PERMISSION_DENIED")),
        ("/v1/accounts/acc_nope/billing", "reader", (404, "NOT_FOUND")),
        ("/v1/billing/usage/current?account_id=acc_nope", "usage-reader", (404, "NOT_FOUND")),
        ("/v1/billing/usage/current", "usage-reader", (400, "INVALID_ARGUMENT")),
        ("/v1/billing/usage/current?account_id=", "usage-reader", (400, "INVALID_ARGUMENT")),
        ("/v1/accounts/" + "a" * 129 + "/billing", "reader", (400, "INVALID_ARGUMENT")),
        ("/v1/accounts/acc%00x/billing", "reader", (400, "INVALID_ARGUMENT")),
        (
            "/v1/billing/usage/current?account_id=" + "a" * 2000,
            "usage-reader",
            (400, "INVALID_ARGUMENT"),
        ),
        (
            "/v1/billing/usage/current?account_id={mine}&account_id={mine}",
            "usage-reader",
            (400, "INVALID_ARGUMENT"),
        ),
        (
            "/v1/billing/usage/current?account_id={mine}&period=2024-01",
            "usage-reader",
            (400, "INVALID_ARGUMENT"),
        ),
        ("/v1/accounts/{mine}/billing?expand=all", "reader", (400, "INVALID_ARGUMENT")),
        ("/v1/accounts/{mine}", "reader", (404, "NOT_FOUND")),
        ("/v1/accounts//billing", "reader", (404, "NOT_FOUND")),
        ("/", None, (404, "NOT_FOUND")),
    ],
)
def test_errors_are_json_with_the_grpc_status(
    rest: Rest, path: str, caller: str | None, expected: tuple[int, str]
) -> None:
    secret = None if caller is None else TOKENS[caller][0] if caller in TOKENS else caller
    response = _get(rest.base, path.format(mine=rest.mine.account_id), secret)
    assert error_of(response) == expected
    if expected[0] == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_other_methods_and_bad_request_ids_are_refused(rest: Rest) -> None:
    path = f"{rest.base}/v1/accounts/{rest.mine.account_id}/billing"
    headers = {"Authorization": f"Bearer {token('reader')}"}
    posted = httpx.post(path, headers=headers, content=b"{}", timeout=10)
    assert error_of(posted) == (405, "UNIMPLEMENTED")
    assert posted.headers["allow"] == "GET, HEAD"
    long_id = httpx.get(path, headers={**headers, "X-Request-Id": "r" * 101}, timeout=10)
    assert error_of(long_id) == (400, "INVALID_ARGUMENT")
    echoed = httpx.get(path, headers={**headers, "X-Request-Id": "req-42"}, timeout=10)
    assert echoed.status_code == 200 and echoed.headers["x-request-id"] == "req-42"


def test_a_revoked_token_is_refused_like_on_grpc(rest: Rest) -> None:
    operator = RequestContext(Caller("operator", frozenset({"admin"})))
    secret = tokens.create_token(
        rest.server.db, operator, name="short-lived", scopes=["billing:read"]
    )
    path = f"/v1/accounts/{rest.mine.account_id}/billing"
    for _ in range(100):  # in force within a second or so
        if _get(rest.base, path, secret).status_code == 200:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the new token was never accepted")
    tokens.revoke_token(rest.server.db, operator, name="short-lived")
    for _ in range(100):
        response = _get(rest.base, path, secret)
        if response.status_code == 401:
            assert "revoked" in response.json()["error"]["message"]
            return
        time.sleep(0.1)
    pytest.fail("the revoked token was still accepted")


def test_serve_answers_on_billing_http_listen_and_logs_each_call(tmp_path: Path) -> None:
    with fresh_database(str(tmp_path)) as url:
        port = free_port()
        process = ServiceProcess(url, BILLING_HTTP_LISTEN=f"127.0.0.1:{port}").start()
        try:
            response = _get(
                f"http://127.0.0.1:{port}",
                "/v1/accounts/acc_nope/billing",
                token("reader"),
                headers={"X-Request-Id": "req-log-1"},
            )
            assert error_of(response) == (404, "NOT_FOUND")
        finally:
            assert process.terminate() == 0
        lines = [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]
        (logged,) = [line for line in lines if line.get("event") == "http"]
        assert logged | {"timestamp": None, "duration_ms": None} == {
            "event": "http",
            "level": "info",
            "timestamp": None,
            "duration_ms": None,
            "route": "GET /v1/accounts/{account}/billing",
            "rpc": "/as2aas.billing.v1.BillingService/GetAccountBilling",
            "account_id": "acc_nope",
            "caller": "reader",
            "request_id": "req-log-1",
            "status": 404,
            "code": "NOT_FOUND",
            "error": "account 'acc_nope' does not exist",
        }
        assert any(line.get("event") == "http_listening" and line["port"] == port for line in lines)


def test_no_http_port_unless_configured(server: ServerThread) -> None:
    assert server.server is not None and server.server.http_port == 0


def test_http_listen_must_be_host_and_port(tmp_path: Path) -> None:
    with fresh_database(str(tmp_path)) as url:
        thread = ServerThread(settings_for_tests(url, http_listen="8080"))
        with pytest.raises(ValueError, match="BILLING_HTTP_LISTEN"):
            thread.start()
        thread.loop.call_soon_threadsafe(thread.loop.stop)


def test_a_port_in_use_refuses_to_start(rest: Rest, tmp_path: Path) -> None:
    with fresh_database(str(tmp_path)) as url:
        taken = f"127.0.0.1:{rest.server.server.http_port}"
        thread = ServerThread(settings_for_tests(url, http_listen=taken))
        with pytest.raises(OSError, match=r"BILLING_HTTP_LISTEN=.*cannot listen"):
            thread.start()
        thread.loop.call_soon_threadsafe(thread.loop.stop)
    # The first server still answers every call itself.
    assert (
        _get(rest.base, f"/v1/accounts/{rest.mine.account_id}/billing", token("reader")).status_code
        == 200
    )


def test_a_body_is_never_read_before_the_answer(rest: Rest) -> None:
    # Headers announce 50 MB and send 10 bytes of them: the answer comes without the rest.
    with socket.create_connection(("127.0.0.1", rest.server.server.http_port), timeout=10) as sock:
        sock.sendall(
            f"GET /v1/accounts/{rest.mine.account_id}/billing HTTP/1.1\r\n"
            "Host: billing\r\nContent-Length: 50000000\r\n\r\n0123456789".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401")
    assert json.loads(body)["error"]["code"] == "UNAUTHENTICATED"


def test_head_answers_the_status_without_a_body(rest: Rest) -> None:
    response = httpx.head(
        f"{rest.base}/v1/accounts/{rest.mine.account_id}/billing",
        headers={"Authorization": f"Bearer {token('reader')}"},
        timeout=10,
    )
    assert response.status_code == 200 and response.content == b""
    assert response.headers["server"] == "billing-svc"


def test_tls_by_the_grpc_settings(tmp_path: Path, pki: dict[str, Path]) -> None:
    with fresh_database(str(tmp_path)) as url:
        server = http_server(
            url, tls_cert_file=str(pki["server_cert"]), tls_key_file=str(pki["server_key"])
        )
        try:
            port = server.server.http_port
            shop_id = _account_over_tls(server, pki)
            response = _get(
                f"https://127.0.0.1:{port}",
                f"/v1/accounts/{shop_id}/billing",
                token("reader"),
                verify=trusting(pki),
            )
            assert response.status_code == 200
            assert response.json()["subscription"]["status"] == "trialing"
            with pytest.raises(httpx.HTTPError):
                _get(f"http://127.0.0.1:{port}", f"/v1/accounts/{shop_id}/billing", token("reader"))
            with pytest.raises(httpx.ConnectError):  # a CA it was not signed by
                _get(
                    f"https://127.0.0.1:{port}", f"/v1/accounts/{shop_id}/billing", token("reader")
                )
        finally:
            server.stop()


def test_mutual_tls_wants_a_client_certificate(tmp_path: Path, pki: dict[str, Path]) -> None:
    with fresh_database(str(tmp_path)) as url:
        server = http_server(
            url,
            tls_cert_file=str(pki["server_cert"]),
            tls_key_file=str(pki["server_key"]),
            tls_client_ca_file=str(pki["ca"]),
        )
        try:
            base = f"https://127.0.0.1:{server.server.http_port}"
            with_cert = ssl.create_default_context(cafile=str(pki["ca"]))
            with_cert.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))
            response = _get(
                base, "/v1/accounts/acc_nope/billing", token("reader"), verify=with_cert
            )
            assert error_of(response) == (404, "NOT_FOUND")  # through TLS to the service
            with pytest.raises(httpx.HTTPError):
                _get(base, "/v1/accounts/acc_nope/billing", token("reader"), verify=trusting(pki))
        finally:
            server.stop()


def trusting(pki: dict[str, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki["ca"]))


def _account_over_tls(server: ServerThread, pki: dict[str, Path]) -> str:
    credentials = grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes())
    with grpc.secure_channel(server.target, credentials) as channel:
        stub = billing_grpc.BillingServiceStub(channel)
        return stub.CreateAccount(
            pb.CreateAccountRequest(name="TLS Corp", plan_id="startup"), metadata=ADMIN, timeout=10
        ).account.account_id


def test_the_json_writer_keeps_every_digit() -> None:
    assert (
        dumps({"a": Decimal("299.00"), "b": [Decimal("0.0125"), None, True, 3, 'x"y']})
        == '{"a": 299.00, "b": [0.0125, null, true, 3, "x\\"y"]}'
    )
    assert json.loads(dumps({"n": Decimal("12345678901234567890.01")}), parse_float=Decimal) == {
        "n": Decimal("12345678901234567890.01")
    }


def test_current_usage_of_a_clock_account_is_on_the_clock(rest: Rest) -> None:
    from as2aas.billing.v1 import billing_service_pb2 as bpb

    clock = rest.client.billing.CreateTestClock(
        bpb.CreateTestClockRequest(name="rest", frozen_time=ts(datetime(2026, 1, 10, tzinfo=UTC))),
        metadata=ADMIN,
    ).test_clock
    account_id = rest.client.billing.CreateAccount(
        bpb.CreateAccountRequest(
            name="Clock Co", plan_id="startup", test_clock_id=clock.test_clock_id
        ),
        metadata=ADMIN,
    ).account.account_id
    response = _get(
        rest.base, f"/v1/billing/usage/current?account_id={account_id}", token("usage-reader")
    )
    assert response.status_code == 200, response.text
    assert response.json()["period"]["label"] == "2026-01"  # not the wall's month
    billing = _get(rest.base, f"/v1/accounts/{account_id}/billing", token("reader"))
    assert billing.status_code == 200, billing.text
    assert "2026-01-01T00:00:00Z" in billing.text  # its current period starts on the clock
