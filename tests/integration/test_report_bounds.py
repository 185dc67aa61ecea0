"""Reports over many months of near-int64 usage (red-team of issue 15): each month's charges fit
a Money, their sum over 36 months does not, nor does a sum of int64 message counters. The caller
gets FAILED_PRECONDITION naming the field to shorten, never INTERNAL."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import usage_service_pb2 as upb

from billing_svc.domain.usage import MAX_COUNTER
from tests.integration.test_invoicing import imported_shop
from tests.integration.test_reports import months_back, write_history
from tests.integration.test_usage import Shop
from tests.support import ADMIN, Client, ServerThread, fresh_database, settings_for_tests


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with fresh_database(str(tmp_path_factory.mktemp("bounds"))) as url:
        running = ServerThread(settings_for_tests(url, scheduler_interval_seconds=3600)).start()
        yield running
        running.stop()


@pytest.fixture(scope="module")
def huge(quiet: ServerThread) -> Iterator[tuple[Client, Shop]]:
    """A Startup account whose last 6 months each counted int64-max messages ($0.05 each
    over 5,000: about 4.6·10^17 USD a month) and 10^13 GB of storage."""
    client = Client(quiet.target)
    shop = imported_shop(client, months_back=7)
    periods = months_back(6)
    write_history(
        quiet, shop, {p: MAX_COUNTER for p in periods}, {p: Decimal(10**13) for p in periods}
    )
    yield client, shop
    client.close()


def refused(call, request) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as error:
        call(request, metadata=ADMIN, timeout=60)
    return error.value


def test_a_forecast_whose_sum_passes_a_money_is_failed_precondition_naming_months(
    huge: tuple[Client, Shop],
) -> None:
    client, shop = huge
    months = client.usage.GetUsageForecast(
        upb.GetUsageForecastRequest(account_id=shop.account_id, months=12), metadata=ADMIN
    ).months
    assert len(months) == 12 and all(m.charges.units > 10**17 for m in months)
    error = refused(
        client.usage.GetUsageForecast,
        upb.GetUsageForecastRequest(account_id=shop.account_id, months=36),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert "36 months" in error.details() and "(months)" in error.details()


def test_compare_plans_over_a_horizon_whose_sum_passes_a_money_names_horizon_months(
    huge: tuple[Client, Shop],
) -> None:
    client, shop = huge
    period = months_back(1)[0].label
    client.billing.ComparePlans(
        pb.ComparePlansRequest(account_id=shop.account_id, period=period, horizon_months=12),
        metadata=ADMIN,
    )
    error = refused(
        client.billing.ComparePlans,
        pb.ComparePlansRequest(account_id=shop.account_id, period=period, horizon_months=36),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert "horizon_months" in error.details()


def test_partner_utilization_whose_message_sum_passes_int64_names_the_range(
    huge: tuple[Client, Shop],
) -> None:
    client, shop = huge
    last = months_back(1)[0].label
    one = client.billing.GetPartnerUtilization(
        pb.GetPartnerUtilizationRequest(
            account_id=shop.account_id, start_period=last, end_period=last
        ),
        metadata=ADMIN,
    )
    assert one.unpartnered_message_count == MAX_COUNTER
    error = refused(
        client.billing.GetPartnerUtilization,
        pb.GetPartnerUtilizationRequest(account_id=shop.account_id),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert "int64" in error.details() and "start_period, end_period" in error.details()
