"""Page tokens of every list RPC: opaque to the caller, checked strictly when they come back.

A token is the base64url text of ``[cursor, check]``: ``cursor`` is where the next page starts
(the sort key of the last row sent), ``check`` a digest of the list's name, the query's filters and
the cursor. A token that is cut, altered, made for another list RPC or for other filters fails the
check; one that passes still has its cursor checked value by value (type, range, id shape), so
nothing a caller sends reaches a query unchecked.

Decision: strict validation with an unkeyed digest, not a signature. The digest catches every
token that was not made for this query; a caller who rebuilds a token on purpose can only start a
page anywhere in its own query, which it can do with the filters anyway: the account scope and the
filters are the query's, never the token's. So there is no key for the replicas to share, rotate or
lose, and a token stays valid on every replica and across restarts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime

from billing_svc.domain.errors import InvalidArgument

MAX_TOKEN_LENGTH = 1024
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_INT64_MAX = 2**63 - 1

Cursor = tuple[int | str, ...]
Check = Callable[[object], bool]


def whole(low: int, high: int = _INT64_MAX) -> Check:
    """A cursor part that is an integer within ``[low, high]``."""
    return lambda value: type(value) is int and low <= value <= high


def matching(pattern: str) -> Check:
    """A cursor part that is text matching ``pattern`` whole (ASCII)."""
    compiled = re.compile(pattern, re.ASCII)
    return lambda value: type(value) is str and compiled.fullmatch(value) is not None


def resource_id(prefix: str) -> Check:
    """A cursor part that is an id billing-svc made (``domain.ids.new_id``) with ``prefix``."""
    return matching(re.escape(prefix) + r"_[0-9a-hjkmnp-tv-z]{26}")


def next_token(rpc: str, query: Sequence[object], cursor: Cursor) -> str:
    """The token of the page that starts after ``cursor`` in ``rpc``'s ``query``."""
    body = json.dumps([list(cursor), _check(rpc, query, cursor)], separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def read_token(
    token: str,
    rpc: str,
    query: Sequence[object],
    shape: Sequence[Check],
    *,
    field: str = "page_token",
) -> Cursor | None:
    """The cursor of ``token`` (``None`` for the first page, an empty token), or
    ``InvalidArgument`` naming ``field`` unless it was made by ``next_token`` for this
    ``rpc`` and ``query`` and each part of its cursor passes its check in ``shape``."""
    if not token:
        return None
    made_by = "next_page_token" if field == "page_token" else field
    refused = InvalidArgument(
        field,
        f"is not a {made_by} of {rpc} for these filters; send the token "
        "of the previous page unchanged, with the same filters, or none for the first page",
    )
    if len(token) > MAX_TOKEN_LENGTH or not _BASE64URL.fullmatch(token):
        raise refused
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        parts, _ = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, RecursionError):
        raise refused from None
    if (
        not isinstance(parts, list)
        or len(parts) != len(shape)
        or not all(accepts(part) for accepts, part in zip(shape, parts, strict=True))
    ):
        raise refused
    cursor = tuple(parts)
    # Exactly the token next_token makes of this cursor for this query, to the byte: the digest
    # matches, and no other spelling of the same content (spaces, unused bits) passes either.
    if next_token(rpc, query, cursor) != token:
        raise refused
    return cursor


def _check(rpc: str, query: Sequence[object], cursor: Cursor) -> str:
    def plain(value: object) -> object:
        return value.isoformat() if isinstance(value, datetime) else value

    text = json.dumps([rpc, [plain(v) for v in query], list(cursor)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]
