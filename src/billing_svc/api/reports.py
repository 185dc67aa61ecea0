"""Proto conversions of the report RPCs of issue 15: GetUsageForecast, GetPartnerUtilization
and ComparePlans' horizon (kept apart from ``convert`` so that module does not grow further)."""

from __future__ import annotations

from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import usage_service_pb2 as usage_pb

from billing_svc.api import convert
from billing_svc.domain import forecast as model
from billing_svc.domain import money
from billing_svc.domain.subscriptions import ANNUAL, MONTHLY
from billing_svc.services import finance, partner_utilization, plan_advice
from billing_svc.services.forecasting import UsageForecast

_MODELS = {
    model.HOLT_WINTERS: usage_pb.FORECAST_MODEL_HOLT_WINTERS,
    model.HOLT: usage_pb.FORECAST_MODEL_HOLT,
    model.RUN_RATE: usage_pb.FORECAST_MODEL_RUN_RATE,
}
_TRENDS = {
    partner_utilization.RISING: pb.PARTNER_TREND_RISING,
    partner_utilization.STEADY: pb.PARTNER_TREND_STEADY,
    partner_utilization.FALLING: pb.PARTNER_TREND_FALLING,
    partner_utilization.NONE: pb.PARTNER_TREND_NONE,
}
_INTERVALS = {MONTHLY: pb.BILLING_INTERVAL_MONTHLY, ANNUAL: pb.BILLING_INTERVAL_ANNUAL}


def _backtest(series: model.SeriesForecast) -> usage_pb.ForecastBacktest:
    backtest = usage_pb.ForecastBacktest(months=series.backtest_months)
    if series.backtest_mape_percent is not None:
        backtest.mape_percent = series.backtest_mape_percent
    return backtest


def forecast_out(forecast: UsageForecast) -> usage_pb.GetUsageForecastResponse:
    return usage_pb.GetUsageForecastResponse(
        model=_MODELS[forecast.model],
        history_months=len(forecast.history),
        months=[
            usage_pb.ForecastMonth(
                period=convert.period_out(month.period),
                messages=month.messages,
                storage_gb_months=money.decimal_text(month.storage_gb_months),
                active_tenants=month.active_tenants,
                charges=convert.money_out(month.total),
                lines=[
                    usage_pb.EstimatedCharge(type=line.type, amount=convert.money_out(line.amount))
                    for line in month.lines
                ],
            )
            for month in forecast.months
        ],
        total_charges=convert.money_out(forecast.total),
        messages_backtest=_backtest(forecast.messages_backtest),
        storage_backtest=_backtest(forecast.storage_backtest),
    )


def utilization_out(result: partner_utilization.Utilization) -> pb.GetPartnerUtilizationResponse:
    response = pb.GetPartnerUtilizationResponse(
        periods=[p.label for p in result.periods],
        total=convert.money_out(result.total),
        unpartnered_cost=convert.money_out(result.unpartnered_cost),
        unpartnered_message_count=result.unpartnered_messages,
        idle_partner_count=sum(1 for p in result.partners if p.idle),
    )
    if result.included_master_partners is not None:
        response.included_master_partners = result.included_master_partners
    if result.slots_left is not None:
        response.partner_slots_left = result.slots_left
    for usage in result.partners:
        partner = usage.partner
        response.partners.append(
            pb.PartnerUtilization(
                partner_id=partner.partner_id,
                partner_name=partner.name,
                department=partner.department,
                periods=[
                    pb.PartnerPeriodUsage(
                        period=row.period.label,
                        message_count=row.messages,
                        cost=convert.money_out(row.cost),
                    )
                    for row in usage.periods
                ],
                message_count=usage.messages,
                cost=convert.money_out(usage.cost),
                trend=_TRENDS[usage.trend],
                last_active_period=usage.last_active_period,
                last_activity_time=convert.time_out(usage.last_activity),
                idle=usage.idle,
                create_time=convert.time_out(partner.created_at),
            )
        )
    return response


def plan_costs_out(
    costs: list[finance.PlanCost], horizon: dict[str, plan_advice.HorizonCost] | None = None
) -> list[pb.PlanCost]:
    result = []
    for cost in costs:
        plan_cost = pb.PlanCost(
            plan_id=cost.plan_id,
            name=cost.name,
            total=convert.money_out(cost.total),
            lines=[convert.invoice_line_out(line) for line in cost.lines],
        )
        if horizon is not None and cost.plan_id in horizon:
            plan_cost.horizon_monthly_total.CopyFrom(
                convert.money_out(horizon[cost.plan_id].monthly_total)
            )
            plan_cost.horizon_annual_total.CopyFrom(
                convert.money_out(horizon[cost.plan_id].annual_total)
            )
        result.append(plan_cost)
    return result


def recommendation_out(advice: plan_advice.Recommendation) -> pb.PlanRecommendation:
    return pb.PlanRecommendation(
        plan_id=advice.plan_id,
        billing_interval=_INTERVALS[advice.billing_interval],
        total=convert.money_out(advice.total),
        current_plan_id=advice.current_plan_id,
        current_billing_interval=_INTERVALS[advice.current_billing_interval],
        current_total=convert.money_out(advice.current_total),
        saving=convert.money_out(advice.saving),
        forecast_model=advice.forecast_model,
    )
