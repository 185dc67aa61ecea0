"""Budgets, cost allocation, journal entries, audit trail, reconciliation, plan comparison
(spec §1.7-§1.8; issue 6)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from sqlalchemy import text
from sqlmodel import select

from billing_svc.domain.periods import Period
from billing_svc.services.audit_trail import verify_audit_chain
from billing_svc.storage.tables import OutboxEvent
from tests.integration.test_invoicing import amount, close, imported_shop
from tests.integration.test_usage import Shop
from tests.support import (
    ADMIN,
    READER,
    WRITER,
    Client,
    ServerThread,
    auth,
    fresh_database,
    settings_for_tests,
)


def now() -> datetime:
    return datetime.now(UTC)


def usd(units: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="USD", units=units)


def alerts(server: ServerThread, account_id: str) -> list[dict]:
    with server.db.read() as session:
        rows = session.exec(
            select(OutboxEvent)
            .where(OutboxEvent.account_id == account_id, OutboxEvent.type == "billing.budget_alert")
            .order_by(OutboxEvent.created_at)
        ).all()
    return [json.loads(row.body)["data"] for row in rows]


def test_budgets_alert_once_per_threshold_as_estimated_charges_cross_them(
    client: Client, server: ServerThread
) -> None:
    shop = imported_shop(client)  # Startup: the whole $99 base fee counts this month
    budget = client.billing.SetBudget(
        pb.SetBudgetRequest(account_id=shop.account_id, name="Monthly AS2 Budget", limit=usd(200)),
        metadata=WRITER,
    ).budget
    assert list(budget.threshold_percentages) == [75, 90, 100]
    at = now() - timedelta(minutes=1)
    shop.record([shop.message("b1", 6020, at=at)])  # $99 + 1,020 x $0.05 = $150.00 = 75 %
    assert [a["threshold_percentage"] for a in alerts(server, shop.account_id)] == [75]
    shop.record([shop.message("b2", 1000, at=at)])  # $99 + $101 = $200.00: 90 % and 100 %
    shop.record([shop.message("b3", 10, at=at)])
    sent = alerts(server, shop.account_id)
    assert [(a["threshold_percentage"], a["current_usage"]) for a in sent] == [
        (75, 150.0),
        (90, 200.0),
        (100, 200.0),
    ]
    period = Period.containing(now())
    assert all(
        a["budget_name"] == "Monthly AS2 Budget"
        and a["budget_limit"] == 200
        and a["period_remaining_days"] == period.remaining_days(now())
        for a in sent
    )
    # A new, smaller budget is crossed by the change itself.
    client.billing.SetBudget(
        pb.SetBudgetRequest(
            account_id=shop.account_id, name="Tight", limit=usd(100), threshold_percentages=[50]
        ),
        metadata=WRITER,
    )
    assert alerts(server, shop.account_id)[-1]["budget_name"] == "Tight"
    names = [
        b.name
        for b in client.billing.ListBudgets(
            pb.ListBudgetsRequest(account_id=shop.account_id), metadata=READER
        ).budgets
    ]
    assert names == ["Monthly AS2 Budget", "Tight"]
    client.billing.DeleteBudget(
        pb.DeleteBudgetRequest(account_id=shop.account_id, name="Tight"), metadata=WRITER
    )
    with pytest.raises(grpc.RpcError) as error:
        client.billing.DeleteBudget(
            pb.DeleteBudgetRequest(account_id=shop.account_id, name="Tight"), metadata=WRITER
        )
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def _allocated_shop(client: Client) -> tuple[Shop, Period]:
    last = Period.containing(now()).previous()
    shop = imported_shop(client)
    at = last.start + timedelta(days=3)
    shop.record(
        [
            shop.message("p0", 3000, partner=0, at=at),
            shop.message("p1", 2500, tenant=1, partner=1, at=at),
            shop.message("none", 1500, partner=None, at=at),
        ]
    )
    return shop, last


def test_cost_allocation_and_journal_entries_add_up_to_the_invoice_to_the_cent(
    client: Client,
) -> None:
    shop, last = _allocated_shop(client)
    with pytest.raises(grpc.RpcError) as error:
        client.billing.ExportJournalEntries(
            pb.ExportJournalEntriesRequest(account_id=shop.account_id, period=last.label),
            metadata=READER,
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    estimate = client.billing.GetCostAllocation(
        pb.GetCostAllocationRequest(account_id=shop.account_id, period=last.label), metadata=READER
    )
    assert not estimate.invoiced
    invoice = close(client, shop.account_id, last)
    assert amount(invoice.total) == "199.00"  # $99 + (7,000 - 5,000) x $0.05
    allocation = client.billing.GetCostAllocation(
        pb.GetCostAllocationRequest(account_id=shop.account_id, period=last.label), metadata=READER
    )
    assert allocation.invoiced and amount(allocation.total) == "199.00"
    # 19,900 cents by 3,000 : 2,500 : 1,500 -> 8,528.57 / 7,107.14 / 4,264.29: floors 19,899,
    # the last cent to the largest remainder (Procurement).
    rows = [(a.department, a.message_count, amount(a.cost)) for a in allocation.allocations]
    assert rows == [
        ("Procurement", 3000, "85.29"),
        ("Sales", 2500, "71.07"),
        ("Unallocated", 1500, "42.64"),
    ]
    entries = client.billing.ExportJournalEntries(
        pb.ExportJournalEntriesRequest(account_id=shop.account_id, period=last.label),
        metadata=READER,
    ).entries
    assert [
        (e.gl_account, e.department, amount(e.amount), e.description, e.reference) for e in entries
    ] == [
        (
            "6100-AS2-MESSAGING",
            "Procurement",
            "85.29",
            "AS2 messaging - Procurement",
            f"AS2-{last.label}",
        ),
        ("6100-AS2-MESSAGING", "Sales", "71.07", "AS2 messaging - Sales", f"AS2-{last.label}"),
        (
            "6100-AS2-MESSAGING",
            "Unallocated",
            "42.64",
            "AS2 messaging - Unallocated",
            f"AS2-{last.label}",
        ),
    ]
    monthly = shop.monthly(last)
    assert sorted(amount(p.cost) for p in monthly.partner_breakdown) == ["71.07", "85.29"]


def test_moving_a_partner_to_another_department_moves_its_cost(client: Client) -> None:
    shop, last = _allocated_shop(client)
    close(client, shop.account_id, last)
    client.billing.UpdateMasterPartner(
        pb.UpdateMasterPartnerRequest(partner_id=shop.partners[1], department="Procurement"),
        metadata=WRITER,
    )
    allocation = client.billing.GetCostAllocation(
        pb.GetCostAllocationRequest(account_id=shop.account_id, period=last.label), metadata=READER
    )
    assert [(a.department, amount(a.cost)) for a in allocation.allocations] == [
        ("Procurement", "156.36"),
        ("Unallocated", "42.64"),
    ]


def test_compare_plans_prices_the_period_on_each_plan(client: Client) -> None:
    shop, last = _allocated_shop(client)
    costs = client.billing.ComparePlans(
        pb.ComparePlansRequest(account_id=shop.account_id, period=last.label), metadata=READER
    ).plan_costs
    assert [(c.plan_id, amount(c.total)) for c in costs] == [
        ("startup", "199.00"),
        ("business", "299.00"),
        ("enterprise", "999.00"),
    ]


def test_reconciliation_matches_and_catches_a_corrupted_roll_up(
    client: Client, server: ServerThread
) -> None:
    shop, last = _allocated_shop(client)
    close(client, shop.account_id, last)
    result = client.billing.ReconcilePeriod(
        pb.ReconcilePeriodRequest(account_id=shop.account_id, period=last.label), metadata=READER
    )
    assert result.matches
    assert [line.type for line in result.lines] == ["base_fee", "message_overage"]

    broken, older = imported_shop(client), last.previous()
    broken.record([broken.message("x", 6000, at=older.start + timedelta(hours=2))])
    with server.db.write() as session:  # a roll-up silently wrong by 100 messages
        session.execute(
            text("UPDATE usage_period SET messages = messages + 100 WHERE account_id = :a"),
            {"a": broken.account_id},
        )
    close(client, broken.account_id, older)
    result = client.billing.ReconcilePeriod(
        pb.ReconcilePeriodRequest(account_id=broken.account_id, period=older.label), metadata=READER
    )
    assert not result.matches
    overage = next(line for line in result.lines if line.type == "message_overage")
    assert (overage.invoiced_quantity, overage.rerated_quantity) == ("1100", "1000")
    assert (amount(overage.invoiced_amount), amount(overage.rerated_amount)) == ("55.00", "50.00")
    assert overage.difference.units == -5


def test_audit_events_are_listed_and_paged(client: Client) -> None:
    shop = imported_shop(client)
    client.billing.ChangePlan(
        pb.ChangePlanRequest(account_id=shop.account_id, plan_id="business"), metadata=WRITER
    )
    with pytest.raises(grpc.RpcError) as error:
        client.billing.ListAuditEvents(
            pb.ListAuditEventsRequest(account_id=shop.account_id), metadata=READER
        )
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    first = client.billing.ListAuditEvents(
        pb.ListAuditEventsRequest(account_id=shop.account_id, page_size=2), metadata=ADMIN
    )
    rest = client.billing.ListAuditEvents(
        pb.ListAuditEventsRequest(
            account_id=shop.account_id, page_size=100, page_token=first.next_page_token
        ),
        metadata=ADMIN,
    )
    actions = [e.action for e in [*first.audit_events, *rest.audit_events]]
    assert actions[:3] == ["account.created", "tenant.created", "tenant.created"]
    assert actions[-1] == "subscription.upgraded"
    upgraded = client.billing.ListAuditEvents(
        pb.ListAuditEventsRequest(account_id=shop.account_id, action="subscription.upgraded"),
        metadata=ADMIN,
    )
    assert [(e.actor, json.loads(e.after_json)["plan_id"]) for e in upgraded.audit_events] == [
        ("writer", "business")
    ]


def test_audit_verify_names_the_altered_or_deleted_record(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url)).start()
        client = Client(server.target)
        try:
            for i in range(3):
                client.billing.CreateAccount(
                    pb.CreateAccountRequest(name=f"Audit {i}", plan_id="startup"),
                    metadata=auth("writer"),
                )
            assert verify_audit_chain(server.db) is None
            with server.db.write() as session:
                session.execute(
                    text("UPDATE audit_record SET actor = 'mallory' WHERE sequence = 2")
                )
            broken = verify_audit_chain(server.db)
            assert broken is not None and broken.sequence == 2 and "altered" in broken.problem
            with server.db.write() as session:
                session.execute(text("UPDATE audit_record SET actor = 'writer' WHERE sequence = 2"))
                session.execute(text("DELETE FROM audit_record WHERE sequence = 1"))
            broken = verify_audit_chain(server.db)
            assert broken is not None and broken.sequence == 1 and "missing" in broken.problem
        finally:
            client.close()
            server.stop()
