"""Delivers outbox events to endpoints: lease, POST (signed), record; retries on a durable
schedule. Runs in every replica; leases keep replicas from sending the same attempt.

One slow or dead endpoint never delays the others: each endpoint has its own in-flight limit,
every delivery is its own task, and a deadline bounds how long one attempt holds its slot.

Each attempt is a span that starts a trace, sent to the receiver as a ``traceparent`` header
beside the signature headers (the signature covers only the id, the timestamp and the body).

The dispatcher runs in a thread of its own, with its own event loop: its database steps run
inline on that loop (each a few milliseconds, one per cycle), so the HTTP work and the database
work never hand the GIL back and forth per step, and neither delays the gRPC server's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog
import tenacity
from opentelemetry import trace
from sqlalchemy.exc import DBAPIError

from billing_svc import metrics, tracing
from billing_svc.domain import signing
from billing_svc.domain.errors import Unavailable
from billing_svc.domain.ids import new_id
from billing_svc.net.transport import BLIPS, DeliveryClient
from billing_svc.net.url_guard import UnsafeURL
from billing_svc.services import deliveries
from billing_svc.services.deliveries import Claimed, Outcome
from billing_svc.settings import Settings
from billing_svc.storage.db import Database

log = structlog.get_logger("billing_svc.webhooks")

# In-attempt retries (tenacity): blips only, a few tries within about a second.
_BLIP_TRIES = 3
_BLIP_WAIT = tenacity.wait_exponential(multiplier=0.2, max=1)
# At shutdown, attempts in flight get this long to finish before they are abandoned.
_SHUTDOWN_WAIT_SECONDS = 2.0


def _retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


async def _first(*waits: Any) -> None:
    """Return when the first of ``waits`` completes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


