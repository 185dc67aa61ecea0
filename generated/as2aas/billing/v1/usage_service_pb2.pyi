import datetime

from as2aas.billing.v1 import common_pb2 as _common_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Granularity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANULARITY_UNSPECIFIED: _ClassVar[Granularity]
    GRANULARITY_HOUR: _ClassVar[Granularity]
    GRANULARITY_DAY: _ClassVar[Granularity]
    GRANULARITY_MONTH: _ClassVar[Granularity]

class ForecastModel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FORECAST_MODEL_UNSPECIFIED: _ClassVar[ForecastModel]
    FORECAST_MODEL_HOLT_WINTERS: _ClassVar[ForecastModel]
    FORECAST_MODEL_HOLT: _ClassVar[ForecastModel]
    FORECAST_MODEL_RUN_RATE: _ClassVar[ForecastModel]
GRANULARITY_UNSPECIFIED: Granularity
GRANULARITY_HOUR: Granularity
GRANULARITY_DAY: Granularity
GRANULARITY_MONTH: Granularity
FORECAST_MODEL_UNSPECIFIED: ForecastModel
FORECAST_MODEL_HOLT_WINTERS: ForecastModel
FORECAST_MODEL_HOLT: ForecastModel
FORECAST_MODEL_RUN_RATE: ForecastModel

class UsageEvent(_message.Message):
    __slots__ = ("event_id", "account_id", "tenant_id", "partner_id", "kind", "quantity", "occurred_at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    account_id: str
    tenant_id: str
    partner_id: str
    kind: _common_pb2.UsageKind
    quantity: int
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., account_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., kind: _Optional[_Union[_common_pb2.UsageKind, str]] = ..., quantity: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RejectedEvent(_message.Message):
    __slots__ = ("event_id", "index", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    index: int
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., index: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class StreamUsageRequest(_message.Message):
    __slots__ = ("batch_id", "events")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    events: _containers.RepeatedCompositeFieldContainer[UsageEvent]
    def __init__(self, batch_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[UsageEvent, _Mapping]]] = ...) -> None: ...

class StreamUsageResponse(_message.Message):
    __slots__ = ("batch_id", "accepted", "duplicates", "late", "rejected")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    accepted: int
    duplicates: int
    late: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedEvent]
    def __init__(self, batch_id: _Optional[str] = ..., accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., late: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedEvent, _Mapping]]] = ...) -> None: ...

class RecordUsageRequest(_message.Message):
    __slots__ = ("batch_id", "events")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    events: _containers.RepeatedCompositeFieldContainer[UsageEvent]
    def __init__(self, batch_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[UsageEvent, _Mapping]]] = ...) -> None: ...

class RecordUsageResponse(_message.Message):
    __slots__ = ("batch_id", "accepted", "duplicates", "late", "rejected")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    accepted: int
    duplicates: int
    late: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedEvent]
    def __init__(self, batch_id: _Optional[str] = ..., accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., late: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedEvent, _Mapping]]] = ...) -> None: ...

class GetCurrentUsageRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class EstimatedCharge(_message.Message):
    __slots__ = ("type", "amount")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    type: str
    amount: _common_pb2.Money
    def __init__(self, type: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class UsageToDate(_message.Message):
    __slots__ = ("messages", "active_tenants", "storage_gb_months", "estimated_charges", "storage_bytes", "estimated_lines", "included_messages")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TENANTS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_GB_MONTHS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_CHARGES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_LINES_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: int
    active_tenants: int
    storage_gb_months: str
    estimated_charges: _common_pb2.Money
    storage_bytes: int
    estimated_lines: _containers.RepeatedCompositeFieldContainer[EstimatedCharge]
    included_messages: int
    def __init__(self, messages: _Optional[int] = ..., active_tenants: _Optional[int] = ..., storage_gb_months: _Optional[str] = ..., estimated_charges: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., storage_bytes: _Optional[int] = ..., estimated_lines: _Optional[_Iterable[_Union[EstimatedCharge, _Mapping]]] = ..., included_messages: _Optional[int] = ...) -> None: ...

class UsageProjection(_message.Message):
    __slots__ = ("messages", "charges")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    CHARGES_FIELD_NUMBER: _ClassVar[int]
    messages: int
    charges: _common_pb2.Money
    def __init__(self, messages: _Optional[int] = ..., charges: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class GetCurrentUsageResponse(_message.Message):
    __slots__ = ("period", "usage_to_date", "projection")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    USAGE_TO_DATE_FIELD_NUMBER: _ClassVar[int]
    PROJECTION_FIELD_NUMBER: _ClassVar[int]
    period: _common_pb2.BillingPeriod
    usage_to_date: UsageToDate
    projection: UsageProjection
    def __init__(self, period: _Optional[_Union[_common_pb2.BillingPeriod, _Mapping]] = ..., usage_to_date: _Optional[_Union[UsageToDate, _Mapping]] = ..., projection: _Optional[_Union[UsageProjection, _Mapping]] = ...) -> None: ...

class GetMonthlyUsageRequest(_message.Message):
    __slots__ = ("account_id", "year", "month")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    year: int
    month: int
    def __init__(self, account_id: _Optional[str] = ..., year: _Optional[int] = ..., month: _Optional[int] = ...) -> None: ...

class GetMonthlyUsageResponse(_message.Message):
    __slots__ = ("period", "total_messages", "partner_breakdown", "tenant_breakdown", "active_tenants", "storage_gb_months")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PARTNER_BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    TENANT_BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TENANTS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_GB_MONTHS_FIELD_NUMBER: _ClassVar[int]
    period: _common_pb2.BillingPeriod
    total_messages: int
    partner_breakdown: _containers.RepeatedCompositeFieldContainer[_common_pb2.PartnerUsage]
    tenant_breakdown: _containers.RepeatedCompositeFieldContainer[_common_pb2.TenantUsage]
    active_tenants: int
    storage_gb_months: str
    def __init__(self, period: _Optional[_Union[_common_pb2.BillingPeriod, _Mapping]] = ..., total_messages: _Optional[int] = ..., partner_breakdown: _Optional[_Iterable[_Union[_common_pb2.PartnerUsage, _Mapping]]] = ..., tenant_breakdown: _Optional[_Iterable[_Union[_common_pb2.TenantUsage, _Mapping]]] = ..., active_tenants: _Optional[int] = ..., storage_gb_months: _Optional[str] = ...) -> None: ...

class GetUsageHistoryRequest(_message.Message):
    __slots__ = ("account_id", "granularity", "start_time", "end_time", "tenant_id", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    granularity: Granularity
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    tenant_id: str
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[str] = ..., granularity: _Optional[_Union[Granularity, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tenant_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class UsageBucket(_message.Message):
    __slots__ = ("start", "messages", "storage_bytes")
    START_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    messages: int
    storage_bytes: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., messages: _Optional[int] = ..., storage_bytes: _Optional[int] = ...) -> None: ...

class GetUsageHistoryResponse(_message.Message):
    __slots__ = ("buckets", "next_page_token")
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[UsageBucket]
    next_page_token: str
    def __init__(self, buckets: _Optional[_Iterable[_Union[UsageBucket, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListUsageReportsRequest(_message.Message):
    __slots__ = ("account_id", "page_size", "resume_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    page_size: int
    resume_token: str
    def __init__(self, account_id: _Optional[str] = ..., page_size: _Optional[int] = ..., resume_token: _Optional[str] = ...) -> None: ...

class UsageReportTenant(_message.Message):
    __slots__ = ("tenant_id", "messages", "storage_bytes")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    messages: int
    storage_bytes: int
    def __init__(self, tenant_id: _Optional[str] = ..., messages: _Optional[int] = ..., storage_bytes: _Optional[int] = ...) -> None: ...

class UsageReportPartner(_message.Message):
    __slots__ = ("partner_id", "messages")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    messages: int
    def __init__(self, partner_id: _Optional[str] = ..., messages: _Optional[int] = ...) -> None: ...

class UsageReport(_message.Message):
    __slots__ = ("account_id", "hour", "revision", "period", "tenants", "partners", "estimated_charges_to_date", "create_time", "sequence")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    HOUR_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    PARTNERS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_CHARGES_TO_DATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    hour: _timestamp_pb2.Timestamp
    revision: int
    period: str
    tenants: _containers.RepeatedCompositeFieldContainer[UsageReportTenant]
    partners: _containers.RepeatedCompositeFieldContainer[UsageReportPartner]
    estimated_charges_to_date: _common_pb2.Money
    create_time: _timestamp_pb2.Timestamp
    sequence: int
    def __init__(self, account_id: _Optional[str] = ..., hour: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ..., period: _Optional[str] = ..., tenants: _Optional[_Iterable[_Union[UsageReportTenant, _Mapping]]] = ..., partners: _Optional[_Iterable[_Union[UsageReportPartner, _Mapping]]] = ..., estimated_charges_to_date: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class ListUsageReportsResponse(_message.Message):
    __slots__ = ("reports", "resume_token")
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[UsageReport]
    resume_token: str
    def __init__(self, reports: _Optional[_Iterable[_Union[UsageReport, _Mapping]]] = ..., resume_token: _Optional[str] = ...) -> None: ...

class GetUsageForecastRequest(_message.Message):
    __slots__ = ("account_id", "months")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    MONTHS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    months: int
    def __init__(self, account_id: _Optional[str] = ..., months: _Optional[int] = ...) -> None: ...

class ForecastMonth(_message.Message):
    __slots__ = ("period", "messages", "storage_gb_months", "active_tenants", "charges", "lines")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_GB_MONTHS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TENANTS_FIELD_NUMBER: _ClassVar[int]
    CHARGES_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    period: _common_pb2.BillingPeriod
    messages: int
    storage_gb_months: str
    active_tenants: int
    charges: _common_pb2.Money
    lines: _containers.RepeatedCompositeFieldContainer[EstimatedCharge]
    def __init__(self, period: _Optional[_Union[_common_pb2.BillingPeriod, _Mapping]] = ..., messages: _Optional[int] = ..., storage_gb_months: _Optional[str] = ..., active_tenants: _Optional[int] = ..., charges: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., lines: _Optional[_Iterable[_Union[EstimatedCharge, _Mapping]]] = ...) -> None: ...

class ForecastBacktest(_message.Message):
    __slots__ = ("months", "mape_percent")
    MONTHS_FIELD_NUMBER: _ClassVar[int]
    MAPE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    months: int
    mape_percent: float
    def __init__(self, months: _Optional[int] = ..., mape_percent: _Optional[float] = ...) -> None: ...

class GetUsageForecastResponse(_message.Message):
    __slots__ = ("model", "history_months", "months", "total_charges", "messages_backtest", "storage_backtest")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HISTORY_MONTHS_FIELD_NUMBER: _ClassVar[int]
    MONTHS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHARGES_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_BACKTEST_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BACKTEST_FIELD_NUMBER: _ClassVar[int]
    model: ForecastModel
    history_months: int
    months: _containers.RepeatedCompositeFieldContainer[ForecastMonth]
    total_charges: _common_pb2.Money
    messages_backtest: ForecastBacktest
    storage_backtest: ForecastBacktest
    def __init__(self, model: _Optional[_Union[ForecastModel, str]] = ..., history_months: _Optional[int] = ..., months: _Optional[_Iterable[_Union[ForecastMonth, _Mapping]]] = ..., total_charges: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., messages_backtest: _Optional[_Union[ForecastBacktest, _Mapping]] = ..., storage_backtest: _Optional[_Union[ForecastBacktest, _Mapping]] = ...) -> None: ...
