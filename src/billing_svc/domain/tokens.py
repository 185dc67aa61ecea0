"""Bearer tokens: what a token looks like, what it may be granted, how its lifetime is written.

Pure: the token records themselves live in ``services/tokens.py``; this module holds the rules
they are made by. A token is shown once and stored as its SHA-256; callers are told apart by the
token's own id, never by its name, so a token made again under an old name is another caller.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from billing_svc.domain.errors import InvalidArgument

PLATFORM_PREFIX = "bsk_"
# The seed's per-account API keys (``Authorization: Bearer pk_live_...``): a token bound to one
# account says so in its prefix, so a leaked one is recognised for what it can reach.
ACCOUNT_PREFIX = "pk_live_"
MAX_NAME_LENGTH = 100
# Ten years: a longer lifetime is no expiry at all, and it keeps every expiry a valid datetime.
MAX_LIFETIME = timedelta(days=3650)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")
_DURATION = re.compile(r"([0-9]{1,6})([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def new_secret(*, account_bound: bool) -> str:
    """A new bearer token: 256 random bits behind its kind's prefix."""
    return (ACCOUNT_PREFIX if account_bound else PLATFORM_PREFIX) + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 (hex) a token is stored and looked up by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def configured_token_id(token_sha256: str) -> str:
    """The stable id of a ``BILLING_AUTH_TOKENS`` token, derived from its SHA-256 (which is all
    that configuration may hold of it). Stored idempotency keys depend on it: never change it."""
    digest = hashlib.sha256(b"billing-svc configured token\0" + token_sha256.lower().encode())
    return "cfg_" + digest.hexdigest()[:32]


def check_name(name: str) -> str:
    """A token name as logs and the audit trail show it: letters, digits, ``. _ @ -``."""
    if not name:
        raise InvalidArgument("name", "is required")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument("name", f"is longer than {MAX_NAME_LENGTH} characters")
    if not _NAME.fullmatch(name) or name == "system":
        raise InvalidArgument(
            "name",
            "must start with a letter or digit and hold only letters, "
            "digits and . _ @ - ('system' is the service's own name)",
        )
    return name


def check_grant(scopes: frozenset[str], account_id: str) -> None:
    """An account-bound token acts for one customer: it never carries ``admin``, which reaches
    every account and the audit trail."""
    if not scopes:
        raise InvalidArgument("scopes", "name at least one scope")
    if account_id and "admin" in scopes:
        raise InvalidArgument("scopes", "an account-bound token cannot have the 'admin' scope")


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``45s``, ``2w`` or a sum such as ``1d12h``: a positive lifetime
    of at most ten years."""
    remaining = text.strip().lower()
    total = 0
    while remaining:
        match = _DURATION.match(remaining)
        if match is None:
            raise InvalidArgument(
                "expires_in",
                f"{text!r} is not a duration; write it like 90d, 12h, 30m, 45s, 2w or 1d12h",
            )
        total += int(match.group(1)) * _UNITS[match.group(2)]
        remaining = remaining[match.end() :]
    if total <= 0:
        raise InvalidArgument("expires_in", "must be longer than zero, e.g. 90d")
    lifetime = timedelta(seconds=total)
    if lifetime > MAX_LIFETIME:
        raise InvalidArgument(
            "expires_in",
            f"is longer than {MAX_LIFETIME.days} days; "
            "leave it out for a token that does not expire",
        )
    return lifetime
