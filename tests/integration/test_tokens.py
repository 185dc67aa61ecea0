"""Database tokens over their whole life: created while serving, listed, used, expired, revoked
(and their streams closed), made again under an old name; every change audited (issue 12)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import usage_service_pb2 as upb
from sqlmodel import select

from billing_svc.domain.errors import AlreadyExists, InvalidArgument, NotFound
from billing_svc.domain.tokens import hash_token
from billing_svc.services import tokens
from billing_svc.services.context import Caller, RequestContext
from billing_svc.storage.tables import ApiToken, AuditRecord
from tests.integration.test_usage import Shop
from tests.integration.token_support import (
    PROMISED_SECONDS,
    bearer,
    cli,
    database_token_server,
    open_stream,
    refused,
    within,
)
from tests.support import Client, ServerThread, tokens_json


def operator() -> RequestContext:
    return RequestContext(Caller("operator", frozenset({"admin"})))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with database_token_server(str(tmp_path_factory.mktemp("tokens"))) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    c = Client(server.target)
    yield c
    c.close()


def _url(server: ServerThread) -> str:
    return server.settings.database_url


def _plans(client: Client, secret: str) -> pb.ListPlansResponse:
    return client.billing.ListPlans(pb.ListPlansRequest(), metadata=bearer(secret))


def test_a_token_created_by_the_cli_works_on_the_running_server_within_seconds(
    server: ServerThread, client: Client
) -> None:
    made = cli(_url(server), "create-token", "late-reader", "--scope", "billing:read")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("bsk_")
    response, _ = within(PROMISED_SECONDS, lambda: _plans(client, secret), "the new token")
    assert response.plans


def test_tokens_list_shows_what_each_token_is_but_never_its_secret(
    server: ServerThread, client: Client
) -> None:
    shop = Shop(client)
    bound = cli(
        _url(server),
        "create-token",
        "shop-key",
        "--scope",
        "billing:read",
        "--account",
        shop.account_id,
        "--expires-in",
        "90d",
    )
    assert bound.returncode == 0, bound.stderr
    secret = bound.stdout.strip()
    assert secret.startswith("pk_live_")
    within(
        PROMISED_SECONDS,
        lambda: client.billing.GetAccountBilling(
            pb.GetAccountBillingRequest(account_id=shop.account_id), metadata=bearer(secret)
        ),
        "the bound token",
    )

    within(PROMISED_SECONDS, lambda: _last_used(server, "shop-key"), "the use recorded")
    result = cli(_url(server), "tokens", "list")
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout and hash_token(secret) not in result.stdout
    header, *lines = result.stdout.splitlines()
    rows = {
        row["name"]: row
        for row in (dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines)
    }
    row = rows["shop-key"]
    assert (row["scopes"], row["account"], row["status"]) == (
        "billing:read",
        shop.account_id,
        "active",
    )
    assert row["last_used"] != "-"
    assert (rows["reader"]["account"], rows["reader"]["expires"]) == ("-", "-")
    created, expires = row["created"], row["expires"]
    lifetime = datetime.fromisoformat(expires) - datetime.fromisoformat(created)
    assert timedelta(days=90) - timedelta(seconds=2) <= lifetime <= timedelta(days=90)


def _last_used(server: ServerThread, name: str) -> datetime:
    with server.db.read() as session:
        found = session.exec(select(ApiToken.last_used_at).where(ApiToken.name == name)).one()
    assert found is not None
    return found


def test_last_use_is_written_at_most_once_a_minute(server: ServerThread, client: Client) -> None:
    secret = tokens.create_token(server.db, operator(), name="chatty", scopes=["billing:read"])
    within(PROMISED_SECONDS, lambda: _plans(client, secret), "the new token")

    first, _ = within(PROMISED_SECONDS, lambda: _last_used(server, "chatty"), "the first use")
    for _ in range(30):  # three seconds of calls: still the first minute
        _plans(client, secret)
        time.sleep(0.1)
    assert _last_used(server, "chatty") == first


def test_an_expired_token_is_refused_saying_so_and_its_stream_closed(
    server: ServerThread, client: Client
) -> None:
    shop = Shop(client)
    secret = tokens.create_token(
        server.db, operator(), name="brief", scopes=["usage:write"], expires_in=timedelta(seconds=3)
    )
    stream, _ = within(
        PROMISED_SECONDS, lambda: open_stream(client, secret, shop), "the new token's stream"
    )
    try:
        error = stream.wait_end(timeout=3 + PROMISED_SECONDS)
        assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "expired" in error.details()
    finally:
        stream.close()
    late = refused(lambda: _plans(client, secret))
    assert late.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired at" in late.details()


def test_a_revoked_token_is_refused_and_its_open_streams_are_closed(
    server: ServerThread, client: Client
) -> None:
    shop = Shop(client)
    secret = tokens.create_token(server.db, operator(), name="leaky", scopes=["usage:write"])
    idle, _ = within(PROMISED_SECONDS, lambda: open_stream(client, secret, shop), "stream")
    busy = open_stream(client, secret, shop)
    try:
        revoked = cli(_url(server), "tokens", "revoke", "leaky")
        assert revoked.returncode == 0, revoked.stderr
        assert "revoked leaky" in revoked.stdout
        # One stream waits for its next batch, the other keeps sending: both are closed.
        deadline = time.monotonic() + PROMISED_SECONDS
        sent = 0
        while not busy.ended.is_set() and time.monotonic() < deadline:
            busy.send_later(
                upb.StreamUsageRequest(
                    batch_id=f"b{sent}", events=[shop.message(f"busy-{sent}-{time.monotonic_ns()}")]
                )
            )
            sent += 1
            time.sleep(0.05)
        for stream in (idle, busy):
            error = stream.wait_end(timeout=max(deadline - time.monotonic(), 0.1))
            assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "revoked" in error.details()
    finally:
        idle.close()
        busy.close()
    refusal = refused(
        lambda: shop.client.usage.RecordUsage(
            upb.RecordUsageRequest(batch_id="after", events=[shop.message("after-revoke")]),
            metadata=bearer(secret),
        )
    )
    assert refusal.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in refusal.details()
    again = cli(_url(server), "tokens", "revoke", "leaky")
    assert again.returncode == 0  # revoking twice changes nothing
    missing = cli(_url(server), "tokens", "revoke", "never-made")
    assert missing.returncode == 1 and "no token is named 'never-made'" in missing.stderr


def test_a_token_made_again_under_an_old_name_is_another_caller(
    server: ServerThread, client: Client
) -> None:
    first = tokens.create_token(server.db, operator(), name="rotated", scopes=["billing:write"])
    request = pb.CreateAccountRequest(name="Rotated Inc", plan_id="startup", request_id="same")
    made, _ = within(
        PROMISED_SECONDS,
        lambda: client.billing.CreateAccount(request, metadata=bearer(first)),
        "the first token",
    )
    with pytest.raises(AlreadyExists):
        tokens.create_token(server.db, operator(), name="rotated", scopes=["billing:write"])
    tokens.revoke_token(server.db, operator(), "rotated")
    second = tokens.create_token(server.db, operator(), name="rotated", scopes=["billing:write"])
    again, _ = within(
        PROMISED_SECONDS,
        lambda: client.billing.CreateAccount(request, metadata=bearer(second)),
        "the second token",
    )
    # Same name, same request_id: a new request of a new caller, not the old one's result.
    assert again.account.account_id != made.account.account_id
    old = refused(lambda: _plans(client, first))
    assert old.code() == grpc.StatusCode.UNAUTHENTICATED


def test_every_token_change_is_audited_without_its_secret(server: ServerThread) -> None:
    made = cli(_url(server), "create-token", "audited", "--scope", "usage:read")
    assert made.returncode == 0, made.stderr
    assert cli(_url(server), "tokens", "revoke", "audited").returncode == 0
    with server.db.read() as session:
        records = session.exec(
            select(AuditRecord)
            .where(
                AuditRecord.action.in_(  # type: ignore[attr-defined]
                    (tokens.CREATED, tokens.REVOKED)
                )
            )
            .order_by(AuditRecord.sequence)
        ).all()
        row = session.exec(select(ApiToken).where(ApiToken.name == "audited")).one()
    mine = [r for r in records if json.loads(r.after_json)["name"] == "audited"]
    assert [r.action for r in mine] == [tokens.CREATED, tokens.REVOKED]
    assert all(r.actor.startswith("cli:") for r in mine)
    created = json.loads(mine[0].after_json)
    assert created["token_id"] == row.token_id and created["scopes"] == ["usage:read"]
    for record in mine:
        assert made.stdout.strip() not in record.after_json + record.before_json
        assert row.token_sha256 not in record.after_json + record.before_json
    assert json.loads(mine[1].after_json)["revoked_at"] is not None
    verified = cli(_url(server), "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout


def test_create_token_refuses_what_it_cannot_grant(server: ServerThread, client: Client) -> None:
    shop = Shop(client)
    # The CLI's two kinds of refusal: bad usage (2), and a request the database refuses (1).
    for args, code, message in [
        (("bound-admin", "--scope", "admin", "--account", shop.account_id), 2, "admin"),
        (("ghost", "--scope", "billing:read", "--expires-in", "soon"), 2, "not a duration"),
        (("admin", "--scope", "billing:read"), 1, "revoke it first"),
    ]:
        result = cli(_url(server), "create-token", *args)
        assert (result.returncode, result.stdout) == (code, ""), (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    for fields, error, message in [
        ({"scopes": ["billing:read"], "account_id": "acc_nope"}, NotFound, "does not exist"),
        (
            {"scopes": ["billing:read"], "expires_in": timedelta(days=4000)},
            InvalidArgument,
            "3650 days",
        ),
        ({"scopes": ["billing:read"], "expires_in": timedelta(0)}, InvalidArgument, "expires_in"),
        ({"scopes": []}, InvalidArgument, "at least one scope"),
        ({"scopes": ["billing:write", "root"]}, InvalidArgument, "unknown scopes"),
        ({"scopes": ["admin"], "account_id": shop.account_id}, InvalidArgument, "admin"),
    ]:
        with pytest.raises(error, match=message):
            tokens.create_token(server.db, operator(), name="refused", **fields)
    with pytest.raises(InvalidArgument, match="letters"):
        tokens.create_token(server.db, operator(), name="bad name", scopes=["billing:read"])
    with pytest.raises(NotFound):
        tokens.revoke_token(server.db, operator(), "refused")


def test_token_commands_refuse_when_the_tokens_are_configured(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/configured.db"
    for command in (
        ["create-token", "x", "--scope", "billing:read"],
        ["tokens", "list"],
        ["tokens", "revoke", "admin"],
    ):
        result = cli(url, *command, BILLING_AUTH_TOKENS=tokens_json())
        assert result.returncode == 2 and result.stdout == ""
        assert "BILLING_AUTH_TOKENS is set" in result.stderr
        assert "whole set of tokens" in result.stderr
