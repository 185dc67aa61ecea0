"""What the use cases hand back is a value, not a table row (issue 13 point 1): frozen, detached
from any session, and made once the change it shows is complete. Against a real database, opened
the way the operator commands open it (``app.open_database``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlmodel import SQLModel

from billing_svc.app import open_database
from billing_svc.domain.approvals import ApprovalPolicy
from billing_svc.domain.subscriptions import PaymentMethodInput
from billing_svc.services import (
    accounts,
    approvals,
    audit_trail,
    credits,
    finance,
    test_clocks,
    views,
    webhooks,
)
from billing_svc.services.context import Caller, RequestContext
from billing_svc.services.store import Database
from billing_svc.settings import Settings
from tests.support import fresh_database

ADMIN = RequestContext(Caller("admin", frozenset({"admin"}), token_id="tok_admin"))
APPROVER = RequestContext(
    Caller("approver", frozenset({"billing:approve"}), token_id="tok_approver")
)


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    with fresh_database(str(tmp_path)) as url:
        database = open_database(Settings(_env_file=None, database_url=url))
        yield database
        database.dispose()


def new_account(db: Database, plan_id: str = "startup") -> views.AccountView:
    return accounts.create_account(
        db,
        ADMIN,
        name="Values Inc",
        plan_id=plan_id,
        billing_interval="monthly",
        skip_trial=True,
        start_time=None,
        usage_thresholds=(),
        key=None,
    )


def assert_value(result: object, kind: type) -> None:
    assert type(result) is kind
    assert not isinstance(result, SQLModel)
    field = dataclasses.fields(result)[0].name  # type: ignore[arg-type]  # any dataclass
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(result, field, "changed")


def test_each_use_case_hands_out_a_frozen_view(db: Database) -> None:
    account = new_account(db)
    assert_value(account, views.AccountView)
    assert account.plan_id == "startup" and account.status == "active"
    tenant = accounts.create_tenant(
        db, ADMIN, account_id=account.account_id, name="Tenant A", start_time=None, key=None
    )
    assert_value(tenant, views.TenantView)
    partner = accounts.create_master_partner(
        db,
        ADMIN,
        account_id=account.account_id,
        name="Partner A",
        department="Sales",
        start_time=None,
        key=None,
    )
    assert_value(partner, views.MasterPartnerView)
    assert partner.department == "Sales"
    budget = finance.set_budget(
        db,
        ADMIN,
        account_id=account.account_id,
        name="Monthly",
        limit=Decimal("500.00"),
        thresholds=(50, 100),
    )
    assert_value(budget, views.BudgetView)
    assert budget.limit_amount == Decimal("500.00")
    credit = credits.issue_credit(
        db,
        ADMIN,
        account_id=account.account_id,
        amount=Decimal("25.00"),
        description="Goodwill",
        key=None,
    )
    assert_value(credit, views.CreditView)
    assert credit.remaining == Decimal("25.00")
    endpoint = webhooks.create_endpoint(
        db,
        ADMIN,
        account_id=account.account_id,
        url="http://127.0.0.1:9/hook",
        event_types=[],
        description="",
        allow_private=True,
        key=None,
    )
    assert_value(endpoint, views.WebhookEndpointView)
    clock = test_clocks.create_test_clock(
        db, ADMIN, name="Sandbox", frozen_time=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert_value(clock, views.TestClockView)

    listed, _ = audit_trail.list_audit_events(
        db,
        account_id=account.account_id,
        action="",
        start=None,
        end=None,
        page_size=0,
        page_token="",
    )
    assert listed and all(type(r) is views.AuditEventView for r in listed)
    budgets, _ = finance.list_budgets(db, account.account_id)
    assert [type(b) for b in budgets] == [views.BudgetView]
    endpoints, _ = webhooks.list_endpoints(
        db, account_id=account.account_id, page_size=0, page_token=""
    )
    assert [type(e) for e in endpoints] == [views.WebhookEndpointView]
    billing = accounts.get_account_billing(db, account.account_id)
    assert type(billing.account) is views.AccountView


def test_a_view_shows_the_account_as_it_was_when_it_was_made(db: Database) -> None:
    account = new_account(db)
    later = accounts.set_payment_method(
        db,
        ADMIN,
        account_id=account.account_id,
        method=PaymentMethodInput(
            type="card", last4="4242", exp_month=12, exp_year=datetime.now(UTC).year + 2
        ),
    )
    assert (later.payment_method_type, later.payment_last4) == ("card", "4242")
    assert account.payment_method_type is None  # the first answer is not a live row


def test_a_decision_shows_its_request_decided_and_the_account_changed(db: Database) -> None:
    account = new_account(db)
    approvals.set_policy(
        db, ADMIN, account_id=account.account_id, policy=ApprovalPolicy(upgrades=True)
    )
    held = approvals.change_plan(
        db,
        ADMIN,
        account_id=account.account_id,
        plan_id="business",
        billing_interval=None,
        ttl=timedelta(hours=1),
    )
    assert held.change_request is not None
    assert_value(held.change_request, views.ChangeRequestView)
    assert (held.change_request.status, held.account.plan_id) == ("pending", "startup")

    decision = approvals.decide(
        db,
        APPROVER,
        change_request_id=held.change_request.change_request_id,
        approve=True,
        reason="",
        key=None,
    )
    # Made once the status was written, not when the change was applied.
    assert (decision.change_request.status, decision.change_request.decided_by) == (
        "approved",
        "approver",
    )
    assert decision.account is not None and decision.account.plan_id == "business"
    assert decision.effective_immediately
    requests, _ = approvals.list_change_requests(
        db, account_id=account.account_id, status=None, page_size=0, page_token=""
    )
    assert [(type(r), r.status) for r in requests] == [(views.ChangeRequestView, "approved")]
