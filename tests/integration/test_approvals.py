"""Issue 15, point 1 — the seed's "Implement approval workflows for plan changes": a per-account
policy holds upgrades, downgrades, cancellations and custom terms as change requests that someone
other than the requester approves or rejects, exactly once, on one server or two."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2

from billing_svc.domain.periods import Period
from billing_svc.services import accounts, tokens
from billing_svc.services.context import Caller, RequestContext, system_context
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade
from tests.integration.token_support import (
    PROMISED_SECONDS,
    bearer,
    database_token_server,
    within,
)
from tests.support import (
    TOKENS,
    Client,
    ServerThread,
    ServiceProcess,
    bad_request_fields,
    create_account,
    fresh_database,
    on_postgres,
    settings_for_tests,
)

CALLERS: dict[str, tuple[str, list[str]]] = {
    **TOKENS,
    "requester": ("tok-requester", ["billing:write", "billing:read"]),
    # May both ask for changes and decide them: never its own.
    "approver": ("tok-approver", ["billing:write", "billing:read", "billing:approve"]),
    "approver-2": ("tok-approver-2", ["billing:read", "billing:approve"]),
}


def as_(caller: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {CALLERS[caller][0]}")]


ADMIN, REQUESTER, APPROVER, APPROVER_2 = (
    as_(c) for c in ("admin", "requester", "approver", "approver-2")
)


def callers_json() -> str:
    return json.dumps(
        [
            {"name": name, "token": token, "scopes": scopes}
            for name, (token, scopes) in CALLERS.items()
        ]
    )


@pytest.fixture(scope="module")
def approvals_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with fresh_database(str(tmp_path_factory.mktemp("approvals"))) as url:
        running = ServerThread(settings_for_tests(url, auth_tokens=callers_json())).start()
        yield running
        running.stop()


@pytest.fixture
def client(approvals_server: ServerThread) -> Iterator[Client]:
    c = Client(approvals_server.target)
    yield c
    c.close()


def usd(units: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="USD", units=units)


def account_with_policy(client: Client, plan_id: str = "startup", **policy: Any) -> str:
    account = create_account(client, plan_id=plan_id, skip_trial=True)
    client.billing.SetApprovalPolicy(
        pb.SetApprovalPolicyRequest(
            account_id=account.account_id, policy=pb.ApprovalPolicy(**policy)
        ),
        metadata=ADMIN,
    )
    return account.account_id


def events(client: Client, account_id: str, event_type: str) -> list[dict[str, Any]]:
    page = client.billing.ListWebhookEvents(
        pb.ListWebhookEventsRequest(account_id=account_id, event_type=event_type, page_size=500),
        metadata=ADMIN,
    )
    return [json.loads(e.payload_json)["data"] for e in page.events]


def changes(client: Client, account_id: str, change: str) -> list[dict[str, Any]]:
    return [
        e
        for e in events(client, account_id, "billing.subscription_updated")
        if e["change"] == change
    ]


def plan_of(client: Client, account_id: str) -> pb.Subscription:
    return client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=account_id), metadata=ADMIN
    ).subscription


def audit_actions(client: Client, account_id: str) -> list[str]:
    page = client.billing.ListAuditEvents(
        pb.ListAuditEventsRequest(account_id=account_id, page_size=1000), metadata=ADMIN
    )
    return [e.action for e in page.audit_events]


def refused(call: Any, request: Any, metadata: list[tuple[str, str]]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=metadata)
    return caught.value


def upgrade_request(
    client: Client,
    account_id: str,
    plan_id: str = "business",
    metadata: list[tuple[str, str]] = REQUESTER,
) -> pb.ChangeRequest:
    response = client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=account_id, plan_id=plan_id), metadata=metadata
    )
    assert response.HasField("change_request")
    return response.change_request


def approve(
    client: Client,
    change_request_id: str,
    metadata: list[tuple[str, str]] = APPROVER,
    **fields: Any,
) -> pb.ApproveChangeRequestResponse:
    return client.billing.ApproveChangeRequest(
        pb.ApproveChangeRequestRequest(change_request_id=change_request_id, **fields),
        metadata=metadata,
    )


# ---------------------------------------------------------------------------------------------
# Held, approved, rejected


def test_implement_approval_workflows_for_plan_changes_a_policy_holds_an_upgrade(
    client: Client,
) -> None:
    account_id = account_with_policy(client, upgrades=True)
    before = datetime.now(UTC)
    response = client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=account_id, plan_id="business"), metadata=REQUESTER
    )

    held = response.change_request
    assert held.change_request_id.startswith("chg_")
    assert held.status == pb.CHANGE_REQUEST_STATUS_PENDING
    assert held.kind == pb.CHANGE_REQUEST_KIND_UPGRADE
    assert held.requested_by == "requester" and held.plan_id == "business"
    expires = held.expires_at.ToDatetime(tzinfo=UTC)
    assert timedelta(hours=167.9) < expires - before < timedelta(hours=168.1)
    assert not response.effective_immediately
    assert response.subscription.plan_id == "startup"
    assert plan_of(client, account_id).plan_id == "startup"
    assert changes(client, account_id, "upgraded") == []
    (requested,) = events(client, account_id, "billing.approval_requested")
    assert requested == {
        "account_id": account_id,
        "change_request_id": held.change_request_id,
        "kind": "upgrade",
        "requested_by": "requester",
        "summary": "upgrade from startup (monthly) to business (monthly)",
        "expires_at": requested["expires_at"],
    }
    assert datetime.fromisoformat(requested["expires_at"]) == expires.replace(
        microsecond=(expires.microsecond // 1000) * 1000
    )
    assert audit_actions(client, account_id)[-2:] == [
        "approval_policy.set",
        "change_request.created",
    ]


def test_implement_approval_workflows_for_plan_changes_approval_applies_the_upgrade(
    client: Client,
) -> None:
    account_id = account_with_policy(client, upgrades=True)
    held = upgrade_request(client, account_id)

    approved = approve(client, held.change_request_id)

    assert approved.change_request.status == pb.CHANGE_REQUEST_STATUS_APPROVED
    assert approved.change_request.decided_by == "approver"
    assert approved.change_request.HasField("decided_at")
    assert approved.effective_immediately
    assert approved.subscription.plan_id == "business"
    assert plan_of(client, account_id).plan_id == "business"
    (upgraded,) = changes(client, account_id, "upgraded")
    assert upgraded["previous_plan_id"] == "startup" and upgraded["plan_id"] == "business"
    (decided,) = events(client, account_id, "billing.approval_decided")
    assert decided == {
        "account_id": account_id,
        "change_request_id": held.change_request_id,
        "decision": "approved",
        "decided_by": "approver",
        "reason": None,
    }
    assert audit_actions(client, account_id)[-2:] == [
        "subscription.upgraded",
        "change_request.approved",
    ]
    # The same approver again: the request as it is, nothing more happens.
    again = approve(client, held.change_request_id)
    assert again.change_request == approved.change_request
    assert len(events(client, account_id, "billing.approval_decided")) == 1
    assert len(changes(client, account_id, "upgraded")) == 1
    # Anyone else now: already decided.
    late = refused(
        client.billing.ApproveChangeRequest,
        pb.ApproveChangeRequestRequest(change_request_id=held.change_request_id),
        ADMIN,
    )
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already approved by 'approver'" in late.details()


def test_implement_approval_workflows_for_plan_changes_the_requester_cannot_approve_its_own(
    client: Client,
) -> None:
    account_id = account_with_policy(client, upgrades=True, cancellations=True)
    own = upgrade_request(client, account_id, metadata=APPROVER)
    error = refused(
        client.billing.ApproveChangeRequest,
        pb.ApproveChangeRequestRequest(change_request_id=own.change_request_id),
        APPROVER,
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'approver'" in error.details() and "someone else" in error.details()
    error = refused(
        client.billing.RejectChangeRequest,
        pb.RejectChangeRequestRequest(
            change_request_id=own.change_request_id, reason="changed my mind"
        ),
        APPROVER,
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    # admin implies billing:approve, but not over its own request.
    by_admin = client.billing.CancelSubscription(
        pb.CancelSubscriptionRequest(account_id=account_id), metadata=ADMIN
    ).change_request
    assert by_admin.kind == pb.CHANGE_REQUEST_KIND_CANCELLATION
    error = refused(
        client.billing.ApproveChangeRequest,
        pb.ApproveChangeRequestRequest(change_request_id=by_admin.change_request_id),
        ADMIN,
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    # Without billing:approve at all.
    error = refused(
        client.billing.ApproveChangeRequest,
        pb.ApproveChangeRequestRequest(change_request_id=own.change_request_id),
        REQUESTER,
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "billing:approve" in error.details()
    assert plan_of(client, account_id).plan_id == "startup"
    assert plan_of(client, account_id).status == pb.SUBSCRIPTION_STATUS_ACTIVE
    assert events(client, account_id, "billing.approval_decided") == []
    # Someone else may.
    assert approve(client, own.change_request_id, APPROVER_2).subscription.plan_id == "business"
    assert (
        approve(client, by_admin.change_request_id).subscription.status
        == pb.SUBSCRIPTION_STATUS_CANCELED
    )


def test_implement_approval_workflows_for_plan_changes_rejection_with_a_reason(
    client: Client,
) -> None:
    account_id = account_with_policy(client, upgrades=True)
    held = upgrade_request(client, account_id)
    missing = refused(
        client.billing.RejectChangeRequest,
        pb.RejectChangeRequestRequest(change_request_id=held.change_request_id, reason="  "),
        APPROVER,
    )
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(missing) == ["reason"]

    rejected = client.billing.RejectChangeRequest(
        pb.RejectChangeRequestRequest(
            change_request_id=held.change_request_id, reason="No budget for Business this year"
        ),
        metadata=APPROVER_2,
    ).change_request

    assert rejected.status == pb.CHANGE_REQUEST_STATUS_REJECTED
    assert rejected.reason == "No budget for Business this year"
    assert rejected.decided_by == "approver-2"
    assert plan_of(client, account_id).plan_id == "startup"
    assert changes(client, account_id, "upgraded") == []
    (decided,) = events(client, account_id, "billing.approval_decided")
    assert decided == {
        "account_id": account_id,
        "change_request_id": held.change_request_id,
        "decision": "rejected",
        "decided_by": "approver-2",
        "reason": "No budget for Business this year",
    }
    assert audit_actions(client, account_id)[-1] == "change_request.rejected"
    error = refused(
        client.billing.ApproveChangeRequest,
        pb.ApproveChangeRequestRequest(change_request_id=held.change_request_id),
        APPROVER,
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already rejected by 'approver-2'" in error.details()


def test_implement_approval_workflows_for_plan_changes_an_approved_downgrade_waits_for_the_period_end(  # noqa: E501
    client: Client, approvals_server: ServerThread
) -> None:
    account_id = account_with_policy(client, plan_id="business", downgrades=True)
    held = upgrade_request(client, account_id, plan_id="startup")
    assert held.kind == pb.CHANGE_REQUEST_KIND_DOWNGRADE
    assert plan_of(client, account_id).pending_plan_id == ""

    approved = approve(client, held.change_request_id)

    assert not approved.effective_immediately
    assert approved.subscription.plan_id == "business"
    assert approved.subscription.pending_plan_id == "startup"
    period_end = Period.containing(datetime.now(UTC)).end
    assert approved.subscription.pending_plan_effective_at.ToDatetime(tzinfo=UTC) == period_end
    (scheduled,) = changes(client, account_id, "downgrade_scheduled")
    assert scheduled["pending_plan_id"] == "startup"
    # At the period's end the scheduler's job makes it, as for any downgrade.
    accounts.apply_period_end_changes(
        approvals_server.db,
        RequestContext(
            caller=system_context("period_end_changes").caller,
            now=period_end + timedelta(seconds=1),
        ),
    )
    assert plan_of(client, account_id).plan_id == "startup"
    assert len(changes(client, account_id, "downgraded")) == 1


def test_implement_approval_workflows_for_plan_changes_approval_applies_as_of_its_moment(
    client: Client,
) -> None:
    account_id = account_with_policy(client, upgrades=True, cancellations=True)
    upgrade = upgrade_request(client, account_id)
    later = client.billing.CancelSubscription(
        pb.CancelSubscriptionRequest(account_id=account_id, at_period_end=True), metadata=REQUESTER
    ).change_request
    assert later.at_period_end and later.summary == "cancellation at the end of the period"
    scheduled = approve(client, later.change_request_id)
    assert not scheduled.effective_immediately
    assert scheduled.subscription.cancel_at_period_end
    assert scheduled.subscription.status == pb.SUBSCRIPTION_STATUS_ACTIVE
    assert len(changes(client, account_id, "cancel_scheduled")) == 1
    # Canceled now, past the policy (an admin's change with the policy cleared): the upgrade
    # can no longer be made, and its request stays pending for a rejection.
    client.billing.SetApprovalPolicy(
        pb.SetApprovalPolicyRequest(account_id=account_id, policy=pb.ApprovalPolicy()),
        metadata=ADMIN,
    )
    client.billing.CancelSubscription(
        pb.CancelSubscriptionRequest(account_id=account_id), metadata=REQUESTER
    )
    error = refused(
        client.billing.ApproveChangeRequest,
        pb.ApproveChangeRequestRequest(change_request_id=upgrade.change_request_id),
        APPROVER,
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cannot be applied now" in error.details() and "canceled" in error.details()
    (still,) = client.billing.ListChangeRequests(
        pb.ListChangeRequestsRequest(
            account_id=account_id, status=pb.CHANGE_REQUEST_STATUS_PENDING
        ),
        metadata=ADMIN,
    ).change_requests
    assert still.change_request_id == upgrade.change_request_id
    client.billing.RejectChangeRequest(
        pb.RejectChangeRequestRequest(
            change_request_id=upgrade.change_request_id, reason="account closed"
        ),
        metadata=APPROVER,
    )
    assert sorted(
        e["decision"] for e in events(client, account_id, "billing.approval_decided")
    ) == ["approved", "rejected"]


def test_implement_approval_workflows_for_plan_changes_custom_terms_over_a_base_fee(
    client: Client,
) -> None:
    account_id = account_with_policy(client, plan_id="enterprise", base_fee_above=usd(1000))
    # Within the amount: through at once.
    direct = client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=account_id, plan_id="business"), metadata=REQUESTER
    )
    assert not direct.HasField("change_request") and direct.subscription.pending_plan_id
    terms = pb.CustomTerms(base_fee=usd(1500), included_messages=500_000)
    held = client.billing.SetCustomTerms(
        pb.SetCustomTermsRequest(account_id=account_id, terms=terms), metadata=ADMIN
    )
    assert held.change_request.kind == pb.CHANGE_REQUEST_KIND_CUSTOM_TERMS
    assert held.change_request.custom_terms.base_fee.units == 1500
    assert held.billing_plan.base_fee.units == 999  # still Enterprise
    assert plan_of(client, account_id).plan_id == "enterprise"

    approved = approve(client, held.change_request.change_request_id)

    assert approved.subscription.plan_id == "custom"
    billing = client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=account_id), metadata=ADMIN
    )
    assert billing.billing_plan.base_fee.units == 1500
    assert len(changes(client, account_id, "custom_terms")) == 1


def test_implement_approval_workflows_for_plan_changes_retries_make_one_request_and_one_decision(
    client: Client,
) -> None:
    account_id = account_with_policy(client, upgrades=True)
    first = upgrade_request(client, account_id)
    # A retry without request_id: the same pending request.
    assert upgrade_request(client, account_id).change_request_id == first.change_request_id
    keyed = [
        client.billing.ChangePlan(
            pb.ChangePlanRequest(account_id=account_id, plan_id="enterprise", request_id="cp-1"),
            metadata=REQUESTER,
        ).change_request
        for _ in range(2)
    ]
    assert keyed[0] == keyed[1] and keyed[0].change_request_id != first.change_request_id
    assert len(events(client, account_id, "billing.approval_requested")) == 2

    decided = [approve(client, keyed[0].change_request_id, request_id="ap-1") for _ in range(2)]
    assert decided[0] == decided[1]
    assert decided[0].subscription.plan_id == "enterprise"
    reused = refused(
        client.billing.ApproveChangeRequest,
        pb.ApproveChangeRequestRequest(
            change_request_id=first.change_request_id, request_id="ap-1"
        ),
        APPROVER,
    )
    assert reused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(reused) == ["request_id"]
    assert len(events(client, account_id, "billing.approval_decided")) == 1
    assert len(changes(client, account_id, "upgraded")) == 1


# ---------------------------------------------------------------------------------------------
# Expiry


def test_implement_approval_workflows_for_plan_changes_requests_expire(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        # Two seconds to decide; the scheduler does not run on its own (checked on decide).
        idle = ServerThread(
            settings_for_tests(
                url,
                auth_tokens=callers_json(),
                change_request_ttl_hours=2 / 3600,
                scheduler_interval_seconds=3600,
            )
        ).start()
        try:
            client = Client(idle.target)
            account_id = account_with_policy(client, upgrades=True)
            held = upgrade_request(client, account_id)
            time.sleep(2.2)
            error = refused(
                client.billing.ApproveChangeRequest,
                pb.ApproveChangeRequestRequest(change_request_id=held.change_request_id),
                APPROVER,
            )
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "expired" in error.details()
            (listed,) = client.billing.ListChangeRequests(
                pb.ListChangeRequestsRequest(account_id=account_id), metadata=APPROVER
            ).change_requests
            assert listed.status == pb.CHANGE_REQUEST_STATUS_EXPIRED
            assert listed.decided_at == listed.expires_at
            (decided,) = events(client, account_id, "billing.approval_decided")
            assert decided["decision"] == "expired" and decided["decided_by"] == "system"
            assert decided["reason"] == "no decision within 0.000555556 hours"
            assert plan_of(client, account_id).plan_id == "startup"
            client.close()
        finally:
            idle.stop()
        # The scheduler's job, on a server that runs it every 0.2 s.
        busy = ServerThread(
            settings_for_tests(url, auth_tokens=callers_json(), change_request_ttl_hours=1 / 3600)
        ).start()
        try:
            client = Client(busy.target)
            account_id = account_with_policy(client, upgrades=True)
            held = upgrade_request(client, account_id)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                status = (
                    client.billing.ListChangeRequests(
                        pb.ListChangeRequestsRequest(account_id=account_id), metadata=APPROVER
                    )
                    .change_requests[0]
                    .status
                )
                if status == pb.CHANGE_REQUEST_STATUS_EXPIRED:
                    break
                time.sleep(0.1)
            assert status == pb.CHANGE_REQUEST_STATUS_EXPIRED
            (decided,) = events(client, account_id, "billing.approval_decided")
            assert decided == {
                "account_id": account_id,
                "change_request_id": held.change_request_id,
                "decision": "expired",
                "decided_by": "system:change_request_expiry",
                "reason": "no decision within 0.000277778 hours",
            }
            assert "change_request.expired" in audit_actions(client, account_id)
            client.close()
        finally:
            busy.stop()


# ---------------------------------------------------------------------------------------------
# Concurrency: one decision, one change, one event


def _race(
    targets: list[str], change_request_id: str, rounds: int = 4
) -> tuple[list[pb.ChangeRequest], list[grpc.RpcError]]:
    """Approvals by `approver` and rejections by `approver-2`, all at once, over ``targets``."""
    start = threading.Barrier(rounds * 2)
    answers: list[pb.ChangeRequest] = []
    errors: list[grpc.RpcError] = []
    lock = threading.Lock()

    def decide(index: int) -> None:
        client = Client(targets[index % len(targets)])
        try:
            start.wait(10)
            if index % 2:
                answer = client.billing.RejectChangeRequest(
                    pb.RejectChangeRequestRequest(change_request_id=change_request_id, reason="no"),
                    metadata=APPROVER_2,
                ).change_request
            else:
                answer = approve(client, change_request_id).change_request
            with lock:
                answers.append(answer)
        except grpc.RpcError as exc:
            with lock:
                errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(rounds * 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers, errors


def _exactly_one_decision(
    client: Client, account_id: str, answers: list[pb.ChangeRequest], errors: list[grpc.RpcError]
) -> None:
    assert answers, errors
    assert {a.status for a in answers} in (
        {pb.CHANGE_REQUEST_STATUS_APPROVED},
        {pb.CHANGE_REQUEST_STATUS_REJECTED},
    )
    assert {e.code() for e in errors} <= {grpc.StatusCode.FAILED_PRECONDITION}, errors
    assert len(answers) + len(errors) == 8
    (decided,) = events(client, account_id, "billing.approval_decided")
    approved = answers[0].status == pb.CHANGE_REQUEST_STATUS_APPROVED
    assert decided["decision"] == ("approved" if approved else "rejected")
    assert len(changes(client, account_id, "upgraded")) == (1 if approved else 0)
    assert plan_of(client, account_id).plan_id == ("business" if approved else "startup")


def test_implement_approval_workflows_for_plan_changes_concurrent_approve_and_reject(
    client: Client, approvals_server: ServerThread
) -> None:
    for _ in range(3):
        account_id = account_with_policy(client, upgrades=True)
        held = upgrade_request(client, account_id)
        answers, errors = _race([approvals_server.target], held.change_request_id)
        _exactly_one_decision(client, account_id, answers, errors)


@pytest.mark.skipif(not on_postgres(), reason="replicas share a PostgreSQL database")
def test_implement_approval_workflows_for_plan_changes_two_replicas_decide_once(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        db = Database(url)
        try:
            upgrade(db)
        finally:
            db.dispose()
        replicas = [
            ServiceProcess(url, BILLING_AUTH_TOKENS=callers_json()).start() for _ in range(2)
        ]
        client = Client(replicas[0].target)
        try:
            for _ in range(4):
                account_id = account_with_policy(client, upgrades=True)
                held = upgrade_request(client, account_id)
                answers, errors = _race([r.target for r in replicas], held.change_request_id)
                _exactly_one_decision(client, account_id, answers, errors)
        finally:
            client.close()
            for replica in replicas:
                replica.kill()


# ---------------------------------------------------------------------------------------------
# Listing and hostile input


def test_implement_approval_workflows_for_plan_changes_list_pages_and_filters_by_status(
    client: Client,
) -> None:
    account_id = account_with_policy(client, upgrades=True, cancellations=True)
    made = [
        upgrade_request(client, account_id, "business"),
        upgrade_request(client, account_id, "enterprise"),
        client.billing.CancelSubscription(
            pb.CancelSubscriptionRequest(account_id=account_id, at_period_end=True),
            metadata=REQUESTER,
        ).change_request,
    ]
    client.billing.RejectChangeRequest(
        pb.RejectChangeRequestRequest(
            change_request_id=made[1].change_request_id, reason="too much"
        ),
        metadata=APPROVER,
    )

    def listed(status: int = pb.CHANGE_REQUEST_STATUS_UNSPECIFIED) -> list[str]:
        ids: list[str] = []
        token = ""
        while True:
            page = client.billing.ListChangeRequests(
                pb.ListChangeRequestsRequest(
                    account_id=account_id, status=status, page_size=2, page_token=token
                ),
                metadata=as_("reader"),
            )
            assert len(page.change_requests) <= 2
            ids += [r.change_request_id for r in page.change_requests]
            token = page.next_page_token
            if not token:
                return ids

    assert listed() == [r.change_request_id for r in made]
    assert listed(pb.CHANGE_REQUEST_STATUS_PENDING) == [
        made[0].change_request_id,
        made[2].change_request_id,
    ]
    assert listed(pb.CHANGE_REQUEST_STATUS_REJECTED) == [made[1].change_request_id]
    assert listed(pb.CHANGE_REQUEST_STATUS_EXPIRED) == []
    everyone = client.billing.ListChangeRequests(
        pb.ListChangeRequestsRequest(page_size=500), metadata=ADMIN
    ).change_requests
    assert {r.change_request_id for r in made} <= {r.change_request_id for r in everyone}
    bad = refused(
        client.billing.ListChangeRequests,
        pb.ListChangeRequestsRequest(account_id=account_id, status=99),
        ADMIN,
    )
    assert bad_request_fields(bad) == ["status"]
    unknown = refused(
        client.billing.ListChangeRequests,
        pb.ListChangeRequestsRequest(account_id="acc_nope"),
        ADMIN,
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("change_request_id", "code", "field"),
    [
        ("", grpc.StatusCode.INVALID_ARGUMENT, "change_request_id"),
        ("chg_01jzzzzzzzzzzzzzzzzzzzzzzz", grpc.StatusCode.NOT_FOUND, None),
        ("acc_01jzzzzzzzzzzzzzzzzzzzzzzz", grpc.StatusCode.NOT_FOUND, None),
        ("chg_" + "x" * 200, grpc.StatusCode.INVALID_ARGUMENT, "change_request_id"),
        ("chg_\x00", grpc.StatusCode.INVALID_ARGUMENT, "change_request_id"),
        ("' OR 1=1 --", grpc.StatusCode.NOT_FOUND, None),
    ],
)
def test_implement_approval_workflows_for_plan_changes_bad_ids(
    client: Client, change_request_id: str, code: grpc.StatusCode, field: str | None
) -> None:
    for call, request in [
        (
            client.billing.ApproveChangeRequest,
            pb.ApproveChangeRequestRequest(change_request_id=change_request_id),
        ),
        (
            client.billing.RejectChangeRequest,
            pb.RejectChangeRequestRequest(change_request_id=change_request_id, reason="x"),
        ),
    ]:
        error = refused(call, request, APPROVER)
        assert error.code() == code, error
        if field:
            assert bad_request_fields(error) == [field]


def test_implement_approval_workflows_for_plan_changes_hostile_reasons_and_policies(
    client: Client,
) -> None:
    account_id = account_with_policy(client, upgrades=True)
    held = upgrade_request(client, account_id)
    for reason in ("x" * 100_000, "x" * 501, "bad\x00reason"):
        error = refused(
            client.billing.RejectChangeRequest,
            pb.RejectChangeRequestRequest(change_request_id=held.change_request_id, reason=reason),
            APPROVER,
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(error) == ["reason"]
    for policy, field in [
        (None, "policy"),
        (pb.ApprovalPolicy(base_fee_above=usd(-1)), "policy.base_fee_above"),
        (
            pb.ApprovalPolicy(base_fee_above=common_pb2.Money(currency_code="EUR", units=5)),
            "policy.base_fee_above.currency_code",
        ),
    ]:
        error = refused(
            client.billing.SetApprovalPolicy,
            pb.SetApprovalPolicyRequest(account_id=account_id, policy=policy),
            ADMIN,
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(error) == [field]
    unknown = refused(
        client.billing.SetApprovalPolicy,
        pb.SetApprovalPolicyRequest(account_id="acc_nope", policy=pb.ApprovalPolicy(upgrades=True)),
        ADMIN,
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    not_admin = refused(
        client.billing.SetApprovalPolicy,
        pb.SetApprovalPolicyRequest(account_id=account_id, policy=pb.ApprovalPolicy()),
        APPROVER,
    )
    assert not_admin.code() == grpc.StatusCode.PERMISSION_DENIED
    # Nothing held any more: the change goes through, the pending request stays.
    cleared = client.billing.SetApprovalPolicy(
        pb.SetApprovalPolicyRequest(account_id=account_id, policy=pb.ApprovalPolicy()),
        metadata=ADMIN,
    ).policy
    assert cleared == pb.ApprovalPolicy()
    direct = client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=account_id, plan_id="enterprise"), metadata=REQUESTER
    )
    assert not direct.HasField("change_request") and direct.subscription.plan_id == "enterprise"
    pending = client.billing.ListChangeRequests(
        pb.ListChangeRequestsRequest(
            account_id=account_id, status=pb.CHANGE_REQUEST_STATUS_PENDING
        ),
        metadata=ADMIN,
    )
    assert [r.change_request_id for r in pending.change_requests] == [held.change_request_id]


def test_implement_approval_workflows_for_plan_changes_endpoints_may_subscribe_to_the_new_types(
    client: Client,
) -> None:
    account = create_account(client, skip_trial=True)
    endpoint = client.billing.CreateWebhookEndpoint(
        pb.CreateWebhookEndpointRequest(
            account_id=account.account_id,
            url="http://127.0.0.1:9/hooks",
            event_types=["billing.approval_requested", "billing.approval_decided"],
        ),
        metadata=ADMIN,
    ).endpoint
    assert sorted(endpoint.event_types) == [
        "billing.approval_decided",
        "billing.approval_requested",
    ]


def test_implement_approval_workflows_for_plan_changes_an_account_bound_approver_stays_in_its_account(  # noqa: E501
    tmp_path,
) -> None:
    with database_token_server(str(tmp_path)) as server:
        client = Client(server.target)
        try:
            held = {}
            for name in ("mine", "theirs"):
                account = create_account(client, skip_trial=True, metadata=ADMIN)
                client.billing.SetApprovalPolicy(
                    pb.SetApprovalPolicyRequest(
                        account_id=account.account_id, policy=pb.ApprovalPolicy(upgrades=True)
                    ),
                    metadata=ADMIN,
                )
                held[name] = upgrade_request(client, account.account_id, metadata=ADMIN)
            operator = RequestContext(Caller("operator", frozenset({"admin"})))
            secret = tokens.create_token(
                server.db,
                operator,
                name="mine-approver",
                scopes=["billing:read", "billing:approve"],
                account_id=held["mine"].account_id,
            )
            bound = bearer(secret)
            within(
                PROMISED_SECONDS,
                lambda: client.billing.ListChangeRequests(
                    pb.ListChangeRequestsRequest(account_id=held["mine"].account_id), metadata=bound
                ),
                "the bound token",
            )
            foreign = refused(
                client.billing.ApproveChangeRequest,
                pb.ApproveChangeRequestRequest(change_request_id=held["theirs"].change_request_id),
                bound,
            )
            missing = refused(
                client.billing.ApproveChangeRequest,
                pb.ApproveChangeRequestRequest(change_request_id="chg_00000000000000000000000000"),
                bound,
            )
            assert foreign.code() == missing.code() == grpc.StatusCode.NOT_FOUND
            assert (
                foreign.details().replace(
                    held["theirs"].change_request_id, "chg_00000000000000000000000000"
                )
                == missing.details()
            )
            listing = refused(
                client.billing.ListChangeRequests,
                pb.ListChangeRequestsRequest(account_id=held["theirs"].account_id),
                bound,
            )
            assert listing.code() == grpc.StatusCode.PERMISSION_DENIED
            assert (
                approve(client, held["mine"].change_request_id, bound).change_request.status
                == pb.CHANGE_REQUEST_STATUS_APPROVED
            )
            assert plan_of(client, held["theirs"].account_id).plan_id == "startup"
        finally:
            client.close()
