"""Plans, accounts, subscriptions, tenants and master partners over real gRPC (spec §1.1-§1.3)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from google.protobuf import timestamp_pb2
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status
from sqlmodel import select

from billing_svc.domain.periods import Period
from billing_svc.services import accounts
from billing_svc.services.context import RequestContext, system_context
from billing_svc.storage import audit
from billing_svc.storage.tables import AuditHead, AuditRecord, OutboxEvent
from tests.support import (
    ADMIN,
    READER,
    WRITER,
    Client,
    ServerThread,
    bad_request_fields,
    create_account,
)


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def outbox(server: ServerThread, account_id: str, event_type: str) -> list[dict]:
    with server.db.read() as session:
        rows = session.exec(
            select(OutboxEvent)
            .where(OutboxEvent.account_id == account_id, OutboxEvent.type == event_type)
            .order_by(OutboxEvent.created_at)
        ).all()
    return [json.loads(row.body) for row in rows]


def audit_actions(server: ServerThread, account_id: str) -> list[tuple[str, str]]:
    with server.db.read() as session:
        rows = session.exec(
            select(AuditRecord)
            .where(AuditRecord.account_id == account_id)
            .order_by(AuditRecord.sequence)
        ).all()
    return [(row.action, row.actor) for row in rows]


def money(m) -> str:
    return f"{m.units}.{m.nanos:09d}".rstrip("0").rstrip(".") if m.nanos else str(m.units)


# --------------------------------------------------------------------------------------------
# Plans


def test_list_plans_has_the_catalog_numbers(client: Client) -> None:
    plans = {
        p.plan_id: p for p in client.billing.ListPlans(pb.ListPlansRequest(), metadata=READER).plans
    }
    assert list(plans) == ["startup", "business", "enterprise", "custom"]
    startup, business, enterprise = plans["startup"], plans["business"], plans["enterprise"]
    assert (
        money(startup.base_fee),
        startup.trial_days,
        startup.included_tenants,
        startup.included_master_partners,
        startup.included_messages,
        startup.included_storage_gb,
    ) == ("99", 14, 3, 10, 5000, "5")
    assert (
        money(startup.tenant_overage),
        money(startup.message_overage),
        money(startup.storage_overage_per_gb),
    ) == ("29", "0.05", "2")
    assert (
        money(business.base_fee),
        business.trial_days,
        business.included_tenants,
        business.included_master_partners,
        business.included_messages,
    ) == ("299", 30, 10, 50, 25000)
    assert (
        money(business.tenant_overage),
        money(business.message_overage),
        money(business.storage_overage_per_gb),
    ) == ("19", "0.03", "1.5")
    assert money(enterprise.base_fee) == "999" and enterprise.trial_days == 60
    assert not enterprise.HasField("included_tenants")  # unlimited
    assert not enterprise.HasField("included_master_partners")
    assert enterprise.included_messages == 100000
    assert money(enterprise.message_overage) == "0.01"
    assert enterprise.base_fee.currency_code == "USD"


# --------------------------------------------------------------------------------------------
# Accounts


def test_create_account_starts_a_trial_with_spec_ids(client: Client, server: ServerThread) -> None:
    before = datetime.now(UTC)
    account = create_account(client, plan_id="business", metadata=WRITER)
    assert account.account_id.startswith("acc_")
    assert account.customer_id.startswith("cus_")
    assert account.subscription.id.startswith("sub_")
    assert account.subscription.status == pb.SUBSCRIPTION_STATUS_TRIALING
    trial_end = account.subscription.trial_ends_at.ToDatetime(tzinfo=UTC)
    created = account.create_time.ToDatetime(tzinfo=UTC)
    assert trial_end - created == timedelta(days=30)
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC)
    assert list(account.usage_threshold_percentages) == [75, 90, 100]
    assert audit_actions(server, account.account_id) == [("account.created", "writer")]


def test_create_account_is_idempotent_by_request_id(client: Client) -> None:
    first = create_account(client, request_id="req-create-1", name="Idem Inc")
    again = create_account(client, request_id="req-create-1", name="Idem Inc")
    assert again.account_id == first.account_id
    other = create_account(client, request_id="req-create-2", name="Idem Inc")
    assert other.account_id != first.account_id
    with pytest.raises(grpc.RpcError) as error:
        create_account(client, request_id="req-create-1", name="Different Inc")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in error.value.details()


def test_concurrent_retries_with_one_request_id_make_one_account(client: Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        ids = set(
            pool.map(lambda _: create_account(client, request_id="req-race").account_id, range(8))
        )
    assert len(ids) == 1


def test_imports_take_start_time_and_skip_trial_but_only_for_admins(client: Client) -> None:
    start = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)
    account = create_account(client, plan_id="enterprise", skip_trial=True, start_time=ts(start))
    assert account.create_time.ToDatetime(tzinfo=UTC) == start
    assert account.subscription.status == pb.SUBSCRIPTION_STATUS_ACTIVE
    assert not account.subscription.HasField("trial_ends_at")
    for fields in ({"skip_trial": True}, {"start_time": ts(start)}):
        with pytest.raises(grpc.RpcError) as error:
            create_account(client, metadata=WRITER, **fields)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "admin" in error.value.details()


def test_get_account_billing_has_every_field_of_the_seed_response(client: Client) -> None:
    account = create_account(client, plan_id="enterprise", skip_trial=True)
    client.billing.SetPaymentMethod(
        pb.SetPaymentMethodRequest(
            account_id=account.account_id,
            payment_method=pb.PaymentMethod(type="card", last4="4242", exp_month=12, exp_year=2035),
        ),
        metadata=WRITER,
    )
    billing = client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=account.account_id), metadata=READER
    )
    assert billing.customer_id == account.customer_id
    sub = billing.subscription
    assert sub.id == account.subscription.id
    assert sub.status == pb.SUBSCRIPTION_STATUS_ACTIVE
    period = Period.containing(datetime.now(UTC))
    assert sub.current_period_start.ToDatetime(tzinfo=UTC) == period.start
    assert sub.current_period_end.ToDatetime(tzinfo=UTC) == period.end
    assert not sub.HasField("trial_ends_at")
    assert sub.cancel_at_period_end is False
    assert billing.billing_plan.name == "Enterprise Plan"
    assert billing.billing_plan.model == "base_plus_usage"
    assert money(billing.billing_plan.base_fee) == "999"
    assert money(billing.billing_plan.message_rate) == "0.01"
    assert (
        billing.payment_method.type,
        billing.payment_method.last4,
        billing.payment_method.exp_month,
        billing.payment_method.exp_year,
    ) == ("card", "4242", 12, 2035)
    assert billing.has_payment_method is True


@pytest.mark.parametrize(
    ("method", "field"),
    [
        (
            pb.PaymentMethod(type="card", last4="4242424242424242", exp_month=1, exp_year=2035),
            "payment_method.last4",
        ),
        (
            pb.PaymentMethod(type="4111 1111 1111 1111", last4="1111", exp_month=1, exp_year=2035),
            "payment_method.type",
        ),
        (
            pb.PaymentMethod(type="card", last4="42a2", exp_month=1, exp_year=2035),
            "payment_method.last4",
        ),
        (
            pb.PaymentMethod(type="card", last4="4242", exp_month=13, exp_year=2035),
            "payment_method.exp_month",
        ),
        (
            pb.PaymentMethod(type="card", last4="4242", exp_month=1, exp_year=2001),
            "payment_method.exp_year",
        ),
    ],
)
def test_set_payment_method_refuses_card_numbers_and_bad_expiry(
    client: Client, method: pb.PaymentMethod, field: str
) -> None:
    account = create_account(client)
    with pytest.raises(grpc.RpcError) as error:
        client.billing.SetPaymentMethod(
            pb.SetPaymentMethodRequest(account_id=account.account_id, payment_method=method),
            metadata=WRITER,
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(error.value) == [field]
    billing = client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=account.account_id), metadata=READER
    )
    assert billing.has_payment_method is False


def test_error_details_are_what_grpc_status_reads(client: Client) -> None:
    """The details trailer is google.rpc.Status as grpc-status makes and reads it: its code and
    message are the call's own (``rpc_status.from_call`` checks both)."""
    with pytest.raises(grpc.RpcError) as error:
        client.billing.CreateAccount(
            pb.CreateAccountRequest(name="", plan_id="startup"), metadata=WRITER
        )
    status = rpc_status.from_call(error.value)
    assert status is not None and status.code == code_pb2.INVALID_ARGUMENT
    assert status.message == error.value.details()
    bad_request = error_details_pb2.BadRequest()
    assert len(status.details) == 1 and status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["name"]


