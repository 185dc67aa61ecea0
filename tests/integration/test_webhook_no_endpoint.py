"""An event emitted while the account had no endpoint for it was sent nowhere, and
``ListWebhookEvents`` says so (``WEBHOOK_EVENT_STATUS_NO_ENDPOINT``, no attempts) instead of
calling it delivered; redelivering it once an endpoint exists sends it there."""

from __future__ import annotations

import time

from as2aas.billing.v1 import billing_service_pb2 as pb

from tests.integration.test_webhooks import endpoint, trial_ended_account
from tests.support import READER, WRITER, Client, Receiver


def events(client: Client, account_id: str, status: int = 0) -> list[pb.WebhookEvent]:
    return list(
        client.billing.ListWebhookEvents(
            pb.ListWebhookEventsRequest(account_id=account_id, status=status), metadata=READER
        ).events
    )


def wait_for_status(client: Client, account_id: str, status: int) -> pb.WebhookEvent:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = events(client, account_id)
        if found and found[0].status == status:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"events stayed {found}")


def test_an_event_with_no_endpoint_shows_no_endpoint(client: Client) -> None:
    account = trial_ended_account(client)  # billing.subscription_updated, no endpoint yet
    event = wait_for_status(client, account.account_id, pb.WEBHOOK_EVENT_STATUS_NO_ENDPOINT)
    assert event.type == "billing.subscription_updated" and list(event.attempts) == []
    assert [
        e.event_id for e in events(client, account.account_id, pb.WEBHOOK_EVENT_STATUS_NO_ENDPOINT)
    ] == [event.event_id]
    assert events(client, account.account_id, pb.WEBHOOK_EVENT_STATUS_DELIVERED) == []

    receiver = Receiver()
    try:
        # An endpoint created later is not sent the old event on its own...
        hook = endpoint(client, account.account_id, receiver.url, "billing.invoice_generated")
        assert events(client, account.account_id)[0].status == pb.WEBHOOK_EVENT_STATUS_NO_ENDPOINT
        client.billing.DeleteWebhookEndpoint(
            pb.DeleteWebhookEndpointRequest(endpoint_id=hook.endpoint_id), metadata=WRITER
        )
        # ...but a redelivery sends it to the endpoints subscribed now.
        endpoint(client, account.account_id, receiver.url)
        client.billing.RedeliverWebhookEvent(
            pb.RedeliverWebhookEventRequest(event_id=event.event_id), metadata=WRITER
        )
        receiver.wait_for(1)
        delivered = wait_for_status(client, account.account_id, pb.WEBHOOK_EVENT_STATUS_DELIVERED)
        assert [a.status_code for a in delivered.attempts] == [200]
    finally:
        receiver.close()