class Dispatcher:
    def __init__(
        self, db: Database, settings: Settings, tracer: trace.Tracer = tracing.NO_TRACER
    ) -> None:
        self.db = db
        self.tracer = tracer
        self.settings = settings
        self.owner = new_id("disp")
        self.timeout = settings.webhook_timeout_seconds
        # The lease outlives an attempt: every try is cut at the timeout, and tenacity's
        # in-attempt tries and waits add at most (tries - 1) x timeout + 2 s.
        self.lease = timedelta(seconds=_BLIP_TRIES * self.timeout + 30)
        self.in_flight: dict[str, int] = defaultdict(int)
        # Outcomes waiting to be recorded: the next step records them all in one transaction.
        self.outcomes: list[tuple[Claimed, Outcome, datetime]] = []
        self.tasks: dict[asyncio.Task[None], Claimed] = {}
        self.slot_freed = asyncio.Event()
        # Several endpoints may share a host; each has its own in-flight limit.
        self.client = DeliveryClient(
            allow_private=settings.webhook_allow_private_networks,
            timeout=self.timeout,
            max_connections=settings.webhook_max_concurrency,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set (in the dispatcher's own thread)."""
        self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    def start(self) -> None:
        """Start delivering in the dispatcher's own thread."""
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(),), name="webhook-dispatcher", daemon=True
        )
        self._thread.start()
        self._ready.wait()

    async def stop(self) -> None:
        """Stop: attempts in flight get a moment to finish, the rest are given back."""
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        await self._deliver_until(self._stop)

    async def _deliver_until(self, stop: asyncio.Event) -> None:
        interval = self.settings.webhook_dispatch_interval_seconds
        while not stop.is_set():
            busy = False
            try:
                busy = await self.tick()
            except Exception:  # the loop must survive a database outage
                log.exception("webhook_dispatch_failed")
            if not busy:
                # Sleep until the poll interval passes, a delivery frees a slot, or shutdown.
                self.slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        _first(stop.wait(), self.slot_freed.wait()), timeout=interval
                    )
        await self._shutdown()

    async def tick(self) -> bool:
        """Record finished attempts, fan out new events, start due deliveries; ``True`` if
        there may be more to do right away."""
        outcomes, self.outcomes = self.outcomes, []
        free = self.settings.webhook_max_concurrency - len(self.tasks)
        try:
            step = await self._step(outcomes, claim_limit=free)
        except BaseException:
            self.outcomes[:0] = outcomes  # not recorded: the next step tries again
            raise
        for item in step.claimed:
            self.in_flight[item.endpoint_id] += 1
            task = asyncio.create_task(self._deliver(item))
            self.tasks[task] = item
            task.add_done_callback(self._done)
        return (
            (bool(step.claimed) and len(step.claimed) == free)
            or step.fanned_out >= deliveries.FAN_OUT_BATCH
            or bool(self.outcomes)
        )

    async def _step(
        self, outcomes: list[tuple[Claimed, Outcome, datetime]], *, claim_limit: int
    ) -> deliveries.Step:
        # A database blip (a deadlock between replicas, a dropped connection) is retried at
        # once a few times; the step is one transaction, so a retry repeats nothing.
        async for attempt in tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type((DBAPIError, Unavailable)),
            stop=tenacity.stop_after_attempt(_BLIP_TRIES),
            wait=_BLIP_WAIT,
            reraise=True,
        ):
            with attempt:
                return deliveries.step(
                    self.db,
                    self.owner,
                    outcomes,
                    lease=self.lease,
                    claim_limit=claim_limit,
                    busy=dict(self.in_flight),
                    per_endpoint=self.settings.webhook_per_endpoint_concurrency,
                    schedule=self.settings.retry_schedule_seconds,
                    disable_after=timedelta(days=self.settings.webhook_disable_after_days),
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _done(self, task: asyncio.Task[None]) -> None:
        item = self.tasks.pop(task)
        self.in_flight[item.endpoint_id] -= 1
        if not self.in_flight[item.endpoint_id]:
            del self.in_flight[item.endpoint_id]
        self.slot_freed.set()

    async def _shutdown(self) -> None:
        """Let attempts in flight finish briefly, record what finished, give the rest back."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=_SHUTDOWN_WAIT_SECONDS)
        abandoned = [self.tasks[task].delivery_id for task in list(self.tasks)]
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks))
        try:
            if self.outcomes:
                await self._step(self.outcomes, claim_limit=0)
                self.outcomes = []
            deliveries.release(self.db, self.owner, abandoned)
        except Exception:  # their leases expire: another replica or the next start retries
            log.exception("webhook_shutdown_record_failed")
        await self.client.aclose()

    async def _deliver(self, item: Claimed) -> None:
        try:
            outcome = await self._attempt(item)
        except Exception:  # a bug must not stop the loop; the lease expires and it is retried
            log.exception(
                "webhook_delivery_failed", event_id=item.event_id, endpoint_id=item.endpoint_id
            )
            return
        metrics.WEBHOOK_ATTEMPTS.labels("delivered" if outcome.delivered else "failed").inc()
        self.outcomes.append((item, outcome, self.db.clock.now()))

    async def _attempt(self, item: Claimed) -> Outcome:
        """One delivery attempt, in its span (see ``_signed_post``)."""
        with self.tracer.start_as_current_span(
            "webhook.attempt",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "http.request.method": "POST",
                "server.address": urlsplit(item.url).hostname or "",
                "webhook.event_id": item.event_id,
                "webhook.endpoint_id": item.endpoint_id,
                "webhook.attempt": item.attempt_number,
            },
        ) as span:
            outcome = await self._signed_post(item)
            if outcome.status_code:
                span.set_attribute("http.response.status_code", outcome.status_code)
            if not outcome.delivered:
                span.set_status(trace.StatusCode.ERROR, outcome.error)
            return outcome

    async def _signed_post(self, item: Claimed) -> Outcome:
        """One delivery attempt: a signed POST, the whole of it within the timeout (tenacity
        retries a connection blip within the attempt)."""
        started = time.perf_counter()

        def elapsed() -> int:
            return int((time.perf_counter() - started) * 1000)

        # A fresh timestamp for every attempt; the id stays the event's.
        headers = signing.headers(
            item.signing_secrets, item.event_id, int(self.db.clock.now().timestamp()), item.body
        )
        headers["accept-encoding"] = "identity"  # the logged answer is read raw, undecoded
        tracing.outgoing(headers)
        try:
            status, body, retry_after = await self._send(item, headers)
        except UnsafeURL as exc:
            return Outcome(0, elapsed(), f"refused: {exc}")
        except TimeoutError:
            return Outcome(0, elapsed(), f"timed out after {self.timeout:g} s", timed_out=True)
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome(0, elapsed(), f"{type(exc).__name__}: {exc}"[:1000])
        success = 200 <= status < 300
        return Outcome(
            status,
            elapsed(),
            "" if success else f"HTTP {status}",
            body,
            None if success else _retry_after(retry_after, self.db.clock.now()),
        )

    async def _send(self, item: Claimed, headers: dict[str, str]) -> tuple[int, str, str | None]:
        """``_post`` within the timeout; tenacity retries a blip (a refused connection, a
        keep-alive connection the receiver had closed) a couple of times, within the attempt."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._post(item, headers)
        except BLIPS as exc:
            blip: Exception | None = exc
        # The try above was tenacity's first: it waits, then tries again.
        async for attempt in tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(BLIPS),
            stop=tenacity.stop_after_attempt(_BLIP_TRIES),
            wait=_BLIP_WAIT,
            reraise=True,
        ):
            with attempt:
                if blip is not None:
                    failed, blip = blip, None
                    raise failed
                async with asyncio.timeout(self.timeout):
                    return await self._post(item, headers)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, item: Claimed, headers: dict[str, str]) -> tuple[int, str, str | None]:
        return await self.client.post(item.url, item.body, headers, deliveries.RESPONSE_BODY_LIMIT)
