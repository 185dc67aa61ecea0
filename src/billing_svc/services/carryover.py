"""What an invoice carries besides its own period's usage: late usage of other periods not
billed yet (``late_usage`` lines) and the account's credits with something left (``credit``
lines). Closing a period bills them (``invoicing``); the open period's estimate, and the budgets
that use it, show them as that invoice will (``usage_reports``): one reading of them for both,
so the estimate and the invoice cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, select

from billing_svc.domain import rating
from billing_svc.domain.periods import Period
from billing_svc.services import credits
from billing_svc.services.terms import load_segments, plan_spans, terms_of
from billing_svc.storage.tables import Account, AccountCredit, PlanSegment, UsagePeriod


@dataclass
class Carryover:
    """One account's share: its pending late usage (with the counter rows it comes from) and
    its open credits, oldest first."""

    late: list[rating.LateUsage] = field(default_factory=list)
    late_rows: list[UsagePeriod] = field(default_factory=list)
    credits: list[AccountCredit] = field(default_factory=list)

    def rating_credits(self) -> list[rating.Credit]:
        return credits.for_rating(self.credits)


def pending(
    session: Session,
    accounts: list[Account],
    period: Period,
    segments: dict[str, list[PlanSegment]] | None = None,
    *,
    for_update: bool = False,
) -> dict[str, Carryover]:
    """Per account, what the invoice of ``period`` carries besides its own usage, as of now.
    ``for_update``: lock the rows (closing, which then marks them billed and draws the credits);
    a read for an estimate leaves them unlocked."""
    by_id = {account.account_id: account for account in accounts}
    found = {account_id: Carryover() for account_id in by_id}
    if not by_id:
        return found
    if segments is None:
        segments = load_segments(session, list(by_id))
    statement = (
        select(UsagePeriod)
        .where(
            UsagePeriod.account_id.in_(list(by_id)),  # type: ignore[attr-defined]  # SQLModel column attribute
            UsagePeriod.period != period.label,
            UsagePeriod.late_messages > UsagePeriod.late_billed_messages,
        )
        .order_by(UsagePeriod.account_id, UsagePeriod.period)
    )
    if for_update:
        statement = statement.with_for_update()
    for row in session.exec(statement).all():
        account = by_id[row.account_id]
        spans = plan_spans(session, account, Period.parse(row.period), segments[row.account_id])
        share = found[row.account_id]
        share.late_rows.append(row)
        share.late.append(
            rating.LateUsage(
                period=row.period,
                invoiced_messages=row.messages - row.late_messages + row.late_billed_messages,
                late_messages=row.late_messages - row.late_billed_messages,
                terms=spans[-1].terms if spans else terms_of(account),
            )
        )
    for account_id, open_credits in credits.open_credits(
        session, list(by_id), for_update=for_update
    ).items():
        found[account_id].credits = open_credits
    return found


def mark_late_billed(session: Session, share: Carryover) -> None:
    """The invoice that carries ``share`` was issued: its late usage is billed."""
    for row in share.late_rows:
        row.late_billed_messages = row.late_messages
        session.add(row)
