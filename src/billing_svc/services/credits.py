"""Account credits: amounts an admin grants (goodwill, a settled dispute, a carried balance),
taken off the account's next invoices as ``credit`` lines until used up (spec §1.6 lines).

Decision: a credit is applied by the next invoice closed for the account, oldest credit first,
never taking an invoice below zero; what an invoice cannot absorb stays for the next one.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from billing_svc.domain import rating
from billing_svc.domain.errors import FailedPrecondition, InvalidArgument
from billing_svc.domain.ids import new_id
from billing_svc.domain.money import ZERO, to_cents
from billing_svc.domain.subscriptions import CANCELED
from billing_svc.domain.usage import from_us, to_us
from billing_svc.services import paging
from billing_svc.services.common import idempotent_write, load_account, loader
from billing_svc.services.context import RequestContext
from billing_svc.services.views import CreditView
from billing_svc.storage import audit
from billing_svc.storage.db import Database
from billing_svc.storage.idempotency import IdempotencyKey
from billing_svc.storage.tables import AccountCredit

MAX_CREDIT = Decimal("1000000")


def issue_credit(
    db: Database,
    ctx: RequestContext,
    *,
    account_id: str,
    amount: Decimal,
    description: str,
    key: IdempotencyKey | None,
) -> CreditView:
    description = description.strip()
    if not description or len(description) > 200:
        raise InvalidArgument(
            "description", "is required (it is shown on the invoice), at most 200 characters"
        )
    if amount <= 0 or amount > MAX_CREDIT:
        raise InvalidArgument("amount", f"must be more than 0 and at most {MAX_CREDIT:,} USD")
    if to_cents(amount) != amount:
        raise InvalidArgument("amount", f"{amount} is not a whole number of cents")

    def create(session: Session) -> AccountCredit:
        account = load_account(session, account_id, for_update=True)
        if account.status == CANCELED:
            raise FailedPrecondition(
                f"account {account_id} is canceled; a credit could never be applied"
            )
        credit = AccountCredit(
            credit_id=new_id("cr"),
            account_id=account_id,
            amount=amount,
            remaining=amount,
            description=description,
            created_at=ctx.now,
        )
        session.add(credit)
        audit.append(
            session,
            actor=ctx.caller.name,
            action="credit.issued",
            account_id=account_id,
            before=None,
            after={"credit_id": credit.credit_id, "amount": amount, "description": description},
            at=ctx.now,
            request_id=ctx.request_id,
        )
        return credit

    return CreditView.from_row(
        idempotent_write(db, ctx, key, create, loader(AccountCredit), lambda c: c.credit_id)
    )


def list_credits(
    db: Database, account_id: str, *, page_size: int = 0, page_token: str = ""
) -> tuple[list[CreditView], str]:
    """The account's credits, oldest first, ``page_size`` (default 100, at most 1000) a page."""
    size = min(page_size or 100, 1000)
    query = (account_id,)
    # Ordered by (created_at, credit_id): credit ids sort by the moment they were made, which
    # an imported credit's created_at need not follow.
    after = paging.read_token(
        page_token, "ListCredits", query, (paging.whole(0), paging.resource_id("cr"))
    )
    with db.read() as session:
        load_account(session, account_id)
        statement = select(AccountCredit).where(AccountCredit.account_id == account_id)
        if after:
            at, credit_id = from_us(int(after[0])), str(after[1])
            statement = statement.where(
                or_(
                    col(AccountCredit.created_at) > at,
                    and_(
                        col(AccountCredit.created_at) == at,
                        col(AccountCredit.credit_id) > credit_id,
                    ),
                )
            )
        rows = list(
            session.exec(
                statement.order_by(AccountCredit.created_at, AccountCredit.credit_id).limit(  # type: ignore[arg-type]  # SQLModel column attribute
                    size + 1
                )
            ).all()
        )
    token = ""
    if len(rows) > size:
        last = rows[size - 1]
        token = paging.next_token("ListCredits", query, (to_us(last.created_at), last.credit_id))
    return [CreditView.from_row(row) for row in rows[:size]], token


def open_credits(
    session: Session, account_ids: list[str], *, for_update: bool = True
) -> dict[str, list[AccountCredit]]:
    """Each account's credits with something left, oldest first, locked for the invoice that
    draws on them (``for_update``; an estimate only reads them)."""
    found: dict[str, list[AccountCredit]] = {account_id: [] for account_id in account_ids}
    for start in range(0, len(account_ids), 500):
        # Filtered here, not in SQL: exact decimals are text on SQLite, where "0.00" > "0".
        # Credits are few per account.
        statement = (
            select(AccountCredit)
            .where(col(AccountCredit.account_id).in_(account_ids[start : start + 500]))
            .order_by(col(AccountCredit.created_at), col(AccountCredit.credit_id))
        )
        for credit in session.exec(statement.with_for_update() if for_update else statement):
            if credit.remaining > ZERO:
                found[credit.account_id].append(credit)
    return found


def for_rating(credits: list[AccountCredit]) -> list[rating.Credit]:
    return [
        rating.Credit(credit.description, credit.remaining, credit.credit_id) for credit in credits
    ]


def draw(session: Session, credits: list[AccountCredit], lines: list[rating.InvoiceLine]) -> None:
    """Take what the invoice's credit lines applied off the credits they name."""
    by_id = {credit.credit_id: credit for credit in credits}
    for line in lines:
        if line.type == rating.CREDIT and line.credit_id in by_id:
            credit = by_id[line.credit_id]
            credit.remaining -= -line.amount
            session.add(credit)
