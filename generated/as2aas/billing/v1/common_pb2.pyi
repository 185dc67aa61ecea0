import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UsageKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USAGE_KIND_UNSPECIFIED: _ClassVar[UsageKind]
    USAGE_KIND_MESSAGE: _ClassVar[UsageKind]
    USAGE_KIND_STORAGE: _ClassVar[UsageKind]
USAGE_KIND_UNSPECIFIED: UsageKind
USAGE_KIND_MESSAGE: UsageKind
USAGE_KIND_STORAGE: UsageKind

class Money(_message.Message):
    __slots__ = ("currency_code", "units", "nanos")
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    NANOS_FIELD_NUMBER: _ClassVar[int]
    currency_code: str
    units: int
    nanos: int
    def __init__(self, currency_code: _Optional[str] = ..., units: _Optional[int] = ..., nanos: _Optional[int] = ...) -> None: ...

class BillingPeriod(_message.Message):
    __slots__ = ("label", "start", "end")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    label: str
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    def __init__(self, label: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MessageTier(_message.Message):
    __slots__ = ("up_to_messages", "unit_price")
    UP_TO_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    up_to_messages: int
    unit_price: Money
    def __init__(self, up_to_messages: _Optional[int] = ..., unit_price: _Optional[_Union[Money, _Mapping]] = ...) -> None: ...

class TenantUsage(_message.Message):
    __slots__ = ("tenant_id", "name", "message_count", "storage_gb_months", "storage_bytes")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    STORAGE_GB_MONTHS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    name: str
    message_count: int
    storage_gb_months: str
    storage_bytes: int
    def __init__(self, tenant_id: _Optional[str] = ..., name: _Optional[str] = ..., message_count: _Optional[int] = ..., storage_gb_months: _Optional[str] = ..., storage_bytes: _Optional[int] = ...) -> None: ...

class PartnerUsage(_message.Message):
    __slots__ = ("partner_id", "partner_name", "department", "message_count", "cost")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    partner_name: str
    department: str
    message_count: int
    cost: Money
    def __init__(self, partner_id: _Optional[str] = ..., partner_name: _Optional[str] = ..., department: _Optional[str] = ..., message_count: _Optional[int] = ..., cost: _Optional[_Union[Money, _Mapping]] = ...) -> None: ...
