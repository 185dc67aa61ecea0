"""typed lists: comma-joined list columns become JSON arrays (SQLite) or arrays (PostgreSQL)

Revision ID: 0015_typed_lists
Revises: 0014_test_clocks
Create Date: 2026-12-02 04:00:00.000000

``account.usage_thresholds``, ``budget.thresholds`` (``integer[]``), ``api_token.scopes`` and
``webhook_endpoint.event_types`` (``text[]``): see storage/types.py and docs/decisions.md ("Typed
lists"). Empty items of the old text (``"75,,90"``, ``""``) are dropped, as the code that read it
did. PostgreSQL converts in place (``ALTER COLUMN ... TYPE ... USING``). SQLite cannot change a
column's type: a new column is added, filled, the old one dropped and the new one renamed (not
batch mode: recreating ``account`` on SQLite trips its foreign keys); ``ADD COLUMN ... NOT NULL``
needs a default, which the column keeps (the service always writes the value).
"""
import json
from collections.abc import Callable, Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0015_typed_lists'
down_revision: str | None = '0014_test_clocks'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString

# (table, primary key, column, PostgreSQL item type, old text length, SQLite default)
_COLUMNS = (
    ('account', ('account_id',), 'usage_thresholds', 'integer', 100, '[75,90,100]'),
    ('budget', ('account_id', 'name'), 'thresholds', 'integer', 100, '[75,90,100]'),
    ('api_token', ('name',), 'scopes', 'text', 200, '[]'),
    ('webhook_endpoint', ('endpoint_id',), 'event_types', 'text', 1000, '[]'),
)
_NEW = '_new'


def _items(text: str, item: str) -> list[int] | list[str]:
    parts = [part for part in text.split(',') if part]
    return [int(part) for part in parts] if item == 'integer' else parts


def _sqlite_replace(table: str, key: tuple[str, ...], column: str,
                    new_type: sa.types.TypeEngine[str], default: str,
                    convert: Callable[[str], str]) -> None:
    """Add ``column`` anew as ``new_type``, filled with ``convert(old value)``, in its place."""
    connection = op.get_bind()
    op.add_column(table, sa.Column(column + _NEW, new_type, nullable=False,
                                   server_default=default))
    rows = connection.execute(sa.text(
        f'SELECT {", ".join(key)}, {column} FROM {table}')).all()
    if rows:
        match = ' AND '.join(f'{k} = :{k}' for k in key)
        connection.execute(
            sa.text(f'UPDATE {table} SET {column}{_NEW} = :value WHERE {match}'),
            [{**dict(zip(key, row[:-1], strict=True)), 'value': convert(row[-1])}
             for row in rows])
    op.drop_column(table, column)
    op.execute(f'ALTER TABLE {table} RENAME COLUMN {column}{_NEW} TO {column}')


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    for table, key, column, item, _, default in _COLUMNS:
        if postgres:
            op.execute(
                f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {item}[] "
                f"USING array_remove(string_to_array({column}, ','), '')::{item}[]")
        else:
            _sqlite_replace(table, key, column, sa.Text(), default,
                            lambda text, item=item: json.dumps(_items(text, item),
                                                               separators=(',', ':')))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    for table, key, column, _, length, _ in _COLUMNS:
        if postgres:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar({length}) "
                       f"USING array_to_string({column}, ',')")
        else:
            _sqlite_replace(table, key, column, _TEXT(length=length), '',
                            lambda value: ','.join(str(item) for item in json.loads(value)))
