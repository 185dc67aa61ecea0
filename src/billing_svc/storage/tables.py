"""Every table of billing-svc, in one place (SQLModel).

Money columns are ``ExactDecimal``, time columns ``UTCDateTime`` and list columns ``TextList``
or ``IntList`` (see ``types.py``). Schema
changes go through Alembic (``migrations/``): edit here, then add a revision.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from billing_svc.storage.types import MONEY, ExactDecimal, IntList, TextList, UTCDateTime

__all__ = [
    "Account",
    "ApiToken",
    "ApprovalPolicy",
    "AuditHead",
    "AuditRecord",
    "ChangeRequest",
    "IdempotencyRecord",
    "MasterPartner",
    "OutboxEvent",
    "PeriodNotice",
    "PlanSegment",
    "RetentionState",
    "Tenant",
    "TestClock",
    "UsagePurgedPeriod",
]

_ACCOUNT_FK = "account.account_id"


class Account(SQLModel, table=True):
    """The billing entity: one subscription, one payment method, one invoice per period."""

    account_id: str = Field(primary_key=True, max_length=40)
    customer_id: str = Field(unique=True, max_length=40)
    subscription_id: str = Field(unique=True, max_length=40)
    name: str = Field(max_length=200)
    plan_id: str = Field(max_length=40)
    billing_interval: str = Field(max_length=10)
    status: str = Field(max_length=20, index=True)
    # When the account started (start_time for imports); periods before it are not billed.
    created_at: datetime = Field(sa_type=UTCDateTime)
    # When billing-svc first stored it; periods that ended before are never closed automatically.
    registered_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    trial_ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    pending_plan_id: str | None = Field(default=None, max_length=40)
    pending_billing_interval: str | None = Field(default=None, max_length=10)
    pending_effective_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    payment_method_type: str | None = Field(default=None, max_length=30)
    payment_last4: str | None = Field(default=None, max_length=4)
    payment_exp_month: int | None = None
    payment_exp_year: int | None = None
    usage_thresholds: tuple[int, ...] = Field(
        default=(75, 90, 100), sa_column=Column(IntList(), nullable=False)
    )
    custom_terms_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Set at creation, never changed: the account lives on this test clock's time (sandbox).
    test_clock_id: str | None = Field(default=None, max_length=40, index=True)


class PlanSegment(SQLModel, table=True):
    """The plan in force from ``effective_at`` until the next segment: the basis of proration."""

    __tablename__ = "plan_segment"
    __table_args__ = (Index("ix_plan_segment_account_time", "account_id", "effective_at"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(sa_column=Column(ForeignKey(_ACCOUNT_FK), nullable=False))
    plan_id: str = Field(max_length=40)
    billing_interval: str = Field(max_length=10)
    effective_at: datetime = Field(sa_type=UTCDateTime)


class Tenant(SQLModel, table=True):
    """A usage source of one account."""

    tenant_id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(sa_column=Column(ForeignKey(_ACCOUNT_FK), nullable=False, index=True))
    name: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)


class MasterPartner(SQLModel, table=True):
    """A trading partner shared by all tenants of an account, with a cost-allocation department."""

    __tablename__ = "master_partner"

    partner_id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(sa_column=Column(ForeignKey(_ACCOUNT_FK), nullable=False, index=True))
    name: str = Field(max_length=200)
    department: str = Field(default="", max_length=100)
    created_at: datetime = Field(sa_type=UTCDateTime)


# ---------------------------------------------------------------------------------------------
# Usage: raw events are the source of truth; the counters and roll-ups below are updated in the
# same transaction and serve every read. Times on the hot path are integer microseconds (UTC
# epoch): exact, compact and as fast to bind as an integer.


class UsageEvent(SQLModel, table=True):
    """One accepted usage event: its columns. The key below is the exactly-once guarantee as the
    foundation made it; the migrations made each database's own layout since: PostgreSQL's
    partitions with a key table (0016, storage.partitions), SQLite's append-only log keyed by
    ``log_id`` with the key in the writer's index (0017, storage.event_index). Queries name
    columns, never the key."""

    __tablename__ = "usage_event"
    # No secondary index on the events: every insert pays for each one (SQLite's partial index
    # of storage readings is 0017's).
    __table_args__ = ({"sqlite_with_rowid": False},)

    account_id: str = Field(primary_key=True, max_length=40)
    event_id: str = Field(primary_key=True, max_length=128)
    tenant_id: str = Field(max_length=40)
    partner_id: str = Field(default="", max_length=40)
    kind: int  # 1 = message, 2 = storage (UsageKind)
    quantity: int = Field(sa_column=Column(BigInteger, nullable=False))
    occurred_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    period: str = Field(max_length=7)
    late: bool = False
    received_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class UsagePeriod(SQLModel, table=True):
    """Per account and period: message totals, and late messages not yet billed."""

    __tablename__ = "usage_period"

    account_id: str = Field(primary_key=True, max_length=40)
    period: str = Field(primary_key=True, max_length=7)
    messages: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    late_messages: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    late_billed_messages: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class UsageTenantPeriod(SQLModel, table=True):
    """Per tenant and period: messages, and storage byte-microseconds accumulated up to the tenant's
    latest storage reading (see ``StorageLevel``)."""

    __tablename__ = "usage_tenant_period"

    account_id: str = Field(primary_key=True, max_length=40)
    period: str = Field(primary_key=True, max_length=7)
    tenant_id: str = Field(primary_key=True, max_length=40)
    messages: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    storage_byte_us: Decimal = Field(
        default=Decimal(0), sa_column=Column(ExactDecimal(38, 0), nullable=False)
    )


class UsagePartnerPeriod(SQLModel, table=True):
    """Per master partner and period: messages (for the partner breakdown and cost allocation)."""

    __tablename__ = "usage_partner_period"

    account_id: str = Field(primary_key=True, max_length=40)
    period: str = Field(primary_key=True, max_length=7)
    partner_id: str = Field(primary_key=True, max_length=40)
    messages: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class UsageHourly(SQLModel, table=True):
    """Hourly roll-up by tenant, partner and kind (history and trends)."""

    __tablename__ = "usage_hourly"

    account_id: str = Field(primary_key=True, max_length=40)
    hour_us: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    tenant_id: str = Field(primary_key=True, max_length=40)
    partner_id: str = Field(primary_key=True, max_length=40)
    kind: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    messages: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    storage_bytes_max: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    # The hour's latest storage reading (by occurred_at): the level held at the hour's end, which
    # the hourly reports send. 0/0 on message rows.
    storage_last_at_us: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    storage_bytes_last: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )


class StorageLevel(SQLModel, table=True):
    """Each tenant's latest storage gauge reading: it holds until the next one."""

    __tablename__ = "storage_level"

    account_id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(primary_key=True, max_length=40)
    level_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    reading_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))