# --------------------------------------------------------------------------------------------
# Tenants and master partners


def test_tenants_and_partners_get_spec_ids_and_are_idempotent(
    client: Client, server: ServerThread
) -> None:
    account = create_account(client)
    tenant = client.billing.CreateTenant(
        pb.CreateTenantRequest(account_id=account.account_id, name="EU", request_id="ten-1"),
        metadata=WRITER,
    ).tenant
    again = client.billing.CreateTenant(
        pb.CreateTenantRequest(account_id=account.account_id, name="EU", request_id="ten-1"),
        metadata=WRITER,
    ).tenant
    assert tenant.tenant_id.startswith("ten_") and again.tenant_id == tenant.tenant_id
    partner = client.billing.CreateMasterPartner(
        pb.CreateMasterPartnerRequest(
            account_id=account.account_id,
            name="Supplier One",
            department="Procurement",
            request_id="prt-1",
        ),
        metadata=WRITER,
    ).master_partner
    assert partner.partner_id.startswith("prt_")
    assert (partner.name, partner.department) == ("Supplier One", "Procurement")
    updated = client.billing.UpdateMasterPartner(
        pb.UpdateMasterPartnerRequest(partner_id=partner.partner_id, department="Sales"),
        metadata=WRITER,
    ).master_partner
    assert (updated.name, updated.department) == ("Supplier One", "Sales")
    assert [a for a, _ in audit_actions(server, account.account_id)] == [
        "account.created",
        "tenant.created",
        "master_partner.created",
        "master_partner.updated",
    ]


