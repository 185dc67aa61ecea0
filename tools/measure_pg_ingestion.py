"""PostgreSQL ingestion with UUIDv4 event ids, beside bare psycopg with the same keys, as the
store grows (issue 16, point 4): README, "Data lifecycle and sizing".

    BILLING_TEST_DATABASE_URL=postgresql+psycopg://... python -m tools.measure_pg_ingestion \\
        [--phase-events 300000] [--phases 3]

Each phase streams ``--phase-events`` new events (batches of 1,000 over 4 streams, from a
producer process) to ``billing-svc serve``, then inserts the same (account, event id) keys with
bare psycopg ``executemany … ON CONFLICT DO NOTHING`` (1,000 rows a transaction) into a table
keyed by them, holding the same rows as the service's by then: each line is one point of the
curve over stored events. Then the bytes per stored event of both. Not a test: its figures
depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STREAMS = 4
BATCH = 1000


def _ids(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def produce(args: argparse.Namespace) -> None:
    """The producer process: streams the phase's events, prints one JSON line."""
    import grpc
    from as2aas.billing.v1 import common_pb2
    from as2aas.billing.v1 import usage_service_pb2 as upb
    from google.protobuf import timestamp_pb2

    tenants, partners = args.tenants.split(","), args.partners.split(",")
    stamp = timestamp_pb2.Timestamp(seconds=int(time.time()) - 60)
    ids = _ids(args.seed, args.events)
    per_stream = args.events // STREAMS
    payloads: list[list[bytes]] = []
    for s in range(STREAMS):
        batches = []
        for start in range(s * per_stream, (s + 1) * per_stream, BATCH):
            request = upb.StreamUsageRequest(batch_id=f"{args.seed}-{start}")
            for i in range(start, min(start + BATCH, (s + 1) * per_stream)):
                request.events.append(
                    upb.UsageEvent(
                        event_id=ids[i],
                        account_id=args.account,
                        tenant_id=tenants[i % len(tenants)],
                        partner_id=partners[i % len(partners)],
                        kind=common_pb2.USAGE_KIND_MESSAGE,
                        quantity=1,
                        occurred_at=stamp,
                    )
                )
            batches.append(request.SerializeToString())
        payloads.append(batches)
    channel = grpc.insecure_channel(
        args.target, options=[("grpc.max_send_message_length", 64 << 20)]
    )
    stream = channel.stream_stream(
        "/as2aas.billing.v1.UsageService/StreamUsage",
        request_serializer=lambda b: b,
        response_deserializer=upb.StreamUsageResponse.FromString,
    )
    accepted = [0]
    lock = threading.Lock()

    def run(batches: list[bytes]) -> None:
        count = 0
        for ack in stream(iter(batches), metadata=[("authorization", f"Bearer {args.token}")]):
            count += ack.accepted
        with lock:
            accepted[0] += count

    threads = [threading.Thread(target=run, args=(p,)) for p in payloads]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"accepted": accepted[0], "seconds": time.perf_counter() - started}))


def _baseline(dsn: str, account_id: str, ids: list[str]) -> float:
    import psycopg

    now_us = int(time.time() * 1e6)
    rows = [
        (account_id, event_id, "ten", "prt", 1, 1, now_us, "2026-12", False, now_us)
        for event_id in ids
    ]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS usage_event_baseline (account_id TEXT, "
            "event_id TEXT, tenant_id TEXT, partner_id TEXT, kind INT, "
            "quantity BIGINT, occurred_at_us BIGINT, period TEXT, late BOOLEAN, "
            "received_at_us BIGINT, PRIMARY KEY (account_id, event_id))"
        )
        started = time.perf_counter()
        for start in range(0, len(rows), BATCH):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO usage_event_baseline VALUES "
                    "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                    rows[start : start + BATCH],
                )
        return len(rows) / (time.perf_counter() - started)


def measure(args: argparse.Namespace) -> None:
    import psycopg
    from as2aas.billing.v1 import billing_service_pb2 as pb
    from sqlalchemy.engine import make_url

    from tests.support import TOKENS, Client, ServiceProcess, auth, fresh_database

    with fresh_database(str(ROOT)) as url:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        service = ServiceProcess(url, BILLING_SCHEDULER_INTERVAL_SECONDS="1.0").start()
        client = Client(service.target)
        try:
            account = client.billing.CreateAccount(
                pb.CreateAccountRequest(name="Bench Co", plan_id="enterprise", skip_trial=True),
                metadata=auth("admin"),
            ).account.account_id
            tenants = [
                client.billing.CreateTenant(
                    pb.CreateTenantRequest(account_id=account, name=f"t{i}"), metadata=auth("admin")
                ).tenant.tenant_id
                for i in range(4)
            ]
            partners = [
                client.billing.CreateMasterPartner(
                    pb.CreateMasterPartnerRequest(account_id=account, name=f"p{i}"),
                    metadata=auth("admin"),
                ).master_partner.partner_id
                for i in range(4)
            ]
            print("| stored before | billing-svc (events/s) | bare psycopg (rows/s) | ratio |")
            print("|---|---|---|---|")
            for phase in range(args.phases):
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "tools.measure_pg_ingestion",
                        "produce",
                        "--target",
                        service.target,
                        "--token",
                        TOKENS["producer"][0],
                        "--account",
                        account,
                        "--tenants",
                        ",".join(tenants),
                        "--partners",
                        ",".join(partners),
                        "--events",
                        str(args.phase_events),
                        "--seed",
                        str(phase),
                    ],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                result = json.loads(out.strip().splitlines()[-1])
                assert result["accepted"] == args.phase_events, result
                service_rate = result["accepted"] / result["seconds"]
                base_rate = _baseline(dsn, account, _ids(phase, args.phase_events))
                print(
                    f"| {phase * args.phase_events:,} | {service_rate:,.0f} | "
                    f"{base_rate:,.0f} | {service_rate / base_rate:.2f} |",
                    flush=True,
                )
            with psycopg.connect(dsn) as conn:
                stored = conn.execute("SELECT count(*) FROM usage_event").fetchone()[0]
                ours = conn.execute(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "WHERE c.relkind = 'r' AND (c.relname ~ '^usage_event_p[0-9]{6}$' "
                    "OR c.relname IN ('usage_event_kept', 'usage_event_key'))"
                ).fetchone()[0]
                base = conn.execute(
                    "SELECT pg_total_relation_size('usage_event_baseline')"
                ).fetchone()[0]
            print(
                f"\nbytes per stored event ({stored:,} events): billing-svc "
                f"{ours / stored:.0f} (partition + its index + dedupe key table + its "
                f"indexes), bare table {base / stored:.0f}; load average "
                f"{os.getloadavg()[0]:.1f}"
            )
        finally:
            client.close()
            service.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode")
    producer = sub.add_parser("produce")
    for name in ("target", "token", "account", "tenants", "partners"):
        producer.add_argument(f"--{name}", required=True)
    producer.add_argument("--events", type=int, required=True)
    producer.add_argument("--seed", type=int, required=True)
    parser.add_argument("--phase-events", type=int, default=300_000)
    parser.add_argument("--phases", type=int, default=3)
    args = parser.parse_args()
    if args.mode == "produce":
        produce(args)
    else:
        measure(args)


if __name__ == "__main__":
    main()
