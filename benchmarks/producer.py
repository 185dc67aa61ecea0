"""A usage producer in its own process: streams N events in batches over K concurrent streams.

Prints one JSON line: {"events", "seconds", "accepted", "duplicates", "rejected"}.

Two ways to say what to send: one account (``--account``, ``--tenants``, ``--partners``, ids
``s<stream>-<n>``: the ingestion suite), or many (``--accounts-file``, ``--ids``: the scale and
soak suites, events as ``benchmarks.ids`` plans them). With ``--seconds`` it streams for that
long instead, building batches as it goes with ``occurred_at`` a second behind the clock of
``--fast-clock`` (the soak's), and prints a progress line every second as well.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator

import grpc
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb
from google.protobuf import timestamp_pb2

from benchmarks.fastclock import FastClock
from benchmarks.ids import BenchAccount, StreamPlan


def build_batches(
    account_id: str,
    tenants: list[str],
    partners: list[str],
    events: int,
    batch_size: int,
    prefix: str,
    occurred_seconds: int,
) -> list[bytes]:
    """Serialized StreamUsageRequest batches, built before the clock starts."""
    batches = []
    stamp = timestamp_pb2.Timestamp(seconds=occurred_seconds)
    for start in range(0, events, batch_size):
        request = upb.StreamUsageRequest(batch_id=f"{prefix}-{start}")
        for i in range(start, min(start + batch_size, events)):
            request.events.append(
                upb.UsageEvent(
                    event_id=f"{prefix}-{i}",
                    account_id=account_id,
                    tenant_id=tenants[i % len(tenants)],
                    partner_id=partners[i % len(partners)],
                    kind=common_pb2.USAGE_KIND_MESSAGE,
                    quantity=1,
                    occurred_at=stamp,
                )
            )
        batches.append(request.SerializeToString())
    return batches


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


# UsageEvent fields 2-6 of each (account, tenant, partner), made once: kind MESSAGE (5 = 1) and
# quantity 1 (6 = 1) are varints.
_tails: dict[tuple[str, str, str], bytes] = {}


def encode_batch(
    batch_id: str, events: list[tuple[BenchAccount, str, str, str]], occurred_seconds: int
) -> bytes:
    """A serialized StreamUsageRequest of message events of quantity 1, as protobuf would write
    it (fields in number order), at a fraction of its cost per event: the soak builds batches
    while it streams."""
    stamp = _field(7, b"\x08" + _varint(occurred_seconds))
    parts = [_field(1, batch_id.encode())]
    for account, event_id, tenant, partner in events:
        key = (account.account_id, tenant, partner)
        tail = _tails.get(key)
        if tail is None:
            tail = _tails[key] = (
                _field(2, key[0].encode())
                + _field(3, tenant.encode())
                + _field(4, partner.encode())
                + b"\x28\x01\x30\x01"
            )
        parts.append(_field(2, _field(1, event_id.encode()) + tail + stamp))
    return b"".join(parts)


def planned_batches(
    plan: StreamPlan, stream: int, accounts: list[BenchAccount], occurred: FastClock | int
) -> Iterator[bytes]:
    """The stream's batches, serialized; ``occurred`` is a fixed time (seconds) or a clock to
    stamp each batch a second behind."""
    for number, batch in enumerate(plan.batches(stream, accounts)):
        seconds = occurred if isinstance(occurred, int) else int(occurred.now().timestamp()) - 1
        yield encode_batch(f"{plan.kind}-{plan.seed}-{stream}-{number}", batch, seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--account")
    parser.add_argument("--tenants")
    parser.add_argument("--partners")
    parser.add_argument("--accounts-file", help="JSON list of BenchAccount (many accounts)")
    parser.add_argument("--ids", default="uuid4", help="with --accounts-file: id kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--accounts-per-batch", type=int, default=10)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--occurred", type=int, help="occurred_at of every event (seconds)")
    parser.add_argument("--seconds", type=float, help="stream for this long (with --fast-clock)")
    parser.add_argument("--fast-clock", help="FastClock spec (benchmarks.fastclock)")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=0,
        help="batches sent and not acknowledged yet, per stream (0: no bound)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="events per second offered, over all streams (0: as fast as the service takes them)",
    )
    args = parser.parse_args()
    per_stream = args.events // args.streams
    payloads: list[Iterator[bytes] | list[bytes]]
    if args.accounts_file:
        with open(args.accounts_file) as handle:
            accounts = [BenchAccount.from_json(item) for item in json.load(handle)]
        events = 10**12 if args.seconds else args.events  # endless: the clock stops it
        plan = StreamPlan(
            args.ids, args.seed, args.streams, events, args.batch, args.accounts_per_batch
        )
        occurred = FastClock.parse(args.fast_clock) if args.seconds else args.occurred
        payloads = [planned_batches(plan, s, accounts, occurred) for s in range(args.streams)]
        if not args.seconds:  # built before the clock starts
            payloads = [list(p) for p in payloads]
    else:
        payloads = [
            build_batches(
                args.account,
                args.tenants.split(","),
                args.partners.split(","),
                per_stream,
                args.batch,
                f"s{s}",
                args.occurred,
            )
            for s in range(args.streams)
        ]
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    lock = threading.Lock()
    stop = threading.Event()
    channel = grpc.insecure_channel(
        args.target, options=[("grpc.max_send_message_length", 64 << 20)]
    )
    stream = channel.stream_stream(
        "/as2aas.billing.v1.UsageService/StreamUsage",
        request_serializer=lambda b: b,
        response_deserializer=upb.StreamUsageResponse.FromString,
    )

    def until_stopped(
        batches: Iterator[bytes] | list[bytes], window: threading.Semaphore | None
    ) -> Iterator[bytes]:
        # Built lazily (the soak stamps each batch as it goes), a batch must not wait in gRPC's
        # send buffers while the clock runs on: a bounded window, as a real producer keeps.
        # With --rate, each stream sends a batch every batch * streams / rate seconds (a steady
        # producer); a stream that falls behind catches up at once, as far as the window allows.
        # The wait comes before the batch is built: it is stamped when it is due.
        interval = args.batch * args.streams / args.rate if args.rate else 0.0
        next_at = time.monotonic()
        pending = iter(batches)
        while True:
            if interval:
                while (wait := next_at - time.monotonic()) > 0:
                    if stop.wait(min(wait, 0.5)):
                        return
                next_at += interval
            batch = next(pending, None)
            if batch is None:
                return
            while window is not None and not window.acquire(timeout=0.5):
                if stop.is_set():
                    return
            if stop.is_set():
                return
            yield batch

    def run(batches: Iterator[bytes] | list[bytes]) -> None:
        window = threading.Semaphore(args.in_flight) if args.in_flight else None
        for ack in stream(
            until_stopped(batches, window), metadata=[("authorization", f"Bearer {args.token}")]
        ):
            if window is not None:
                window.release()
            with lock:  # per ack: the progress lines read them while streaming
                totals["accepted"] += ack.accepted
                totals["duplicates"] += ack.duplicates
                totals["rejected"] += len(ack.rejected)

    threads = [threading.Thread(target=run, args=(p,)) for p in payloads]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    if args.seconds:
        while time.perf_counter() - started < args.seconds:
            time.sleep(1.0)
            with lock:
                print(json.dumps({"wall": time.time(), **totals}), flush=True)
        stop.set()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    sent = per_stream * args.streams if not args.seconds else sum(totals.values())
    print(json.dumps({"events": sent, "seconds": seconds, **totals}), flush=True)


if __name__ == "__main__":
    main()