# ---------------------------------------------------------------------------------------------
# Hourly usage reports to billing systems (services/hourly_reports.py)


class UsageReportDue(SQLModel, table=True):
    """An (account, hour) whose roll-ups changed since its last report: ingestion marks it in
    its transaction, the report job takes it (``FOR UPDATE SKIP LOCKED``) once the hour closed."""

    __tablename__ = "usage_report_due"

    account_id: str = Field(primary_key=True, max_length=40)
    hour_us: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    marked_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class UsageReport(SQLModel, table=True):
    """One revision of one account's hour as reported: message deltas since the previous
    revision, storage levels at the hour's end as known when it was made."""

    __tablename__ = "usage_report"
    __table_args__ = (
        UniqueConstraint("account_id", "hour_us", "revision"),
        Index("ix_usage_report_account_sequence", "account_id", "sequence"),
    )

    # Assigned under the usage_report_head lock: commit order, so a cursor on it skips nothing.
    sequence: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    account_id: str = Field(max_length=40)
    hour_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    revision: int
    period: str = Field(max_length=7)
    # [[tenant_id, messages delta, storage bytes at the hour's end], ...] by tenant_id.
    tenants_json: str = Field(sa_column=Column(Text, nullable=False))
    # [[partner_id, messages delta], ...] by partner_id.
    partners_json: str = Field(sa_column=Column(Text, nullable=False))
    # The hour's totals as of this revision: the next revision's deltas are taken against them.
    totals_json: str = Field(sa_column=Column(Text, nullable=False))
    estimated_charges: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)


class UsageReportHead(SQLModel, table=True):
    """The last report sequence given out, one row: locking it orders reports across replicas."""

    __tablename__ = "usage_report_head"

    id: int = Field(default=1, primary_key=True)
    sequence: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


# ---------------------------------------------------------------------------------------------
# Invoices


class Invoice(SQLModel, table=True):
    """One consolidated invoice per account and period, ever (the unique key guarantees it)."""

    __table_args__ = (UniqueConstraint("account_id", "period"),)

    invoice_id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(sa_column=Column(ForeignKey(_ACCOUNT_FK), nullable=False, index=True))
    period: str = Field(max_length=7)
    status: str = Field(max_length=20, index=True)
    currency_code: str = Field(default="USD", max_length=3)
    subtotal: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    total: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    amount_paid: Decimal = Field(default=Decimal(0), sa_column=Column(MONEY, nullable=False))
    lines_json: str = Field(sa_column=Column(Text, nullable=False))
    tenant_breakdown_json: str = Field(sa_column=Column(Text, nullable=False))
    issued_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    paid_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_payment_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    failed_attempts: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime)


