"""Database tokens (when ``BILLING_AUTH_TOKENS`` is empty): create, list, revoke, and what the
server's token store reads.

Every change is audited in its own transaction (``api_token.created``, ``api_token.revoked``), and
those audit records are also how replicas learn of a change: ``load`` returns the sequence of the
latest one beside the tokens, and ``change_marker`` reads it again with one indexed query, so a
replica polls cheaply and reloads only when a token was made or revoked. A token is looked up by
its SHA-256; its secret is shown once, at creation, and neither it nor its hash is ever listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from billing_svc.domain import tokens as rules
from billing_svc.domain.errors import AlreadyExists, InvalidArgument, NotFound
from billing_svc.domain.ids import new_id
from billing_svc.domain.scopes import SCOPES
from billing_svc.services.common import load_account
from billing_svc.services.context import RequestContext, system_context
from billing_svc.storage import audit
from billing_svc.storage.db import Database
from billing_svc.storage.tables import ApiToken, AuditRecord

CREATED, REVOKED = "api_token.created", "api_token.revoked"  # their audit actions


@dataclass(frozen=True)
class TokenInfo:
    """What anyone may see of a token: never its secret, nor its hash."""

    name: str
    token_id: str
    scopes: tuple[str, ...]
    account_id: str  # "" for a platform token
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def status(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class StoredToken:
    """A token as the server's token store holds it: what it is, and the hash it is found by."""

    info: TokenInfo
    token_sha256: str


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(
        name=row.name,
        token_id=row.token_id,
        scopes=row.scopes,
        account_id=row.account_id or "",
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _snapshot(row: ApiToken) -> dict[str, object]:
    return {
        "name": row.name,
        "token_id": row.token_id,
        "scopes": row.scopes,
        "account_id": row.account_id,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
    }


def create_token(
    db: Database,
    ctx: RequestContext,
    *,
    name: str,
    scopes: Iterable[str],
    account_id: str = "",
    expires_in: timedelta | None = None,
) -> str:
    """Create a token and return its secret, which is shown this once. A revoked token's name may
    be given again: the new token is another caller (its own id; none of the old one's keys)."""
    name = rules.check_name(name)
    granted = list(dict.fromkeys(scopes))
    unknown = sorted(set(granted) - set(SCOPES))
    if unknown:
        raise InvalidArgument("scopes", f"unknown scopes {unknown}; valid: {list(SCOPES)}")
    rules.check_grant(frozenset(granted), account_id)
    if expires_in is not None and not timedelta(0) < expires_in <= rules.MAX_LIFETIME:
        raise InvalidArgument("expires_in", f"must be within (0, {rules.MAX_LIFETIME.days} days]")
    secret = rules.new_secret(account_bound=bool(account_id))
    with db.write() as session:
        if account_id:
            load_account(session, account_id)
        before = None
        replaced = session.get(ApiToken, name, with_for_update=True)
        if replaced is not None:
            if replaced.revoked_at is None:
                raise AlreadyExists(
                    f"a token named {name!r} exists; revoke it first "
                    f"(billing-svc tokens revoke {name}) or choose another name"
                )
            before = _snapshot(replaced)
            session.delete(replaced)
            session.flush()
        row = ApiToken(
            name=name,
            token_sha256=rules.hash_token(secret),
            scopes=tuple(granted),
            created_at=ctx.now,
            token_id=new_id("tok"),
            account_id=account_id or None,
            expires_at=ctx.now + expires_in if expires_in is not None else None,
        )
        session.add(row)
        audit.append(
            session,
            actor=ctx.caller.name,
            action=CREATED,
            account_id=account_id,
            before=before,
            after=_snapshot(row),
            at=ctx.now,
            request_id=ctx.request_id,
        )
    return secret


def revoke_token(db: Database, ctx: RequestContext, name: str) -> TokenInfo:
    """Revoke the token ``name`` (every replica refuses it, and closes its streams, within
    seconds). Revoking a revoked token changes nothing."""
    with db.write() as session:
        row = session.get(ApiToken, name, with_for_update=True)
        if row is None:
            raise NotFound(f"no token is named {name!r}; 'billing-svc tokens list' shows them")
        if row.revoked_at is not None:
            return _info(row)
        before = _snapshot(row)
        row.revoked_at = ctx.now
        session.add(row)
        audit.append(
            session,
            actor=ctx.caller.name,
            action=REVOKED,
            account_id=row.account_id or "",
            before=before,
            after=_snapshot(row),
            at=ctx.now,
            request_id=ctx.request_id,
        )
        return _info(row)


def list_tokens(db: Database) -> list[TokenInfo]:
    """Every database token, by name."""
    with db.read() as session:
        return [_info(row) for row in session.exec(select(ApiToken).order_by(ApiToken.name))]


def _marker(session: Session) -> int:
    latest = session.exec(
        select(func.max(AuditRecord.sequence)).where(
            col(AuditRecord.action).in_((CREATED, REVOKED))
        )
    ).one()
    return int(latest or 0)


def change_marker(db: Database) -> int:
    """Changes whenever a token is created or revoked (the sequence of the latest such audit
    record): what a replica polls to know when to ``load`` again."""
    with db.read() as session:
        return _marker(session)


def load(db: Database) -> tuple[list[StoredToken], int]:
    """Every database token, and the ``change_marker`` they are current with (one snapshot)."""
    with db.read() as session:
        # The marker first: a change between the two reads (PostgreSQL reads each statement's
        # own snapshot) then shows as a marker moved, and the next poll loads again.
        marker = _marker(session)
        rows = session.exec(select(ApiToken)).all()
        return [StoredToken(_info(row), row.token_sha256) for row in rows], marker


def ensure_first_admin(db: Database) -> str | None:
    """On a database without any token, create the ``admin`` token and return its secret (to be
    printed once); otherwise ``None``. Replicas starting together make one."""
    with db.read() as session:
        if session.exec(select(ApiToken.name).limit(1)).first() is not None:
            return None
    try:
        return create_token(db, system_context("bootstrap"), name="admin", scopes=["admin"])
    except (AlreadyExists, IntegrityError):  # another replica made it first
        return None


def record_last_used(db: Database, used: Mapping[str, datetime]) -> None:
    """Write when tokens (by id) were last used, in one transaction; a time never goes back (a
    replica that saw a later use already wrote it)."""
    if not used:
        return
    table = ApiToken.__table__  # type: ignore[attr-defined]  # SQLModel table attribute
    statement = (
        update(table)
        .where(
            table.c.token_id == bindparam("used_token_id"),
            or_(table.c.last_used_at.is_(None), table.c.last_used_at < bindparam("used_at")),
        )
        .values(last_used_at=bindparam("used_at"))
    )
    with db.write() as session:
        session.connection().execute(
            statement, [{"used_token_id": token_id, "used_at": at} for token_id, at in used.items()]
        )
