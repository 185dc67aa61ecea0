"""Column types that keep money exact, time in UTC and lists typed on both SQLite and PostgreSQL.

SQLite has no exact decimal type (``NUMERIC`` there is a float in disguise), so amounts are stored
as canonical decimal text on SQLite and as ``NUMERIC(precision, scale)`` on PostgreSQL. Timestamps
are stored as naive UTC and always come back timezone-aware. Lists (scopes, event types,
threshold percentages) are tuples in the code, a JSON array on SQLite (which has no array type)
and a native ``text[]``/``integer[]`` on PostgreSQL (docs/decisions.md, "Typed lists").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import DateTime, Integer, Numeric, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# Money columns: 19 digits before the point hold any google.type.Money (int64 units) and so
# domain.bounds.MAX_AMOUNT; 9 after it, the Money's nanos. (NUMERIC(20, 9) held 10^11 only.)
MONEY_PRECISION = 28
MONEY_SCALE = 9


class ExactDecimal(TypeDecorator[Decimal]):
    """A ``Decimal`` column that never passes through a binary float."""

    impl = Numeric(20, 9)
    cache_ok = True

    def __init__(self, precision: int = 20, scale: int = 9) -> None:
        super().__init__(precision, scale)
        self.precision = precision
        self.scale = scale

    def __repr__(self) -> str:
        return f"ExactDecimal(precision={self.precision}, scale={self.scale})"

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"ExactDecimal takes Decimal, not {type(value).__name__}")
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value) if isinstance(value, str) else Decimal(str(value))


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and returned timezone-aware (UTC)."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite raw text in some expression results
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


class _ListOf(TypeDecorator[tuple[Any, ...]]):
    """A tuple of ``item`` values: a JSON array on SQLite, an array of ``item`` on PostgreSQL."""

    impl = Text
    cache_ok = True
    item: ClassVar[type]
    postgres_item: ClassVar[type[TypeEngine[Any]]]

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(self.postgres_item()))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        # A string is a sequence too: a comma-joined list written by old code must fail loudly,
        # not be stored one character an item.
        items = None if isinstance(value, str | bytes) else list(value)
        if items is None or not all(type(item) is self.item for item in items):
            raise TypeError(
                f"{type(self).__name__} takes a sequence of {self.item.__name__}, not {value!r}"
            )
        return items if dialect.name == "postgresql" else json.dumps(items, separators=(",", ":"))

    def process_result_value(self, value: Any, dialect: Dialect) -> tuple[Any, ...] | None:
        return None if value is None else self.decode(value)

    @classmethod
    def decode(cls, value: Any) -> tuple[Any, ...]:
        """The tuple of a stored value as a driver returns it (JSON text on SQLite, a list on
        PostgreSQL): for plain-SQL reads, which no TypeDecorator sees."""
        items = json.loads(value) if isinstance(value, str) else value
        return tuple(cls.item(item) for item in items)


class TextList(_ListOf):
    """A ``tuple[str, ...]`` column (``text[]`` on PostgreSQL)."""

    cache_ok = True  # looked up on each class itself
    item = str
    postgres_item = Text


class IntList(_ListOf):
    """A ``tuple[int, ...]`` column (``integer[]`` on PostgreSQL)."""

    cache_ok = True
    item = int
    postgres_item = Integer


MONEY = ExactDecimal(MONEY_PRECISION, MONEY_SCALE)
"""The type of every money column."""
