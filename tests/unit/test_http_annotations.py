"""The read RPCs carry ``google.api.http`` GET rules (issue 17, point 6), so a standard transcoder
(Envoy's grpc_json_transcoder, grpc-gateway) can put them on HTTP; the seed's two calls are left
to the REST port (``api/rest.py``), which answers them in the seed's own JSON."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from as2aas.billing.v1 import billing_service_pb2, usage_service_pb2
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

from billing_svc.api.auth import METHOD_SCOPES

ROOT = Path(__file__).resolve().parent.parent.parent
SERVICES = [
    billing_service_pb2.DESCRIPTOR.services_by_name["BillingService"],
    usage_service_pb2.DESCRIPTOR.services_by_name["UsageService"],
]
# Served by BILLING_HTTP_LISTEN at these paths, in the seed's JSON rather than gRPC-JSON.
SEED_CALLS = {
    "/as2aas.billing.v1.BillingService/GetAccountBilling",
    "/as2aas.billing.v1.UsageService/GetCurrentUsage",
}
READ_SCOPES = {"billing:read", "usage:read"}
READS_OF_ADMIN = {"/as2aas.billing.v1.BillingService/ListAuditEvents"}


def _rules() -> dict[str, tuple[str, object]]:
    rules = {}
    for service in SERVICES:
        for method in service.methods:
            options = descriptor_pb2.MethodOptions.FromString(
                method.GetOptions().SerializeToString()
            )
            if options.HasExtension(annotations_pb2.http):
                rules[f"/{service.full_name}/{method.name}"] = (
                    options.Extensions[annotations_pb2.http].get,
                    method.input_type,
                )
    return rules


def test_every_read_rpc_but_the_seeds_two_has_a_get_rule() -> None:
    reads = {name for name, scope in METHOD_SCOPES.items() if scope in READ_SCOPES}
    assert set(_rules()) == (reads | READS_OF_ADMIN) - SEED_CALLS
    assert all(path for path, _ in _rules().values())  # GET rules only: reads change nothing


def test_path_variables_are_singular_fields_of_the_request_and_paths_are_unique() -> None:
    seen: dict[str, str] = {}
    for name, (path, request) in _rules().items():
        assert path.startswith("/v1/"), name
        for variable in re.findall(r"\{([^}]+)\}", path):
            field = request.fields_by_name.get(variable)
            assert field is not None, f"{name}: {variable} is not a field of {request.name}"
            assert not field.is_repeated
            assert field.type != FieldDescriptor.TYPE_MESSAGE
        shape = re.sub(r"\{[^}]+\}", "*", path)
        assert shape not in seen, f"{name} and {seen[shape]} share {path}"
        seen[shape] = name
    assert not {"/v1/accounts/*/billing", "/v1/billing/usage/current"} & set(seen)


def test_the_vendored_google_api_files_are_the_packages_own() -> None:
    installed = resources.files("google.api")
    for name in ("annotations.proto", "http.proto"):
        vendored = ROOT / "third_party" / "googleapis" / "google" / "api" / name
        assert vendored.read_text() == (installed / name).read_text(), name
