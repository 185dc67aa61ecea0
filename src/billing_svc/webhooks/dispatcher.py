"""Delivers outbox events to endpoints: lease, POST (signed), record; retries on a durable
schedule. Runs in every replica; leases keep replicas from sending the same attempt.

One slow or dead endpoint never delays the others: each endpoint has its own in-flight limit,
every delivery is its own task, and the request timeout bounds how long a slot is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import socket
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
import tenacity

from billing_svc import metrics
from billing_svc.domain.ids import new_id
from billing_svc.services import deliveries
from billing_svc.services.deliveries import Claimed, Outcome
from billing_svc.settings import Settings
from billing_svc.storage.db import Database
from billing_svc.webhooks import signing
from billing_svc.webhooks.url_guard import UnsafeURL, resolve

log = structlog.get_logger("billing_svc.webhooks")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _first(*waits: Any) -> None:
    """Return when the first of ``waits`` completes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


class Dispatcher:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.owner = new_id("disp")
        self.timeout = settings.webhook_timeout_seconds
        # The lease outlives the request timeout and the in-attempt retry budget (3 tries).
        self.lease = timedelta(seconds=3 * self.timeout + 30)
        self.in_flight: dict[str, int] = defaultdict(int)
        # Outcomes waiting to be recorded: one transaction per tick records them all.
        self.outcomes: list[tuple[Claimed, Outcome, datetime]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.slot_freed = asyncio.Event()
        self.client = httpx.AsyncClient(
            follow_redirects=False, timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=settings.webhook_max_concurrency,
                                max_keepalive_connections=settings.webhook_max_concurrency))

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.settings.webhook_dispatch_interval_seconds
        while not stop.is_set():
            busy = False
            try:
                busy = await self.tick()
            except Exception:  # the loop must survive a database blip
                log.exception("webhook_dispatch_failed")
            if not busy:
                # Sleep until the poll interval passes, a delivery frees a slot, or shutdown.
                self.slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop.wait(), self.slot_freed.wait()),
                                           timeout=interval)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=self.timeout + 5)
        await self.flush()
        await self.client.aclose()

    async def flush(self) -> None:
        outcomes, self.outcomes = self.outcomes, []
        if outcomes:
            await asyncio.to_thread(
                deliveries.record, self.db, outcomes, self.owner,
                schedule=self.settings.retry_schedule_seconds,
                disable_after=timedelta(days=self.settings.webhook_disable_after_days))

    async def tick(self) -> bool:
        """Fan out new events and start due deliveries; ``True`` if there may be more now."""
        await self.flush()
        now = datetime.now(UTC)
        fanned = await asyncio.to_thread(deliveries.fan_out, self.db, now)
        free = self.settings.webhook_max_concurrency - len(self.tasks)
        if free <= 0:
            return False
        claimed = await asyncio.to_thread(
            deliveries.claim, self.db, self.owner, now, lease=self.lease, limit=free,
            busy=dict(self.in_flight), per_endpoint=self.settings.webhook_per_endpoint_concurrency)
        for item in claimed:
            self.in_flight[item.endpoint_id] += 1
            task = asyncio.create_task(self._deliver(item))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return (bool(claimed) and len(claimed) == free) or fanned >= 500 or bool(self.outcomes)

    async def _deliver(self, item: Claimed) -> None:
        try:
            outcome = await self._attempt(item)
            metrics.WEBHOOK_ATTEMPTS.labels("delivered" if outcome.delivered else "failed").inc()
            self.outcomes.append((item, outcome, datetime.now(UTC)))
        except Exception:
            log.exception("webhook_delivery_failed", event_id=item.event_id,
                          endpoint_id=item.endpoint_id)
        finally:
            self.in_flight[item.endpoint_id] -= 1
            self.slot_freed.set()

    async def _attempt(self, item: Claimed) -> Outcome:
        started = time.perf_counter()

        def elapsed() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            allow = self.settings.webhook_allow_private_networks
            host = httpx.URL(item.url).host
            target = (resolve(item.url, allow_private=allow) if _is_ip_literal(host)
                      else await asyncio.to_thread(resolve, item.url, allow_private=allow))
        except UnsafeURL as exc:
            return Outcome(0, elapsed(), f"refused: {exc}")
        url = httpx.URL(item.url)
        pinned = url.copy_with(host=target.address)  # connect to the address just checked
        host_header = url.netloc.decode("ascii")
        timestamp = int(time.time())
        headers = signing.headers(item.signing_secrets, item.event_id, timestamp, item.body)
        headers["host"] = host_header
        try:
            async for attempt in tenacity.AsyncRetrying(
                    retry=tenacity.retry_if_exception_type((httpx.ConnectError,
                                                            httpx.RemoteProtocolError)),
                    stop=tenacity.stop_after_attempt(3),
                    wait=tenacity.wait_exponential(multiplier=0.2, max=1), reraise=True):
                with attempt:
                    response = await self.client.post(
                        pinned, content=item.body, headers=headers,
                        extensions={"sni_hostname": target.host})
        except httpx.TimeoutException:
            return Outcome(0, elapsed(), f"timed out after {self.timeout:g} s", timed_out=True)
        except (httpx.HTTPError, socket.gaierror, OSError) as exc:
            return Outcome(0, elapsed(), f"{type(exc).__name__}: {exc}"[:1000])
        return Outcome(response.status_code, elapsed(),
                       "" if response.is_success else f"HTTP {response.status_code}",
                       response.text[:deliveries.RESPONSE_BODY_LIMIT],
                       _retry_after(response.headers.get("retry-after")))