class AccountCredit(SQLModel, table=True):
    """An amount granted to an account (admin, audited), taken off its next invoices until used
    up: ``remaining`` falls as invoices draw on it, oldest credit first."""

    __tablename__ = "account_credit"

    credit_id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(sa_column=Column(ForeignKey(_ACCOUNT_FK), nullable=False, index=True))
    amount: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    remaining: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    description: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)


class Budget(SQLModel, table=True):
    """A named monthly spending limit of an account, with alert thresholds in percent."""

    account_id: str = Field(sa_column=Column(ForeignKey(_ACCOUNT_FK), primary_key=True))
    name: str = Field(primary_key=True, max_length=100)
    limit_amount: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    thresholds: tuple[int, ...] = Field(
        default=(75, 90, 100), sa_column=Column(IntList(), nullable=False)
    )
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class IdempotencyRecord(SQLModel, table=True):
    """AIP-155 request ids: a retried create returns the resource the first call made."""

    __tablename__ = "idempotency_record"
    # The purge takes the oldest first (BILLING_IDEMPOTENCY_RETENTION_DAYS).
    __table_args__ = (Index("ix_idempotency_record_created", "created_at"),)

    # The caller's token id (``Caller.token_id``): keys of different callers never meet.
    token_id: str = Field(primary_key=True, max_length=40)
    method: str = Field(primary_key=True, max_length=60)
    request_id: str = Field(primary_key=True, max_length=100)
    caller: str = Field(max_length=100)
    fingerprint: str = Field(max_length=64)
    result_id: str = Field(max_length=60)
    created_at: datetime = Field(sa_type=UTCDateTime)


class OutboxEvent(SQLModel, table=True):
    """A ``billing.*`` event, written in the same transaction as the change that caused it."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        Index("ix_outbox_event_account_created", "account_id", "created_at"),
        # The purge takes the oldest first (BILLING_WEBHOOK_LOG_RETENTION_DAYS).
        Index("ix_outbox_event_created", "created_at"),
    )

    event_id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(max_length=40)
    type: str = Field(max_length=60)
    # The exact JSON body sent to endpoints: {"type", "timestamp", "data"}.
    body: str = Field(sa_column=Column(Text, nullable=False))
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    # When the dispatcher has fanned it out to the endpoints' delivery queues.
    fanned_out: bool = Field(default=False, index=True)


class AuditRecord(SQLModel, table=True):
    """One change of billing state; hash-chained to its predecessor (spec §1.8)."""

    __tablename__ = "audit_record"
    __table_args__ = (Index("ix_audit_record_account_seq", "account_id", "sequence"),)

    sequence: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    account_id: str = Field(default="", max_length=40)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=60, index=True)
    before_json: str = Field(sa_column=Column(Text, nullable=False))
    after_json: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(sa_type=UTCDateTime)
    request_id: str = Field(default="", max_length=100)
    previous_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The chain's tip, one row: locking it serializes appends across replicas."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    sequence: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    hash: str = Field(max_length=64)


class ApiToken(SQLModel, table=True):
    """Bearer tokens kept by the service itself (only their SHA-256 is stored). A revoked token's
    row stays (the service can say it was revoked) until its name is given to a new token."""

    __tablename__ = "api_token"
    __table_args__ = (
        UniqueConstraint("token_sha256"),
        UniqueConstraint("token_id", name="uq_api_token_token_id"),
    )

    name: str = Field(primary_key=True, max_length=100)
    token_sha256: str = Field(max_length=64)
    scopes: tuple[str, ...] = Field(sa_column=Column(TextList(), nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)
    token_id: str = Field(max_length=40)  # the caller's stable id (``tok_...``)
    account_id: str | None = Field(default=None, max_length=40)  # bound to this account
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PeriodNotice(SQLModel, table=True):
    """A once-per-period notice (threshold, limit, budget alert) already sent: its claimed key."""

    __tablename__ = "period_notice"

    account_id: str = Field(primary_key=True, max_length=40)
    period: str = Field(primary_key=True, max_length=7)
    notice_key: str = Field(primary_key=True, max_length=150)
    created_at: datetime = Field(sa_type=UTCDateTime)


# ---------------------------------------------------------------------------------------------
# Webhooks: endpoints, one delivery per event and subscribed endpoint, one row per HTTP attempt.


class WebhookEndpoint(SQLModel, table=True):
    """An account's HTTPS endpoint for ``billing.*`` events, with its signing secret(s)."""

    __tablename__ = "webhook_endpoint"

    endpoint_id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(sa_column=Column(ForeignKey(_ACCOUNT_FK), nullable=False, index=True))
    url: str = Field(max_length=2000)
    # Empty: every type but those an endpoint must name (domain.events.EXPLICIT_ONLY_TYPES).
    event_types: tuple[str, ...] = Field(default=(), sa_column=Column(TextList(), nullable=False))
    description: str = Field(default="", max_length=500)
    secret: str = Field(max_length=100)
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default="enabled", max_length=20)  # enabled, disabled, deleted
    failure_streak: int = 0
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_reason: str = Field(default="", max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)


