"""Money bounds over real gRPC (issue 12, point 5): custom terms are bounded when they are set,
terms that cannot be rated are FAILED_PRECONDITION naming the term (never INTERNAL), and the
largest invoice the bounds allow is closed, stored and read back exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb
from sqlalchemy import String, insert, inspect, literal, select, text, update

from billing_svc.domain import bounds
from billing_svc.domain.catalog import CustomTerms
from billing_svc.domain.ids import new_id
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import to_us
from billing_svc.storage import migrate
from billing_svc.storage.db import Database
from billing_svc.storage.tables import (
    Account,
    AccountCredit,
    Budget,
    Invoice,
    StorageLevel,
    Tenant,
    UsagePeriod,
)
from tests.integration.test_invoicing import close, usd
from tests.integration.test_usage import USAGE_READER, Shop, ts
from tests.support import (
    ADMIN,
    WRITER,
    Client,
    ServerThread,
    bad_request_fields,
    create_account,
    fresh_database,
    on_postgres,
)

D = Decimal
INT64_MAX = 2**63 - 1


def now() -> datetime:
    return datetime.now(UTC)


def money(amount: Decimal) -> common_pb2.Money:
    units = int(amount)
    return common_pb2.Money(currency_code="USD", units=units, nanos=int((amount - units) * 10**9))


def amount_of(value: common_pb2.Money) -> Decimal:
    return D(value.units) + D(value.nanos) / 10**9


def refused(call, request, metadata=ADMIN) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=metadata, timeout=60)
    return caught.value


LARGEST = pb.CustomTerms(
    base_fee=money(bounds.MAX_BASE_FEE),
    included_tenants=0,
    included_messages=0,
    included_storage_gb="0",
    tenant_overage=money(bounds.MAX_TENANT_OVERAGE),
    message_overage=money(bounds.MAX_MESSAGE_RATE),
    storage_overage_per_gb=money(bounds.MAX_STORAGE_RATE),
)


# ---------------------------------------------------------------------------------------------
# SetCustomTerms takes only terms that can be rated.


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        (pb.CustomTerms(included_storage_gb="1e400"), "terms.included_storage_gb"),
        (pb.CustomTerms(included_storage_gb="NaN"), "terms.included_storage_gb"),
        (pb.CustomTerms(included_storage_gb="-Infinity"), "terms.included_storage_gb"),
        (pb.CustomTerms(included_storage_gb="2.0000001"), "terms.included_storage_gb"),
        (pb.CustomTerms(storage_overage_per_gb=usd(9 * 10**18)), "terms.storage_overage_per_gb"),
        (pb.CustomTerms(message_overage=usd(10**15)), "terms.message_overage"),
        (
            pb.CustomTerms(
                message_overage=common_pb2.Money(currency_code="USD", nanos=100_000_001)
            ),
            "terms.message_overage",
        ),
        (pb.CustomTerms(base_fee=usd(INT64_MAX)), "terms.base_fee"),
        (pb.CustomTerms(tenant_overage=common_pb2.Money(units=1, nanos=1)), "terms.tenant_overage"),
        (
            pb.CustomTerms(message_tiers=[common_pb2.MessageTier(unit_price=usd(1))]),
            "terms.message_tiers[0].unit_price",
        ),
        (
            pb.CustomTerms(
                message_tiers=[
                    common_pb2.MessageTier(up_to_messages=n + 1, unit_price=usd(0))
                    for n in range(11)
                ]
            ),
            "terms.message_tiers",
        ),
    ],
)
def test_terms_beyond_the_bounds_are_refused_naming_the_term(
    client: Client, terms: pb.CustomTerms, field: str
) -> None:
    account = create_account(client, plan_id="enterprise")
    error = refused(
        client.billing.SetCustomTerms,
        pb.SetCustomTermsRequest(account_id=account.account_id, terms=terms),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert bad_request_fields(error) == [field]
    assert len(error.details()) < 200


def test_budgets_and_credits_are_bounded_too(client: Client) -> None:
    account = create_account(client)
    for limit in (usd(INT64_MAX), common_pb2.Money(currency_code="USD", units=5, nanos=5), usd(0)):
        error = refused(
            client.billing.SetBudget,
            pb.SetBudgetRequest(account_id=account.account_id, name="B", limit=limit),
            WRITER,
        )
        assert bad_request_fields(error) == ["limit"], error.details()
    budget = client.billing.SetBudget(
        pb.SetBudgetRequest(
            account_id=account.account_id, name="B", limit=money(bounds.MAX_AMOUNT)
        ),
        metadata=WRITER,
    ).budget
    assert amount_of(budget.limit) == bounds.MAX_AMOUNT
    error = refused(
        client.billing.IssueCredit,
        pb.IssueCreditRequest(
            account_id=account.account_id, amount=usd(1_000_001), description="Too generous"
        ),
    )
    assert bad_request_fields(error) == ["amount"]


# ---------------------------------------------------------------------------------------------
# Terms stored before the bounds existed: FAILED_PRECONDITION naming the term, never INTERNAL.


def _store_terms(server: ServerThread, account_id: str, terms: CustomTerms) -> None:
    with server.db.write() as session:
        session.execute(
            update(Account)
            .where(Account.account_id == account_id)
            .values(plan_id="custom", custom_terms_json=terms.to_json())
        )


@pytest.mark.parametrize(
    ("terms", "term"),
    [
        (CustomTerms(included_storage_gb=D("1E+400")), "terms.included_storage_gb"),
        (CustomTerms(storage_overage_per_gb=D(9 * 10**18)), "terms.storage_overage_per_gb"),
        (CustomTerms(message_overage=D(10**15), included_messages=0), "terms.message_overage"),
    ],
)
def test_stored_terms_that_cannot_be_rated_are_a_failed_precondition_naming_the_term(
    client: Client, server: ServerThread, terms: CustomTerms, term: str
) -> None:
    this = Period.containing(now())
    shop = Shop(client, plan_id="custom", skip_trial=True, start_time=ts(this.previous().start))
    client.billing.SetBudget(
        pb.SetBudgetRequest(account_id=shop.account_id, name="Watch", limit=usd(1000)),
        metadata=WRITER,
    )
    _store_terms(server, shop.account_id, terms)
    # Usage is still taken (the budget check steps aside), and the terms can still be read.
    at = now() - timedelta(minutes=1)
    ack = shop.record([shop.message("m1", 10_000, at=at), shop.storage("s1", 5, at=at)])
    assert (ack.accepted, list(ack.rejected)) == (2, [])
    client.billing.GetAccountBilling(
        pb.GetAccountBillingRequest(account_id=shop.account_id), metadata=ADMIN
    )
    billing, usage = client.billing, client.usage
    account_id = shop.account_id
    previous = this.previous()
    for call, request in [
        (usage.GetCurrentUsage, upb.GetCurrentUsageRequest(account_id=account_id)),
        (
            usage.GetMonthlyUsage,
            upb.GetMonthlyUsageRequest(account_id=account_id, year=this.year, month=this.month),
        ),
        (
            billing.GetCostAllocation,
            pb.GetCostAllocationRequest(account_id=account_id, period=this.label),
        ),
        (billing.ComparePlans, pb.ComparePlansRequest(account_id=account_id, period=this.label)),
        (
            billing.CloseBillingPeriod,
            pb.CloseBillingPeriodRequest(account_id=account_id, period=previous.label),
        ),
    ]:
        error = refused(call, request)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
        assert error.details().startswith(
            f"the custom terms of account {account_id} cannot be rated: {term}: "
        )
        assert error.details().endswith("; set them again (SetCustomTerms)")
    client.billing.SetCustomTerms(
        pb.SetCustomTermsRequest(
            account_id=account_id, terms=pb.CustomTerms(message_overage=usd(0))
        ),
        metadata=ADMIN,
    )
    assert (
        usage.GetCurrentUsage(
            upb.GetCurrentUsageRequest(account_id=account_id), metadata=USAGE_READER
        ).usage_to_date.messages
        == 10_000
    )


# ---------------------------------------------------------------------------------------------
# The largest invoice the bounds allow, closed on this database.


def _fill_to_the_bounds(server: ServerThread, account_id: str, period: Period) -> None:
    """What ingestion and CreateTenant could at most have stored for ``period``: 10,000
    tenants each holding 10^18 bytes the whole period, and an int64 message counter."""
    tenants = [
        {
            "tenant_id": new_id("ten"),
            "account_id": account_id,
            "name": f"T{n}",
            "created_at": period.start,
        }
        for n in range(bounds.MAX_TENANTS_PER_ACCOUNT)
    ]
    with server.db.write() as session:
        session.execute(insert(Tenant), tenants)
        session.execute(
            insert(StorageLevel),
            [
                {
                    "account_id": account_id,
                    "tenant_id": t["tenant_id"],
                    "level_bytes": bounds.MAX_STORAGE_BYTES,
                    "reading_at_us": to_us(period.start),
                }
                for t in tenants
            ],
        )
        session.execute(
            insert(UsagePeriod),
            [
                {
                    "account_id": account_id,
                    "period": period.label,
                    "messages": INT64_MAX,
                    "late_messages": 0,
                    "late_billed_messages": 0,
                }
            ],
        )


def test_the_largest_invoice_the_bounds_allow_is_closed_stored_and_paid_exactly(
    client: Client, server: ServerThread
) -> None:
    previous = Period.containing(now()).previous()
    account = create_account(
        client,
        plan_id="custom",
        skip_trial=True,
        start_time=ts(previous.start),
        billing_interval=pb.BILLING_INTERVAL_ANNUAL,
    )
    client.billing.SetCustomTerms(
        pb.SetCustomTermsRequest(account_id=account.account_id, terms=LARGEST), metadata=ADMIN
    )
    _fill_to_the_bounds(server, account.account_id, previous)
    error = refused(
        client.billing.CreateTenant,
        pb.CreateTenantRequest(account_id=account.account_id, name="One too many"),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "has 10,000 tenants, the most" in error.details()

    invoice = close(client, account.account_id, previous)
    # 10 x 10^9 (the yearly fee: the subscription year starts in this period)
    # + 10,000 tenants x 10^6 + (2^63 - 1) messages x 0.1 + 10^13 GB-months x 1,000
    assert [(line.type, amount_of(line.amount)) for line in invoice.lines] == [
        ("base_fee", D(10**10)),
        ("tenant_overage", D(10**10)),
        ("message_overage", D("922337203685477580.70")),
        ("storage_overage", D(10**16)),
    ]
    expected = D("932337223685477580.70")
    assert amount_of(invoice.total) == amount_of(invoice.subtotal) == expected
    assert len(invoice.tenant_breakdown) == bounds.MAX_TENANTS_PER_ACCOUNT
    fetched = client.billing.GetInvoice(
        pb.GetInvoiceRequest(invoice_id=invoice.invoice_id), metadata=ADMIN
    ).invoice
    assert fetched == invoice
    paid = client.billing.RecordPaymentResult(
        pb.RecordPaymentResultRequest(invoice_id=invoice.invoice_id, succeeded=True),
        metadata=WRITER,
    ).invoice
    assert amount_of(paid.amount_paid) == expected
    with server.db.read() as session:
        stored = session.get(Invoice, invoice.invoice_id)
        assert (stored.total, stored.amount_paid) == (expected, expected)
    allocation = client.billing.GetCostAllocation(
        pb.GetCostAllocationRequest(account_id=account.account_id, period=previous.label),
        metadata=ADMIN,
    )
    assert sum(amount_of(a.cost) for a in allocation.allocations) == expected
    entries = client.billing.ExportJournalEntries(
        pb.ExportJournalEntriesRequest(account_id=account.account_id, period=previous.label),
        metadata=ADMIN,
    ).entries
    assert sum(amount_of(e.amount) for e in entries) == expected


def test_late_usage_beyond_the_largest_amount_is_a_failed_precondition(
    client: Client, server: ServerThread
) -> None:
    this = Period.containing(now())
    start, late = this, []
    for _ in range(11):
        start = start.previous()
        late.append(start)
    account = create_account(client, plan_id="custom", skip_trial=True, start_time=ts(start.start))
    client.billing.SetCustomTerms(
        pb.SetCustomTermsRequest(account_id=account.account_id, terms=LARGEST), metadata=ADMIN
    )
    with server.db.write() as session:  # ten periods, each with an int64 count arrived late
        session.execute(
            insert(UsagePeriod),
            [
                {
                    "account_id": account.account_id,
                    "period": period.label,
                    "messages": INT64_MAX,
                    "late_messages": INT64_MAX,
                    "late_billed_messages": 0,
                }
                for period in late[1:]
            ],
        )
    error = refused(
        client.billing.CloseBillingPeriod,
        pb.CloseBillingPeriodRequest(account_id=account.account_id, period=late[0].label),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"the charges of {late[0].label} come to " in error.details()
    assert "more than the 9,000,000,000,000,000,000 USD an invoice can hold" in error.details()
    assert "late_usage" in error.details()


def test_a_projection_beyond_a_counter_is_capped_at_the_counter(
    client: Client, server: ServerThread
) -> None:
    this = Period.containing(now())
    account = create_account(client, plan_id="startup", skip_trial=True, start_time=ts(this.start))
    with server.db.write() as session:
        session.execute(
            insert(UsagePeriod),
            [
                {
                    "account_id": account.account_id,
                    "period": this.label,
                    "messages": INT64_MAX,
                    "late_messages": 0,
                    "late_billed_messages": 0,
                }
            ],
        )
    report = client.usage.GetCurrentUsage(
        upb.GetCurrentUsageRequest(account_id=account.account_id), metadata=USAGE_READER
    )
    assert report.usage_to_date.messages == INT64_MAX
    assert report.projection.messages == INT64_MAX
    # 99 + (2^63 - 1 - 5,000) x 0.05
    assert amount_of(report.projection.charges) == D(99) + D(INT64_MAX - 5000) * D("0.05")


# ---------------------------------------------------------------------------------------------
# Migration 0008: the columns widen and every stored amount stays as it was.


# Lists were comma-joined text until 0015_typed_lists: what 0006 stored, past the column's type.
OLD_THRESHOLDS = literal("75,90,100", String())


def test_the_migration_widens_the_money_columns_keeping_every_amount(tmp_path) -> None:
    largest_before = D("99999999999.999999999")  # NUMERIC(20, 9)
    at = datetime(2026, 1, 15, tzinfo=UTC)
    with fresh_database(str(tmp_path), empty=True) as url:
        db = Database(url)
        try:
            migrate.upgrade(db, "0006_credits")
            with db.write() as session:
                # Only the columns 0006 had: the model may hold later ones.
                session.execute(
                    insert(Account.__table__).values(  # type: ignore[arg-type]
                        account_id="acc_m",
                        customer_id="cus_m",
                        subscription_id="sub_m",
                        name="M",
                        plan_id="startup",
                        billing_interval="monthly",
                        status="active",
                        created_at=at,
                        registered_at=at,
                        updated_at=at,
                        cancel_at_period_end=False,
                        usage_thresholds=OLD_THRESHOLDS,
                    )
                )
                session.add(
                    Invoice(
                        invoice_id="in_m",
                        account_id="acc_m",
                        period="2026-01",
                        status="open",
                        subtotal=largest_before,
                        total=largest_before,
                        amount_paid=D("0.5"),
                        lines_json="[]",
                        tenant_breakdown_json="[]",
                        created_at=at,
                    )
                )
                session.add(
                    AccountCredit(
                        credit_id="cr_m",
                        account_id="acc_m",
                        amount=D("12.34"),
                        remaining=D("0.01"),
                        description="C",
                        created_at=at,
                    )
                )
                session.execute(
                    insert(Budget.__table__).values(  # type: ignore[arg-type]
                        account_id="acc_m",
                        name="B",
                        limit_amount=D("2000"),
                        thresholds=OLD_THRESHOLDS,
                        created_at=at,
                        updated_at=at,
                    )
                )
            migrate.upgrade(db, "0008_money_columns")
            with db.read() as session:
                invoice = session.get(Invoice, "in_m")
                credit = session.get(AccountCredit, "cr_m")
                budget_limit = session.execute(select(Budget.limit_amount)).scalar_one()
                assert (invoice.subtotal, invoice.total, invoice.amount_paid) == (
                    largest_before,
                    largest_before,
                    D("0.5"),
                )
                assert (credit.amount, credit.remaining, budget_limit) == (
                    D("12.34"),
                    D("0.01"),
                    D("2000"),
                )
                if on_postgres():
                    columns = {
                        c["name"]: c["type"]
                        for c in inspect(session.connection()).get_columns("invoice")
                    }
                    assert (columns["total"].precision, columns["total"].scale) == (28, 9)
                    version = (
                        session.connection()
                        .execute(text("SELECT version_num FROM alembic_version"))
                        .scalar()
                    )
                    assert version == "0008_money_columns"
            with db.write() as session:
                invoice = session.get(Invoice, "in_m")
                invoice.total = bounds.MAX_AMOUNT - D("0.000000001")
                session.add(invoice)
            with db.read() as session:
                assert session.get(Invoice, "in_m").total == D("8999999999999999999.999999999")
        finally:
            db.dispose()
