"""Usage "reported to billing systems hourly" (issue 15, point 2): reports after each closed hour
plus the grace, revisions for late events that add up to the period's counters, the
billing.usage_reported webhook for endpoints that name it, and the ListUsageReports cursor."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import usage_service_pb2 as upb
from sqlmodel import select

from billing_svc.domain.periods import Period
from billing_svc.services import hourly_reports
from billing_svc.storage.tables import Account, UsageReport, UsageReportHead
from tests.integration.test_invoicing import close, imported_shop
from tests.integration.test_usage import USAGE_READER, Shop, now, ts
from tests.integration.test_webhooks import endpoint, verify
from tests.support import (
    READER,
    Client,
    Receiver,
    ServerThread,
    bad_request_fields,
    create_account,
    fresh_database,
    settings_for_tests,
)

USAGE_REPORTED = "billing.usage_reported"


def hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def list_reports(
    client: Client, account_id: str, resume_token: str = "", page_size: int = 0
) -> upb.ListUsageReportsResponse:
    return client.usage.ListUsageReports(
        upb.ListUsageReportsRequest(
            account_id=account_id, resume_token=resume_token, page_size=page_size
        ),
        metadata=USAGE_READER,
    )


def all_reports(client: Client, account_id: str) -> list[upb.UsageReport]:
    reports, token = [], ""
    while True:
        page = list_reports(client, account_id, token, page_size=1000)
        reports.extend(page.reports)
        token = page.resume_token
        if not page.reports:
            return reports


def wait_reports(
    client: Client, account_id: str, count: int, timeout: float = 30
) -> list[upb.UsageReport]:
    deadline = time.monotonic() + timeout
    while True:
        reports = all_reports(client, account_id)
        if len(reports) >= count or time.monotonic() > deadline:
            assert len(reports) == count, reports
            return reports
        time.sleep(0.1)


def tenants_of(report: upb.UsageReport) -> dict[str, tuple[int, int]]:
    return {t.tenant_id: (t.messages, t.storage_bytes) for t in report.tenants}


def partners_of(report: upb.UsageReport) -> dict[str, int]:
    return {p.partner_id: p.messages for p in report.partners}


def account_shop(client: Client) -> Shop:
    """An account that existed for a day: hours of the last day are within its life."""
    return Shop(client, skip_trial=True, start_time=ts(now() - timedelta(days=1)))


def test_usage_is_reported_to_billing_systems_hourly_once_the_hour_and_grace_passed(
    tmp_path,
) -> None:
    # Two hours of grace: an hour that ended 30-90 minutes ago is not reported yet. A database
    # of its own: the session's server (300 s of grace) would report those hours.
    with fresh_database(str(tmp_path)) as url:
        replica = ServerThread(settings_for_tests(url, usage_report_grace_seconds=7200)).start()
        client = Client(replica.target)
        try:
            _reported_after_the_hour_and_grace(client)
        finally:
            client.close()
            replica.stop()


def _reported_after_the_hour_and_grace(client: Client) -> None:
    shop = account_shop(client)
    t0, t1 = shop.tenants
    p0, p1 = shop.partners
    hour = hour_start(now() - timedelta(hours=4))
    recent = now() - timedelta(minutes=30)
    ack = shop.record(
        [
            shop.message("a", 5, tenant=0, partner=0, at=hour + timedelta(minutes=10)),
            shop.message("b", 3, tenant=1, partner=1, at=hour + timedelta(minutes=20)),
            shop.message("c", 2, tenant=0, partner=None, at=hour + timedelta(minutes=59)),
            # The hour's last reading is the level held at its end, not its highest.
            shop.storage("s1", 4, at=hour + timedelta(minutes=5), tenant=0),
            shop.storage("s2", 3, at=hour + timedelta(minutes=50), tenant=0),
            # Tenant 1's reading of an earlier hour still holds at this hour's end.
            shop.storage("s3", 7, at=hour - timedelta(hours=2), tenant=1),
            shop.message("d", 11, at=recent),
            shop.message("e", 13, at=now()),
        ]
    )
    assert ack.accepted == 8
    reports = wait_reports(client, shop.account_id, 2)  # the earlier hour's reading, this one
    time.sleep(1.0)  # several scheduler runs: the recent hours stay unreported
    assert len(all_reports(client, shop.account_id)) == 2
    earlier, report = reports
    assert earlier.hour == ts(hour - timedelta(hours=2))
    assert tenants_of(earlier) == {t1: (0, 7 * 10**9)} and not earlier.partners
    assert report.hour == ts(hour) and report.revision == 1
    assert report.account_id == shop.account_id
    assert report.period == Period.containing(hour).label
    assert tenants_of(report) == {t0: (7, 3 * 10**9), t1: (3, 7 * 10**9)}
    assert partners_of(report) == {p0: 5, p1: 3}
    assert report.sequence > earlier.sequence
    assert report.estimated_charges_to_date.units > 0  # the plan's base fee at least
    assert report.create_time.ToDatetime() > report.hour.ToDatetime()


def test_a_late_event_is_reported_to_billing_systems_hourly_as_a_new_revision_with_the_delta(
    client: Client,
) -> None:
    shop = account_shop(client)
    t0, t1 = shop.tenants
    p0, p1 = shop.partners
    hour = hour_start(now() - timedelta(hours=3))
    shop.record(
        [
            shop.message("a", 5, tenant=0, partner=0, at=hour + timedelta(minutes=1)),
            shop.storage("s1", 2, at=hour + timedelta(minutes=30), tenant=0),
        ]
    )
    (first,) = wait_reports(client, shop.account_id, 1)
    assert tenants_of(first) == {t0: (5, 2 * 10**9)} and partners_of(first) == {p0: 5}

    # A late message and a resent (duplicate) one: revision 2 carries the new message only.
    ack = shop.record(
        [
            shop.message("late", 4, tenant=1, partner=1, at=hour + timedelta(minutes=9)),
            shop.message("a", 5, tenant=0, partner=0, at=hour + timedelta(minutes=1)),
        ]
    )
    assert (ack.accepted, ack.duplicates) == (1, 1)
    _, second = wait_reports(client, shop.account_id, 2)
    assert second.revision == 2 and second.hour == first.hour
    assert tenants_of(second) == {t0: (0, 2 * 10**9), t1: (4, 0)}
    assert partners_of(second) == {p1: 4}

    # A reading older than the hour's last one changes nothing at the hour's end: no revision.
    shop.record([shop.storage("s0", 9, at=hour + timedelta(minutes=10), tenant=0)])
    time.sleep(1.0)
    assert len(all_reports(client, shop.account_id)) == 2
    # A later one does: the new level, and no message delta.
    shop.record([shop.storage("s2", 6, at=hour + timedelta(minutes=45), tenant=0)])
    *_, third = wait_reports(client, shop.account_id, 3)
    assert third.revision == 3 and tenants_of(third) == {t0: (0, 6 * 10**9)}
    assert not third.partners


def test_revisions_reported_to_billing_systems_hourly_sum_to_the_invoice_and_period_counters(
    client: Client,
) -> None:
    last = Period.containing(now()).previous()
    shop = imported_shop(client)
    hours = [
        last.start + timedelta(days=day, hours=hour)
        for day, hour in ((0, 0), (2, 5), (2, 6), (10, 23), (20, 12))
    ]
    events = [
        shop.message(
            f"m{i}",
            1 + i % 7,
            tenant=i % 2,
            partner=(None, 0, 1)[i % 3],
            at=hours[i % len(hours)] + timedelta(minutes=i % 60),
        )
        for i in range(60)
    ]
    assert shop.record(events).accepted == 60
    wait_reports(client, shop.account_id, len(hours))
    invoice = close(client, shop.account_id, last)
    invoiced = {t.tenant_id: t.message_count for t in invoice.tenant_breakdown}

    # Late events: in reported hours and in an hour that had none.
    late_hours = [hours[1], hours[3], last.start + timedelta(days=25)]
    late = [
        shop.message(
            f"late{i}",
            10 + i,
            tenant=i % 2,
            partner=(0, 1, None)[i % 3],
            at=late_hours[i % 3] + timedelta(minutes=30),
        )
        for i in range(9)
    ]
    ack = shop.record(late)
    assert (ack.accepted, ack.late) == (9, 9)
    reports = wait_reports(client, shop.account_id, len(hours) + 3)
    revisions = defaultdict(list)
    for report in reports:
        revisions[report.hour.ToDatetime()].append(report.revision)
    assert sorted(len(r) for r in revisions.values()) == [1, 1, 1, 1, 2, 2]
    assert all(r == list(range(1, len(r) + 1)) for r in revisions.values())

    tenant_sums: dict[str, int] = defaultdict(int)
    partner_sums: dict[str, int] = defaultdict(int)
    for report in reports:
        assert report.period == last.label
        for tenant in report.tenants:
            tenant_sums[tenant.tenant_id] += tenant.messages
        for partner in report.partners:
            partner_sums[partner.partner_id] += partner.messages
    monthly = shop.monthly(last)
    assert dict(tenant_sums) == {
        t.tenant_id: t.message_count for t in monthly.tenant_breakdown if t.message_count
    }
    assert dict(partner_sums) == {p.partner_id: p.message_count for p in monthly.partner_breakdown}
    assert (
        sum(tenant_sums.values())
        == monthly.total_messages
        == sum(e.quantity for e in events + late)
    )
    late_by_tenant: dict[str, int] = defaultdict(int)
    for event in late:
        late_by_tenant[event.tenant_id] += event.quantity
    assert {t: invoiced[t] + late_by_tenant[t] for t in invoiced} == dict(tenant_sums)


def test_usage_reported_to_billing_systems_hourly_goes_only_to_endpoints_naming_the_type(
    client: Client,
) -> None:
    everything, reports, thresholds = Receiver(), Receiver(), Receiver()
    try:
        shop = account_shop(client)
        endpoint(client, shop.account_id, everything.url)  # empty filter: all (other) events
        named = endpoint(
            client, shop.account_id, reports.url, USAGE_REPORTED, "billing.usage_threshold"
        )
        endpoint(client, shop.account_id, thresholds.url, "billing.usage_threshold")
        hour = hour_start(now() - timedelta(hours=2))
        shop.record([shop.message("a", 3, tenant=0, partner=1, at=hour)])
        (report,) = wait_reports(client, shop.account_id, 1)
        ((_, body),) = reports.wait_for(1)
        payload = verify(named.secret, reports.received()[0])
        assert payload["type"] == USAGE_REPORTED
        data = payload["data"]
        assert data == json.loads(body)["data"]
        assert data["account_id"] == shop.account_id and data["revision"] == 1
        assert data["hour"] == hour.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert data["sequence"] == report.sequence
        assert data["tenants"] == [
            {"tenant_id": shop.tenants[0], "messages": 3, "storage_bytes": 0}
        ]
        assert data["partners"] == [{"partner_id": shop.partners[1], "messages": 3}]
        assert data["currency"] == "USD" and data["estimated_charges_to_date"] > 0
        time.sleep(1.0)  # the dispatcher had every chance to send it elsewhere
        for receiver in (everything, thresholds):
            assert not [
                b for _, b in receiver.received() if json.loads(b)["type"] == USAGE_REPORTED
            ]
        logged = client.billing.ListWebhookEvents(
            pb.ListWebhookEventsRequest(account_id=shop.account_id, event_type=USAGE_REPORTED),
            metadata=READER,
        ).events
        assert len(logged) == 1
    finally:
        for receiver in (everything, reports, thresholds):
            receiver.close()


def test_reported_to_billing_systems_hourly_resume_token_returns_only_newer_reports(
    client: Client,
) -> None:
    shop = account_shop(client)
    first_hour = hour_start(now() - timedelta(hours=5))
    shop.record(
        [
            shop.message("a", 1, at=first_hour),
            shop.message("b", 2, at=first_hour + timedelta(hours=1)),
        ]
    )
    wait_reports(client, shop.account_id, 2)
    page = list_reports(client, shop.account_id, page_size=1)
    assert [r.hour for r in page.reports] == [ts(first_hour)] and page.resume_token
    page = list_reports(client, shop.account_id, page.resume_token, page_size=1)
    assert [r.hour for r in page.reports] == [ts(first_hour + timedelta(hours=1))]
    caught_up = list_reports(client, shop.account_id, page.resume_token)
    assert not caught_up.reports and caught_up.resume_token

    # New hours and a revision of a reported one: only they come after the token.
    shop.record(
        [
            shop.message("c", 4, at=first_hour + timedelta(hours=2)),
            shop.message("d", 8, at=first_hour + timedelta(minutes=5)),
        ]
    )
    deadline = time.monotonic() + 30
    newer: list[upb.UsageReport] = []
    token = caught_up.resume_token
    while len(newer) < 2 and time.monotonic() < deadline:
        page = list_reports(client, shop.account_id, token)
        newer.extend(page.reports)
        token = page.resume_token
        time.sleep(0.1)
    assert sorted((r.hour.ToDatetime(), r.revision) for r in newer) == [
        (first_hour.replace(tzinfo=None), 2),
        ((first_hour + timedelta(hours=2)).replace(tzinfo=None), 1),
    ]
    assert not list_reports(client, shop.account_id, token).reports
    # An empty token starts from the first report again.
    assert len(list_reports(client, shop.account_id).reports) == 4


def test_list_usage_reports_refuses_bad_tokens_and_requests(client: Client) -> None:
    shop, other = account_shop(client), account_shop(client)
    token = list_reports(client, shop.account_id).resume_token
    history = client.usage.GetUsageHistory(
        upb.GetUsageHistoryRequest(
            account_id=shop.account_id,
            granularity=upb.GRANULARITY_HOUR,
            start_time=ts(now() - timedelta(days=1)),
        ),
        metadata=USAGE_READER,
    )
    assert history is not None
    for bad in (
        "garbage!",
        "e30",
        token[:-2],
        token + "A",
        "x" * 2000,
        token.replace(token[3], "A" if token[3] != "A" else "B"),
    ):
        with pytest.raises(grpc.RpcError) as error:
            list_reports(client, shop.account_id, bad)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert bad_request_fields(error.value) == ["resume_token"]
        assert "resume_token" in error.value.details()
    with pytest.raises(grpc.RpcError) as error:  # another account's token
        list_reports(client, other.account_id, token)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for request, code in (
        (upb.ListUsageReportsRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        (
            upb.ListUsageReportsRequest(account_id=shop.account_id, page_size=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (upb.ListUsageReportsRequest(account_id="acc_unknown"), grpc.StatusCode.NOT_FOUND),
    ):
        with pytest.raises(grpc.RpcError) as error:
            client.usage.ListUsageReports(request, metadata=USAGE_READER)
        assert error.value.code() == code
    with pytest.raises(grpc.RpcError) as error:
        client.usage.ListUsageReports(
            upb.ListUsageReportsRequest(account_id=shop.account_id), metadata=READER
        )
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_two_replicas_report_to_billing_systems_hourly_exactly_once_and_the_cursor_skips_none(
    client: Client, server: ServerThread
) -> None:
    replica = ServerThread(settings_for_tests(server.settings.database_url)).start()
    other = Client(replica.target)
    try:
        shops = [account_shop(client) for _ in range(4)]
        base = hour_start(now() - timedelta(hours=20))
        sent: dict[str, int] = defaultdict(int)
        pulled: dict[str, list[upb.UsageReport]] = defaultdict(list)
        tokens = {shop.account_id: "" for shop in shops}
        lock = threading.Lock()

        def send(round_index: int) -> None:
            target = (client, other)[round_index % 2]
            for shop in shops:
                batch = [
                    shop.message(
                        f"r{round_index}-{i}",
                        1 + i % 3,
                        tenant=i % 2,
                        partner=i % 2,
                        at=base + timedelta(hours=i % 12),
                    )
                    for i in range(24)
                ]
                target.usage.RecordUsage(
                    upb.RecordUsageRequest(events=batch),
                    metadata=[("authorization", "Bearer tok-producer")],
                )
                with lock:
                    sent[shop.account_id] += sum(e.quantity for e in batch)

        def pull() -> None:
            for shop in shops:
                page = list_reports(
                    (client, other)[len(pulled[shop.account_id]) % 2],
                    shop.account_id,
                    tokens[shop.account_id],
                )
                pulled[shop.account_id].extend(page.reports)
                tokens[shop.account_id] = page.resume_token

        with ThreadPoolExecutor(2) as pool:
            for round_index in range(6):
                list(pool.map(send, (round_index * 2, round_index * 2 + 1)))
                pull()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pull()
            if all(
                sum(t.messages for r in pulled[shop.account_id] for t in r.tenants)
                == sent[shop.account_id]
                for shop in shops
            ):
                break
            time.sleep(0.2)
        time.sleep(1.0)
        pull()
        for shop in shops:
            reports = pulled[shop.account_id]
            assert sum(t.messages for r in reports for t in r.tenants) == sent[shop.account_id]
            assert reports == all_reports(client, shop.account_id)  # none skipped, none twice
            by_hour = defaultdict(list)
            for report in reports:
                by_hour[report.hour.ToDatetime()].append(report.revision)
            assert len(by_hour) == 12
            assert all(r == list(range(1, len(r) + 1)) for r in by_hour.values())
        with server.db.read() as session:
            rows = session.exec(
                select(UsageReport).where(
                    UsageReport.account_id.in_([shop.account_id for shop in shops])
                )
            ).all()
        assert len(rows) == sum(len(pulled[shop.account_id]) for shop in shops)
    finally:
        other.close()
        replica.stop()


def test_an_hour_that_cannot_be_reported_to_billing_systems_hourly_holds_back_no_other(
    tmp_path,
) -> None:
    # The scheduler runs at start, then not for an hour: the test runs the job itself.
    with fresh_database(str(tmp_path)) as url:
        running = ServerThread(settings_for_tests(url, scheduler_interval_seconds=3600)).start()
        client = Client(running.target)
        try:
            broken, fine = account_shop(client), account_shop(client)
            hour = hour_start(now() - timedelta(hours=2))
            for shop in (broken, fine):
                shop.record([shop.message("a", 2, at=hour)])
            with running.db.write() as session:  # terms that cannot be read: no estimate
                account = session.get(Account, broken.account_id)
                account.custom_terms_json = "{not json"
                session.add(account)
            made = hourly_reports.report_closed_hours(running.db, now(), timedelta(seconds=300))
            assert made == 1
            assert len(all_reports(client, fine.account_id)) == 1
            assert not all_reports(client, broken.account_id)
            with running.db.write() as session:
                account = session.get(Account, broken.account_id)
                account.custom_terms_json = None
                session.add(account)
            assert (
                hourly_reports.report_closed_hours(running.db, now(), timedelta(seconds=300)) == 1
            )
            (report,) = all_reports(client, broken.account_id)
            assert tenants_of(report) == {broken.tenants[0]: (2, 0)}
        finally:
            client.close()
            running.stop()


def test_a_page_of_reports_is_bounded_by_its_encoded_size(tmp_path) -> None:
    """An account at the tenant limit: a page by count alone (these 12 reports) would be some
    5 MB, past the 4 MiB a gRPC client takes. Each page stays within MAX_PAGE_BYTES, and the
    cursor still yields every report once, in order."""
    reports = 12
    tenants = json.dumps([[f"ten_{n:026d}", 123_456, 10**12] for n in range(10_000)])
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url, scheduler_interval_seconds=3600)).start()
        client = Client(server.target)
        try:
            account_id = create_account(client).account_id
            hour = hour_start(now() - timedelta(days=1))
            with server.db.write() as session:
                for sequence in range(1, reports + 1):
                    session.add(
                        UsageReport(
                            sequence=sequence,
                            account_id=account_id,
                            hour_us=round((hour + timedelta(hours=sequence)).timestamp() * 1e6),
                            revision=1,
                            period=Period.containing(hour).label,
                            tenants_json=tenants,
                            partners_json="[]",
                            totals_json="{}",
                            estimated_charges=Decimal(0),
                            created_at=hour,
                        )
                    )
                head = session.get(UsageReportHead, 1)
                head.sequence = reports
                session.add(head)
            seen: list[int] = []
            token = ""
            while True:
                page = list_reports(client, account_id, token)
                assert page.ByteSize() <= hourly_reports.MAX_PAGE_BYTES
                if not page.reports:
                    break
                assert all(len(r.tenants) == 10_000 for r in page.reports)
                seen.extend(r.sequence for r in page.reports)
                token = page.resume_token
            assert seen == list(range(1, reports + 1))
        finally:
            client.close()
            server.stop()
