"""Migration 0007_tokens on a database with data: tokens get their ids, idempotency keys their
caller, a retry across the upgrade still returns its first result (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import bindparam, text
from sqlmodel import SQLModel

from billing_svc.domain.tokens import configured_token_id, hash_token
from billing_svc.storage import event_index
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import alembic_config, upgrade
from billing_svc.storage.types import UTCDateTime
from tests.support import (
    TOKENS,
    WRITER,
    Client,
    ServerThread,
    create_account,
    fresh_database,
    settings_for_tests,
)

BEFORE = "0006_credits"


def _downgrade(db: Database, revision: str) -> None:
    config = alembic_config(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _add_old_rows(db: Database) -> None:
    """Rows as revision 0006 wrote them: a database token, keys of several callers."""
    # Bound as the columns' type, which converts it (naive UTC) as the models did: a bare
    # datetime would go to sqlite3's default adapter, deprecated since Python 3.12.
    at = bindparam("at", datetime(2026, 11, 1, tzinfo=UTC), type_=UTCDateTime())
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_token (name, token_sha256, scopes, created_at) "
                "VALUES ('ops', :sha, 'admin', :at)"
            ).bindparams(at),
            {"sha": hash_token("ops-secret")},
        )
        for caller, request_id in (
            ("ops", "k-ops"),
            ("system:period_closer", "k-sys"),
            ("gone", "k-gone"),
        ):
            connection.execute(
                text(
                    "INSERT INTO idempotency_record (method, request_id, caller, fingerprint, "
                    "result_id, created_at) VALUES ('BillingService.CreateTenant', :request_id, "
                    ":caller, 'f', 'ten_x', :at)"
                ).bindparams(at),
                {"request_id": request_id, "caller": caller},
            )


def _owners(db: Database) -> dict[str, str]:
    with db.engine.connect() as connection:
        return dict(
            connection.execute(text("SELECT request_id, token_id FROM idempotency_record")).all()
        )


def _token_ids(db: Database) -> dict[str, str]:
    with db.engine.connect() as connection:
        return dict(connection.execute(text("SELECT name, token_id FROM api_token")).all())


def _schema_matches_the_tables(db: Database) -> None:
    with db.engine.connect() as connection:
        # PostgreSQL's usage partitions and dedupe keys (0016) and SQLite's usage log (0017)
        # are the migrations' own.
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": event_index.include_object}
        )
        assert compare_metadata(context, SQLModel.metadata) == []


def test_configured_callers_keep_their_keys_across_the_upgrade(tmp_path) -> None:
    with fresh_database(str(tmp_path), empty=True) as url:
        settings = settings_for_tests(url)  # BILLING_AUTH_TOKENS: the test callers
        server = ServerThread(settings).start()
        client = Client(server.target)
        first = create_account(client, request_id="across", name="Kept Inc", metadata=WRITER)
        client.close()
        server.stop()
        db = Database(url)
        try:
            _downgrade(db, BEFORE)
            _add_old_rows(db)
            upgrade(db, settings=settings)
            writer = configured_token_id(hash_token(TOKENS["writer"][0]))
            owners = _owners(db)
            assert owners["across"] == writer
            # With BILLING_AUTH_TOKENS set, database tokens are not callers: their keys retire.
            assert owners["k-ops"].startswith("retired_")
            assert owners["k-gone"].startswith("retired_") and owners["k-gone"] != owners["k-ops"]
            assert owners["k-sys"] == "system"
            assert _token_ids(db)["ops"].startswith("tok_")
            _schema_matches_the_tables(db)
        finally:
            db.dispose()
        server = ServerThread(settings).start()
        client = Client(server.target)
        try:
            again = create_account(client, request_id="across", name="Kept Inc", metadata=WRITER)
            assert again.account_id == first.account_id
        finally:
            client.close()
            server.stop()


def test_database_callers_get_their_tokens_ids(tmp_path) -> None:
    with fresh_database(str(tmp_path), empty=True) as url:
        db = Database(url)
        try:
            upgrade(db, BEFORE)
            _add_old_rows(db)
            upgrade(db, settings=settings_for_tests(url, auth_tokens=""))
            owners, ids = _owners(db), _token_ids(db)
            assert owners["k-ops"] == ids["ops"]
            assert owners["k-gone"].startswith("retired_") and owners["k-sys"] == "system"
            _schema_matches_the_tables(db)
            # And back: the schema before knew no caller (one key per method and request_id)
            # and no revocation (a revoked token must not come back to life).
            with db.engine.begin() as connection:
                connection.execute(text("UPDATE api_token SET revoked_at = created_at"))
            _downgrade(db, BEFORE)
            with db.engine.connect() as connection:
                kept = connection.execute(
                    text("SELECT count(*) FROM idempotency_record")
                ).scalar_one()
                tokens_left = connection.execute(
                    text("SELECT count(*) FROM api_token")
                ).scalar_one()
            assert (kept, tokens_left) == (3, 0)
            upgrade(db, settings=settings_for_tests(url, auth_tokens=""))
            _schema_matches_the_tables(db)
        finally:
            db.dispose()
