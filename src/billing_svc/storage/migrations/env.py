"""Alembic environment: uses the caller's connection (billing-svc) or BILLING_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

import billing_svc.storage.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from billing_svc.settings import Settings
from billing_svc.storage import event_index
from billing_svc.storage.db import Database

target_metadata = SQLModel.metadata
# Serializes concurrent `migrate` runs of several replicas on PostgreSQL.
_MIGRATION_LOCK_KEY = 0x62696C6C


def _run(connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    # include_object: PostgreSQL's usage partitions and dedupe keys, and SQLite's usage log
    # layout, are not SQLModel tables.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=event_index.include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    db = Database(Settings().database_url)
    with db.engine.begin() as own_connection:
        _run(own_connection)
