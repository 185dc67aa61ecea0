"""What the use cases hand out: frozen values copied from table rows, never the rows.

A row is bound to the session that loaded it: read after its transaction, it shows what was
committed then, or lazy-loads behind the caller's back; changed by a caller, it might be written
by whoever flushes next. The servicers, the CLI and the scheduler get these values instead
(cosmicpython's ``views.py``, the FastAPI template's ``ItemPublic``), so nothing above the
service layer touches ``storage`` or the ORM.

Each view keeps its row's attribute names and types (``account.plan_id`` reads the same on
both), and is built from its row in one place, its ``from_row``. Functions inside the service
layer that take a ``Session`` (``load_account``, ``apply_plan_change``…) keep working on rows:
they are steps of a transaction the use case owns, and the use case copies what it returns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing_svc.storage import tables


def _columns(view: type[Any], row: object) -> dict[str, Any]:
    """The row's values of the view's fields: one copy rule for every view."""
    return {field.name: getattr(row, field.name) for field in dataclasses.fields(view)}


@dataclass(frozen=True)
class AccountView:
    """An account and its subscription, as stored."""

    account_id: str
    customer_id: str
    subscription_id: str
    name: str
    plan_id: str
    billing_interval: str
    status: str
    created_at: datetime
    registered_at: datetime
    updated_at: datetime
    trial_ends_at: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    pending_plan_id: str | None
    pending_billing_interval: str | None
    pending_effective_at: datetime | None
    payment_method_type: str | None
    payment_last4: str | None
    payment_exp_month: int | None
    payment_exp_year: int | None
    usage_thresholds: tuple[int, ...]  # percentages
    custom_terms_json: str | None
    test_clock_id: str | None

    @classmethod
    def from_row(cls, row: tables.Account) -> AccountView:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class TenantView:
    tenant_id: str
    account_id: str
    name: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: tables.Tenant) -> TenantView:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class MasterPartnerView:
    partner_id: str
    account_id: str
    name: str
    department: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: tables.MasterPartner) -> MasterPartnerView:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class InvoiceHeader:
    """An invoice's own fields; its lines and tenant breakdown are parsed beside it
    (``invoicing.InvoiceView``)."""

    invoice_id: str
    account_id: str
    period: str
    status: str
    currency_code: str
    subtotal: Decimal
    total: Decimal
    amount_paid: Decimal
    issued_at: datetime | None
    paid_at: datetime | None
    next_payment_attempt_at: datetime | None
    failed_attempts: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: tables.Invoice) -> InvoiceHeader:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class CreditView:
    credit_id: str
    account_id: str
    amount: Decimal
    remaining: Decimal
    description: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: tables.AccountCredit) -> CreditView:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class BudgetView:
    account_id: str
    name: str
    limit_amount: Decimal
    thresholds: tuple[int, ...]  # percentages
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: tables.Budget) -> BudgetView:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class AuditEventView:
    """One record of the hash-chained audit trail."""

    sequence: int
    account_id: str
    actor: str
    action: str
    before_json: str
    after_json: str
    at: datetime
    request_id: str
    previous_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: tables.AuditRecord) -> AuditEventView:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class WebhookEndpointView:
    """An endpoint with its current secret: the servicer shows it only when it is created."""

    endpoint_id: str
    account_id: str
    url: str
    event_types: tuple[str, ...]  # empty: every type but the explicit-only ones
    description: str
    secret: str
    previous_secret_expires_at: datetime | None
    status: str
    failure_streak: int
    failing_since: datetime | None
    disabled_reason: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: tables.WebhookEndpoint) -> WebhookEndpointView:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class WebhookEventView:
    """A ``billing.*`` event of the outbox, with the exact body its endpoints receive."""

    event_id: str
    account_id: str
    type: str
    body: str
    occurred_at: datetime
    created_at: datetime
    fanned_out: bool

    @classmethod
    def from_row(cls, row: tables.OutboxEvent) -> WebhookEventView:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class WebhookAttemptView:
    delivery_id: int
    event_id: str
    endpoint_id: str
    attempt_number: int
    attempted_at: datetime
    status_code: int
    latency_ms: int
    error: str

    @classmethod
    def from_row(cls, row: tables.WebhookAttempt) -> WebhookAttemptView:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class ChangeRequestView:
    """A held subscription change and its decision."""

    change_request_id: str
    account_id: str
    kind: str
    status: str
    change_json: str
    summary: str
    requested_by: str
    requested_by_token_id: str
    request_id: str
    created_at: datetime
    expires_at: datetime
    decided_by: str
    decided_at: datetime | None
    reason: str

    @classmethod
    def from_row(cls, row: tables.ChangeRequest) -> ChangeRequestView:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class TestClockView:
    __test__ = False  # not a pytest test class, whatever its name

    test_clock_id: str
    name: str
    frozen_time: datetime
    status: str
    advancing_to: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: tables.TestClock) -> TestClockView:
        return cls(**_columns(cls, row))
