"""The one place where billing-svc's errors become gRPC status codes.

Invalid input carries ``google.rpc.BadRequest`` details naming the field; an unexpected error is
logged with its traceback and reported as ``INTERNAL`` with the request id, never as ``UNKNOWN``.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from billing_svc.domain import errors

_CODES: dict[type[errors.BillingError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_code_of(error: errors.BillingError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.INTERNAL


def trailing_details(
    error: errors.BillingError, code: grpc.StatusCode
) -> tuple[tuple[str, str | bytes], ...]:
    """``grpc-status-details-bin`` trailers (google.rpc.Status) for errors that carry details."""
    if not isinstance(error, errors.InvalidArgument):
        return ()
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=error.field, description=error.description
            )
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    # grpc.StatusCode's value is (number, name); google.rpc.Code numbers are the same.
    status = status_pb2.Status(code=code.value[0], message=str(error), details=[detail])
    return rpc_status.to_status(status).trailing_metadata
