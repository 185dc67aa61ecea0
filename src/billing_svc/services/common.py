"""Helpers every use case shares: idempotent creates and loading an account or failing clearly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from billing_svc.domain.errors import FailedPrecondition, InvalidArgument, NotFound, shown
from billing_svc.domain.periods import Period
from billing_svc.services.context import Caller, RequestContext
from billing_svc.storage import idempotency
from billing_svc.storage.db import Database
from billing_svc.storage.idempotency import IdempotencyKey
from billing_svc.storage.tables import Account

T = TypeVar("T")


class _OfAnAccount(Protocol):
    account_id: str


R = TypeVar("R", bound=_OfAnAccount)


def idempotent_write(
    db: Database,
    ctx: RequestContext,
    key: IdempotencyKey | None,
    create: Callable[[Session], T],
    load: Callable[[Session, str], T],
    result_id: Callable[[T], str],
) -> T:
    """Run ``create`` in a write transaction, unless ``key`` was seen: then ``load`` its result.

    Two concurrent first calls with one key race on the key's primary key; the loser's transaction
    rolls back whole and it returns the winner's result.
    """
    for attempt in range(2):
        try:
            with db.write() as session:
                if key is not None:
                    existing = idempotency.find(session, key, ctx.caller.token_id)
                    if existing is not None:
                        return load(session, existing)
                result = create(session)
                if key is not None:
                    session.flush()
                    idempotency.remember(
                        session,
                        key,
                        token_id=ctx.caller.token_id,
                        caller=ctx.caller.name,
                        result_id=result_id(result),
                    )
                return result
        except IntegrityError:
            if key is None or attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def visible(caller: Caller, row: R | None, missing: str) -> R:
    """``row`` if it exists and ``caller`` may see it (its ``account_id``), else
    ``NotFound(missing)``: to an account-bound token another account's invoice, endpoint, event,
    partner or credit is indistinguishable from a missing one. Every lookup by a resource id goes
    through here (change requests too, when they come)."""
    if row is None or not caller.sees(row.account_id):
        raise NotFound(missing)
    return row


def loader(model: type[T]) -> Callable[[Session, str], T]:
    """For ``idempotent_write``: load what a first call created, by its id."""

    def load(session: Session, resource_id: str) -> T:
        found = session.get(model, resource_id)
        if found is None:  # the id came from our own idempotency record
            raise NotFound(f"{model.__name__} {shown(resource_id)} no longer exists")
        return found

    return load


def load_account(session: Session, account_id: str, *, for_update: bool = False) -> Account:
    """The account ``account_id``, or ``NotFound`` that names it."""
    if not account_id:
        raise InvalidArgument("account_id", "is required")
    account = session.get(Account, account_id, with_for_update=for_update)
    if account is None:
        raise NotFound(f"account {shown(account_id)} does not exist")
    return account


def require_existed(account: Account, period: Period) -> None:
    """``FailedPrecondition`` unless ``account`` existed at some moment of ``period``: every
    report and close of a period says so instead of pricing a period the account never had."""
    if period.end <= account.created_at:
        raise FailedPrecondition(
            f"account {account.account_id} started on {account.created_at.date()}, after "
            f"period {period.label}; it has no usage or charges for that period"
        )
