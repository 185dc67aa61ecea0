"""AIP-155 request ids: remember what a create made so a retry returns the same resource.

A key belongs to its caller (the token's id): the same ``request_id`` from two callers is two
requests, and nothing about one caller's keys reaches another, not even in an error message."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from billing_svc.domain.errors import InvalidArgument
from billing_svc.storage.db import clock_of
from billing_svc.storage.tables import IdempotencyRecord


@dataclass(frozen=True)
class IdempotencyKey:
    """``method`` + the caller's ``request_id``; ``fingerprint`` hashes the rest of the request."""

    method: str
    request_id: str
    fingerprint: str


def find(session: Session, key: IdempotencyKey, token_id: str) -> str | None:
    """The id of what the first call with this key by the caller ``token_id`` made, or ``None``
    for a first call."""
    record = session.get(IdempotencyRecord, (token_id, key.method, key.request_id))
    if record is None:
        return None
    if record.fingerprint != key.fingerprint:
        raise InvalidArgument(
            "request_id",
            f"{key.request_id!r} was already used for a {key.method} with different parameters; "
            "use a new request_id for a new request",
        )
    return record.result_id


def remember(
    session: Session, key: IdempotencyKey, *, token_id: str, caller: str, result_id: str
) -> None:
    session.add(
        IdempotencyRecord(
            token_id=token_id,
            method=key.method,
            request_id=key.request_id,
            caller=caller,
            fingerprint=key.fingerprint,
            result_id=result_id,
            created_at=clock_of(session).now(),
        )
    )
