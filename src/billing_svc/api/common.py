"""What every servicer module shares."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking, database-bound use case off the event loop (context variables follow)."""
    return await asyncio.to_thread(fn, *args, **kwargs)
