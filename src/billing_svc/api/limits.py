"""How much text a request may carry: every text field of every request, checked in one walk
before the servicer runs (issue 12, point 6)."""

from __future__ import annotations

from google.protobuf.message import Message

from billing_svc.domain.errors import InvalidArgument
from billing_svc.services import paging

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 200
# Text fields allowed more (or less) than MAX_TEXT_LENGTH, by name; any other ``*_id`` field
# holds at most MAX_ID_LENGTH. The services check the fields whose columns hold less (a budget's
# name, a credit's description, a department: 100, 200, 100).
TEXT_LIMITS = {
    "request_id": 100,
    "url": 2000,
    "description": 500,
    "reason": 500,
    "failure_reason": 500,
    "page_token": paging.MAX_TOKEN_LENGTH,
    "resume_token": paging.MAX_TOKEN_LENGTH,
}


def text_limit(field: str) -> int:
    """The most characters text field ``field`` of a request may hold."""
    if field in TEXT_LIMITS:
        return TEXT_LIMITS[field]
    return MAX_ID_LENGTH if field.endswith("_id") else MAX_TEXT_LENGTH


def check_text(message: Message, prefix: str = "") -> None:
    """Refuse text anywhere in a request that is longer than its field's ``text_limit`` (the API
    bounds it: PostgreSQL enforces column lengths, SQLite does not) or has a NUL character (no
    database stores one; PostgreSQL refuses them outright), naming the field."""
    for field, value in message.ListFields():
        name = f"{prefix}{field.name}"
        if field.type == field.TYPE_STRING:
            limit = text_limit(field.name)
            for text in value if field.is_repeated else [value]:
                if len(text) > limit:
                    raise InvalidArgument(
                        name, f"is longer than {limit} characters ({len(text):,})"
                    )
                if "\x00" in text:
                    raise InvalidArgument(name, "contains a NUL character")
        elif field.type == field.TYPE_MESSAGE:
            if field.is_repeated:
                for index, item in enumerate(value):
                    check_text(item, f"{name}[{index}].")
            else:
                check_text(value, f"{name}.")
