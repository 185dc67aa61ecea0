"""What every servicer module shares."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from typing import Any, TypeVar

from billing_svc.domain.errors import DeadlineExceeded

T = TypeVar("T")

# When the RPC being served must be done by (time.monotonic()), set by the interceptor.
deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


def check_deadline() -> None:
    """Refuse to start work the caller has already given up on."""
    due = deadline.get()
    if due is not None and time.monotonic() >= due:
        raise DeadlineExceeded(
            "the call's deadline passed before its work started; nothing was done"
        )


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking, database-bound use case off the event loop (context variables follow),
    unless the caller's deadline has passed by the time a thread picks it up."""

    def guarded() -> T:
        check_deadline()
        return fn(*args, **kwargs)

    return await asyncio.to_thread(guarded)
