"""The list column types (storage/types.py): what each dialect is handed, and what comes back."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from billing_svc.storage.types import IntList, TextList

SQLITE, POSTGRES = sqlite.dialect(), postgresql.psycopg.dialect()


@pytest.mark.parametrize(
    ("column", "value", "on_sqlite"),
    [
        (IntList(), (75, 90, 100), "[75,90,100]"),
        (IntList(), (), "[]"),
        (TextList(), ("billing:read", "usage:write"), '["billing:read","usage:write"]'),
        (TextList(), ('a "quoted", comma',), '["a \\"quoted\\", comma"]'),
    ],
)
def test_a_list_is_json_on_sqlite_an_array_on_postgres_and_comes_back_a_tuple(
    column, value, on_sqlite
) -> None:
    assert column.process_bind_param(value, SQLITE) == on_sqlite
    assert column.process_bind_param(value, POSTGRES) == list(value)
    assert column.process_result_value(on_sqlite, SQLITE) == value
    assert column.process_result_value(list(value), POSTGRES) == value
    assert column.process_bind_param(None, SQLITE) is None


@pytest.mark.parametrize(
    ("column", "value"),
    [
        (IntList(), "75,90,100"),  # what the old code wrote: never one character an item
        (TextList(), "admin"),
        (TextList(), ""),
        (IntList(), (75, "90")),
        (IntList(), (True,)),
        (TextList(), (1,)),
    ],
)
def test_anything_but_a_sequence_of_its_items_is_refused(column, value) -> None:
    for dialect in (SQLITE, POSTGRES):
        with pytest.raises(TypeError, match="takes a sequence of"):
            column.process_bind_param(value, dialect)


def test_plain_sql_reads_decode_like_the_column() -> None:
    assert IntList.decode("[75,90,100]") == IntList.decode([75, 90, 100]) == (75, 90, 100)
    assert TextList.decode("[]") == ()