def test_master_partner_hard_limit_refuses_and_emits_limit_exceeded_once(
    client: Client, server: ServerThread
) -> None:
    account = create_account(client, plan_id="startup")
    for i in range(10):
        client.billing.CreateMasterPartner(
            pb.CreateMasterPartnerRequest(account_id=account.account_id, name=f"Partner {i}"),
            metadata=WRITER,
        )
    for _ in range(2):
        with pytest.raises(grpc.RpcError) as error:
            client.billing.CreateMasterPartner(
                pb.CreateMasterPartnerRequest(account_id=account.account_id, name="One too many"),
                metadata=WRITER,
            )
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "at most 10 master partners" in error.value.details()
    events = outbox(server, account.account_id, "billing.limit_exceeded")
    assert len(events) == 1
    data = events[0]["data"]
    assert data["limit_type"] == "master_partners" and data["plan_limit"] == 10
    assert data["current_usage"] == 11
    assert data["period"] == Period.containing(datetime.now(UTC)).label
    assert events[0]["type"] == "billing.limit_exceeded"
    # An upgrade lifts the limit.
    client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=account.account_id, plan_id="business"), metadata=WRITER
    )
    client.billing.CreateMasterPartner(
        pb.CreateMasterPartnerRequest(account_id=account.account_id, name="Now allowed"),
        metadata=WRITER,
    )


# --------------------------------------------------------------------------------------------
# Plan changes and cancellation


def test_upgrade_is_immediate_and_downgrade_waits_for_period_end(
    client: Client, server: ServerThread
) -> None:
    account = create_account(client, plan_id="business", skip_trial=True)
    up = client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=account.account_id, plan_id="enterprise"), metadata=WRITER
    )
    assert up.effective_immediately and up.subscription.plan_id == "enterprise"
    down = client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=account.account_id, plan_id="startup"), metadata=WRITER
    )
    assert not down.effective_immediately
    assert down.subscription.plan_id == "enterprise"
    assert down.subscription.pending_plan_id == "startup"
    period_end = Period.containing(datetime.now(UTC)).end
    assert down.subscription.pending_plan_effective_at.ToDatetime(tzinfo=UTC) == period_end
    billing = client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=account.account_id), metadata=READER
    )
    assert billing.subscription.pending_plan_id == "startup"
    assert billing.billing_plan.plan_id == "enterprise"

    # The period ends: the scheduler's job applies the downgrade, once.
    later = RequestContext(
        caller=system_context("test").caller, now=period_end + timedelta(seconds=1)
    )
    assert accounts.apply_period_end_changes(server.db, later) >= 1
    accounts.apply_period_end_changes(server.db, later)
    billing = client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=account.account_id), metadata=READER
    )
    assert billing.billing_plan.plan_id == "startup"
    assert billing.subscription.pending_plan_id == ""
    changes = [
        e["data"]["change"]
        for e in outbox(server, account.account_id, "billing.subscription_updated")
    ]
    assert changes == ["upgraded", "downgrade_scheduled", "downgraded"]


