"""Mistakes an operator can fix: a setting that does not parse, a database that cannot be
reached, an address already taken. ``billing-svc`` reports each as one line on stderr and a
non-zero exit code, never a traceback (which would hide the one line that matters)."""

from __future__ import annotations

import re

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

# What the drivers say when the database itself cannot be reached or opened, as opposed to an
# SQL statement failing (a bug, which keeps its traceback).
_UNREACHABLE = re.compile(
    r"connection|could not connect|could not translate host|unable to open database|"
    r"authentication failed|no password supplied|timeout expired|server closed|"
    r"database \".*\" does not exist|role \".*\" does not exist",
    re.IGNORECASE,
)


class OperatorError(Exception):
    """A mistake in the operator's settings or environment; ``exit_code`` is the CLI's."""

    exit_code = 1


class ListenError(OperatorError):
    """``serve`` cannot listen where it was told to (``BILLING_LISTEN``, ``..._METRICS_LISTEN``)."""


def unreachable_database(url: URL, exc: BaseException) -> OperatorError | None:
    """An ``OperatorError`` saying the database at ``url`` cannot be reached and why, when
    ``exc`` (or its cause) is about reaching it; ``None`` when it is about something else."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError):
            reason = _first_line(str(seen.orig))
            if _UNREACHABLE.search(reason) or seen.connection_invalidated:
                return OperatorError(
                    f"cannot reach the database {url.render_as_string(hide_password=True)} "
                    f"(BILLING_DATABASE_URL): {reason}"
                )
            return None
        seen = seen.__cause__
    return None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown reason"
