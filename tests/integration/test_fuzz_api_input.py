"""Property tests of what enters through the API (issue 12, point 11 for points 2, 4, 5, 6):
random page tokens, period labels, custom terms and long strings get a clear status, never
UNKNOWN or INTERNAL, and nothing an error says is as big as what was sent."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_svc.domain.periods import Period
from tests.integration.test_api_input import (  # noqa: F401  (fixtures)
    PAGED,
    Paged,
    paged,
    subject,
)
from tests.integration.test_bad_input import UNARY, messages
from tests.integration.test_usage import PRODUCER, Shop, ts
from tests.support import ADMIN, Client, bad_request_fields

INT64 = (-(2**63), 2**63 - 1)
CLEAR = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.ALREADY_EXISTS,
}
FUZZ = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def now() -> datetime:
    return datetime.now(UTC)


def outcome(call, request, metadata=ADMIN) -> tuple[grpc.StatusCode, grpc.RpcError | None]:  # type: ignore[no-untyped-def]
    try:
        call(request, metadata=metadata, timeout=30)
        return grpc.StatusCode.OK, None
    except grpc.RpcError as error:
        assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (
            request,
            error.details(),
        )
        assert len(error.details() or "") < 1000, error.details()
        trailers = sum(len(k) + len(v) for k, v in error.trailing_metadata() or ())
        assert trailers < 2000
        return error.code(), error


# ---------------------------------------------------------------------------------------------
# Page tokens


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(*INT64)
    | st.integers()
    | st.floats()
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _mutated(token: str) -> st.SearchStrategy[str]:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
    edits = st.lists(
        st.tuples(st.integers(0, len(token) - 1), st.sampled_from(alphabet)), min_size=1, max_size=4
    )

    def apply(changes: list[tuple[int, str]]) -> str:
        chars = list(token)
        for at, char in changes:
            chars[at] = char
        return "".join(chars)

    return (
        edits.map(apply)
        | st.integers(1, len(token) - 1).map(lambda n: token[:n])
        | st.text(alphabet, min_size=1, max_size=8).map(lambda tail: token + tail)
    )


@pytest.mark.parametrize("method", PAGED)
def test_random_page_tokens_are_invalid_naming_page_token(
    paged: dict[str, Paged],  # noqa: F811
    method: str,
) -> None:
    page = paged[method].page
    real = page("", False).next_page_token  # type: ignore[attr-defined]

    @settings(FUZZ, max_examples=40)
    @given(
        st.text(max_size=300)
        | st.binary(max_size=200).map(_b64)
        | _JSON.map(lambda value: _b64(json.dumps(value).encode()))
        | _mutated(real)
    )
    def run(token: str) -> None:
        if token in ("", real):
            return
        code, error = outcome(lambda request, **kw: page(request, False), token)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, token
        assert bad_request_fields(error) == ["page_token"]  # type: ignore[arg-type]

    run()


# ---------------------------------------------------------------------------------------------
# Period labels


_LABELISH = (
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}\Z")
    | st.from_regex(r"\d{4}-\d{2}\s?")
    | st.text(max_size=12)
)


def test_random_period_labels_parse_only_when_ascii_yyyy_mm(subject: Shop) -> None:  # noqa: F811
    billing = subject.client.billing

    @settings(FUZZ, max_examples=60)
    @given(
        _LABELISH,
        st.sampled_from(["ComparePlans", "GetCostAllocation", "ListInvoices", "ReconcilePeriod"]),
    )
    def run(label: str, method: str) -> None:
        request = getattr(pb, f"{method}Request")(account_id=subject.account_id, period=label)
        code, error = outcome(getattr(billing, method), request)
        accepted = code != grpc.StatusCode.INVALID_ARGUMENT
        if method == "ListInvoices" and not label:
            return  # no period filter
        if accepted:
            assert re.fullmatch(r"[0-9]{4}-[0-9]{2}", label, re.ASCII), (label, code)
        else:
            assert bad_request_fields(error) == ["period"]  # type: ignore[arg-type]
            if re.fullmatch(r"[0-9]{4}-[0-9]{2}", label, re.ASCII):
                year, month = int(label[:4]), int(label[5:])
                assert (
                    not (1970 <= year <= 9998 and 1 <= month <= 12)
                    or "has not started yet" in error.details()
                ), label  # type: ignore[union-attr]

    run()


# ---------------------------------------------------------------------------------------------
# Custom terms


def _money() -> st.SearchStrategy[common_pb2.Money]:
    units = st.integers(*INT64) | st.integers(0, 10**10) | st.sampled_from([0, 1, 10**9, 10**6])
    nanos = st.integers(-(2**31), 2**31 - 1) | st.integers(0, 999_999_999) | st.just(0)
    return st.builds(
        lambda u, n: common_pb2.Money(currency_code="USD", units=u, nanos=n), units, nanos
    )


_STORAGE_GB = st.sampled_from(
    [
        "",
        "0",
        "5",
        "1e400",
        "NaN",
        "-Infinity",
        "sNaN",
        "-0",
        "1E+13",
        "10000000000000",
        "10000000000001",
        "0.0000001",
        "2.5",
        " 7 ",
        "1e-7",
        "x",
    ]
) | st.decimals(allow_nan=True).map(str)


@st.composite
def custom_terms(draw: st.DrawFn) -> pb.CustomTerms:
    terms = pb.CustomTerms()
    for name in ("base_fee", "tenant_overage", "message_overage", "storage_overage_per_gb"):
        if draw(st.booleans()):
            getattr(terms, name).CopyFrom(draw(_money()))
    for name in ("included_tenants", "included_master_partners", "included_messages"):
        if draw(st.booleans()):
            setattr(terms, name, draw(st.integers(*INT64) | st.integers(0, 10**7)))
    if draw(st.booleans()):
        terms.included_storage_gb = draw(_STORAGE_GB)
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3, 12]))):
        tier = terms.message_tiers.add(
            up_to_messages=draw(st.integers(*INT64) | st.integers(0, 10**7))
        )
        tier.unit_price.CopyFrom(draw(_money()))
    return terms


@pytest.fixture(scope="module")
def client_for_terms(server) -> Iterator[Client]:  # type: ignore[no-untyped-def]
    client = Client(server.target)
    yield client
    client.close()


def test_random_custom_terms_are_refused_or_rated_never_internal(client_for_terms: Client) -> None:
    client = client_for_terms
    previous = Period.containing(now()).previous()
    rated = []

    @settings(FUZZ, max_examples=30)
    @given(custom_terms())
    def run(terms: pb.CustomTerms) -> None:
        shop = Shop(client, plan_id="custom", skip_trial=True, start_time=ts(previous.start))
        at = now() - timedelta(minutes=1)
        shop.record(
            [
                shop.message("m", 2_000_000, at=at),
                shop.storage("s", 900, at=at),
                shop.message("p", 1_000_000, at=previous.start + timedelta(days=3)),
            ]
        )
        code, error = outcome(
            client.billing.SetCustomTerms,
            pb.SetCustomTermsRequest(account_id=shop.account_id, terms=terms),
        )
        if code != grpc.StatusCode.OK:
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            (field,) = bad_request_fields(error)  # type: ignore[arg-type]
            assert field.startswith("terms."), field
            return
        account_id = shop.account_id
        for call, request in [
            (client.usage.GetCurrentUsage, upb.GetCurrentUsageRequest(account_id=account_id)),
            (client.billing.GetAccountBilling, pb.GetAccountBillingRequest(account_id=account_id)),
            (
                client.billing.GetCostAllocation,
                pb.GetCostAllocationRequest(account_id=account_id, period=previous.label),
            ),
            (
                client.billing.CloseBillingPeriod,
                pb.CloseBillingPeriodRequest(account_id=account_id, period=previous.label),
            ),
        ]:
            code, _ = outcome(call, request)
            assert code in (grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION)
        rated.append(terms)

    run()
    assert rated  # some random terms were valid, and rated


# ---------------------------------------------------------------------------------------------
# Long strings, in every field of every unary RPC


def _string_fields(request: object) -> list[str]:
    return [
        f.name
        for f in request.DESCRIPTOR.fields  # type: ignore[attr-defined]
        if f.type == FieldDescriptor.TYPE_STRING and not f.is_repeated
    ]


@pytest.mark.parametrize("method", UNARY, ids=lambda m: m.name)
def test_long_strings_anywhere_get_a_clear_short_answer(
    method: MethodDescriptor,
    subject: Shop,  # noqa: F811
) -> None:
    client = subject.client
    stub = client.billing if method.containing_service.name == "BillingService" else client.usage
    call = getattr(stub, method.name)
    long_text = st.integers(100, 30_000).map(lambda n: "x" * n) | st.text(
        min_size=100, max_size=2000
    )

    @settings(FUZZ, max_examples=6)
    @given(messages(method.input_type), st.data())
    def run(request: object, data: st.DataObject) -> None:
        for name in _string_fields(request):
            if data.draw(st.booleans()):
                setattr(request, name, data.draw(long_text))
        if method.name == "RecordUsage":
            return  # events are checked one by one: see test_api_input
        metadata = ADMIN if method.name != "StreamUsage" else PRODUCER
        code, _ = outcome(call, request, metadata)
        assert code in CLEAR | {grpc.StatusCode.UNAUTHENTICATED}, (method.name, code)

    run()


# ---------------------------------------------------------------------------------------------
# Resume tokens (ListUsageReports names its cursor resume_token, so PAGED does not cover it)


def test_random_resume_tokens_are_invalid_naming_resume_token(subject: Shop) -> None:  # noqa: F811
    client = subject.client
    other = Shop(client)

    def reports(account_id: str, token: str) -> upb.ListUsageReportsResponse:
        return client.usage.ListUsageReports(
            upb.ListUsageReportsRequest(account_id=account_id, page_size=1, resume_token=token),
            metadata=ADMIN,
        )

    real = reports(subject.account_id, "").resume_token
    foreign = reports(other.account_id, "").resume_token

    @settings(FUZZ, max_examples=40)
    @given(
        st.text(max_size=300)
        | st.binary(max_size=200).map(_b64)
        | _JSON.map(lambda value: _b64(json.dumps(value).encode()))
        | _mutated(real)
        | st.just(foreign)
    )
    def run(token: str) -> None:
        if token in ("", real):
            return
        code, error = outcome(lambda request, **kw: reports(subject.account_id, request), token)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, token
        assert bad_request_fields(error) == ["resume_token"]  # type: ignore[arg-type]

    run()
