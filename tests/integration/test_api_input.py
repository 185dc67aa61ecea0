"""What enters through the API is checked where it enters (issue 12, points 2, 4 and 6):
every timestamp against one range, page tokens, period labels, reports of periods an account did
not exist in, and the size of every text field and of every value an error quotes."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb
from google.protobuf import timestamp_pb2
from google.protobuf.descriptor import Descriptor

from billing_svc.domain.periods import EARLIEST, LATEST, Period
from tests.integration.test_invoicing import close, imported_shop, usd
from tests.integration.test_usage import PRODUCER, USAGE_READER, Shop, ts
from tests.support import ADMIN, WRITER, Client, bad_request_fields, create_account


def now() -> datetime:
    return datetime.now(UTC)


def refused(call: Callable[..., object], request: object, metadata=ADMIN) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=metadata, timeout=30)
    return caught.value


def invalid(call: Callable[..., object], request: object, field: str, metadata=ADMIN) -> str:
    """Call, expect INVALID_ARGUMENT naming ``field``; the status message."""
    error = refused(call, request, metadata)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert bad_request_fields(error) == [field], error.details()
    return error.details()


def request_types() -> Iterator[tuple[str, Descriptor]]:
    for module in (pb, upb):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield method.name, method.input_type


# ---------------------------------------------------------------------------------------------
# Point 2: every timestamp of a request, one range for the whole service.


def timestamp_fields(descriptor: Descriptor, prefix: str = "") -> Iterator[str]:
    for field in descriptor.fields:
        if field.message_type is None:
            continue
        if field.message_type.full_name == "google.protobuf.Timestamp":
            yield prefix + field.name
        elif not field.message_type.full_name.startswith("google."):
            yield from timestamp_fields(field.message_type, f"{prefix}{field.name}.")


# Usage events' occurred_at is checked per event in ingestion (rejected with a reason).
_PER_EVENT = {"StreamUsage", "RecordUsage"}


@pytest.fixture(scope="module")
def subject(server) -> Iterator[Shop]:  # type: ignore[no-untyped-def]
    client = Client(server.target)
    shop = imported_shop(client)
    shop.invoice = close(client, shop.account_id, Period.containing(now()).previous())
    yield shop
    client.close()


def _with_time(method: str, shop: Shop) -> tuple[Callable[..., object], object]:
    """A request of ``method`` valid but for the timestamp the test sets, and the stub to call."""
    client = shop.client
    requests = {
        "CreateAccount": (
            client.billing.CreateAccount,
            pb.CreateAccountRequest(name="Imported", plan_id="startup"),
        ),
        "CreateTenant": (
            client.billing.CreateTenant,
            pb.CreateTenantRequest(account_id=shop.account_id, name="Imported"),
        ),
        "CreateMasterPartner": (
            client.billing.CreateMasterPartner,
            pb.CreateMasterPartnerRequest(account_id=shop.account_id, name="Imported"),
        ),
        "SetCustomTerms": (
            client.billing.SetCustomTerms,
            pb.SetCustomTermsRequest(account_id=shop.account_id, terms=pb.CustomTerms()),
        ),
        "RecordPaymentResult": (
            client.billing.RecordPaymentResult,
            pb.RecordPaymentResultRequest(invoice_id=shop.invoice.invoice_id, succeeded=True),
        ),
        "ListAuditEvents": (client.billing.ListAuditEvents, pb.ListAuditEventsRequest()),
        "GetUsageHistory": (
            client.usage.GetUsageHistory,
            upb.GetUsageHistoryRequest(
                account_id=shop.account_id,
                granularity=upb.GRANULARITY_DAY,
                start_time=ts(now() - timedelta(days=3)),
            ),
        ),
        "CreateTestClock": (
            client.billing.CreateTestClock,
            pb.CreateTestClockRequest(name="Sandbox"),
        ),
    }
    if method == "AdvanceTestClock":
        clock = client.billing.CreateTestClock(
            pb.CreateTestClockRequest(name="Sandbox", frozen_time=ts(now())), metadata=ADMIN
        ).test_clock
        return client.billing.AdvanceTestClock, pb.AdvanceTestClockRequest(
            test_clock_id=clock.test_clock_id
        )
    return requests[method]


def _stamp(request: object, path: str) -> timestamp_pb2.Timestamp:
    *parents, name = path.split(".")
    for parent in parents:
        request = getattr(request, parent)
    return getattr(request, name)


TIMESTAMPED = [
    (method, path)
    for method, descriptor in request_types()
    if method not in _PER_EVENT
    for path in timestamp_fields(descriptor)
]


def test_every_timestamp_a_request_carries_is_covered_here() -> None:
    # A new Timestamp field in proto/ shows up here and must be given a request in _with_time.
    assert sorted(TIMESTAMPED) == sorted(
        [
            ("CreateAccount", "start_time"),
            ("CreateTenant", "start_time"),
            ("CreateMasterPartner", "start_time"),
            ("SetCustomTerms", "terms.contract_start"),
            ("SetCustomTerms", "terms.contract_end"),
            ("RecordPaymentResult", "attempt_time"),
            ("ListAuditEvents", "start_time"),
            ("ListAuditEvents", "end_time"),
            ("GetUsageHistory", "start_time"),
            ("GetUsageHistory", "end_time"),
            ("CreateTestClock", "frozen_time"),
            ("AdvanceTestClock", "frozen_time"),
        ]
    )


_LATEST_S = int(LATEST.timestamp())
OUT_OF_RANGE = [
    pytest.param(0, -1, id="nanos=-1"),
    pytest.param(0, 10**9, id="nanos=1e9"),
    pytest.param(0, 2**31 - 1, id="nanos=2^31-1"),
    pytest.param(-1, 0, id="1969-12-31T23:59:59"),
    pytest.param(-62135596800, 0, id="0001-01-01"),
    pytest.param(_LATEST_S, 0, id="9999-01-01"),
    pytest.param(253402300799, 0, id="9999-12-31T23:59:59"),
]


@pytest.mark.parametrize(("seconds", "nanos"), OUT_OF_RANGE)
@pytest.mark.parametrize(("method", "path"), TIMESTAMPED, ids=lambda v: v)
def test_a_timestamp_out_of_the_one_range_is_refused_naming_its_field(
    subject: Shop, method: str, path: str, seconds: int, nanos: int
) -> None:
    call, request = _with_time(method, subject)
    stamp = _stamp(request, path)
    stamp.seconds, stamp.nanos = seconds, nanos
    message = invalid(call, request, path)
    assert "within" in message


def test_the_range_starts_at_the_epoch_and_ends_before_9999(client: Client) -> None:
    first = create_account(client, start_time=timestamp_pb2.Timestamp(seconds=0), skip_trial=True)
    assert first.create_time.ToDatetime(tzinfo=UTC) == EARLIEST
    page = client.billing.ListAuditEvents(
        pb.ListAuditEventsRequest(
            account_id=first.account_id,
            start_time=timestamp_pb2.Timestamp(seconds=0),
            end_time=timestamp_pb2.Timestamp(seconds=_LATEST_S - 1, nanos=999_999_999),
        ),
        metadata=ADMIN,
    )
    assert [event.action for event in page.audit_events] == ["account.created"]
    january = client.usage.GetMonthlyUsage(
        upb.GetMonthlyUsageRequest(account_id=first.account_id, year=1970, month=1),
        metadata=USAGE_READER,
    )
    assert january.period.label == "1970-01"


# ---------------------------------------------------------------------------------------------
# Point 4: page tokens are opaque and checked, on every paged RPC.


@dataclass
class Paged:
    """One paged RPC: ``page(token, other)`` calls it with page size 1 on an account with two
    items or more (``other``: with other filters)."""

    page: Callable[[str, bool], object]


@pytest.fixture(scope="module")
def paged(server) -> Iterator[dict[str, Paged]]:  # type: ignore[no-untyped-def]
    client = Client(server.target)
    shop = imported_shop(client, months_back=3)
    other = Shop(client)
    this = Period.containing(now())
    for period in (this.previous().previous(), this.previous()):
        close(client, shop.account_id, period)
    shop.record(
        [
            shop.message("p1", at=now() - timedelta(hours=3)),
            shop.message("p2", at=now() - timedelta(hours=1)),
        ]
    )
    for account_id in (shop.account_id, other.account_id):
        for n in range(2):
            # Subscribed to an event these accounts never have: nothing is sent to them.
            client.billing.CreateWebhookEndpoint(
                pb.CreateWebhookEndpointRequest(
                    account_id=account_id,
                    url=f"http://127.0.0.1:1/hook{n}",
                    event_types=["billing.payment_succeeded"],
                ),
                metadata=WRITER,
            )
            client.billing.IssueCredit(
                pb.IssueCreditRequest(
                    account_id=account_id, amount=usd(5 + n), description=f"Credit {n}"
                ),
                metadata=ADMIN,
            )
            client.billing.SetBudget(
                pb.SetBudgetRequest(account_id=account_id, name=f"Budget {n}", limit=usd(100 + n)),
                metadata=WRITER,
            )
    billing, usage = client.billing, client.usage
    billing.SetApprovalPolicy(
        pb.SetApprovalPolicyRequest(
            account_id=shop.account_id, policy=pb.ApprovalPolicy(upgrades=True)
        ),
        metadata=ADMIN,
    )
    for plan_id in ("business", "enterprise"):  # two change requests, held
        billing.ChangePlan(
            pb.ChangePlanRequest(account_id=shop.account_id, plan_id=plan_id), metadata=ADMIN
        )
    since = ts(now() - timedelta(hours=5))

    def account(other_filters: bool) -> str:
        return other.account_id if other_filters else shop.account_id

    yield {
        "ListInvoices": Paged(
            lambda token, o: billing.ListInvoices(
                pb.ListInvoicesRequest(
                    account_id=shop.account_id,
                    page_size=1,
                    page_token=token,
                    status=pb.INVOICE_STATUS_OPEN if o else pb.INVOICE_STATUS_UNSPECIFIED,
                ),
                metadata=ADMIN,
            )
        ),
        "ListAuditEvents": Paged(
            lambda token, o: billing.ListAuditEvents(
                pb.ListAuditEventsRequest(
                    account_id=shop.account_id,
                    page_size=1,
                    page_token=token,
                    action="invoice.issued" if o else "",
                ),
                metadata=ADMIN,
            )
        ),
        "GetUsageHistory": Paged(
            lambda token, o: usage.GetUsageHistory(
                upb.GetUsageHistoryRequest(
                    account_id=shop.account_id,
                    page_size=1,
                    page_token=token,
                    granularity=upb.GRANULARITY_DAY if o else upb.GRANULARITY_HOUR,
                    start_time=since,
                ),
                metadata=ADMIN,
            )
        ),
        "ListWebhookEvents": Paged(
            lambda token, o: billing.ListWebhookEvents(
                pb.ListWebhookEventsRequest(
                    account_id=shop.account_id,
                    page_size=1,
                    page_token=token,
                    event_type="billing.invoice_generated" if o else "",
                ),
                metadata=ADMIN,
            )
        ),
        "ListWebhookEndpoints": Paged(
            lambda token, o: billing.ListWebhookEndpoints(
                pb.ListWebhookEndpointsRequest(
                    account_id=account(o), page_size=1, page_token=token
                ),
                metadata=ADMIN,
            )
        ),
        "ListCredits": Paged(
            lambda token, o: billing.ListCredits(
                pb.ListCreditsRequest(account_id=account(o), page_size=1, page_token=token),
                metadata=ADMIN,
            )
        ),
        "ListBudgets": Paged(
            lambda token, o: billing.ListBudgets(
                pb.ListBudgetsRequest(account_id=account(o), page_size=1, page_token=token),
                metadata=ADMIN,
            )
        ),
        "ListChangeRequests": Paged(
            lambda token, o: billing.ListChangeRequests(
                pb.ListChangeRequestsRequest(
                    account_id=shop.account_id,
                    page_size=1,
                    page_token=token,
                    status=pb.CHANGE_REQUEST_STATUS_PENDING
                    if o
                    else pb.CHANGE_REQUEST_STATUS_UNSPECIFIED,
                ),
                metadata=ADMIN,
            )
        ),
    }
    client.close()


PAGED = sorted(
    method for method, descriptor in request_types() if "page_token" in descriptor.fields_by_name
)


def test_every_paged_rpc_is_covered_here(paged: dict[str, Paged]) -> None:
    assert sorted(paged) == PAGED


def _items(response: object) -> list[object]:
    (field,) = [f for f, _ in response.ListFields() if f.is_repeated]  # type: ignore[attr-defined]
    return list(getattr(response, field.name))


def _flip(token: str, at: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = alphabet[(alphabet.index(token[at]) + 1) % len(alphabet)]
    return token[:at] + replacement + token[at + 1 :]


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


GARBAGE = [
    "99999999999999999999",
    "-1",
    "0",
    "garbage",
    "%%%",
    "==",
    "\u0663",
    "A" * 2000,
    _b64([[99999999999999999999], "0" * 24]),
    _b64([[1], "0" * 24]),
    _b64({"c": [1]}),
    _b64("x"),
    _b64([[None], None]),
    "[" * 500,
]


@pytest.mark.parametrize("method", PAGED)
def test_a_page_token_pages_and_anything_else_is_invalid_naming_page_token(
    paged: dict[str, Paged], method: str
) -> None:
    page = paged[method].page
    first = page("", False)
    token = first.next_page_token  # type: ignore[attr-defined]
    assert token and _items(first)
    second = page(token, False)
    assert _items(second) and _items(second)[0] not in _items(first)
    foreign = [
        paged[other].page("", False).next_page_token  # type: ignore[attr-defined]
        for other in PAGED
        if other != method
    ]
    tampered = [_flip(token, at) for at in (0, len(token) // 2, len(token) - 2)]
    for bad in [*GARBAGE, *foreign, *tampered, token[:-1], token + "A", token + "=="]:
        with pytest.raises(grpc.RpcError) as caught:
            page(bad, False)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (bad, caught.value)
        assert bad_request_fields(caught.value) == ["page_token"]
    with pytest.raises(grpc.RpcError) as caught:  # the same RPC, other filters
        page(token, True)
    assert bad_request_fields(caught.value) == ["page_token"]


# ---------------------------------------------------------------------------------------------
# Point 4: period labels, and reports of a period the account did not exist in.


BAD_LABELS = [
    "2026-01\n",
    "\u0662\u0660\u0662\u0666-\u0660\u0661",
    "\uff12\uff10\uff12\uff16-01",
    "2026-1",
    " 2026-01",
    "2026-01 ",
    "2026-13",
    "1969-12",
    "9999-01",
    "2026/01",
    "x" * 5000,
]


@pytest.mark.parametrize("label", BAD_LABELS, ids=range(len(BAD_LABELS)))
def test_a_period_is_exactly_four_ascii_digits_a_dash_and_two(subject: Shop, label: str) -> None:
    billing = subject.client.billing
    account_id = subject.account_id
    for call, request in [
        (
            billing.CloseBillingPeriod,
            pb.CloseBillingPeriodRequest(account_id=account_id, period=label),
        ),
        (billing.ListInvoices, pb.ListInvoicesRequest(account_id=account_id, period=label)),
        (
            billing.GetCostAllocation,
            pb.GetCostAllocationRequest(account_id=account_id, period=label),
        ),
        (
            billing.ExportJournalEntries,
            pb.ExportJournalEntriesRequest(account_id=account_id, period=label),
        ),
        (billing.ReconcilePeriod, pb.ReconcilePeriodRequest(account_id=account_id, period=label)),
        (billing.ComparePlans, pb.ComparePlansRequest(account_id=account_id, period=label)),
    ]:
        message = invalid(call, request, "period")
        assert len(message) < 300


def test_the_first_and_last_periods_are_periods_like_any_other(subject: Shop) -> None:
    billing = subject.client.billing
    error = refused(
        billing.CloseBillingPeriod,
        pb.CloseBillingPeriodRequest(account_id=subject.account_id, period="9998-12"),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ends 9999-01-01T00:00:00+00:00" in error.details()
    invalid(
        billing.ComparePlans,
        pb.ComparePlansRequest(account_id=subject.account_id, period="9998-12"),
        "period",
    )
    error = refused(
        billing.GetCostAllocation,
        pb.GetCostAllocationRequest(account_id=subject.account_id, period="1970-01"),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_every_report_of_a_period_before_the_account_existed_says_so(client: Client) -> None:
    this = Period.containing(now())
    shop = Shop(client, plan_id="startup")
    created = shop.account.create_time.ToDatetime(tzinfo=UTC)
    before = this.previous()
    billing = client.billing
    account_id = shop.account_id
    for call, request in [
        (billing.ComparePlans, pb.ComparePlansRequest(account_id=account_id, period=before.label)),
        (
            billing.GetCostAllocation,
            pb.GetCostAllocationRequest(account_id=account_id, period=before.label),
        ),
        (
            billing.ExportJournalEntries,
            pb.ExportJournalEntriesRequest(account_id=account_id, period=before.label),
        ),
        (
            billing.ReconcilePeriod,
            pb.ReconcilePeriodRequest(account_id=account_id, period=before.label),
        ),
        (
            billing.CloseBillingPeriod,
            pb.CloseBillingPeriodRequest(account_id=account_id, period=before.label),
        ),
        (
            client.usage.GetMonthlyUsage,
            upb.GetMonthlyUsageRequest(account_id=account_id, year=before.year, month=before.month),
        ),
    ]:
        error = refused(call, request)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
        assert error.details() == (
            f"account {account_id} started on {created.date()}, after period "
            f"{before.label}; it has no usage or charges for that period"
        )
    # The period it started in is one it existed in.
    costs = billing.ComparePlans(
        pb.ComparePlansRequest(account_id=account_id, period=this.label), metadata=ADMIN
    )
    assert [c.plan_id for c in costs.plan_costs] == ["startup", "business", "enterprise"]


# ---------------------------------------------------------------------------------------------
# Point 6: sizes are bounded, and no error quotes more than a little of what was sent.


BIG_ID = "a" * 20_000


def _trailers_size(error: grpc.RpcError) -> int:
    return sum(len(key) + len(value) for key, value in error.trailing_metadata() or ())


def test_an_id_of_20_kb_is_refused_without_being_echoed(client: Client) -> None:
    billing, usage = client.billing, client.usage
    for call, request, field in [
        (billing.GetAccountBilling, pb.GetAccountBillingRequest(account_id=BIG_ID), "account_id"),
        (usage.GetCurrentUsage, upb.GetCurrentUsageRequest(account_id=BIG_ID), "account_id"),
        (
            billing.CloseBillingPeriod,
            pb.CloseBillingPeriodRequest(account_id=BIG_ID, period="2026-01"),
            "account_id",
        ),
        (billing.GetInvoice, pb.GetInvoiceRequest(invoice_id=BIG_ID), "invoice_id"),
        (
            billing.DeleteWebhookEndpoint,
            pb.DeleteWebhookEndpointRequest(endpoint_id=BIG_ID),
            "endpoint_id",
        ),
        (billing.CreateAccount, pb.CreateAccountRequest(name="x", plan_id=BIG_ID), "plan_id"),
        (
            billing.ChangePlan,
            pb.ChangePlanRequest(account_id="acc_x", plan_id="startup", request_id=BIG_ID),
            "request_id",
        ),
    ]:
        error = refused(call, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert bad_request_fields(error) == [field]
        assert "aaaa" not in error.details() and len(error.details()) < 200
        assert _trailers_size(error) < 1000


def test_an_id_that_is_not_found_is_quoted_cut_to_64_characters(client: Client) -> None:
    longest = "acc_" + "z" * 124
    error = refused(
        client.billing.GetAccountBilling, pb.GetAccountBillingRequest(account_id=longest)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"account 'acc_{'z' * 60}…' (128 characters) does not exist"
    error = refused(
        client.billing.GetAccountBilling, pb.GetAccountBillingRequest(account_id="acc_short")
    )
    assert error.details() == "account 'acc_short' does not exist"


def test_a_request_id_in_metadata_is_bounded_like_the_field(client: Client) -> None:
    account = create_account(client)
    too_long = [*WRITER, ("x-request-id", "r" * 101)]
    invalid(
        client.billing.CancelSubscription,
        pb.CancelSubscriptionRequest(account_id=account.account_id),
        "request_id",
        metadata=too_long,
    )
    client.billing.CancelSubscription(
        pb.CancelSubscriptionRequest(account_id=account.account_id),
        metadata=[*WRITER, ("x-request-id", "r" * 100)],
    )


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("name", 200),
        ("description", 500),
        ("reason", 500),
        ("failure_reason", 500),
        ("account_manager", 200),
        ("included_storage_gb", 200),
        ("url", 2000),
        ("department", 200),
        ("period", 200),
        ("action", 200),
    ],
)
def test_every_text_field_is_bounded_in_the_api(subject: Shop, field: str, limit: int) -> None:
    billing = subject.client.billing
    text = "x" * (limit + 1)
    requests = {
        "name": (
            billing.CreateTenant,
            pb.CreateTenantRequest(account_id=subject.account_id, name=text),
        ),
        "description": (
            billing.CreateWebhookEndpoint,
            pb.CreateWebhookEndpointRequest(
                account_id=subject.account_id, url="http://127.0.0.1:1/x", description=text
            ),
        ),
        "reason": (billing.VoidInvoice, pb.VoidInvoiceRequest(invoice_id="in_x", reason=text)),
        "failure_reason": (
            billing.RecordPaymentResult,
            pb.RecordPaymentResultRequest(invoice_id="in_x", failure_reason=text),
        ),
        "account_manager": (
            billing.SetCustomTerms,
            pb.SetCustomTermsRequest(
                account_id=subject.account_id, terms=pb.CustomTerms(account_manager=text)
            ),
        ),
        "included_storage_gb": (
            billing.SetCustomTerms,
            pb.SetCustomTermsRequest(
                account_id=subject.account_id, terms=pb.CustomTerms(included_storage_gb=text)
            ),
        ),
        "url": (
            billing.CreateWebhookEndpoint,
            pb.CreateWebhookEndpointRequest(
                account_id=subject.account_id, url="http://127.0.0.1:1/" + text
            ),
        ),
        "department": (
            billing.UpdateMasterPartner,
            pb.UpdateMasterPartnerRequest(partner_id=subject.partners[0], department=text),
        ),
        "period": (
            billing.ComparePlans,
            pb.ComparePlansRequest(account_id=subject.account_id, period=text),
        ),
        "action": (billing.ListAuditEvents, pb.ListAuditEventsRequest(action=text)),
    }
    call, request = requests[field]
    nested = {"account_manager": "terms.", "included_storage_gb": "terms."}
    message = invalid(call, request, nested.get(field, "") + field)
    assert "xxxx" not in message


def test_threshold_lists_are_bounded_by_the_text_they_are_stored_as(subject: Shop) -> None:
    billing = subject.client.billing
    many = list(range(900, 1000, 2))  # 50: 199 characters as "900,902,...,998"
    invalid(
        billing.SetUsageThresholds,
        pb.SetUsageThresholdsRequest(account_id=subject.account_id, threshold_percentages=many),
        "threshold_percentages",
    )
    invalid(
        billing.SetBudget,
        pb.SetBudgetRequest(
            account_id=subject.account_id, name="Many", limit=usd(10), threshold_percentages=many
        ),
        "threshold_percentages",
    )
    most = list(range(981, 1001))  # the most: 20, as 80 characters
    account = billing.SetUsageThresholds(
        pb.SetUsageThresholdsRequest(account_id=subject.account_id, threshold_percentages=most),
        metadata=WRITER,
    ).account
    assert list(account.usage_threshold_percentages) == most


def test_an_oversized_id_in_a_usage_batch_is_rejected_with_a_short_reason(subject: Shop) -> None:
    huge = "t" * (8 * 1024 * 1024)
    event = subject.message("ok-1")
    bad_tenant = upb.UsageEvent(
        event_id="big-tenant",
        account_id=subject.account_id,
        tenant_id=huge,
        kind=common_pb2.USAGE_KIND_MESSAGE,
        quantity=1,
        occurred_at=ts(now()),
    )
    ack = subject.client.usage.RecordUsage(
        upb.RecordUsageRequest(batch_id="sizes", events=[event, bad_tenant]),
        metadata=PRODUCER,
        timeout=60,
    )
    assert ack.accepted == 1
    (rejection,) = ack.rejected
    assert rejection.index == 1 and rejection.event_id == "big-tenant"
    assert rejection.reason == (
        f"tenant '{'t' * 64}…' (8,388,608 characters) is not a tenant "
        f"of account {subject.account_id}"
    )
    assert ack.ByteSize() < 1000