def test_cancel_at_period_end_keeps_the_subscription_until_then(
    client: Client, server: ServerThread
) -> None:
    account = create_account(client, plan_id="startup", skip_trial=True)
    sub = client.billing.CancelSubscription(
        pb.CancelSubscriptionRequest(account_id=account.account_id, at_period_end=True),
        metadata=WRITER,
    ).subscription
    assert sub.cancel_at_period_end and sub.status == pb.SUBSCRIPTION_STATUS_ACTIVE
    period_end = Period.containing(datetime.now(UTC)).end
    later = RequestContext(
        caller=system_context("test").caller, now=period_end + timedelta(seconds=1)
    )
    accounts.apply_period_end_changes(server.db, later)
    billing = client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=account.account_id), metadata=READER
    )
    assert billing.subscription.status == pb.SUBSCRIPTION_STATUS_CANCELED
    assert [
        e["data"]["change"]
        for e in outbox(server, account.account_id, "billing.subscription_updated")
    ] == ["cancel_scheduled", "canceled"]
    with pytest.raises(grpc.RpcError) as error:
        client.billing.ChangePlan(
            pb.ChangePlanRequest(account_id=account.account_id, plan_id="business"), metadata=WRITER
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_immediate_cancellation(client: Client, server: ServerThread) -> None:
    account = create_account(client)
    sub = client.billing.CancelSubscription(
        pb.CancelSubscriptionRequest(account_id=account.account_id), metadata=WRITER
    ).subscription
    assert sub.status == pb.SUBSCRIPTION_STATUS_CANCELED
    assert (
        outbox(server, account.account_id, "billing.subscription_updated")[0]["data"]["status"]
        == "canceled"
    )


# --------------------------------------------------------------------------------------------
# Trials


def _wait_for_status(client: Client, account_id: str, status: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        billing = client.billing.GetAccountBilling(
            pb.GetAccountBillingRequest(account_id=account_id), metadata=READER
        )
        if billing.subscription.status == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"status stayed {billing.subscription.status}, wanted {status}")


def test_trial_ends_on_time_past_due_without_payment_method(
    client: Client, server: ServerThread
) -> None:
    start = datetime.now(UTC) - timedelta(days=14, seconds=1)
    account = create_account(client, plan_id="startup", start_time=ts(start))
    _wait_for_status(client, account.account_id, pb.SUBSCRIPTION_STATUS_PAST_DUE)
    events = outbox(server, account.account_id, "billing.subscription_updated")
    assert [
        (e["data"]["change"], e["data"]["status"], e["data"]["previous_status"]) for e in events
    ] == [("trial_ended", "past_due", "trialing")]
    assert events[0]["timestamp"].startswith(
        (start + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%S")
    )
    assert ("subscription.trial_ended", "system:trials") in audit_actions(
        server, account.account_id
    )
    # A payment method added afterwards starts the subscription.
    sub = client.billing.SetPaymentMethod(
        pb.SetPaymentMethodRequest(
            account_id=account.account_id,
            payment_method=pb.PaymentMethod(type="card", last4="4242", exp_month=12, exp_year=2035),
        ),
        metadata=WRITER,
    ).subscription
    assert sub.status == pb.SUBSCRIPTION_STATUS_ACTIVE
    assert (
        outbox(server, account.account_id, "billing.subscription_updated")[-1]["data"]["change"]
        == "payment_method_added"
    )


def test_trial_ends_active_with_payment_method(client: Client, server: ServerThread) -> None:
    start = datetime.now(UTC) - timedelta(days=14) + timedelta(seconds=2)
    account = create_account(client, plan_id="startup", start_time=ts(start))
    client.billing.SetPaymentMethod(
        pb.SetPaymentMethodRequest(
            account_id=account.account_id,
            payment_method=pb.PaymentMethod(type="card", last4="4242", exp_month=12, exp_year=2035),
        ),
        metadata=WRITER,
    )
    _wait_for_status(client, account.account_id, pb.SUBSCRIPTION_STATUS_ACTIVE)
    events = outbox(server, account.account_id, "billing.subscription_updated")
    assert [(e["data"]["change"], e["data"]["status"]) for e in events] == [
        ("trial_ended", "active")
    ]


# --------------------------------------------------------------------------------------------
# Custom terms


def test_custom_terms_are_admin_only_and_show_as_effective_terms(client: Client) -> None:
    account = create_account(client, plan_id="enterprise", skip_trial=True)
    from as2aas.billing.v1 import common_pb2

    terms = pb.CustomTerms(
        base_fee=common_pb2.Money(currency_code="USD", units=2500),
        included_messages=1_000_000,
        message_overage=common_pb2.Money(currency_code="USD", nanos=7_500_000),
        account_manager="Dana Smith <dana@as2aas.example>",
    )
    request = pb.SetCustomTermsRequest(account_id=account.account_id, terms=terms)
    with pytest.raises(grpc.RpcError) as error:
        client.billing.SetCustomTerms(request, metadata=WRITER)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    plan = client.billing.SetCustomTerms(request, metadata=ADMIN).billing_plan
    assert plan.custom and plan.plan_id == "custom"
    assert money(plan.base_fee) == "2500" and money(plan.message_rate) == "0.0075"
    assert plan.terms.included_messages == 1_000_000
    assert plan.account_manager.startswith("Dana")
    bad = pb.SetCustomTermsRequest(
        account_id=account.account_id,
        terms=pb.CustomTerms(message_overage=common_pb2.Money(currency_code="USD", nanos=1)),
    )
    with pytest.raises(grpc.RpcError) as error:
        client.billing.SetCustomTerms(bad, metadata=ADMIN)
    assert bad_request_fields(error.value) == ["terms.message_overage"]


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"name": "", "plan_id": "startup"}, "name"),
        ({"name": "X", "plan_id": "platinum"}, "plan_id"),
        ({"name": "X", "plan_id": ""}, "plan_id"),
        (
            {"name": "X", "plan_id": "startup", "usage_threshold_percentages": [0]},
            "usage_threshold_percentages",
        ),
        ({"name": "X" * 201, "plan_id": "startup"}, "name"),
    ],
)
def test_bad_input_names_the_field(client: Client, request_fields: dict, field: str) -> None:
    with pytest.raises(grpc.RpcError) as error:
        client.billing.CreateAccount(pb.CreateAccountRequest(**request_fields), metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(error.value) == [field]
    assert field in error.value.details()


def test_unknown_ids_are_not_found(client: Client) -> None:
    calls = [
        lambda: client.billing.GetAccountBilling(
            pb.GetAccountBillingRequest(account_id="acc_nope"), metadata=READER
        ),
        lambda: client.billing.CreateTenant(
            pb.CreateTenantRequest(account_id="acc_nope", name="t"), metadata=WRITER
        ),
        lambda: client.billing.UpdateMasterPartner(
            pb.UpdateMasterPartnerRequest(partner_id="prt_nope", name="x"), metadata=WRITER
        ),
        lambda: client.billing.ChangePlan(
            pb.ChangePlanRequest(account_id="acc_nope", plan_id="business"), metadata=WRITER
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert "does not exist" in error.value.details()


# --------------------------------------------------------------------------------------------
# Audit


def test_every_change_is_audited_in_an_intact_hash_chain(
    client: Client, server: ServerThread
) -> None:
    account = create_account(client, plan_id="startup", skip_trial=True)
    client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=account.account_id, plan_id="business"), metadata=WRITER
    )
    client.billing.SetPaymentMethod(
        pb.SetPaymentMethodRequest(
            account_id=account.account_id,
            request_id="pm-req-1",
            payment_method=pb.PaymentMethod(type="card", last4="1881", exp_month=3, exp_year=2031),
        ),
        metadata=WRITER,
    )
    with server.db.read() as session:
        rows = session.exec(
            select(AuditRecord)
            .where(AuditRecord.account_id == account.account_id)
            .order_by(AuditRecord.sequence)
        ).all()
        assert [r.action for r in rows] == [
            "account.created",
            "subscription.upgraded",
            "payment_method.set",
        ]
        upgraded = rows[1]
        assert json.loads(upgraded.before_json)["plan_id"] == "startup"
        assert json.loads(upgraded.after_json)["plan_id"] == "business"
        assert rows[2].request_id == "pm-req-1" and rows[2].actor == "writer"
        everything = session.exec(select(AuditRecord).order_by(AuditRecord.sequence)).all()
        head = session.get(AuditHead, 1)
        assert audit.verify(everything, head) is None
