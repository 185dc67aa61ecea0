"""Account-bound tokens (the seed's per-account ``pk_live_`` keys) act on their own account only:
another account_id is PERMISSION_DENIED, another account's resource is NOT_FOUND exactly like a
missing one, another account's usage events are rejected one by one (issue 12, point 10)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import usage_service_pb2 as upb

from billing_svc.api.auth import METHOD_SCOPES
from billing_svc.domain.periods import Period
from billing_svc.services import tokens
from billing_svc.services.context import Caller, RequestContext
from tests.integration.test_usage import Shop, ts
from tests.integration.token_support import (
    PROMISED_SECONDS,
    HeldStream,
    bearer,
    database_token_server,
    refused,
    within,
)
from tests.support import ADMIN, Client, ServerThread

BOUND_SCOPES = ["billing:read", "billing:write", "usage:read", "usage:write"]


@dataclass
class Resources:
    """One account's resources, each by its id."""

    shop: Shop
    invoice_id: str
    endpoint_id: str
    event_id: str


@dataclass
class World:
    server: ServerThread
    client: Client
    mine: Resources
    theirs: Resources
    metadata: list[tuple[str, str]]
    secret: str


def _resources(client: Client) -> Resources:
    last = Period.containing(datetime.now(UTC)).previous()
    shop = Shop(client, plan_id="startup", skip_trial=True, start_time=ts(last.previous().start))
    invoice = client.billing.CloseBillingPeriod(
        pb.CloseBillingPeriodRequest(account_id=shop.account_id, period=last.label), metadata=ADMIN
    ).invoice
    endpoint = client.billing.CreateWebhookEndpoint(
        pb.CreateWebhookEndpointRequest(account_id=shop.account_id, url="http://127.0.0.1:9/hooks"),
        metadata=ADMIN,
    ).endpoint
    client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=shop.account_id, plan_id="business"), metadata=ADMIN
    )
    events = client.billing.ListWebhookEvents(
        pb.ListWebhookEventsRequest(account_id=shop.account_id), metadata=ADMIN
    ).events
    return Resources(shop, invoice.invoice_id, endpoint.endpoint_id, events[0].event_id)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with database_token_server(str(tmp_path_factory.mktemp("bound"))) as server:
        client = Client(server.target)
        mine, theirs = _resources(client), _resources(client)
        operator = RequestContext(Caller("operator", frozenset({"admin"})))
        secret = tokens.create_token(
            server.db,
            operator,
            name="mine-key",
            scopes=BOUND_SCOPES,
            account_id=mine.shop.account_id,
        )
        metadata = bearer(secret)
        within(
            PROMISED_SECONDS,
            lambda: client.billing.GetAccountBilling(
                pb.GetAccountBillingRequest(account_id=mine.shop.account_id), metadata=metadata
            ),
            "the bound token",
        )
        yield World(server, client, mine, theirs, metadata, secret)
        client.close()


def _call(world: World, method: Any, request: Any) -> Any:
    """Call ``method`` (a descriptor) with the bound token, by its full name."""
    full_name = f"/{method.containing_service.full_name}/{method.name}"
    if method.client_streaming:
        stub = world.client.channel.stream_stream(
            full_name,
            request_serializer=type(request).SerializeToString,
            response_deserializer=lambda raw: raw,
        )
        return list(stub(iter([request]), metadata=world.metadata, timeout=10))
    stub = world.client.channel.unary_unary(
        full_name,
        request_serializer=type(request).SerializeToString,
        response_deserializer=lambda raw: raw,
    )
    return stub(request, metadata=world.metadata, timeout=10)


def _methods_naming_an_account() -> list[Any]:
    from as2aas.billing.v1 import billing_service_pb2, usage_service_pb2
    from google.protobuf import message_factory

    found = []
    for module in (billing_service_pb2, usage_service_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if "account_id" in method.input_type.fields_by_name:
                    found.append((method, message_factory.GetMessageClass(method.input_type)))
    return found


def test_the_token_is_a_pk_live_key_and_acts_on_its_own_account(world: World) -> None:
    assert world.secret.startswith("pk_live_")
    mine = world.mine
    billing = world.client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=mine.shop.account_id), metadata=world.metadata
    )
    assert billing.subscription.status
    invoice = world.client.billing.GetInvoice(
        pb.GetInvoiceRequest(invoice_id=mine.invoice_id), metadata=world.metadata
    ).invoice
    assert invoice.invoice_id == mine.invoice_id
    world.client.billing.RotateWebhookSecret(
        pb.RotateWebhookSecretRequest(endpoint_id=mine.endpoint_id), metadata=world.metadata
    )


def test_every_request_naming_another_account_or_none_is_permission_denied(world: World) -> None:
    methods = _methods_naming_an_account()
    assert len(methods) >= 25  # every account RPC of both services
    for method, request_class in methods:
        for account_id, says in (
            (world.theirs.shop.account_id, "cannot act on another"),
            ("", f"set account_id to {world.mine.shop.account_id}"),
        ):
            request = request_class(account_id=account_id)
            error = refused(lambda m=method, r=request: _call(world, m, r))
            name = f"/{method.containing_service.full_name}/{method.name}"
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (name, error.details())
            if METHOD_SCOPES[name] != "admin":  # admin RPCs: refused for the scope first
                assert says in error.details(), (name, error.details())


