"""The change-request TTL setting is bounded (red-team of issue 15, point 1): at its longest a
held change is still made and listed; past it (or infinite) the server refuses to start with
the setting's name, instead of failing every held change or its own start with a traceback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb

from billing_svc.domain.approvals import MAX_TTL_HOURS
from billing_svc.settings import Settings
from tests.integration.test_approvals import (
    REQUESTER,
    account_with_policy,
    callers_json,
    upgrade_request,
)
from tests.support import Client, ServerThread, fresh_database, settings_for_tests


@pytest.mark.parametrize("hours", ["inf", str(MAX_TTL_HOURS * 1.01), "7e7"])
def test_a_ttl_past_ten_years_is_refused_naming_the_setting(hours: str) -> None:
    with pytest.raises(ValueError, match="change_request_ttl_hours"):
        Settings(_env_file=None, change_request_ttl_hours=hours)  # type: ignore[call-arg]


def test_at_the_longest_ttl_a_held_change_is_made_and_listed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(
            settings_for_tests(
                url, auth_tokens=callers_json(), change_request_ttl_hours=MAX_TTL_HOURS
            )
        ).start()
        client = Client(server.target)
        try:
            account_id = account_with_policy(client, upgrades=True)
            held = upgrade_request(client, account_id)
            expires = held.expires_at.ToDatetime(tzinfo=UTC)
            assert expires - datetime.now(UTC) > timedelta(hours=MAX_TTL_HOURS - 1)
            listed = client.billing.ListChangeRequests(
                pb.ListChangeRequestsRequest(account_id=account_id), metadata=REQUESTER
            ).change_requests
            assert [c.change_request_id for c in listed] == [held.change_request_id]
        finally:
            client.close()
            server.stop()
