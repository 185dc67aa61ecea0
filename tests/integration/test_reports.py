"""Issue 15, points 3-5: partner utilization, forecasts from history, forecast budget alerts and
ComparePlans over a horizon, over real gRPC and a real database (SQLite or PostgreSQL).

Each test names the seed sentence it covers. Histories within the 400-day event retention
window are ingested as back-dated events through RecordUsage; longer ones (Holt-Winters needs 24
whole months) are written into the per-period counters the service reads them from, as an import
of an older system's history would (``write_history``): the events themselves could not be
accepted any more.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb
from sqlmodel import select

from billing_svc.domain.money import to_cents
from billing_svc.domain.periods import Period
from billing_svc.services.forecast_alerts import send_forecast_budget_alerts
from billing_svc.storage.db import Database
from billing_svc.storage.tables import OutboxEvent, UsagePeriod, UsageTenantPeriod
from tests.integration.test_invoicing import imported_shop
from tests.integration.test_usage import USAGE_READER, Shop, now, ts
from tests.support import (
    ADMIN,
    READER,
    WRITER,
    Client,
    ServerThread,
    fresh_database,
    settings_for_tests,
)


def dec(money: common_pb2.Money) -> Decimal:
    return Decimal(money.units) + Decimal(money.nanos) / 10**9


def months_back(count: int) -> list[Period]:
    """The ``count`` whole periods before the current one, oldest first."""
    period, result = Period.containing(now()), []
    for _ in range(count):
        period = period.previous()
        result.append(period)
    return result[::-1]


def write_history(
    server: ServerThread,
    shop: Shop,
    messages: dict[Period, int],
    storage_gb: dict[Period, Decimal] | None = None,
) -> None:
    """Per-period counters of an imported history: messages per period, GB-months held."""
    with server.db.write() as session:
        for period, count in messages.items():
            session.add(
                UsagePeriod(account_id=shop.account_id, period=period.label, messages=count)
            )
            gb = (storage_gb or {}).get(period, Decimal(0))
            period_us = period.seconds * 1_000_000
            session.add(
                UsageTenantPeriod(
                    account_id=shop.account_id,
                    period=period.label,
                    tenant_id=shop.tenants[0],
                    messages=count,
                    storage_byte_us=Decimal(int(gb * 10**9 * period_us)),
                )
            )


def forecast(client: Client, account_id: str, months: int = 12) -> upb.GetUsageForecastResponse:
    return client.usage.GetUsageForecast(
        upb.GetUsageForecastRequest(account_id=account_id, months=months), metadata=USAGE_READER
    )


def startup_charges(messages: int, gb: Decimal = Decimal(0)) -> Decimal:
    """A Startup month with 2 tenants (3 included), worked by hand from the catalog."""
    return (
        Decimal("99.00")
        + to_cents(Decimal(max(messages - 5000, 0)) * Decimal("0.05"))
        + to_cents(max(gb - 5, Decimal(0)) * 2)
    )


def seasonal(t: int) -> float:
    return 20_000 + 400 * t + 5_000 * math.sin(2 * math.pi * t / 12)


# --------------------------------------------------------------------------------------------
# Forecasts


def test_plan_for_seasonal_usage_variations_holt_winters_finds_the_known_season(
    client: Client, server: ServerThread
) -> None:
    shop = imported_shop(client, months_back=36)
    history = months_back(36)
    write_history(
        server,
        shop,
        {p: round(seasonal(t)) for t, p in enumerate(history)},
        {p: Decimal(10 + t) for t, p in enumerate(history)},
    )
    result = forecast(client, shop.account_id, 12)
    assert result.model == upb.FORECAST_MODEL_HOLT_WINTERS
    assert result.history_months == 36
    assert result.messages_backtest.months == 3
    assert result.messages_backtest.mape_percent < 1.0
    assert result.months[0].period.label == Period.containing(now()).label
    for ahead, month in enumerate(result.months):
        expected = seasonal(36 + ahead)
        assert abs(month.messages - expected) / expected < 0.01, (ahead, month.messages)
        assert abs(Decimal(month.storage_gb_months) - (10 + 36 + ahead)) < Decimal("0.5")
        # The charges are the rating of the forecast quantities, to the cent.
        assert dec(month.charges) == startup_charges(
            month.messages, Decimal(month.storage_gb_months)
        )
        assert sum(dec(line.amount) for line in month.lines) == dec(month.charges)
    assert dec(result.total_charges) == sum(dec(m.charges) for m in result.months)
    # The season is there: the forecast's peak and trough months are the history's.
    peak = max(result.months, key=lambda m: m.messages).period.label[5:]
    assert peak == max(history, key=lambda p: seasonal(history.index(p))).label[5:]


def test_use_historical_data_for_accurate_budget_forecasting_holt_on_a_year_of_growth(
    client: Client,
) -> None:
    shop = imported_shop(client, months_back=6)
    for t, period in enumerate(months_back(6)):  # 1,000, 2,000, ... 6,000: a straight line
        shop.record(
            [shop.message(f"h{t}", 1000 * (t + 1), at=period.start + timedelta(days=3))],
            batch_id=f"b{t}",
        )
    result = forecast(client, shop.account_id, 3)
    assert result.model == upb.FORECAST_MODEL_HOLT
    assert result.history_months == 6
    assert result.messages_backtest.months == 3
    assert result.messages_backtest.mape_percent < 1.0
    for ahead, month in enumerate(result.months):
        assert abs(month.messages - 1000 * (7 + ahead)) <= 10
        assert dec(month.charges) == startup_charges(month.messages)


def test_use_historical_data_for_accurate_budget_forecasting_short_histories_fall_back(
    client: Client,
) -> None:
    shop = imported_shop(client, months_back=2)
    first, last = months_back(2)
    shop.record(
        [
            shop.message("a", 1000, at=first.start + timedelta(days=1)),
            shop.message("b", 1200, at=last.start + timedelta(days=1)),
        ]
    )
    result = forecast(client, shop.account_id, 2)
    assert result.model == upb.FORECAST_MODEL_RUN_RATE
    assert [m.messages for m in result.months] == [1200, 1200]
    # Fitted on the first month (1,000), tested on the second (1,200): 200 / 1,200.
    assert result.messages_backtest.months == 1
    assert result.messages_backtest.mape_percent == pytest.approx(100 * 200 / 1200)
    assert not result.storage_backtest.HasField("mape_percent")  # no storage at all

    fresh = Shop(client)  # no whole month yet: the current month's run rate, at least its usage
    fresh.record([fresh.message("n", 500)])
    result = forecast(client, fresh.account_id, 1)
    assert result.model == upb.FORECAST_MODEL_RUN_RATE
    assert result.history_months == 0 and result.messages_backtest.months == 0
    assert result.months[0].messages >= 500


def test_forecast_refuses_bad_requests_with_the_right_status(client: Client) -> None:
    shop = Shop(client)
    for months in (-1, 37):
        with pytest.raises(grpc.RpcError) as error:
            forecast(client, shop.account_id, months)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "months" in error.value.details()
    with pytest.raises(grpc.RpcError) as error:
        forecast(client, "acc_missing")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as error:  # usage:read, not billing:read
        client.usage.GetUsageForecast(
            upb.GetUsageForecastRequest(account_id=shop.account_id), metadata=READER
        )
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


# --------------------------------------------------------------------------------------------
# Forecast budget alerts


def _budget_alerts(server: ServerThread, account_id: str) -> list[dict]:
    with server.db.read() as session:
        rows = session.exec(
            select(OutboxEvent)
            .where(OutboxEvent.account_id == account_id, OutboxEvent.type == "billing.budget_alert")
            .order_by(OutboxEvent.created_at)
        ).all()
    return [json.loads(row.body)["data"] for row in rows]


def test_use_historical_data_for_accurate_budget_forecasting_alerts_on_the_forecast(
    tmp_path,
) -> None:
    with fresh_database(str(tmp_path)) as url:
        server = ServerThread(settings_for_tests(url, forecast_alert_interval_seconds=0.2)).start()
        client = Client(server.target)
        try:
            shop = imported_shop(client, months_back=4)
            for t, period in enumerate(months_back(4)):
                shop.record(
                    [shop.message(f"h{t}", 20_000, at=period.start + timedelta(days=2))],
                    batch_id=f"b{t}",
                )
            client.billing.SetBudget(
                pb.SetBudgetRequest(
                    account_id=shop.account_id,
                    name="Monthly AS2 Budget",
                    limit=common_pb2.Money(currency_code="USD", units=1000),
                ),
                metadata=WRITER,
            )
            # Forecast: 20,000 messages, $99 + 15,000 x $0.05 = $849.00: 75 % only. The usage
            # so far ($99.00, the base fee) reaches no threshold.
            deadline = time.monotonic() + 30
            while not _budget_alerts(server, shop.account_id) and time.monotonic() < deadline:
                time.sleep(0.2)
            alerts = _budget_alerts(server, shop.account_id)
            assert alerts == [
                {
                    "account_id": shop.account_id,
                    "budget_name": "Monthly AS2 Budget",
                    "threshold_percentage": 75,
                    "current_usage": 99.0,
                    "budget_limit": 1000.0,
                    "period_remaining_days": alerts[0]["period_remaining_days"],
                    "forecast": True,
                    "forecast_charges": 849.0,
                }
            ]
            # Once per threshold and period, whichever replica runs the job.
            assert send_forecast_budget_alerts(server.db, now()) == 0
            # The actual usage reaching 75 % still alerts, apart from the forecast's alert:
            # $99 + 13,020 x $0.05 = $750.00.
            shop.record([shop.message("now", 18_020, at=now() - timedelta(minutes=1))])
            alerts = _budget_alerts(server, shop.account_id)
            assert [(a["threshold_percentage"], a.get("forecast")) for a in alerts] == [
                (75, True),
                (75, None),
            ]
            assert set(alerts[1]) == {
                "account_id",
                "budget_name",
                "threshold_percentage",
                "current_usage",
                "budget_limit",
                "period_remaining_days",
            }
        finally:
            client.close()
            server.stop()


def test_forecast_budget_alerts_from_two_replicas_at_once_are_sent_once(
    client: Client, server: ServerThread
) -> None:
    shop = imported_shop(client, months_back=4)
    for t, period in enumerate(months_back(4)):
        shop.record(
            [shop.message(f"h{t}", 20_000, at=period.start + timedelta(days=2))], batch_id=f"b{t}"
        )
    client.billing.SetBudget(
        pb.SetBudgetRequest(
            account_id=shop.account_id,
            name="Tight",
            threshold_percentages=[10, 50, 90],
            limit=common_pb2.Money(currency_code="USD", units=1000),
        ),
        metadata=WRITER,
    )
    other = Database(server.settings.database_url)  # a second replica's engine
    try:
        with ThreadPoolExecutor(4) as pool:
            sent = list(
                pool.map(
                    lambda db: send_forecast_budget_alerts(db, now()),
                    [server.db, other, server.db, other],
                )
            )
    finally:
        other.dispose()
    # $849.00 forecast of $1,000: 10 % and 50 % (the usage so far, $99, also reached 10 %).
    forecast_alerts = [a for a in _budget_alerts(server, shop.account_id) if a.get("forecast")]
    assert sorted(a["threshold_percentage"] for a in forecast_alerts) == [10, 50]
    assert sum(sent) >= 2  # other accounts' budgets may be due too


# --------------------------------------------------------------------------------------------
# Partner utilization


def test_review_partner_utilization_for_optimization_opportunities(client: Client) -> None:
    shop = imported_shop(client, months_back=5)
    start = months_back(5)[0].start
    busy, idle = (
        client.billing.CreateMasterPartner(
            pb.CreateMasterPartnerRequest(
                account_id=shop.account_id, name=name, department="Ops", start_time=ts(start)
            ),
            metadata=ADMIN,
        ).master_partner.partner_id
        for name in ("Busy", "Idle")
    )
    shop.partners += [busy, idle]
    history = months_back(5)
    events = [
        shop.message(f"b{t}", 1000 * (t + 1), partner=2, at=p.start + timedelta(days=1))
        for t, p in enumerate(history)
    ]
    events.append(shop.message("i0", 700, partner=3, at=history[0].start + timedelta(days=1)))
    events.append(shop.message("u0", 300, partner=None, at=history[1].start + timedelta(days=1)))
    last_hour = history[-1].start + timedelta(days=1)
    shop.record(events)
    result = client.billing.GetPartnerUtilization(
        pb.GetPartnerUtilizationRequest(account_id=shop.account_id), metadata=READER
    )
    # The account's first period to the current one.
    assert list(result.periods) == [p.label for p in history] + [Period.containing(now()).label]
    by_id = {p.partner_id: p for p in result.partners}
    assert [p.partner_id for p in result.partners] == sorted(by_id)
    assert by_id[busy].trend == pb.PARTNER_TREND_RISING and not by_id[busy].idle
    assert [row.message_count for row in by_id[busy].periods] == [1000, 2000, 3000, 4000, 5000, 0]
    assert by_id[busy].last_active_period == history[-1].label
    assert by_id[busy].last_activity_time.ToDatetime().replace(tzinfo=last_hour.tzinfo) == (
        last_hour.replace(minute=0, second=0, microsecond=0)
    )
    assert by_id[idle].idle and by_id[idle].trend == pb.PARTNER_TREND_FALLING
    assert by_id[idle].last_active_period == history[0].label
    # The Shop's own partners were made today: new, not idle, however quiet.
    assert [p.idle for p in result.partners if p.partner_id not in (busy, idle)] == [False, False]
    assert result.idle_partner_count == 1
    assert result.included_master_partners == 10 and result.partner_slots_left == 6
    assert result.unpartnered_message_count == 300
    # Exact shares: every period's partner costs and unpartnered cost add up to its total, and
    # a past period's shares are GetMonthlyUsage's.
    assert sum(dec(p.cost) for p in result.partners) + dec(result.unpartnered_cost) == dec(
        result.total
    )
    for index, period in enumerate(history):
        monthly = shop.monthly(period)
        shares = {p.partner_id: dec(p.cost) for p in monthly.partner_breakdown}
        for partner in result.partners:
            assert dec(partner.periods[index].cost) == shares.get(partner.partner_id, Decimal(0))
    # The second period: 2,000 + 300 unpartnered = 2,300 messages on $99: $86.09 and $12.91.
    assert dec(by_id[busy].periods[1].cost) == Decimal("86.09")
    # A range of its own and a longer idle window: Idle has had none in the last 4 periods.
    longer = client.billing.GetPartnerUtilization(
        pb.GetPartnerUtilizationRequest(
            account_id=shop.account_id, start_period=history[1].label, idle_periods=4
        ),
        metadata=READER,
    )
    assert {p.partner_id for p in longer.partners if p.idle} == {idle}
    assert next(p for p in longer.partners if p.partner_id == idle).last_active_period == (
        history[0].label
    )


def test_partner_utilization_refuses_bad_ranges(client: Client) -> None:
    shop = Shop(client)
    current = Period.containing(now())
    for fields, named in (
        ({"start_period": "2024-13"}, "start_period"),
        ({"end_period": current.next().label}, "end_period"),
        ({"start_period": current.label, "end_period": current.previous().label}, "start_period"),
        ({"start_period": "2020-01"}, "start_period"),
        ({"idle_periods": -1}, "idle_periods"),
        ({"idle_periods": 37}, "idle_periods"),
    ):
        with pytest.raises(grpc.RpcError) as error:
            client.billing.GetPartnerUtilization(
                pb.GetPartnerUtilizationRequest(account_id=shop.account_id, **fields),
                metadata=READER,
            )
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert named in error.value.details(), fields
    with pytest.raises(grpc.RpcError) as error:
        client.billing.GetPartnerUtilization(
            pb.GetPartnerUtilizationRequest(account_id="acc_missing"), metadata=READER
        )
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as error:
        client.billing.GetPartnerUtilization(
            pb.GetPartnerUtilizationRequest(
                account_id=shop.account_id, end_period=current.previous().previous().label
            ),
            metadata=READER,
        )
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


# --------------------------------------------------------------------------------------------
# ComparePlans over a horizon


def compare(client: Client, account_id: str, horizon: int = 0) -> pb.ComparePlansResponse:
    return client.billing.ComparePlans(
        pb.ComparePlansRequest(
            account_id=account_id, period=Period.containing(now()).label, horizon_months=horizon
        ),
        metadata=READER,
    )


def test_consider_annual_plans_for_cost_savings(client: Client) -> None:
    shop = imported_shop(client, months_back=5)
    for t, period in enumerate(months_back(5)):
        shop.record(
            [shop.message(f"h{t}", 3000, at=period.start + timedelta(days=2))], batch_id=f"b{t}"
        )
    today = compare(client, shop.account_id)
    assert not today.HasField("recommendation")
    result = compare(client, shop.account_id, 12)
    # The period's own prices are as without a horizon.
    assert [(c.plan_id, c.total) for c in result.plan_costs] == [
        (c.plan_id, c.total) for c in today.plan_costs
    ]
    startup = result.plan_costs[0]
    assert dec(startup.horizon_monthly_total) == Decimal("1188.00")  # 12 x $99
    assert dec(startup.horizon_annual_total) == Decimal("990.00")  # 10 x $99, once
    advice = result.recommendation
    assert (advice.plan_id, advice.billing_interval) == ("startup", pb.BILLING_INTERVAL_ANNUAL)
    assert (advice.current_plan_id, advice.current_billing_interval) == (
        "startup",
        pb.BILLING_INTERVAL_MONTHLY,
    )
    assert (dec(advice.total), dec(advice.current_total), dec(advice.saving)) == (
        Decimal("990.00"),
        Decimal("1188.00"),
        Decimal("198.00"),
    )
    assert advice.forecast_model == "holt"


def test_factor_in_business_growth_when_selecting_plans(client: Client) -> None:
    shop = imported_shop(client, months_back=6)
    for t, period in enumerate(months_back(6)):  # 4,000 to 14,000: +2,000 a month
        shop.record(
            [shop.message(f"h{t}", 4000 + 2000 * t, at=period.start + timedelta(days=2))],
            batch_id=f"b{t}",
        )
    months = [m.messages for m in forecast(client, shop.account_id, 12).months]
    assert months[0] == pytest.approx(16_000, abs=20) and months[-1] == pytest.approx(
        38_000, abs=100
    )
    result = compare(client, shop.account_id, 12)
    costs = {c.plan_id: c for c in result.plan_costs}
    business_overage = sum(to_cents(Decimal(max(m - 25_000, 0)) * Decimal("0.03")) for m in months)
    assert dec(costs["business"].horizon_monthly_total) == 12 * 299 + business_overage
    assert dec(costs["business"].horizon_annual_total) == 2990 + business_overage
    on_startup = sum(startup_charges(m) for m in months)
    assert dec(costs["startup"].horizon_monthly_total) == on_startup
    advice = result.recommendation
    assert (advice.plan_id, advice.billing_interval) == ("business", pb.BILLING_INTERVAL_ANNUAL)
    assert dec(advice.current_total) == on_startup
    assert dec(advice.saving) == on_startup - 2990 - business_overage


def test_compare_plans_refuses_a_horizon_out_of_range(client: Client) -> None:
    shop = Shop(client)
    for horizon in (-1, 37):
        with pytest.raises(grpc.RpcError) as error:
            compare(client, shop.account_id, horizon)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "horizon_months" in error.value.details()