def test_a_bound_token_cannot_create_accounts(world: World) -> None:
    error = refused(
        lambda: world.client.billing.CreateAccount(
            pb.CreateAccountRequest(name="Sneaky", plan_id="startup"), metadata=world.metadata
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "cannot create accounts" in error.details()


def test_another_accounts_resources_are_not_found_exactly_like_missing_ones(world: World) -> None:
    theirs, billing = world.theirs, world.client.billing

    def calls(invoice_id: str, endpoint_id: str, event_id: str, partner_id: str) -> list:
        return [
            lambda: billing.GetInvoice(
                pb.GetInvoiceRequest(invoice_id=invoice_id), metadata=world.metadata
            ),
            lambda: billing.RecordPaymentResult(
                pb.RecordPaymentResultRequest(invoice_id=invoice_id, succeeded=True),
                metadata=world.metadata,
            ),
            lambda: billing.RotateWebhookSecret(
                pb.RotateWebhookSecretRequest(endpoint_id=endpoint_id), metadata=world.metadata
            ),
            lambda: billing.DeleteWebhookEndpoint(
                pb.DeleteWebhookEndpointRequest(endpoint_id=endpoint_id), metadata=world.metadata
            ),
            lambda: billing.RedeliverWebhookEvent(
                pb.RedeliverWebhookEventRequest(event_id=event_id), metadata=world.metadata
            ),
            lambda: billing.UpdateMasterPartner(
                pb.UpdateMasterPartnerRequest(partner_id=partner_id, name="Renamed"),
                metadata=world.metadata,
            ),
        ]

    real = (theirs.invoice_id, theirs.endpoint_id, theirs.event_id, theirs.shop.partners[0])
    missing = tuple(f"{value[:3]}_00000000000000000000000000" for value in real)
    for foreign, absent in zip(calls(*real), calls(*missing), strict=True):
        seen, unknown = refused(foreign), refused(absent)
        assert seen.code() == unknown.code() == grpc.StatusCode.NOT_FOUND, seen.details()
        shown = seen.details()
        for value, stand_in in zip(real, missing, strict=True):
            shown = shown.replace(value, stand_in)
        assert shown == unknown.details()
    # Nothing was changed, and the platform still sees all of it.
    invoice = billing.GetInvoice(
        pb.GetInvoiceRequest(invoice_id=theirs.invoice_id), metadata=ADMIN
    ).invoice
    assert invoice.status == pb.INVOICE_STATUS_OPEN
    endpoints = billing.ListWebhookEndpoints(
        pb.ListWebhookEndpointsRequest(account_id=theirs.shop.account_id), metadata=ADMIN
    ).endpoints
    assert [e.endpoint_id for e in endpoints] == [theirs.endpoint_id]


def _usage(world: World) -> tuple[list[upb.UsageEvent], str]:
    stamp = datetime.now(UTC)
    tag = f"{stamp.timestamp():.6f}"
    mine, theirs = world.mine.shop, world.theirs.shop
    return [
        mine.message(f"m1-{tag}", at=stamp),
        theirs.message(f"t1-{tag}", at=stamp),
        mine.message(f"m2-{tag}", at=stamp),
    ], tag


def _messages(world: World, shop: Shop) -> int:
    return world.client.usage.GetCurrentUsage(
        upb.GetCurrentUsageRequest(account_id=shop.account_id), metadata=ADMIN
    ).usage_to_date.messages


def _check_ack(ack: Any, world: World) -> None:
    assert (ack.accepted, [r.index for r in ack.rejected]) == (2, [1])
    assert f"bound to account {world.mine.shop.account_id}" in ack.rejected[0].reason


def test_another_accounts_usage_events_are_rejected_one_by_one(world: World) -> None:
    before = _messages(world, world.mine.shop), _messages(world, world.theirs.shop)
    events, _ = _usage(world)
    _check_ack(
        world.client.usage.RecordUsage(
            upb.RecordUsageRequest(batch_id="mixed", events=events), metadata=world.metadata
        ),
        world,
    )
    stream = HeldStream(world.client.usage, world.metadata)
    try:
        events, _ = _usage(world)
        _check_ack(stream.send(upb.StreamUsageRequest(batch_id="mixed", events=events)), world)
        events, _ = _usage(world)  # its own events only: the plain (kernel) way on SQLite
        own = stream.send(upb.StreamUsageRequest(batch_id="own", events=[events[0], events[2]]))
        assert (own.accepted, list(own.rejected)) == (2, [])
    finally:
        stream.close()
    assert (_messages(world, world.mine.shop), _messages(world, world.theirs.shop)) == (
        before[0] + 6,
        before[1],
    )
