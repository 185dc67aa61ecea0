"""Event bodies are exact; the audit chain catches alteration, deletion and reordering."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing_svc.domain.events import BillingEvent, encode_json, iso_utc
from billing_svc.storage.audit import GENESIS_HASH, record_hash, verify
from billing_svc.storage.tables import AuditHead, AuditRecord


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"amount": Decimal("842.00")}, '{"amount":842.00}'),
        ({"rate": Decimal("0.0075")}, '{"rate":0.0075}'),
        ({"big": Decimal("12345678901234567890.12")}, '{"big":12345678901234567890.12}'),
        ({"neg": Decimal("-1.5"), "n": [Decimal("1E+2")]}, '{"neg":-1.5,"n":[100]}'),
        ({"text": "a\u0000dec:1"}, '{"text":"a\\u0000dec:1"}'),
    ],
    ids=["cents", "sub-cent", "beyond-float", "negative-and-exponent", "marker-lookalike"],
)
def test_decimals_are_written_with_their_exact_digits(value: dict, text: str) -> None:
    assert encode_json(value) == text


def test_body_has_type_timestamp_and_data() -> None:
    event = BillingEvent(
        "billing.payment_succeeded",
        "acc_1",
        datetime(2024, 2, 1, 8, 30, tzinfo=UTC),
        {"invoice_id": "in_123", "amount_paid": Decimal("842.00")},
    )
    assert event.body() == (
        '{"type":"billing.payment_succeeded","timestamp":'
        '"2024-02-01T08:30:00Z","data":{"invoice_id":"in_123",'
        '"amount_paid":842.00}}'
    )
    assert json.loads(event.body())["data"]["invoice_id"] == "in_123"
    assert iso_utc(datetime(2024, 1, 1, 0, 0, 0, 1500, tzinfo=UTC)) == "2024-01-01T00:00:00.001Z"


def _chain(count: int) -> tuple[list[AuditRecord], AuditHead]:
    records, previous = [], GENESIS_HASH
    for sequence in range(1, count + 1):
        record = AuditRecord(
            sequence=sequence,
            account_id="acc_1",
            actor="writer",
            action="account.created",
            before_json="null",
            after_json=f'{{"n":{sequence}}}',
            at=datetime(2024, 1, 1, tzinfo=UTC),
            request_id="",
            previous_hash=previous,
            hash="",
        )
        record.hash = record_hash(record)
        previous = record.hash
        records.append(record)
    return records, AuditHead(id=1, sequence=count, hash=previous)


def test_an_intact_chain_verifies() -> None:
    records, head = _chain(5)
    assert verify(records, head) is None


def test_an_altered_record_is_named() -> None:
    records, head = _chain(5)
    records[2].after_json = '{"n":999}'
    found = verify(records, head)
    assert found is not None and found.sequence == 3 and "altered" in found.problem


def test_a_deleted_record_is_named() -> None:
    records, head = _chain(5)
    del records[1]
    found = verify(records, head)
    assert found is not None and found.sequence == 2 and "missing" in found.problem


def test_a_deleted_last_record_is_caught_by_the_head() -> None:
    records, head = _chain(5)
    found = verify(records[:-1], head)
    assert found is not None and found.sequence == 5


def test_a_rehashed_forgery_breaks_the_next_link() -> None:
    records, head = _chain(5)
    records[1].after_json = '{"n":"forged"}'
    records[1].hash = record_hash(records[1])
    found = verify(records, head)
    assert found is not None and found.sequence == 3 and "previous_hash" in found.problem
