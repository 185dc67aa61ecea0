"""tokens: ids, account binding, expiry, revocation and last use; idempotency keys per caller

Revision ID: 0007_tokens
Revises: 0006_credits
Create Date: 2026-11-25 09:00:00.000000

Existing rows are converted: every database token gets its id, and every idempotency record the
id of the token whose caller name it holds: a ``BILLING_AUTH_TOKENS`` token's (derived from its
SHA-256) when that setting is in force, else the database token's; ``system`` for the service's
own jobs; and a ``retired_...`` id no token has for a name no token carries any more.
"""
import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import context, op

import billing_svc.storage.types
from billing_svc.domain.ids import new_id

revision: str = '0007_tokens'
down_revision: str | None = '0006_credits'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def _configured_token_ids() -> dict[str, str]:
    ids = context.config.attributes.get("configured_token_ids")
    if ids is None:  # run by alembic itself: the environment's settings
        from billing_svc.settings import Settings
        from billing_svc.storage.migrate import configured_token_ids

        ids = configured_token_ids(Settings())
    return ids


def _owner(caller: str, owners: dict[str, str]) -> str:
    if caller in owners:
        return owners[caller]
    if caller == "system" or caller.startswith("system:"):
        return "system"
    return "retired_" + hashlib.sha256(caller.encode()).hexdigest()[:24]


def _idempotency_columns(*, with_token_id: bool) -> list[sa.Column]:
    columns = [sa.Column('token_id', _TEXT(length=40), nullable=False)] if with_token_id else []
    return columns + [
        sa.Column('method', _TEXT(length=60), nullable=False),
        sa.Column('request_id', _TEXT(length=100), nullable=False),
        sa.Column('caller', _TEXT(length=100), nullable=False),
        sa.Column('fingerprint', _TEXT(length=64), nullable=False),
        sa.Column('result_id', _TEXT(length=60), nullable=False),
        sa.Column('created_at', billing_svc.storage.types.UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_id', _TEXT(length=40), nullable=True))
        batch_op.add_column(sa.Column('account_id', _TEXT(length=40), nullable=True))
        batch_op.add_column(sa.Column('expires_at', billing_svc.storage.types.UTCDateTime(),
                                      nullable=True))
        batch_op.add_column(sa.Column('revoked_at', billing_svc.storage.types.UTCDateTime(),
                                      nullable=True))
        batch_op.add_column(sa.Column('last_used_at', billing_svc.storage.types.UTCDateTime(),
                                      nullable=True))
    database_ids = {}
    for (name,) in bind.execute(sa.text("SELECT name FROM api_token")).all():
        database_ids[name] = new_id("tok")
        bind.execute(sa.text("UPDATE api_token SET token_id = :token_id WHERE name = :name"),
                     {"token_id": database_ids[name], "name": name})
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.alter_column('token_id', existing_type=_TEXT(length=40), nullable=False)
        batch_op.create_unique_constraint('uq_api_token_token_id', ['token_id'])

    # BILLING_AUTH_TOKENS, when set, is the whole set of tokens in use.
    owners = _configured_token_ids() or database_ids
    rows = bind.execute(sa.text("SELECT DISTINCT caller FROM idempotency_record")).all()
    if bind.dialect.name == "postgresql":
        op.add_column('idempotency_record', sa.Column('token_id', _TEXT(length=40),
                                                      nullable=True))
        for (caller,) in rows:
            bind.execute(sa.text("UPDATE idempotency_record SET token_id = :token_id "
                                 "WHERE caller = :caller"),
                         {"token_id": _owner(caller, owners), "caller": caller})
        op.alter_column('idempotency_record', 'token_id', nullable=False)
        op.drop_constraint('idempotency_record_pkey', 'idempotency_record', type_='primary')
        op.create_primary_key('idempotency_record_pkey', 'idempotency_record',
                              ['token_id', 'method', 'request_id'])
        return
    # SQLite cannot change a primary key in place: a new table, the rows copied over.
    op.create_table('_idempotency_record_new', *_idempotency_columns(with_token_id=True),
                    sa.PrimaryKeyConstraint('token_id', 'method', 'request_id'))
    for (caller,) in rows:
        bind.execute(sa.text(
            "INSERT INTO _idempotency_record_new (token_id, method, request_id, caller, "
            "fingerprint, result_id, created_at) SELECT :token_id, method, request_id, caller, "
            "fingerprint, result_id, created_at FROM idempotency_record WHERE caller = :caller"),
            {"token_id": _owner(caller, owners), "caller": caller})
    op.drop_table('idempotency_record')
    op.rename_table('_idempotency_record_new', 'idempotency_record')


def downgrade() -> None:
    bind = op.get_bind()
    # The schema before knew no revocation, expiry or account: such tokens would come back
    # unlimited, so they go.
    bind.execute(sa.text("DELETE FROM api_token WHERE revoked_at IS NOT NULL OR expires_at IS "
                         "NOT NULL OR account_id IS NOT NULL"))
    # One record per (method, request_id) survives: the key had no caller before.
    keep_one = ("DELETE FROM idempotency_record WHERE token_id > (SELECT min(token_id) FROM "
                "idempotency_record other WHERE other.method = idempotency_record.method AND "
                "other.request_id = idempotency_record.request_id)")
    bind.execute(sa.text(keep_one))
    if bind.dialect.name == "postgresql":
        op.drop_constraint('idempotency_record_pkey', 'idempotency_record', type_='primary')
        op.drop_column('idempotency_record', 'token_id')
        op.create_primary_key('idempotency_record_pkey', 'idempotency_record',
                              ['method', 'request_id'])
    else:
        op.create_table('_idempotency_record_old', *_idempotency_columns(with_token_id=False),
                        sa.PrimaryKeyConstraint('method', 'request_id'))
        bind.execute(sa.text(
            "INSERT INTO _idempotency_record_old (method, request_id, caller, fingerprint, "
            "result_id, created_at) SELECT method, request_id, caller, fingerprint, result_id, "
            "created_at FROM idempotency_record"))
        op.drop_table('idempotency_record')
        op.rename_table('_idempotency_record_old', 'idempotency_record')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_constraint('uq_api_token_token_id', type_='unique')
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('account_id')
        batch_op.drop_column('token_id')
