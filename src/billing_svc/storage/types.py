"""Column types that keep money exact and time in UTC on both SQLite and PostgreSQL.

SQLite has no exact decimal type (``NUMERIC`` there is a float in disguise), so amounts are stored
as canonical decimal text on SQLite and as ``NUMERIC(precision, scale)`` on PostgreSQL. Timestamps
are stored as naive UTC and always come back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, String
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


MONEY = ExactDecimal(MONEY_PRECISION, MONEY_SCALE)
"""The type of every money column."""
