"""Pure rules for what callers send (issue 12): period labels, quoting a caller's value in an
error, page tokens."""

from __future__ import annotations

import base64

import pytest

from billing_svc.domain.errors import InvalidArgument, cut, shown
from billing_svc.domain.periods import EARLIEST, LATEST, Period
from billing_svc.services import paging


@pytest.mark.parametrize(
    ("label", "period"),
    [
        ("2026-01", Period(2026, 1)),
        ("1970-01", Period(1970, 1)),
        ("9998-12", Period(9998, 12)),
    ],
)
def test_a_period_label_is_four_ascii_digits_a_dash_and_two(label: str, period: Period) -> None:
    assert Period.parse(label) == period
    assert period.label == label


@pytest.mark.parametrize(
    "label",
    [
        "2026-01\n",
        "2026-01\r\n",
        "\n2026-01",
        "\u0662\u0660\u0662\u0666-\u0660\u0661",
        "\uff12\uff10\uff12\uff16-01",
        "2026-1",
        "26-01",
        "2026-001",
        "2026_01",
        "1969-12",
        "9999-01",
        "2026-00",
        "2026-13",
        "",
        "+202-01",
    ],
)
def test_anything_else_is_not_a_period(label: str) -> None:
    with pytest.raises(ValueError, match="is not"):
        Period.parse(label)


def test_the_periods_span_exactly_the_accepted_range_of_moments() -> None:
    assert Period(1970, 1).start == EARLIEST
    assert Period(9998, 12).end == LATEST
    assert Period.containing(LATEST.replace(year=9998, month=12, day=31)) == Period(9998, 12)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("acc_1", "'acc_1'"),
        ("a" * 64, repr("a" * 64)),
        ("a" * 65, f"'{'a' * 64}…' (65 characters)"),
        ("b" * 20_000, f"'{'b' * 64}…' (20,000 characters)"),
        ("a\nb", "'a\\nb'"),
    ],
)
def test_an_error_quotes_at_most_64_characters_of_a_value(value: str, quoted: str) -> None:
    assert shown(value) == quoted
    assert cut(value) == (value if len(value) <= 64 else value[:64] + "…")


def _refused(token: str, rpc: str = "ListThings", query: tuple = ("acc_1", None)) -> None:
    with pytest.raises(InvalidArgument) as caught:
        paging.read_token(token, rpc, query, (paging.whole(1),))
    assert caught.value.field == "page_token"


def test_a_page_token_comes_back_to_its_query_only() -> None:
    token = paging.next_token("ListThings", ("acc_1", None), (42,))
    assert paging.read_token(token, "ListThings", ("acc_1", None), (paging.whole(1),)) == (42,)
    assert paging.read_token("", "ListThings", ("acc_1", None), (paging.whole(1),)) is None
    _refused(token, rpc="ListOtherThings")
    _refused(token, query=("acc_2", None))
    _refused(token, query=("acc_1", "open"))
    for at in range(len(token)):
        flipped = token[:at] + ("B" if token[at] == "A" else "A") + token[at + 1 :]
        _refused(flipped)
    for bad in (token[:-1], token + "A", token + "=", " " + token, "99999999999999999999"):
        _refused(bad)
    # The same content spelled otherwise: trailing whitespace, spaces, unused bits.
    body = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for spelled in (body + b"\r", body + b" ", body.replace(b",", b", ")):
        _refused(base64.urlsafe_b64encode(spelled).decode().rstrip("="))


def test_a_cursor_that_passes_the_digest_is_still_checked_part_by_part() -> None:
    # What a caller who rebuilt a token could send: each part is checked all the same.
    for cursor in [(0,), (2**63,), ("42",), (True,), (1.5,), (1, 2)]:
        _refused(paging.next_token("ListThings", ("acc_1", None), cursor))
    ids = (paging.resource_id("in"),)
    good = "in_" + "0123456789abcdefghjkmnpqrs"
    assert paging.read_token(paging.next_token("L", (), (good,)), "L", (), ids) == (good,)
    for bad in ["in_" + "i" * 26, "cr_" + "0" * 26, "in_" + "0" * 25, "in_" + "0" * 26 + "\n"]:
        with pytest.raises(InvalidArgument):
            paging.read_token(paging.next_token("L", (), (bad,)), "L", (), ids)
