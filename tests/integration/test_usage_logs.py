"""The usage RPCs' log lines, read from a real ``billing-svc serve``'s JSON output: each names
the account, the batch and its counts; the reasons of rejections are at debug level."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from as2aas.billing.v1 import usage_service_pb2 as upb

from tests.integration.test_usage import PRODUCER, Shop, now
from tests.support import Client, ServiceProcess, fresh_database


def log_lines(service: ServiceProcess, event: str, count: int) -> list[dict]:
    """The service's first ``count`` log lines of ``event`` (waiting for them a little)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in service.output().splitlines() if line.startswith("{")]
        found = [line for line in lines if line.get("event") == event]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_usage_rpc_logs_name_account_batch_and_counts(tmp_path) -> None:
    with fresh_database(str(tmp_path)) as url:
        service = ServiceProcess(url, BILLING_LOG_LEVEL="debug").start()
        client = Client(service.target)
        try:
            shop = Shop(client, skip_trial=True, start_time=None)
            at = now() - timedelta(minutes=5)
            good = [shop.message(f"e{i}", 3, at=at) for i in range(3)]
            bad = shop.message("e-bad", 0, at=at)  # a quantity of 0 is rejected
            shop.record([*good[:2], bad], batch_id="rec-1")
            acks = list(
                client.usage.StreamUsage(
                    iter(
                        [
                            upb.StreamUsageRequest(batch_id="str-1", events=good),  # 2 duplicates
                            upb.StreamUsageRequest(
                                batch_id="str-2", events=[shop.message("e9", at=at)]
                            ),
                        ]
                    ),
                    metadata=PRODUCER,
                )
            )
            assert [a.accepted for a in acks] == [1, 1]
        finally:
            client.close()
            service.terminate()

        (recorded,) = [
            line for line in log_lines(service, "rpc", 1) if line["rpc"].endswith("/RecordUsage")
        ]
        assert {
            key: recorded[key]
            for key in (
                "account_id",
                "batch_id",
                "events",
                "accepted",
                "duplicates",
                "late",
                "rejected",
                "code",
            )
        } == {
            "account_id": shop.account_id,
            "batch_id": "rec-1",
            "events": 3,
            "accepted": 2,
            "duplicates": 0,
            "late": 0,
            "rejected": 1,
            "code": "OK",
        }
        (rejected,) = log_lines(service, "usage_rejected", 1)
        assert rejected["level"] == "debug"
        assert (rejected["account_id"], rejected["batch_id"]) == (shop.account_id, "rec-1")
        (reason,) = rejected["rejected"]
        assert (reason["index"], reason["event_id"]) == (2, "e-bad") and reason["reason"]

        batches = log_lines(service, "usage_batch", 2)
        assert [
            (b["account_id"], b["batch_id"], b["accepted"], b["duplicates"], b["rejected"])
            for b in batches
        ] == [(shop.account_id, "str-1", 1, 2, 0), (shop.account_id, "str-2", 1, 0, 0)]
        (streamed,) = [
            line for line in log_lines(service, "rpc", 2) if line["rpc"].endswith("/StreamUsage")
        ]
        assert {
            key: streamed[key]
            for key in ("account_id", "batches", "accepted", "duplicates", "late", "rejected")
        } == {
            "account_id": shop.account_id,
            "batches": 2,
            "accepted": 2,
            "duplicates": 2,
            "late": 0,
            "rejected": 0,
        }
        assert {b["request_id"] for b in batches} == {streamed["request_id"]}
