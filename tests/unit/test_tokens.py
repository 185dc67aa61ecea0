"""Token rules: lifetimes as operators write them, names, grants, ids (domain/tokens.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_svc.domain.errors import InvalidArgument
from billing_svc.domain.tokens import (
    MAX_LIFETIME,
    check_grant,
    check_name,
    configured_token_id,
    hash_token,
    new_secret,
    parse_duration,
)

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


@pytest.mark.parametrize(
    ("text", "lifetime"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 7D ", timedelta(days=7)),
        ("3650d", timedelta(days=3650)),
    ],
)
def test_lifetimes_as_operators_write_them(text: str, lifetime: timedelta) -> None:
    assert parse_duration(text) == lifetime


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "must be longer than zero"),
        ("0d", "must be longer than zero"),
        ("3651d", "longer than 3650 days"),
        ("12", "not a duration"),
        ("d", "not a duration"),
        ("1.5h", "not a duration"),
        ("-1d", "not a duration"),
        ("1y", "not a duration"),
        ("\u0663d", "not a duration"),  # an Arabic-Indic 3: digits are ASCII only
        ("9999999d", "not a duration"),
    ],
)
def test_what_is_not_a_lifetime_says_why(text: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says) as error:
        parse_duration(text)
    assert error.value.field == "expires_in"


@given(
    st.lists(
        st.tuples(st.integers(0, 999_999), st.sampled_from(sorted(UNIT_SECONDS))),
        min_size=1,
        max_size=4,
    )
)
def test_a_written_lifetime_is_the_sum_of_its_parts_or_refused(
    parts: list[tuple[int, str]],
) -> None:
    text = "".join(f"{amount}{unit}" for amount, unit in parts)
    total = timedelta(seconds=sum(amount * UNIT_SECONDS[unit] for amount, unit in parts))
    if timedelta(0) < total <= MAX_LIFETIME:
        assert parse_duration(text) == total
    else:
        with pytest.raises(InvalidArgument):
            parse_duration(text)


@given(st.text(max_size=30))
def test_any_text_is_a_lifetime_or_an_invalid_argument(text: str) -> None:
    try:
        lifetime = parse_duration(text)
    except InvalidArgument:
        return
    assert timedelta(0) < lifetime <= MAX_LIFETIME


@pytest.mark.parametrize("name", ["admin", "usage-reader", "erp.sync@finance", "ci_2"])
def test_token_names_that_logs_can_show(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "system", "system:closer", "-dash", "with space", "new\nline", "x" * 101, "caf\u00e9"],
)
def test_token_names_refused(name: str) -> None:
    with pytest.raises(InvalidArgument):
        check_name(name)


def test_an_account_bound_token_never_carries_admin() -> None:
    check_grant(frozenset({"billing:read", "usage:write"}), "acc_1")
    check_grant(frozenset({"admin"}), "")
    with pytest.raises(InvalidArgument, match="admin"):
        check_grant(frozenset({"billing:read", "admin"}), "acc_1")
    with pytest.raises(InvalidArgument, match="at least one scope"):
        check_grant(frozenset(), "")


def test_secrets_say_what_they_reach_and_are_stored_as_their_hash() -> None:
    platform, bound = new_secret(account_bound=False), new_secret(account_bound=True)
    assert platform.startswith("bsk_") and bound.startswith("pk_live_")
    assert len(platform) > 40 and platform != new_secret(account_bound=False)
    assert hash_token("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )  # SHA-256


def test_a_configured_tokens_id_is_stable_and_its_own() -> None:
    digest = hash_token("tok-writer")
    # Stored idempotency keys depend on this value: it must never change.
    assert configured_token_id(digest) == "cfg_03a1e6c3f5fd1ed8b30ed5640fe5b687"
    assert configured_token_id(digest.upper()) == configured_token_id(digest)
    assert configured_token_id(digest) != configured_token_id(hash_token("tok-admin"))
    assert len(configured_token_id(digest)) <= 40  # idempotency_record.token_id
