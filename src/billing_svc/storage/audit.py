"""The audit trail: append-only, hash-chained records of every change of billing state.

Each record holds the SHA-256 of its predecessor and of its own content, so an altered, deleted or
reordered record breaks the chain (``verify``). Appends lock the single ``audit_head`` row, which
orders them across threads and replicas; the record commits with the change it describes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from billing_svc.domain.events import encode_json, iso_utc
from billing_svc.storage.tables import AuditHead, AuditRecord

GENESIS_HASH = "0" * 64
_HEAD = "billing_svc.audit_head"


def record_hash(record: AuditRecord) -> str:
    """The SHA-256 of a record's content, including its predecessor's hash."""
    canonical = json.dumps(
        [
            record.sequence,
            record.account_id,
            record.actor,
            record.action,
            record.before_json,
            record.after_json,
            iso_utc(record.at),
            record.request_id,
            record.previous_hash,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    account_id: str,
    before: Any,
    after: Any,
    at: datetime,
    request_id: str = "",
) -> AuditRecord:
    """Append one record to the chain inside ``session``'s transaction.

    The head is locked and read once per transaction (kept in ``session.info``): a transaction
    that appends many records (the period closer) does not read it again for each.
    """
    head = session.info.get(_HEAD)
    if head is None:
        head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
        session.info[_HEAD] = head
    record = AuditRecord(
        sequence=head.sequence + 1,
        account_id=account_id,
        actor=actor,
        action=action,
        before_json=encode_json(before),
        after_json=encode_json(after),
        at=at,
        request_id=request_id,
        previous_hash=head.hash,
        hash="",
    )
    record.hash = record_hash(record)
    head.sequence = record.sequence
    head.hash = record.hash
    session.add(record)
    session.add(head)
    return record


@dataclass(frozen=True)
class ChainBreak:
    """The first record at which the chain does not hold, and how."""

    sequence: int
    problem: str


def verify(records: Iterable[AuditRecord], head: AuditHead | None) -> ChainBreak | None:
    """Walk records in sequence order; return the first break, or ``None`` if the chain holds."""
    expected_sequence = 1
    previous_hash = GENESIS_HASH
    for record in records:
        if record.sequence != expected_sequence:
            problem = (
                f"record {expected_sequence} is missing (deleted?)"
                if record.sequence > expected_sequence
                else "sequence out of order"
            )
            return ChainBreak(expected_sequence, problem)
        if record.previous_hash != previous_hash:
            return ChainBreak(record.sequence, "previous_hash does not match the record before it")
        if record_hash(record) != record.hash:
            return ChainBreak(record.sequence, "content was altered after it was written")
        previous_hash = record.hash
        expected_sequence += 1
    if head is not None and head.sequence != expected_sequence - 1:
        return ChainBreak(expected_sequence, "records at the end of the chain are missing")
    if head is not None and head.hash != previous_hash:
        return ChainBreak(expected_sequence - 1, "the chain's tip does not match its last record")
    return None
