"""``UsageService`` servicer: batches go to the process's group-commit writer; reads are thin.

The two ingest RPCs receive their requests as ``UsageBatch`` values made by ``decode_request``
from the raw bytes (by the ingestion codec when it takes them, else the protobuf library), so a
plain batch never becomes a Python object per event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import structlog
from as2aas.billing.v1 import usage_service_pb2 as pb
from as2aas.billing.v1 import usage_service_pb2_grpc as pb_grpc
from google.protobuf.message import DecodeError

from billing_svc.api import convert, reports, validation
from billing_svc.api.common import deadline, run
from billing_svc.api.interceptor import current_context, log_fields
from billing_svc.domain import usage
from billing_svc.domain.errors import InvalidArgument, Unavailable
from billing_svc.domain.usage import UsageBatch, UsageEventIn
from billing_svc.native import UsageCodec
from billing_svc.native import count_events as count_events  # where tests look for it
from billing_svc.services import forecasting, hourly_reports, usage_reports
from billing_svc.services.ingestion import BatchResult
from billing_svc.services.ingestion_writer import IngestionWriter
from billing_svc.services.store import Database

log = structlog.get_logger("billing_svc.usage")

SERVICE = pb.DESCRIPTOR.services_by_name["UsageService"].full_name
# A log line names at most this many accounts of a batch, and rejections of one batch.
MAX_LOGGED_ACCOUNTS = 20
MAX_LOGGED_REJECTIONS = 100
_INGEST_METHODS = ("StreamUsage", "RecordUsage")
STREAM_RPC = f"/{SERVICE}/StreamUsage"  # as the "rpc" log lines name it
# Batches one stream may have waiting for their commit: beyond it, gRPC flow control pushes back.
MAX_IN_FLIGHT_PER_STREAM = 32
# A batch id is the producer's own, echoed in its ack; ids are at most 128 characters (PRODUCT §6).
MAX_BATCH_ID_LENGTH = 128

# What the ingest RPCs' deserializer hands their servicer: a batch, or why the bytes are not one
# (returned, not raised: gRPC would turn an exception raised while deserializing into UNKNOWN).
UsageRequest = UsageBatch | InvalidArgument


def decode_request(codec: UsageCodec) -> Callable[[bytes], UsageRequest]:
    """The request deserializer of StreamUsage and RecordUsage, whose requests have the same
    fields (``batch_id = 1``, ``events = 2``)."""

    def decode(raw: bytes) -> UsageRequest:
        # Counted first: 16 MiB of tiny events must be refused before they are decoded (into
        # millions of objects).
        most = usage.MAX_BATCH_EVENTS
        count = codec.count_events(raw, stop_after=most)
        if count is not None and count > most:
            return _too_many(count if codec.counts_exactly else None)
        compact = codec.decode(raw)
        if compact is not None:
            return UsageBatch(compact.batch_id, native=compact, codec=codec)
        try:
            request = pb.StreamUsageRequest.FromString(raw)
        except DecodeError as exc:
            return InvalidArgument(
                "events",
                f"the request is not a valid usage batch ({exc}); "
                "send a StreamUsageRequest or RecordUsageRequest",
            )
        if len(request.events) > most:  # bytes the count could not read
            return _too_many(len(request.events))
        return UsageBatch(request.batch_id, events_in(request.events))

    return decode


def events_in(events: Any) -> list[UsageEventIn]:
    """Proto events to domain values (no validation here: that is per event, in ingestion; a
    timestamp that names no accepted time becomes a value check_shape gives the reason for)."""
    new = tuple.__new__
    occurred_at_us_of = usage.occurred_at_us_of
    earliest, latest, nanos_per_second = (
        usage.EARLIEST_SECONDS,
        usage.LATEST_SECONDS,
        usage.NANOS_PER_SECOND,
    )
    batch: list[Any] = []
    append = batch.append
    for event in events:
        stamp = event.occurred_at
        seconds, nanos = stamp.seconds, stamp.nanos
        # occurred_at_us_of, its common case inline (a call per event costs the path ~1 %).
        append(
            new(
                UsageEventIn,
                (
                    event.event_id,
                    event.account_id,
                    event.tenant_id,
                    event.partner_id,
                    event.kind,
                    event.quantity,
                    seconds * 1_000_000 + nanos // 1000
                    if earliest < seconds < latest and 0 <= nanos < nanos_per_second
                    else occurred_at_us_of(seconds, nanos),
                ),
            )
        )
    return batch


def batch_of(request: UsageRequest) -> UsageBatch:
    """The batch of a decoded request (held to its caller's account, for an account-bound
    token), or the INVALID_ARGUMENT that fails the call."""
    if isinstance(request, InvalidArgument):
        raise request
    if len(request.batch_id) > MAX_BATCH_ID_LENGTH:  # it is echoed in the ack: never as sent
        raise InvalidArgument(
            "batch_id",
            f"is {len(request.batch_id):,} characters; at most {MAX_BATCH_ID_LENGTH} are accepted",
        )
    request.bound_account = current_context().caller.account_id
    return request


def _too_many(count: int | None) -> InvalidArgument:
    """``count`` None: more than the most, counted no further."""
    many = f"{count}" if count is not None else f"more than {usage.MAX_BATCH_EVENTS}"
    return InvalidArgument(
        "events",
        f"{many} events in one batch; at most "
        f"{usage.MAX_BATCH_EVENTS} are accepted, split the batch",
    )


def ack_fields(batch_id: str, result: BatchResult) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "late": result.late,
        # An overlong event_id (itself a reason to reject) comes back cut: `index` names it.
        "rejected": [
            pb.RejectedEvent(
                event_id=r.event_id[: usage.MAX_EVENT_ID_LENGTH], index=r.index, reason=r.reason
            )
            for r in result.rejected
        ],
    }


def batch_log(batch: UsageBatch, result: BatchResult) -> dict[str, Any]:
    """What the log says of one ingested batch: its account (``account_ids`` when it names
    several), its id and its counts; the reasons of its rejections go to a debug line."""
    accounts = batch.account_ids()
    fields: dict[str, Any] = {
        "account_id": accounts[0] if len(accounts) == 1 else None,
        "batch_id": batch.batch_id,
        "events": len(batch),
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "late": result.late,
        "rejected": len(result.rejected),
    }
    if len(accounts) > 1:
        fields["account_ids"] = accounts[:MAX_LOGGED_ACCOUNTS]
    if result.rejected and log.is_enabled_for(10):  # logging.DEBUG
        shown = result.rejected[:MAX_LOGGED_REJECTIONS]
        log.debug(
            "usage_rejected",
            account_id=fields["account_id"],
            batch_id=batch.batch_id,
            rejected=[
                {
                    "index": r.index,
                    "event_id": r.event_id[: usage.MAX_EVENT_ID_LENGTH],
                    "reason": r.reason,
                }
                for r in shown
            ],
            not_shown=len(result.rejected) - len(shown),
        )
    return fields


class UsageServicer(pb_grpc.UsageServiceServicer):
    def __init__(
        self, db: Database, writer: IngestionWriter, *, stream_idle_seconds: float = 300.0
    ) -> None:
        self.db = db
        self.writer = writer
        self.stream_idle_seconds = stream_idle_seconds

    async def RecordUsage(
        self,
        request: UsageRequest,  # type: ignore[override]  # takes the kernel-decoded UsageRequest, not the pb message
        context: grpc.aio.ServicerContext,
    ) -> pb.RecordUsageResponse:
        batch = batch_of(request)
        result = await self.writer.submit(batch, deadline.get())
        log_fields().update(batch_log(batch, result))  # on the call's own "rpc" line
        return pb.RecordUsageResponse(**ack_fields(batch.batch_id, result))

    async def StreamUsage(
        self,
        requests: AsyncIterator[UsageRequest],  # type: ignore[override]  # takes the kernel-decoded UsageRequest, not the pb message
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.StreamUsageResponse]:
        """Acks are sent in batch order, each once its batch is committed; batches pipeline.
        A stream idle for ``stream_idle_seconds`` (no batch received, none waiting for its commit
        or its ack) is closed with ``UNAVAILABLE``, which frees its slot."""
        in_flight: asyncio.Queue[
            tuple[UsageBatch, asyncio.Task[BatchResult]] | Exception | None
        ] = asyncio.Queue(MAX_IN_FLIGHT_PER_STREAM)
        # The stream's "rpc" line, when it ends, sums its batches; each batch has a line too.
        totals = log_fields()
        request_id = current_context().request_id  # joins the batch lines to the stream's
        totals.update(batches=0, accepted=0, duplicates=0, late=0, rejected=0)
        stream_accounts: set[str | None] = set()

        async def read() -> None:
            try:
                async for request in requests:
                    batch = batch_of(request)
                    task = asyncio.ensure_future(self.writer.submit(batch, deadline.get()))
                    await in_flight.put((batch, task))
                await in_flight.put(None)
            except Exception as exc:  # reported after the acks of the batches before it
                await in_flight.put(exc)

        reader = asyncio.ensure_future(read())
        try:
            while True:
                # An empty queue here means every batch received so far has been acked.
                if in_flight.empty():
                    item = await self._next_or_idle(in_flight)
                else:
                    item = in_flight.get_nowait()
                if item is None:
                    break
                if isinstance(item, Exception):
                    raise item
                batch, task = item
                result = await task
                fields = batch_log(batch, result)
                log.info("usage_batch", rpc=STREAM_RPC, request_id=request_id, **fields)
                for name in ("accepted", "duplicates", "late", "rejected"):
                    totals[name] += fields[name]
                totals["batches"] += 1
                stream_accounts.update(fields.get("account_ids") or (fields["account_id"],))
                totals["account_id"] = (
                    next(iter(stream_accounts)) if len(stream_accounts) == 1 else None
                )
                yield pb.StreamUsageResponse(**ack_fields(batch.batch_id, result))
        finally:
            reader.cancel()

    async def _next_or_idle(self, in_flight: asyncio.Queue[Any]) -> Any:
        try:
            return await asyncio.wait_for(in_flight.get(), self.stream_idle_seconds)
        except TimeoutError:
            raise Unavailable(
                f"this stream sent no batch for {self.stream_idle_seconds:g} s with none waiting "
                "for its ack (BILLING_STREAM_IDLE_SECONDS), so it was closed to free its slot; "
                "reconnect and resend the batches that were not acked"
            ) from None

    async def GetCurrentUsage(
        self, request: pb.GetCurrentUsageRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCurrentUsageResponse:
        report = await run(
            usage_reports.current_usage, self.db, request.account_id, current_context().now
        )
        return convert.current_usage_out(report)

    async def GetMonthlyUsage(
        self, request: pb.GetMonthlyUsageRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMonthlyUsageResponse:
        period = validation.year_month_in(request.year, request.month)
        report = await run(
            usage_reports.monthly_usage,
            self.db,
            request.account_id,
            period,
            now=current_context().now,
        )
        return convert.monthly_usage_out(report)

    async def GetUsageHistory(
        self, request: pb.GetUsageHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUsageHistoryResponse:
        query = validation.history_query_in(request)
        page = await run(usage_reports.usage_history, self.db, query)
        return convert.history_out(page)

    async def ListUsageReports(
        self, request: pb.ListUsageReportsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListUsageReportsResponse:
        page = await run(
            hourly_reports.list_usage_reports,
            self.db,
            account_id=request.account_id,
            page_size=request.page_size,
            resume_token=request.resume_token,
        )
        return convert.hourly_reports_out(page)

    async def GetUsageForecast(
        self, request: pb.GetUsageForecastRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUsageForecastResponse:
        forecast = await run(
            forecasting.usage_forecast,
            self.db,
            request.account_id,
            request.months,
            current_context().now,
        )
        return reports.forecast_out(forecast)


class _Registered:
    """Takes the handlers the generated ``add_UsageServiceServicer_to_server`` registers."""

    handlers: dict[str, Any]

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers = handlers


def add_to_server(servicer: UsageServicer, server: grpc.aio.Server, codec: UsageCodec) -> None:
    """Register ``UsageService`` as generated, except that the ingest RPCs' requests come from
    ``decode_request(codec)``."""
    registered = _Registered()
    pb_grpc.add_UsageServiceServicer_to_server(servicer, registered)  # type: ignore[arg-type]  # collects the handlers
    decode = decode_request(codec)
    handlers = {
        name: handler._replace(request_deserializer=decode) if name in _INGEST_METHODS else handler
        for name, handler in registered.handlers.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
