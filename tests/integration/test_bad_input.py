"""Random and malformed requests to every RPC: a clear status, never UNKNOWN or INTERNAL, and the
service keeps serving (issue 7, bad input at scale)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2, usage_service_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_svc.storage.tables import AuditHead
from tests.integration.test_usage import Shop
from tests.support import (
    ADMIN,
    WRITER,
    Client,
    ServerThread,
    fresh_database,
    settings_for_tests,
)

F = FieldDescriptor
_INTS = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
}
_IDS: list[str] = ["", "acc_missing", "x" * 300]
_WORDS = [
    "",
    "startup",
    "business",
    "custom",
    "2024-01",
    "2024-13",
    "9999-12",
    "USD",
    "EUR",
    "card",
    "4242",
    "https://example.com/hook",
    "http://127.0.0.1:1/x",
    "billing.*",
]

UNARY = [
    m
    for module in (billing_service_pb2, usage_service_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for m in service.methods
    if not (m.client_streaming or m.server_streaming)
]


def _scalar(field: FieldDescriptor) -> st.SearchStrategy:
    if field.type == F.TYPE_STRING:
        base = st.sampled_from(_IDS if field.name.endswith("_id") else _WORDS)
        return base | st.text(max_size=40)
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    if field.type == F.TYPE_ENUM:
        return st.integers(-3, 12)
    if field.type in _INTS:
        low, high = _INTS[field.type]
        return st.integers(low, high) | st.integers(-5, 13_000)
    if field.type == F.TYPE_BYTES:
        return st.binary(max_size=20)
    return st.floats(allow_nan=False)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy:
    cls = message_factory.GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy] = {}
    for field in descriptor.fields:
        if field.type == F.TYPE_MESSAGE:
            if depth >= 2:
                continue
            value = messages(field.message_type, depth + 1)
        else:
            value = _scalar(field)
        repeated = field.is_repeated
        fields[field.name] = st.lists(value, max_size=3) if repeated else value

    def build(values: dict) -> object:
        message = cls()
        for name, value in values.items():
            field = descriptor.fields_by_name[name]
            target = getattr(message, name)
            if field.is_repeated:
                if field.type == F.TYPE_MESSAGE:
                    for item in value:
                        target.add().CopyFrom(item)
                else:
                    target.extend(value)
            elif field.type == F.TYPE_MESSAGE:
                target.CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries({}, optional=fields).map(build)


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A server of its own whose periodic jobs never run during the test: every audit record
    written is then the doing of a request."""
    with fresh_database(str(tmp_path_factory.mktemp("fuzz"))) as url:
        running = ServerThread(settings_for_tests(url, scheduler_interval_seconds=3600)).start()
        yield running
        running.stop()


@pytest.fixture(scope="module")
def fuzz_client(quiet_server: ServerThread) -> Iterator[Client]:
    client = Client(quiet_server.target)
    yield client
    client.close()


@pytest.fixture(scope="module")
def real_ids(fuzz_client: Client) -> list[str]:
    shop = Shop(fuzz_client)
    # Change requests held for a decision, asked for by another caller than the fuzzer's: random
    # approvals and rejections of real ones reach the decision, not only the lookup.
    fuzz_client.billing.SetApprovalPolicy(
        billing_service_pb2.SetApprovalPolicyRequest(
            account_id=shop.account_id,
            policy=billing_service_pb2.ApprovalPolicy(upgrades=True, cancellations=True),
        ),
        metadata=ADMIN,
    )
    held = [
        fuzz_client.billing.ChangePlan(
            billing_service_pb2.ChangePlanRequest(account_id=shop.account_id, plan_id="business"),
            metadata=WRITER,
        ).change_request,
        fuzz_client.billing.CancelSubscription(
            billing_service_pb2.CancelSubscriptionRequest(account_id=shop.account_id),
            metadata=WRITER,
        ).change_request,
    ]
    assert all(h.change_request_id for h in held)
    _IDS.extend(
        [shop.account_id, *shop.tenants, *shop.partners, *(h.change_request_id for h in held)]
    )
    return _IDS


def _audit_length(server: ServerThread) -> int:
    with server.db.read() as session:
        head = session.get(AuditHead, 1)
        return head.sequence if head else 0


# A refused master partner is audited on purpose (spec §1.7); nothing else that fails may write.
_FAILURES_THAT_WRITE = {("CreateMasterPartner", grpc.StatusCode.FAILED_PRECONDITION)}


@pytest.mark.parametrize("method", UNARY, ids=lambda m: m.name)
def test_random_requests_get_a_clear_status_and_failures_write_nothing(
    method: MethodDescriptor, fuzz_client: Client, quiet_server: ServerThread, real_ids: list[str]
) -> None:
    client = fuzz_client
    stub = client.billing if method.containing_service.name == "BillingService" else client.usage
    call = getattr(stub, method.name)

    @settings(
        max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(messages(method.input_type))
    def run(request: object) -> None:
        before = _audit_length(quiet_server)
        try:
            call(request, metadata=ADMIN, timeout=20)
        except grpc.RpcError as error:
            assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (
                method.name,
                request,
                error.details(),
            )
            assert "Traceback" not in (error.details() or "")
            if (method.name, error.code()) not in _FAILURES_THAT_WRITE:
                assert _audit_length(quiet_server) == before, (method.name, request)

    run()


def test_random_usage_streams_get_acks_or_a_clear_status(
    fuzz_client: Client, real_ids: list[str]
) -> None:
    client = fuzz_client

    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.lists(messages(usage_service_pb2.StreamUsageRequest.DESCRIPTOR), max_size=4))
    def run(requests: list) -> None:
        try:
            acks = list(client.usage.StreamUsage(iter(requests), metadata=ADMIN, timeout=20))
            assert len(acks) == len(requests)
        except grpc.RpcError as error:
            assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (
                requests,
                error.details(),
            )

    run()
    # still serving
    assert client.billing.ListPlans(billing_service_pb2.ListPlansRequest(), metadata=ADMIN).plans
