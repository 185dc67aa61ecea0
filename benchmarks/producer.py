"""A usage producer in its own process: streams N events in batches over K concurrent streams.

Prints one JSON line: {"events", "seconds", "accepted", "duplicates", "rejected"}.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import grpc
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb
from google.protobuf import timestamp_pb2


def build_batches(account_id: str, tenants: list[str], partners: list[str], events: int,
                  batch_size: int, prefix: str, occurred_seconds: int) -> list[bytes]:
    """Serialized StreamUsageRequest batches, built before the clock starts."""
    batches = []
    stamp = timestamp_pb2.Timestamp(seconds=occurred_seconds)
    for start in range(0, events, batch_size):
        request = upb.StreamUsageRequest(batch_id=f"{prefix}-{start}")
        for i in range(start, min(start + batch_size, events)):
            request.events.append(upb.UsageEvent(
                event_id=f"{prefix}-{i}", account_id=account_id,
                tenant_id=tenants[i % len(tenants)], partner_id=partners[i % len(partners)],
                kind=common_pb2.USAGE_KIND_MESSAGE, quantity=1, occurred_at=stamp))
        batches.append(request.SerializeToString())
    return batches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--tenants", required=True)
    parser.add_argument("--partners", required=True)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--occurred", type=int, required=True)
    args = parser.parse_args()
    per_stream = args.events // args.streams
    payloads = [build_batches(args.account, args.tenants.split(","), args.partners.split(","),
                              per_stream, args.batch, f"s{s}", args.occurred)
                for s in range(args.streams)]
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    lock = threading.Lock()
    channel = grpc.insecure_channel(args.target, options=[
        ("grpc.max_send_message_length", 64 << 20)])
    stream = channel.stream_stream(
        "/as2aas.billing.v1.UsageService/StreamUsage",
        request_serializer=lambda b: b, response_deserializer=upb.StreamUsageResponse.FromString)

    def run(batches: list[bytes]) -> None:
        counts = [0, 0, 0]
        for ack in stream(iter(batches), metadata=[("authorization", f"Bearer {args.token}")]):
            counts[0] += ack.accepted
            counts[1] += ack.duplicates
            counts[2] += len(ack.rejected)
        with lock:
            totals["accepted"] += counts[0]
            totals["duplicates"] += counts[1]
            totals["rejected"] += counts[2]

    threads = [threading.Thread(target=run, args=(p,)) for p in payloads]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    print(json.dumps({"events": per_stream * args.streams, "seconds": seconds, **totals}))


if __name__ == "__main__":
    main()
