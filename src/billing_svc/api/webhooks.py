"""Webhook RPCs of ``BillingService`` (a mixin of ``BillingServicer``)."""

from __future__ import annotations

import grpc
from as2aas.billing.v1 import billing_service_pb2 as pb

from billing_svc.api import convert, validation
from billing_svc.api.common import run
from billing_svc.api.interceptor import current_context
from billing_svc.services import webhooks
from billing_svc.services.store import Database

_EVENT_STATUS = {
    pb.WEBHOOK_EVENT_STATUS_PENDING: "pending",
    pb.WEBHOOK_EVENT_STATUS_DELIVERED: "delivered",
    pb.WEBHOOK_EVENT_STATUS_FAILED: "failed",
    pb.WEBHOOK_EVENT_STATUS_NO_ENDPOINT: "no_endpoint",
}


class WebhookRpcs:
    db: Database
    allow_private_networks: bool

    async def CreateWebhookEndpoint(
        self, request: pb.CreateWebhookEndpointRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateWebhookEndpointResponse:
        ctx = current_context()
        endpoint = await run(
            webhooks.create_endpoint,
            self.db,
            ctx,
            account_id=request.account_id,
            url=request.url,
            event_types=list(request.event_types),
            description=request.description,
            allow_private=self.allow_private_networks,
            key=validation.idempotency_key(
                "BillingService.CreateWebhookEndpoint", request, ctx.caller.name
            ),
        )
        return pb.CreateWebhookEndpointResponse(
            endpoint=convert.endpoint_out(endpoint, with_secret=True)
        )

    async def ListWebhookEndpoints(
        self, request: pb.ListWebhookEndpointsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWebhookEndpointsResponse:
        endpoints, token = await run(
            webhooks.list_endpoints,
            self.db,
            account_id=request.account_id,
            page_size=validation.page_size_in(request.page_size),
            page_token=request.page_token,
        )
        return pb.ListWebhookEndpointsResponse(
            endpoints=[convert.endpoint_out(e, with_secret=False) for e in endpoints],
            next_page_token=token,
        )

    async def DeleteWebhookEndpoint(
        self, request: pb.DeleteWebhookEndpointRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteWebhookEndpointResponse:
        await run(
            webhooks.delete_endpoint, self.db, current_context(), endpoint_id=request.endpoint_id
        )
        return pb.DeleteWebhookEndpointResponse()

    async def RotateWebhookSecret(
        self, request: pb.RotateWebhookSecretRequest, context: grpc.aio.ServicerContext
    ) -> pb.RotateWebhookSecretResponse:
        endpoint = await run(
            webhooks.rotate_secret, self.db, current_context(), endpoint_id=request.endpoint_id
        )
        return pb.RotateWebhookSecretResponse(
            endpoint=convert.endpoint_out(endpoint, with_secret=True)
        )

    async def ListWebhookEvents(
        self, request: pb.ListWebhookEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWebhookEventsResponse:
        events, token = await run(
            webhooks.list_events,
            self.db,
            account_id=request.account_id,
            event_type=request.event_type,
            status=_EVENT_STATUS.get(request.status),
            page_size=validation.page_size_in(request.page_size),
            page_token=request.page_token,
        )
        return pb.ListWebhookEventsResponse(
            events=[convert.event_log_out(e) for e in events], next_page_token=token
        )

    async def RedeliverWebhookEvent(
        self, request: pb.RedeliverWebhookEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.RedeliverWebhookEventResponse:
        event = await run(
            webhooks.redeliver,
            self.db,
            current_context(),
            event_id=request.event_id,
            endpoint_id=request.endpoint_id,
        )
        return pb.RedeliverWebhookEventResponse(event=convert.event_log_out(event))
