"""Migration 0015_typed_lists on a database with data (SQLite and PostgreSQL): the comma-joined
list columns become typed lists, every row keeps its items, and a downgrade gives the text back."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from alembic import command

from billing_svc.storage.db import Database
from billing_svc.storage.migrate import alembic_config, upgrade
from billing_svc.storage.tables import Account, ApiToken, Budget, WebhookEndpoint
from billing_svc.storage.types import MONEY, UTCDateTime
from tests.integration.test_token_migration import _schema_matches_the_tables
from tests.support import fresh_database, on_postgres

BEFORE = "0014_test_clocks"
AT = datetime(2026, 11, 1, tzinfo=UTC)

# The tables as 0014 had them, list columns as text: only the columns the rows below need.
_ACCOUNT = sa.table(
    "account",
    *(
        sa.column(c)
        for c in (
            "account_id",
            "customer_id",
            "subscription_id",
            "name",
            "plan_id",
            "billing_interval",
            "status",
            "cancel_at_period_end",
            "usage_thresholds",
        )
    ),
    *(sa.column(c, UTCDateTime()) for c in ("created_at", "registered_at", "updated_at")),
)
_BUDGET = sa.table(
    "budget",
    sa.column("account_id"),
    sa.column("name"),
    sa.column("limit_amount", MONEY),
    sa.column("thresholds"),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
_TOKEN = sa.table(
    "api_token",
    sa.column("name"),
    sa.column("token_sha256"),
    sa.column("scopes"),
    sa.column("token_id"),
    sa.column("created_at", UTCDateTime()),
)
_ENDPOINT = sa.table(
    "webhook_endpoint",
    *(
        sa.column(c)
        for c in (
            "endpoint_id",
            "account_id",
            "url",
            "event_types",
            "description",
            "secret",
            "status",
            "failure_streak",
            "disabled_reason",
        )
    ),
    sa.column("created_at", UTCDateTime()),
)

# (old text, the tuple it becomes, the text a downgrade writes back)
THRESHOLDS = {
    "acc_a": ("75,90,100", (75, 90, 100), "75,90,100"),
    "acc_b": ("50,,100", (50, 100), "50,100"),  # an empty item, as the old code skipped
    "acc_c": ("", (), ""),
}
BUDGETS = {"B1": ("80,100", (80, 100), "80,100"), "B2": ("", (), "")}
SCOPES = {
    "ops": ("admin", ("admin",), "admin"),
    "mixed": (
        "billing:read,usage:write",
        ("billing:read", "usage:write"),
        "billing:read,usage:write",
    ),
}
EVENT_TYPES = {
    "we_a": (
        "billing.invoice_paid,billing.usage_reported",
        ("billing.invoice_paid", "billing.usage_reported"),
        "billing.invoice_paid,billing.usage_reported",
    ),
    "we_b": ("", (), ""),
}


def _downgrade(db: Database, revision: str) -> None:
    config = alembic_config(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _add_old_rows(db: Database) -> None:
    with db.engine.begin() as connection:
        connection.execute(
            sa.insert(_ACCOUNT),
            [
                {
                    "account_id": account_id,
                    "customer_id": f"cus_{account_id}",
                    "subscription_id": f"sub_{account_id}",
                    "name": "Old",
                    "plan_id": "startup",
                    "billing_interval": "monthly",
                    "status": "active",
                    "cancel_at_period_end": False,
                    "usage_thresholds": old,
                    "created_at": AT,
                    "registered_at": AT,
                    "updated_at": AT,
                }
                for account_id, (old, _, _) in THRESHOLDS.items()
            ],
        )
        connection.execute(
            sa.insert(_BUDGET),
            [
                {
                    "account_id": "acc_a",
                    "name": name,
                    "limit_amount": Decimal(2000),
                    "thresholds": old,
                    "created_at": AT,
                    "updated_at": AT,
                }
                for name, (old, _, _) in BUDGETS.items()
            ],
        )
        connection.execute(
            sa.insert(_TOKEN),
            [
                {
                    "name": name,
                    "token_sha256": f"{n:064x}",
                    "scopes": old,
                    "token_id": f"tok_{name}",
                    "created_at": AT,
                }
                for n, (name, (old, _, _)) in enumerate(SCOPES.items())
            ],
        )
        connection.execute(
            sa.insert(_ENDPOINT),
            [
                {
                    "endpoint_id": endpoint_id,
                    "account_id": "acc_a",
                    "url": "https://erp.example/h",
                    "event_types": old,
                    "description": "",
                    "secret": "whsec_x",
                    "status": "enabled",
                    "failure_streak": 0,
                    "disabled_reason": "",
                    "created_at": AT,
                }
                for endpoint_id, (old, _, _) in EVENT_TYPES.items()
            ],
        )


def _typed(db: Database) -> dict[str, dict[str, tuple[object, ...]]]:
    """The list columns as the tables read them."""
    with db.read() as session:
        return {
            "thresholds": {a: session.get(Account, a).usage_thresholds for a in THRESHOLDS},
            "budgets": {b: session.get(Budget, ("acc_a", b)).thresholds for b in BUDGETS},
            "scopes": {t: session.get(ApiToken, t).scopes for t in SCOPES},
            "event_types": {e: session.get(WebhookEndpoint, e).event_types for e in EVENT_TYPES},
        }


def _stored(db: Database, table: str, key: str, column: str) -> dict[str, object]:
    """A column as the database holds it, read past any column type."""
    with db.engine.connect() as connection:
        return dict(connection.execute(sa.text(f"SELECT {key}, {column} FROM {table}")).all())


def _expected(table: dict[str, tuple[str, tuple[object, ...], str]], part: int) -> dict:
    return {key: value[part] for key, value in table.items()}


def test_lists_convert_both_ways_keeping_every_item(tmp_path) -> None:
    with fresh_database(str(tmp_path), empty=True) as url:
        db = Database(url)
        try:
            upgrade(db, BEFORE)
            _add_old_rows(db)
            upgrade(db)
            assert _typed(db) == {
                "thresholds": _expected(THRESHOLDS, 1),
                "budgets": _expected(BUDGETS, 1),
                "scopes": _expected(SCOPES, 1),
                "event_types": _expected(EVENT_TYPES, 1),
            }
            stored = _stored(db, "account", "account_id", "usage_thresholds")
            # A native array on PostgreSQL, a JSON array on SQLite: no comma-joined text left.
            assert stored == (
                {"acc_a": [75, 90, 100], "acc_b": [50, 100], "acc_c": []}
                if on_postgres()
                else {"acc_a": "[75,90,100]", "acc_b": "[50,100]", "acc_c": "[]"}
            )
            assert _stored(db, "api_token", "name", "scopes")["mixed"] == (
                ["billing:read", "usage:write"]
                if on_postgres()
                else '["billing:read","usage:write"]'
            )
            _schema_matches_the_tables(db)

            # Written as tuples after the upgrade, read back as text after the downgrade.
            with db.write() as session:
                account = session.get(Account, "acc_c")
                account.usage_thresholds = (10, 20)
                session.add(account)
            _downgrade(db, BEFORE)
            assert _stored(db, "account", "account_id", "usage_thresholds") == {
                **_expected(THRESHOLDS, 2),
                "acc_c": "10,20",
            }
            assert _stored(db, "budget", "name", "thresholds") == _expected(BUDGETS, 2)
            assert _stored(db, "api_token", "name", "scopes") == _expected(SCOPES, 2)
            assert _stored(db, "webhook_endpoint", "endpoint_id", "event_types") == _expected(
                EVENT_TYPES, 2
            )

            upgrade(db)
            assert _typed(db)["thresholds"] == {**_expected(THRESHOLDS, 1), "acc_c": (10, 20)}
            assert _typed(db)["event_types"] == _expected(EVENT_TYPES, 1)
            _schema_matches_the_tables(db)
        finally:
            db.dispose()