class WebhookDelivery(SQLModel, table=True):
    """One event to one endpoint: its durable retry schedule and its lease."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
        Index("ix_webhook_delivery_event", "event_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=40)
    endpoint_id: str = Field(max_length=40)
    status: str = Field(default="pending", max_length=20)  # pending, delivered, failed, canceled
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    lease_owner: str | None = Field(default=None, max_length=60)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookAttempt(SQLModel, table=True):
    """One HTTP try of a delivery: when, the status code, how long, what went wrong."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (Index("ix_webhook_attempt_event", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int
    event_id: str = Field(max_length=40)
    endpoint_id: str = Field(max_length=40)
    attempt_number: int
    attempted_at: datetime = Field(sa_type=UTCDateTime)
    status_code: int = 0
    latency_ms: int = 0
    error: str = Field(default="", max_length=1000)
    response_body: str = Field(default="", sa_column=Column(Text, nullable=False))


# ---------------------------------------------------------------------------------------------
# Approvals: an account's policy, and the subscription changes it holds for a decision.


class ApprovalPolicy(SQLModel, table=True):
    """Which of the account's subscription changes wait for a second person (admin, audited)."""

    __tablename__ = "approval_policy"

    account_id: str = Field(sa_column=Column(ForeignKey(_ACCOUNT_FK), primary_key=True))
    upgrades: bool = False
    downgrades: bool = False
    cancellations: bool = False
    custom_terms: bool = False
    base_fee_above: Decimal | None = Field(default=None, sa_column=Column(MONEY, nullable=True))
    updated_at: datetime = Field(sa_type=UTCDateTime)


class ChangeRequest(SQLModel, table=True):
    """A held subscription change (``chg_...``): what was asked, by whom, and its decision."""

    __tablename__ = "change_request"
    __table_args__ = (
        Index("ix_change_request_account_status", "account_id", "status"),
        Index("ix_change_request_status_expires", "status", "expires_at"),
    )

    change_request_id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(sa_column=Column(ForeignKey(_ACCOUNT_FK), nullable=False))
    kind: str = Field(max_length=20)  # upgrade, downgrade, cancellation, custom_terms
    status: str = Field(max_length=20)  # pending, approved, rejected, expired
    # The change's parameters, as the direct call would take them (plan_id, at_period_end, ...).
    change_json: str = Field(sa_column=Column(Text, nullable=False))
    summary: str = Field(max_length=300)
    requested_by: str = Field(max_length=100)
    # The requester's token id: with the name, what "not the requester" is checked against.
    requested_by_token_id: str = Field(max_length=40)
    request_id: str = Field(default="", max_length=100)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    decided_by: str = Field(default="", max_length=100)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason: str = Field(default="", max_length=500)


# Retention (services.retention): what the purges have done, so that nothing purged comes back.


class RetentionState(SQLModel, table=True):
    """Named values of the purges: ``usage_horizon`` (no usage event older than it is accepted
    any more: its period may have been purged) and ``last_purge`` (the last complete run), in
    UTC epoch microseconds. The migration creates the horizon's row, so that ingestion always has
    a row to share-lock (PostgreSQL) and a purge's update of it waits for groups in flight."""

    __tablename__ = "retention_state"

    name: str = Field(primary_key=True, max_length=40)
    value_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = Field(sa_type=UTCDateTime)


class UsagePurgedPeriod(SQLModel, table=True):
    """An invoiced period whose raw usage events are (being) purged: written before the first
    delete, so ``ReconcilePeriod`` refuses it from then on; ``finished_at`` once all are gone."""

    __tablename__ = "usage_purged_period"

    account_id: str = Field(primary_key=True, max_length=40)
    period: str = Field(primary_key=True, max_length=7)
    horizon_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    events_deleted: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class TestClock(SQLModel, table=True):
    """A sandbox's own time: its accounts bill at ``frozen_time``, which moves only forward, by
    ``AdvanceTestClock`` (the scheduler replays an advance up to ``advancing_to``)."""

    __tablename__ = "test_clock"
    __test__ = False  # not a pytest test class, whatever its name

    test_clock_id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    frozen_time: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="ready", max_length=20, index=True)  # ready, advancing
    advancing_to: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
