"""The terms in force over time for an account: its plan segments within a period."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from billing_svc.domain.catalog import CustomTerms, Terms, effective_terms
from billing_svc.domain.errors import InvalidArgument, Unratable
from billing_svc.domain.periods import Period
from billing_svc.domain.rating import PlanSpan
from billing_svc.domain.subscriptions import ANNUAL
from billing_svc.storage.tables import Account, PlanSegment


def load_segments(session: Session, account_ids: Sequence[str]) -> dict[str, list[PlanSegment]]:
    """Every plan segment of each account, in order (a handful per account)."""
    loaded: dict[str, list[PlanSegment]] = {account_id: [] for account_id in account_ids}
    ids = list(account_ids)
    for start in range(0, len(ids), 500):
        for segment in session.exec(
            select(PlanSegment)
            .where(PlanSegment.account_id.in_(ids[start : start + 500]))  # type: ignore[attr-defined]  # SQLModel column attribute
            .order_by(col(PlanSegment.effective_at), col(PlanSegment.id))
        ):
            loaded[segment.account_id].append(segment)
    return loaded


def terms_of(account: Account) -> Terms:
    """The terms in force for the account now: its plan's, or its negotiated ones on ``custom``."""
    custom = CustomTerms.from_json(account.custom_terms_json) if account.custom_terms_json else None
    return effective_terms(account.plan_id, custom)


def ratable_custom_terms(account: Account) -> CustomTerms | None:
    """The account's negotiated terms, or ``Unratable`` naming the term when the stored ones
    cannot be rated: set before ``SetCustomTerms`` had its bounds (1e400 GB included), or
    damaged. The account's usage is still taken; its charges wait until the terms are set
    again."""
    if not account.custom_terms_json:
        return None
    try:
        custom = CustomTerms.from_json(account.custom_terms_json)
        custom.validate()
    except InvalidArgument as exc:
        raise Unratable(
            f"the custom terms of account {account.account_id} cannot be rated: "
            f"{exc}; set them again (SetCustomTerms)"
        ) from exc
    except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
        raise Unratable(
            f"the custom terms of account {account.account_id} cannot be read "
            f"({type(exc).__name__}); set them again (SetCustomTerms)"
        ) from exc
    return custom


def plan_spans(
    session: Session,
    account: Account,
    period: Period,
    segments: Sequence[PlanSegment] | None = None,
) -> list[PlanSpan]:
    """The plan spans that overlap ``period``, and the one just before them, unclipped.

    Custom terms are the account's current negotiated terms; the last span's plan is the plan in
    force at the end of the period. ``segments``: the account's ``load_segments``, when the
    caller loaded them for many accounts at once.
    """
    custom = ratable_custom_terms(account)
    if segments is None:
        segments = load_segments(session, [account.account_id])[account.account_id]
    segments = [s for s in segments if s.effective_at < period.end]
    spans: list[PlanSpan] = []
    for index, segment in enumerate(segments):
        end = segments[index + 1].effective_at if index + 1 < len(segments) else period.end
        if end <= segment.effective_at and index + 1 < len(segments):
            continue  # replaced at the instant it began
        terms = effective_terms(segment.plan_id, custom if segment.plan_id == "custom" else None)
        spans.append(
            PlanSpan(
                start=segment.effective_at,
                end=max(end, segment.effective_at),
                terms=terms,
                billing_interval=segment.billing_interval,
            )
        )
    # Spans are not clipped to the period (rating bills only the overlap): the span just before
    # the period stays, as the predecessor a change on the period's first instant replaces (an
    # annual plan taken mid-year is charged the rest of the year, less what was paid for it).
    first = next((i for i, span in enumerate(spans) if span.end > period.start), len(spans))
    spans = spans[max(first - 1, 0) :]
    if account.canceled_at is not None and spans and account.canceled_at < period.end:
        last = spans[-1]
        spans[-1] = PlanSpan(
            start=last.start,
            end=max(last.start, account.canceled_at),
            terms=last.terms,
            billing_interval=last.billing_interval,
        )
    return spans


def anniversary(
    session: Session,
    account: Account,
    period: Period,
    segments: Sequence[PlanSegment] | None = None,
) -> datetime | None:
    """When the account's current run of annual billing (as of ``period``'s end) started its
    years: the paid time's start (creation, or the trial's end if later) for an account annual
    from the start, else the switch from monthly (docs/decisions.md, "Annual billing"). ``None``
    when it has no annual run: rating's default then applies."""
    if segments is None:
        segments = load_segments(session, [account.account_id])[account.account_id]
    segments = [s for s in segments if s.effective_at < period.end]
    run_start: datetime | None = None
    previous_interval: str | None = None
    for index, segment in enumerate(segments):
        if index + 1 < len(segments) and segments[index + 1].effective_at <= segment.effective_at:
            continue  # replaced at the instant it began
        if segment.billing_interval != ANNUAL:
            run_start = None
        elif previous_interval != ANNUAL:
            run_start = segment.effective_at
        previous_interval = segment.billing_interval
    if run_start is None:
        return None
    paid_from = max(account.created_at, account.trial_ends_at or account.created_at)
    return max(run_start, paid_from)
