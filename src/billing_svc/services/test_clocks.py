"""Test clocks: a sandbox's own time, so a platform team can live through months of billing in
seconds (issue 14).

An account created with a ``test_clock_id`` bills on that clock's ``frozen_time``: every call
about it runs at that time (the interceptor asks ``AccountClocks``), and its periodic jobs (trial
ends, period-end changes, period closes) run only when the clock is advanced, never in the
real-time run. An advance is replayed by the scheduler (``run_advances``), one due moment at a
time in time order, so events come out as if that time had passed.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from billing_svc.domain import subscriptions as subs
from billing_svc.domain.errors import FailedPrecondition, InvalidArgument, NotFound, shown
from billing_svc.domain.ids import new_id
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import from_us
from billing_svc.services.context import RequestContext, system_context
from billing_svc.services.views import TestClockView
from billing_svc.storage import audit, partitions
from billing_svc.storage.db import Database
from billing_svc.storage.tables import (
    Account,
    AccountCredit,
    ApprovalPolicy,
    Budget,
    ChangeRequest,
    IdempotencyRecord,
    Invoice,
    MasterPartner,
    OutboxEvent,
    PeriodNotice,
    PlanSegment,
    StorageLevel,
    Tenant,
    TestClock,
    UsageEvent,
    UsageHourly,
    UsagePartnerPeriod,
    UsagePeriod,
    UsagePurgedPeriod,
    UsageReport,
    UsageReportDue,
    UsageTenantPeriod,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

READY = "ready"
ADVANCING = "advancing"
MAX_NAME_LENGTH = 200
# One advance covers at most two calendar months (Stripe: two billing intervals): it stays a
# few seconds of work, and a runaway script cannot ask for a century.
MAX_ADVANCE_MONTHS = 2


def _name(value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument("name", "is required")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidArgument("name", f"is longer than {MAX_NAME_LENGTH} characters")
    return value


def _load(session: Session, test_clock_id: str, *, for_update: bool = False) -> TestClock:
    if not test_clock_id:
        raise InvalidArgument("test_clock_id", "is required")
    clock = session.get(TestClock, test_clock_id, with_for_update=for_update)
    if clock is None:
        raise NotFound(f"test clock {shown(test_clock_id)} does not exist")
    return clock


def _snapshot(clock: TestClock) -> dict[str, object]:
    return {
        "test_clock_id": clock.test_clock_id,
        "name": clock.name,
        "frozen_time": clock.frozen_time,
        "status": clock.status,
        "advancing_to": clock.advancing_to,
    }


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` ``months`` calendar months later, the day held to the month's last day."""
    index = moment.year * 12 + moment.month - 1 + months
    period = Period(index // 12, index % 12 + 1)
    last_day = (period.end - timedelta(days=1)).day
    return moment.replace(year=period.year, month=period.month, day=min(moment.day, last_day))


def create_test_clock(
    db: Database, ctx: RequestContext, *, name: str, frozen_time: datetime | None
) -> TestClockView:
    name = _name(name)
    if frozen_time is None:
        raise InvalidArgument("frozen_time", "is required: the time the clock starts at")
    with db.write() as session:
        clock = TestClock(
            test_clock_id=new_id("clock"),
            name=name,
            frozen_time=frozen_time,
            status=READY,
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        session.add(clock)
        audit.append(
            session,
            actor=ctx.caller.name,
            action="test_clock.created",
            account_id="",
            before=None,
            after=_snapshot(clock),
            at=ctx.now,
            request_id=ctx.request_id,
        )
        return TestClockView.from_row(clock)


def get_test_clock(db: Database, test_clock_id: str) -> TestClockView:
    with db.read() as session:
        return TestClockView.from_row(_load(session, test_clock_id))


def advance_test_clock(
    db: Database, ctx: RequestContext, *, test_clock_id: str, frozen_time: datetime | None
) -> TestClockView:
    """Mark the clock ``advancing`` to ``frozen_time``; the scheduler replays the advance."""
    if frozen_time is None:
        raise InvalidArgument("frozen_time", "is required: the time to advance the clock to")
    with db.write() as session:
        clock = _load(session, test_clock_id, for_update=True)
        if clock.status == ADVANCING:
            raise FailedPrecondition(
                f"test clock {test_clock_id} is still advancing to "
                f"{clock.advancing_to.isoformat() if clock.advancing_to else '?'}; wait until "
                "GetTestClock says STATUS_READY"
            )
        if frozen_time <= clock.frozen_time:
            raise InvalidArgument(
                "frozen_time",
                f"must be after the clock's time "
                f"({clock.frozen_time.isoformat()}): clocks only move forward",
            )
        bound = add_months(clock.frozen_time, MAX_ADVANCE_MONTHS)
        if frozen_time > bound:
            raise InvalidArgument(
                "frozen_time",
                f"is more than {MAX_ADVANCE_MONTHS} months after "
                f"the clock's time; advance to {bound.isoformat()} at most "
                "and then again",
            )
        before = _snapshot(clock)
        clock.status, clock.advancing_to, clock.updated_at = ADVANCING, frozen_time, ctx.now
        session.add(clock)
        audit.append(
            session,
            actor=ctx.caller.name,
            action="test_clock.advanced",
            account_id="",
            before=before,
            after=_snapshot(clock),
            at=ctx.now,
            request_id=ctx.request_id,
        )
        return TestClockView.from_row(clock)


# Every table holding an account's billing data, children first (foreign keys). The audit trail
# is not among them: its records stay, the chain is never cut.
# Every table of per-account data but the audit trail (kept), the account itself, the outbox and
# the webhook tables (deleted above, in their order) and tokens (an account-bound token of a
# deleted account acts on nothing); tests/unit/test_clock.py keeps this list complete.
_BY_ACCOUNT = (
    PlanSegment,
    Tenant,
    MasterPartner,
    UsageEvent,
    UsagePeriod,
    UsageTenantPeriod,
    UsagePartnerPeriod,
    UsageHourly,
    StorageLevel,
    UsageReportDue,
    UsageReport,
    UsagePurgedPeriod,
    Invoice,
    AccountCredit,
    Budget,
    PeriodNotice,
    ChangeRequest,
    ApprovalPolicy,
)


def delete_test_clock(db: Database, ctx: RequestContext, *, test_clock_id: str) -> int:
    """Delete the clock and its accounts' billing data; returns how many accounts went."""
    with db.write() as session:
        clock = _load(session, test_clock_id, for_update=True)
        if clock.status == ADVANCING:
            raise FailedPrecondition(
                f"test clock {test_clock_id} is advancing; delete it once "
                "GetTestClock says STATUS_READY"
            )
        account_ids: list[str] = list(
            session.exec(
                sm_select(Account.account_id).where(Account.test_clock_id == test_clock_id)
            ).all()
        )
        if account_ids:
            endpoints = select(col(WebhookEndpoint.endpoint_id)).where(
                col(WebhookEndpoint.account_id).in_(account_ids)
            )
            for table in (WebhookAttempt, WebhookDelivery):
                session.execute(delete(table).where(table.endpoint_id.in_(endpoints)))  # type: ignore[attr-defined]  # SQLModel column attribute
            session.execute(
                delete(WebhookEndpoint).where(col(WebhookEndpoint.account_id).in_(account_ids))
            )
            session.execute(delete(OutboxEvent).where(OutboxEvent.account_id.in_(account_ids)))  # type: ignore[attr-defined]  # SQLModel column attribute
            for by_account in _BY_ACCOUNT:
                session.execute(delete(by_account).where(by_account.account_id.in_(account_ids)))  # type: ignore[attr-defined]  # SQLModel column attribute
            partitions.delete_keys(session.connection(), account_ids)  # PostgreSQL's dedupe keys
            # What a create remembered points at an account that is gone.
            session.execute(
                delete(IdempotencyRecord).where(col(IdempotencyRecord.result_id).in_(account_ids))
            )
            session.execute(delete(Account).where(Account.account_id.in_(account_ids)))  # type: ignore[attr-defined]  # SQLModel column attribute
        audit.append(
            session,
            actor=ctx.caller.name,
            action="test_clock.deleted",
            account_id="",
            before=_snapshot(clock),
            after={"deleted_accounts": account_ids},
            at=ctx.now,
            request_id=ctx.request_id,
        )
        session.delete(clock)
        return len(account_ids)


def clock_time_of_account(db: Database, account_id: str) -> tuple[str | None, datetime | None]:
    """(the account's test clock id, its time) — (None, None) for a real or unknown account."""
    with db.read() as session:
        row = session.execute(
            select(col(Account.test_clock_id), col(TestClock.frozen_time))
            .outerjoin(TestClock, col(TestClock.test_clock_id) == Account.test_clock_id)
            .where(col(Account.account_id) == account_id)
        ).first()
    if row is None:
        return None, None
    return row[0], row[1]


def clock_time(db: Database, test_clock_id: str) -> datetime | None:
    with db.read() as session:
        clock = session.get(TestClock, test_clock_id)
        return clock.frozen_time if clock is not None else None


# The ids a request may name an account's resource by, without the account's id, and the table
# that says whose it is: such a call runs at that account's time too.
RESOURCE_OWNERS: dict[str, type] = {
    "invoice_id": Invoice,
    "event_id": OutboxEvent,
    "endpoint_id": WebhookEndpoint,
    "change_request_id": ChangeRequest,
    "partner_id": MasterPartner,
}


class AccountClocks:
    """Which accounts live on a test clock, for the interceptor: an account's clock is set at its
    creation and never changes, so the answer is cached for good (bounded); only a clock
    account's time is read again on each call."""

    _MAX_CACHED = 100_000

    def __init__(self, db: Database) -> None:
        self._db = db
        self._clock_of: dict[str, str | None] = {}
        self._owner_of: dict[tuple[str, str], str] = {}

    def known_real(self, account_id: str) -> bool:
        """True when ``account_id`` is known to live on the real time (no I/O)."""
        return account_id in self._clock_of and self._clock_of[account_id] is None

    def now_for(self, account_id: str) -> datetime | None:
        """The clock time of a clock account, ``None`` for any other (blocking: one read)."""
        if not _could_exist(account_id):
            return None
        if account_id in self._clock_of:
            clock_id = self._clock_of[account_id]
            return clock_time(self._db, clock_id) if clock_id is not None else None
        clock_id, frozen = clock_time_of_account(self._db, account_id)
        if clock_id is not None or frozen is not None or self._exists(account_id):
            if len(self._clock_of) >= self._MAX_CACHED:
                self._clock_of.clear()
            self._clock_of[account_id] = clock_id
        return frozen

    def now_for_invoice(self, invoice_id: str) -> datetime | None:
        """The clock time of the account of invoice ``invoice_id``, if it is a clock account."""
        return self.now_for_resource("invoice_id", invoice_id)

    def now_for_resource(self, field: str, value: str) -> datetime | None:
        """The clock time of the account that owns the resource a request names only by id
        (``field`` one of ``RESOURCE_OWNERS``), if it is a clock account."""
        if not _could_exist(value):
            return None
        account_id = self._owner_of.get((field, value))
        if account_id is None:
            table = RESOURCE_OWNERS[field]
            with self._db.read() as session:
                account_id = session.execute(
                    select(col(table.account_id)).where(  # type: ignore[attr-defined]  # every owner table has one
                        col(getattr(table, field)) == value
                    )
                ).scalar()
            if account_id is None:
                return None
            # A resource never changes hands: its owner is cached like the account's clock.
            if len(self._owner_of) >= self._MAX_CACHED:
                self._owner_of.clear()
            self._owner_of[(field, value)] = account_id
        if self.known_real(account_id):
            return None
        return self.now_for(account_id)

    def _exists(self, account_id: str) -> bool:
        with self._db.read() as session:
            return session.get(Account, account_id) is not None


def _could_exist(resource_id: str) -> bool:
    """Whether ``resource_id`` could name a row: usage events reach this before their ids are
    judged (the rejection comes later, per event), and PostgreSQL refuses a NUL in a text
    parameter outright; no id of ours is longer than its 40-character column."""
    return bool(resource_id) and len(resource_id) <= 40 and "\x00" not in resource_id


def account_clock(session: Session, account: Account) -> TestClock | None:
    return session.get(TestClock, account.test_clock_id) if account.test_clock_id else None


# ---------------------------------------------------------------------------------------------
# Replaying an advance


def _next_moment(
    db: Database, clock: TestClock, grace: timedelta, report_grace: timedelta = timedelta(0)
) -> datetime:
    """The first moment after the clock's time at which one of its accounts has something due
    (a trial end, a period-end change, a change request's expiry, an hourly usage report, a
    period close past the grace window), or the target."""
    assert clock.advancing_to is not None
    now, target = clock.frozen_time, clock.advancing_to
    candidates = [target, Period.containing(now - grace).end + grace]
    mine = col(Account.test_clock_id) == clock.test_clock_id
    with db.read() as session:
        for column, condition in (
            (col(Account.trial_ends_at), col(Account.status) == subs.TRIALING),
            (col(Account.pending_effective_at), col(Account.pending_plan_id).is_not(None)),
            (col(Account.canceled_at), col(Account.cancel_at_period_end).is_(True)),
        ):
            due = session.execute(
                select(column).where(mine, condition, column > now).order_by(column).limit(1)
            ).scalar()
            if due is not None:
                candidates.append(due)
        expiry = session.execute(
            select(col(ChangeRequest.expires_at))
            .join(Account, col(Account.account_id) == col(ChangeRequest.account_id))
            .where(
                mine, col(ChangeRequest.status) == "pending", col(ChangeRequest.expires_at) > now
            )
            .order_by(col(ChangeRequest.expires_at))
            .limit(1)
        ).scalar()
        if expiry is not None:
            candidates.append(expiry)
        # An hour with usage is reported once it closed (plus the grace): one moment per hour
        # the producer sent usage in, so an advance stays bounded by what was sent.
        hour_us = session.execute(
            select(col(UsageReportDue.hour_us))
            .join(Account, col(Account.account_id) == col(UsageReportDue.account_id))
            .where(mine)
            .order_by(col(UsageReportDue.hour_us))
            .limit(1)
        ).scalar()
        if hour_us is not None:
            candidates.append(from_us(int(hour_us)) + timedelta(hours=1) + report_grace)
    return min(moment for moment in candidates if moment > now)


def run_advances(
    db: Database, *, grace: timedelta, close_periods: bool, report_grace: timedelta = timedelta(0)
) -> int:
    """Replay every advancing clock up to its target, one due moment at a time; returns how many
    moments were replayed. Each moment runs the same jobs as the real-time scheduler, limited to
    the clock's accounts and at the clock's time; they are as safe to run twice (two replicas)
    as the real ones, and the clock's time only ever grows."""
    from billing_svc.services import (
        accounts,
        approvals,
        forecast_alerts,
        hourly_reports,
        invoicing,
    )

    with db.read() as session:
        advancing = list(
            session.exec(sm_select(TestClock).where(TestClock.status == ADVANCING)).all()
        )
    steps = 0
    for clock in advancing:
        while clock.status == ADVANCING and clock.advancing_to is not None:
            moment = _next_moment(db, clock, grace, report_grace)
            ctx = dataclasses.replace(
                system_context(f"test_clock:{clock.test_clock_id}"), now=moment
            )
            mine = clock.test_clock_id
            accounts.end_due_trials(db, ctx, test_clock_id=mine)
            accounts.apply_period_end_changes(db, ctx, test_clock_id=mine)
            approvals.expire_due(db, ctx, test_clock_id=mine)
            # Hourly reports of the hours closed by this moment, made at it (not one replayed
            # moment per hour: an advance stays a handful of moments).
            hourly_reports.report_closed_hours(db, moment, report_grace, test_clock_id=mine)
            if close_periods:
                invoicing.close_due_periods(db, ctx, grace, test_clock_id=mine)
            forecast_alerts.send_forecast_budget_alerts(db, moment, test_clock_id=mine)
            done = moment >= clock.advancing_to
            with db.write() as session:
                session.execute(
                    update(TestClock)
                    .where(
                        col(TestClock.test_clock_id) == clock.test_clock_id,
                        col(TestClock.frozen_time) <= moment,
                    )
                    .values(
                        frozen_time=moment,
                        updated_at=db.clock.now(),
                        **({"status": READY, "advancing_to": None} if done else {}),
                    )
                )
                clock = _load(session, clock.test_clock_id)
            steps += 1
    return steps
