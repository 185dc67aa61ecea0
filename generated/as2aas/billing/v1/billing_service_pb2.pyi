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

class BillingInterval(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BILLING_INTERVAL_UNSPECIFIED: _ClassVar[BillingInterval]
    BILLING_INTERVAL_MONTHLY: _ClassVar[BillingInterval]
    BILLING_INTERVAL_ANNUAL: _ClassVar[BillingInterval]

class SubscriptionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBSCRIPTION_STATUS_UNSPECIFIED: _ClassVar[SubscriptionStatus]
    SUBSCRIPTION_STATUS_TRIALING: _ClassVar[SubscriptionStatus]
    SUBSCRIPTION_STATUS_ACTIVE: _ClassVar[SubscriptionStatus]
    SUBSCRIPTION_STATUS_PAST_DUE: _ClassVar[SubscriptionStatus]
    SUBSCRIPTION_STATUS_UNPAID: _ClassVar[SubscriptionStatus]
    SUBSCRIPTION_STATUS_CANCELED: _ClassVar[SubscriptionStatus]

class WebhookEndpointStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_ENDPOINT_STATUS_UNSPECIFIED: _ClassVar[WebhookEndpointStatus]
    WEBHOOK_ENDPOINT_STATUS_ENABLED: _ClassVar[WebhookEndpointStatus]
    WEBHOOK_ENDPOINT_STATUS_DISABLED: _ClassVar[WebhookEndpointStatus]

class WebhookEventStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_EVENT_STATUS_UNSPECIFIED: _ClassVar[WebhookEventStatus]
    WEBHOOK_EVENT_STATUS_PENDING: _ClassVar[WebhookEventStatus]
    WEBHOOK_EVENT_STATUS_DELIVERED: _ClassVar[WebhookEventStatus]
    WEBHOOK_EVENT_STATUS_FAILED: _ClassVar[WebhookEventStatus]
    WEBHOOK_EVENT_STATUS_NO_ENDPOINT: _ClassVar[WebhookEventStatus]

class InvoiceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVOICE_STATUS_UNSPECIFIED: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_DRAFT: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_OPEN: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_PAID: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_UNCOLLECTIBLE: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_VOID: _ClassVar[InvoiceStatus]

class PartnerTrend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARTNER_TREND_UNSPECIFIED: _ClassVar[PartnerTrend]
    PARTNER_TREND_RISING: _ClassVar[PartnerTrend]
    PARTNER_TREND_STEADY: _ClassVar[PartnerTrend]
    PARTNER_TREND_FALLING: _ClassVar[PartnerTrend]
    PARTNER_TREND_NONE: _ClassVar[PartnerTrend]

class ChangeRequestStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_REQUEST_STATUS_UNSPECIFIED: _ClassVar[ChangeRequestStatus]
    CHANGE_REQUEST_STATUS_PENDING: _ClassVar[ChangeRequestStatus]
    CHANGE_REQUEST_STATUS_APPROVED: _ClassVar[ChangeRequestStatus]
    CHANGE_REQUEST_STATUS_REJECTED: _ClassVar[ChangeRequestStatus]
    CHANGE_REQUEST_STATUS_EXPIRED: _ClassVar[ChangeRequestStatus]

class ChangeRequestKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_REQUEST_KIND_UNSPECIFIED: _ClassVar[ChangeRequestKind]
    CHANGE_REQUEST_KIND_UPGRADE: _ClassVar[ChangeRequestKind]
    CHANGE_REQUEST_KIND_DOWNGRADE: _ClassVar[ChangeRequestKind]
    CHANGE_REQUEST_KIND_CANCELLATION: _ClassVar[ChangeRequestKind]
    CHANGE_REQUEST_KIND_CUSTOM_TERMS: _ClassVar[ChangeRequestKind]
BILLING_INTERVAL_UNSPECIFIED: BillingInterval
BILLING_INTERVAL_MONTHLY: BillingInterval
BILLING_INTERVAL_ANNUAL: BillingInterval
SUBSCRIPTION_STATUS_UNSPECIFIED: SubscriptionStatus
SUBSCRIPTION_STATUS_TRIALING: SubscriptionStatus
SUBSCRIPTION_STATUS_ACTIVE: SubscriptionStatus
SUBSCRIPTION_STATUS_PAST_DUE: SubscriptionStatus
SUBSCRIPTION_STATUS_UNPAID: SubscriptionStatus
SUBSCRIPTION_STATUS_CANCELED: SubscriptionStatus
WEBHOOK_ENDPOINT_STATUS_UNSPECIFIED: WebhookEndpointStatus
WEBHOOK_ENDPOINT_STATUS_ENABLED: WebhookEndpointStatus
WEBHOOK_ENDPOINT_STATUS_DISABLED: WebhookEndpointStatus
WEBHOOK_EVENT_STATUS_UNSPECIFIED: WebhookEventStatus
WEBHOOK_EVENT_STATUS_PENDING: WebhookEventStatus
WEBHOOK_EVENT_STATUS_DELIVERED: WebhookEventStatus
WEBHOOK_EVENT_STATUS_FAILED: WebhookEventStatus
WEBHOOK_EVENT_STATUS_NO_ENDPOINT: WebhookEventStatus
INVOICE_STATUS_UNSPECIFIED: InvoiceStatus
INVOICE_STATUS_DRAFT: InvoiceStatus
INVOICE_STATUS_OPEN: InvoiceStatus
INVOICE_STATUS_PAID: InvoiceStatus
INVOICE_STATUS_UNCOLLECTIBLE: InvoiceStatus
INVOICE_STATUS_VOID: InvoiceStatus
PARTNER_TREND_UNSPECIFIED: PartnerTrend
PARTNER_TREND_RISING: PartnerTrend
PARTNER_TREND_STEADY: PartnerTrend
PARTNER_TREND_FALLING: PartnerTrend
PARTNER_TREND_NONE: PartnerTrend
CHANGE_REQUEST_STATUS_UNSPECIFIED: ChangeRequestStatus
CHANGE_REQUEST_STATUS_PENDING: ChangeRequestStatus
CHANGE_REQUEST_STATUS_APPROVED: ChangeRequestStatus
CHANGE_REQUEST_STATUS_REJECTED: ChangeRequestStatus
CHANGE_REQUEST_STATUS_EXPIRED: ChangeRequestStatus
CHANGE_REQUEST_KIND_UNSPECIFIED: ChangeRequestKind
CHANGE_REQUEST_KIND_UPGRADE: ChangeRequestKind
CHANGE_REQUEST_KIND_DOWNGRADE: ChangeRequestKind
CHANGE_REQUEST_KIND_CANCELLATION: ChangeRequestKind
CHANGE_REQUEST_KIND_CUSTOM_TERMS: ChangeRequestKind

class Plan(_message.Message):
    __slots__ = ("plan_id", "name", "base_fee", "trial_days", "included_tenants", "included_master_partners", "included_messages", "included_storage_gb", "tenant_overage", "message_overage", "storage_overage_per_gb", "support", "message_tiers")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_FEE_FIELD_NUMBER: _ClassVar[int]
    TRIAL_DAYS_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_TENANTS_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_MASTER_PARTNERS_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_STORAGE_GB_FIELD_NUMBER: _ClassVar[int]
    TENANT_OVERAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_OVERAGE_FIELD_NUMBER: _ClassVar[int]
    STORAGE_OVERAGE_PER_GB_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TIERS_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    name: str
    base_fee: _common_pb2.Money
    trial_days: int
    included_tenants: int
    included_master_partners: int
    included_messages: int
    included_storage_gb: str
    tenant_overage: _common_pb2.Money
    message_overage: _common_pb2.Money
    storage_overage_per_gb: _common_pb2.Money
    support: str
    message_tiers: _containers.RepeatedCompositeFieldContainer[_common_pb2.MessageTier]
    def __init__(self, plan_id: _Optional[str] = ..., name: _Optional[str] = ..., base_fee: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., trial_days: _Optional[int] = ..., included_tenants: _Optional[int] = ..., included_master_partners: _Optional[int] = ..., included_messages: _Optional[int] = ..., included_storage_gb: _Optional[str] = ..., tenant_overage: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., message_overage: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., storage_overage_per_gb: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., support: _Optional[str] = ..., message_tiers: _Optional[_Iterable[_Union[_common_pb2.MessageTier, _Mapping]]] = ...) -> None: ...

class ListPlansRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPlansResponse(_message.Message):
    __slots__ = ("plans",)
    PLANS_FIELD_NUMBER: _ClassVar[int]
    plans: _containers.RepeatedCompositeFieldContainer[Plan]
    def __init__(self, plans: _Optional[_Iterable[_Union[Plan, _Mapping]]] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ("id", "status", "current_period_start", "current_period_end", "trial_ends_at", "cancel_at_period_end", "plan_id", "billing_interval", "pending_plan_id", "pending_plan_effective_at", "canceled_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    TRIAL_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_AT_PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    BILLING_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    PENDING_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    PENDING_PLAN_EFFECTIVE_AT_FIELD_NUMBER: _ClassVar[int]
    CANCELED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: SubscriptionStatus
    current_period_start: _timestamp_pb2.Timestamp
    current_period_end: _timestamp_pb2.Timestamp
    trial_ends_at: _timestamp_pb2.Timestamp
    cancel_at_period_end: bool
    plan_id: str
    billing_interval: BillingInterval
    pending_plan_id: str
    pending_plan_effective_at: _timestamp_pb2.Timestamp
    canceled_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[SubscriptionStatus, str]] = ..., current_period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current_period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trial_ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_at_period_end: _Optional[bool] = ..., plan_id: _Optional[str] = ..., billing_interval: _Optional[_Union[BillingInterval, str]] = ..., pending_plan_id: _Optional[str] = ..., pending_plan_effective_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., canceled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("account_id", "customer_id", "name", "create_time", "subscription", "usage_threshold_percentages")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    USAGE_THRESHOLD_PERCENTAGES_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    customer_id: str
    name: str
    create_time: _timestamp_pb2.Timestamp
    subscription: Subscription
    usage_threshold_percentages: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, account_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., subscription: _Optional[_Union[Subscription, _Mapping]] = ..., usage_threshold_percentages: _Optional[_Iterable[int]] = ...) -> None: ...

class CreateAccountRequest(_message.Message):
    __slots__ = ("request_id", "name", "plan_id", "billing_interval", "skip_trial", "start_time", "usage_threshold_percentages", "test_clock_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    BILLING_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    SKIP_TRIAL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    USAGE_THRESHOLD_PERCENTAGES_FIELD_NUMBER: _ClassVar[int]
    TEST_CLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    name: str
    plan_id: str
    billing_interval: BillingInterval
    skip_trial: bool
    start_time: _timestamp_pb2.Timestamp
    usage_threshold_percentages: _containers.RepeatedScalarFieldContainer[int]
    test_clock_id: str
    def __init__(self, request_id: _Optional[str] = ..., name: _Optional[str] = ..., plan_id: _Optional[str] = ..., billing_interval: _Optional[_Union[BillingInterval, str]] = ..., skip_trial: _Optional[bool] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., usage_threshold_percentages: _Optional[_Iterable[int]] = ..., test_clock_id: _Optional[str] = ...) -> None: ...

class CreateAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class GetAccountBillingRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class BillingPlan(_message.Message):
    __slots__ = ("name", "model", "base_fee", "message_rate", "plan_id", "terms", "custom", "contract_start", "contract_end", "account_manager")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BASE_FEE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_RATE_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_START_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_END_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_MANAGER_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    base_fee: _common_pb2.Money
    message_rate: _common_pb2.Money
    plan_id: str
    terms: Plan
    custom: bool
    contract_start: _timestamp_pb2.Timestamp
    contract_end: _timestamp_pb2.Timestamp
    account_manager: str
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ..., base_fee: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., message_rate: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., plan_id: _Optional[str] = ..., terms: _Optional[_Union[Plan, _Mapping]] = ..., custom: _Optional[bool] = ..., contract_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., contract_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., account_manager: _Optional[str] = ...) -> None: ...

class PaymentMethod(_message.Message):
    __slots__ = ("type", "last4", "exp_month", "exp_year")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LAST4_FIELD_NUMBER: _ClassVar[int]
    EXP_MONTH_FIELD_NUMBER: _ClassVar[int]
    EXP_YEAR_FIELD_NUMBER: _ClassVar[int]
    type: str
    last4: str
    exp_month: int
    exp_year: int
    def __init__(self, type: _Optional[str] = ..., last4: _Optional[str] = ..., exp_month: _Optional[int] = ..., exp_year: _Optional[int] = ...) -> None: ...

class GetAccountBillingResponse(_message.Message):
    __slots__ = ("customer_id", "subscription", "billing_plan", "payment_method", "has_payment_method", "account_id", "name")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BILLING_PLAN_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    HAS_PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    subscription: Subscription
    billing_plan: BillingPlan
    payment_method: PaymentMethod
    has_payment_method: bool
    account_id: str
    name: str
    def __init__(self, customer_id: _Optional[str] = ..., subscription: _Optional[_Union[Subscription, _Mapping]] = ..., billing_plan: _Optional[_Union[BillingPlan, _Mapping]] = ..., payment_method: _Optional[_Union[PaymentMethod, _Mapping]] = ..., has_payment_method: _Optional[bool] = ..., account_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ChangePlanRequest(_message.Message):
    __slots__ = ("account_id", "plan_id", "request_id", "billing_interval")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BILLING_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    plan_id: str
    request_id: str
    billing_interval: BillingInterval
    def __init__(self, account_id: _Optional[str] = ..., plan_id: _Optional[str] = ..., request_id: _Optional[str] = ..., billing_interval: _Optional[_Union[BillingInterval, str]] = ...) -> None: ...

class ChangePlanResponse(_message.Message):
    __slots__ = ("subscription", "effective_immediately", "change_request")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_IMMEDIATELY_FIELD_NUMBER: _ClassVar[int]
    CHANGE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    effective_immediately: bool
    change_request: ChangeRequest
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ..., effective_immediately: _Optional[bool] = ..., change_request: _Optional[_Union[ChangeRequest, _Mapping]] = ...) -> None: ...

class CancelSubscriptionRequest(_message.Message):
    __slots__ = ("account_id", "at_period_end", "request_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AT_PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    at_period_end: bool
    request_id: str
    def __init__(self, account_id: _Optional[str] = ..., at_period_end: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class CancelSubscriptionResponse(_message.Message):
    __slots__ = ("subscription", "change_request")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CHANGE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    change_request: ChangeRequest
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ..., change_request: _Optional[_Union[ChangeRequest, _Mapping]] = ...) -> None: ...

class SetPaymentMethodRequest(_message.Message):
    __slots__ = ("account_id", "payment_method", "request_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    payment_method: PaymentMethod
    request_id: str
    def __init__(self, account_id: _Optional[str] = ..., payment_method: _Optional[_Union[PaymentMethod, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetPaymentMethodResponse(_message.Message):
    __slots__ = ("payment_method", "subscription")
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    payment_method: PaymentMethod
    subscription: Subscription
    def __init__(self, payment_method: _Optional[_Union[PaymentMethod, _Mapping]] = ..., subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class CustomTerms(_message.Message):
    __slots__ = ("base_fee", "included_tenants", "included_master_partners", "included_messages", "included_storage_gb", "tenant_overage", "message_overage", "storage_overage_per_gb", "message_tiers", "contract_start", "contract_end", "account_manager")
    BASE_FEE_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_TENANTS_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_MASTER_PARTNERS_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_STORAGE_GB_FIELD_NUMBER: _ClassVar[int]
    TENANT_OVERAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_OVERAGE_FIELD_NUMBER: _ClassVar[int]
    STORAGE_OVERAGE_PER_GB_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TIERS_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_START_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_END_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_MANAGER_FIELD_NUMBER: _ClassVar[int]
    base_fee: _common_pb2.Money
    included_tenants: int
    included_master_partners: int
    included_messages: int
    included_storage_gb: str
    tenant_overage: _common_pb2.Money
    message_overage: _common_pb2.Money
    storage_overage_per_gb: _common_pb2.Money
    message_tiers: _containers.RepeatedCompositeFieldContainer[_common_pb2.MessageTier]
    contract_start: _timestamp_pb2.Timestamp
    contract_end: _timestamp_pb2.Timestamp
    account_manager: str
    def __init__(self, base_fee: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., included_tenants: _Optional[int] = ..., included_master_partners: _Optional[int] = ..., included_messages: _Optional[int] = ..., included_storage_gb: _Optional[str] = ..., tenant_overage: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., message_overage: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., storage_overage_per_gb: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., message_tiers: _Optional[_Iterable[_Union[_common_pb2.MessageTier, _Mapping]]] = ..., contract_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., contract_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., account_manager: _Optional[str] = ...) -> None: ...

class SetCustomTermsRequest(_message.Message):
    __slots__ = ("account_id", "terms", "request_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    terms: CustomTerms
    request_id: str
    def __init__(self, account_id: _Optional[str] = ..., terms: _Optional[_Union[CustomTerms, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetCustomTermsResponse(_message.Message):
    __slots__ = ("billing_plan", "change_request")
    BILLING_PLAN_FIELD_NUMBER: _ClassVar[int]
    CHANGE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    billing_plan: BillingPlan
    change_request: ChangeRequest
    def __init__(self, billing_plan: _Optional[_Union[BillingPlan, _Mapping]] = ..., change_request: _Optional[_Union[ChangeRequest, _Mapping]] = ...) -> None: ...

class SetUsageThresholdsRequest(_message.Message):
    __slots__ = ("account_id", "threshold_percentages")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_PERCENTAGES_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    threshold_percentages: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, account_id: _Optional[str] = ..., threshold_percentages: _Optional[_Iterable[int]] = ...) -> None: ...

class SetUsageThresholdsResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class Tenant(_message.Message):
    __slots__ = ("tenant_id", "account_id", "name", "create_time")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    account_id: str
    name: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, tenant_id: _Optional[str] = ..., account_id: _Optional[str] = ..., name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTenantRequest(_message.Message):
    __slots__ = ("account_id", "name", "request_id", "start_time")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    name: str
    request_id: str
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, account_id: _Optional[str] = ..., name: _Optional[str] = ..., request_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTenantResponse(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ...) -> None: ...

class MasterPartner(_message.Message):
    __slots__ = ("partner_id", "account_id", "name", "department", "create_time")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    account_id: str
    name: str
    department: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, partner_id: _Optional[str] = ..., account_id: _Optional[str] = ..., name: _Optional[str] = ..., department: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateMasterPartnerRequest(_message.Message):
    __slots__ = ("account_id", "name", "department", "request_id", "start_time")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    name: str
    department: str
    request_id: str
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, account_id: _Optional[str] = ..., name: _Optional[str] = ..., department: _Optional[str] = ..., request_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateMasterPartnerResponse(_message.Message):
    __slots__ = ("master_partner",)
    MASTER_PARTNER_FIELD_NUMBER: _ClassVar[int]
    master_partner: MasterPartner
    def __init__(self, master_partner: _Optional[_Union[MasterPartner, _Mapping]] = ...) -> None: ...

class UpdateMasterPartnerRequest(_message.Message):
    __slots__ = ("partner_id", "name", "department")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    name: str
    department: str
    def __init__(self, partner_id: _Optional[str] = ..., name: _Optional[str] = ..., department: _Optional[str] = ...) -> None: ...

class UpdateMasterPartnerResponse(_message.Message):
    __slots__ = ("master_partner",)
    MASTER_PARTNER_FIELD_NUMBER: _ClassVar[int]
    master_partner: MasterPartner
    def __init__(self, master_partner: _Optional[_Union[MasterPartner, _Mapping]] = ...) -> None: ...

class WebhookEndpoint(_message.Message):
    __slots__ = ("endpoint_id", "account_id", "url", "event_types", "description", "secret", "status", "failure_streak", "failing_since", "disabled_reason", "create_time")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_STREAK_FIELD_NUMBER: _ClassVar[int]
    FAILING_SINCE_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    account_id: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    description: str
    secret: str
    status: WebhookEndpointStatus
    failure_streak: int
    failing_since: _timestamp_pb2.Timestamp
    disabled_reason: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, endpoint_id: _Optional[str] = ..., account_id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., secret: _Optional[str] = ..., status: _Optional[_Union[WebhookEndpointStatus, str]] = ..., failure_streak: _Optional[int] = ..., failing_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., disabled_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateWebhookEndpointRequest(_message.Message):
    __slots__ = ("account_id", "url", "event_types", "description", "request_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    description: str
    request_id: str
    def __init__(self, account_id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateWebhookEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: WebhookEndpoint
    def __init__(self, endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ...) -> None: ...

class ListWebhookEndpointsRequest(_message.Message):
    __slots__ = ("account_id", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhookEndpointsResponse(_message.Message):
    __slots__ = ("endpoints", "next_page_token")
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[WebhookEndpoint]
    next_page_token: str
    def __init__(self, endpoints: _Optional[_Iterable[_Union[WebhookEndpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteWebhookEndpointRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class DeleteWebhookEndpointResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateWebhookSecretRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class RotateWebhookSecretResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: WebhookEndpoint
    def __init__(self, endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ...) -> None: ...

class WebhookAttempt(_message.Message):
    __slots__ = ("endpoint_id", "attempt_number", "attempt_time", "status_code", "latency_ms", "error")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    attempt_number: int
    attempt_time: _timestamp_pb2.Timestamp
    status_code: int
    latency_ms: int
    error: str
    def __init__(self, endpoint_id: _Optional[str] = ..., attempt_number: _Optional[int] = ..., attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_code: _Optional[int] = ..., latency_ms: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class WebhookEvent(_message.Message):
    __slots__ = ("event_id", "account_id", "type", "status", "create_time", "payload_json", "attempts")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    account_id: str
    type: str
    status: WebhookEventStatus
    create_time: _timestamp_pb2.Timestamp
    payload_json: str
    attempts: _containers.RepeatedCompositeFieldContainer[WebhookAttempt]
    def __init__(self, event_id: _Optional[str] = ..., account_id: _Optional[str] = ..., type: _Optional[str] = ..., status: _Optional[_Union[WebhookEventStatus, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payload_json: _Optional[str] = ..., attempts: _Optional[_Iterable[_Union[WebhookAttempt, _Mapping]]] = ...) -> None: ...

class ListWebhookEventsRequest(_message.Message):
    __slots__ = ("account_id", "event_type", "status", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    event_type: str
    status: WebhookEventStatus
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[str] = ..., event_type: _Optional[str] = ..., status: _Optional[_Union[WebhookEventStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhookEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[WebhookEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[WebhookEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RedeliverWebhookEventRequest(_message.Message):
    __slots__ = ("event_id", "endpoint_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    endpoint_id: str
    def __init__(self, event_id: _Optional[str] = ..., endpoint_id: _Optional[str] = ...) -> None: ...

class RedeliverWebhookEventResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: WebhookEvent
    def __init__(self, event: _Optional[_Union[WebhookEvent, _Mapping]] = ...) -> None: ...

class InvoiceLine(_message.Message):
    __slots__ = ("type", "description", "quantity", "unit_price", "amount", "period", "credit_id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    CREDIT_ID_FIELD_NUMBER: _ClassVar[int]
    type: str
    description: str
    quantity: str
    unit_price: _common_pb2.Money
    amount: _common_pb2.Money
    period: str
    credit_id: str
    def __init__(self, type: _Optional[str] = ..., description: _Optional[str] = ..., quantity: _Optional[str] = ..., unit_price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., period: _Optional[str] = ..., credit_id: _Optional[str] = ...) -> None: ...

class Invoice(_message.Message):
    __slots__ = ("invoice_id", "account_id", "period", "status", "lines", "subtotal", "total", "tenant_breakdown", "issue_time", "paid_time", "amount_paid", "next_payment_attempt")
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    SUBTOTAL_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    TENANT_BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TIME_FIELD_NUMBER: _ClassVar[int]
    PAID_TIME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_PAID_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAYMENT_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    invoice_id: str
    account_id: str
    period: str
    status: InvoiceStatus
    lines: _containers.RepeatedCompositeFieldContainer[InvoiceLine]
    subtotal: _common_pb2.Money
    total: _common_pb2.Money
    tenant_breakdown: _containers.RepeatedCompositeFieldContainer[_common_pb2.TenantUsage]
    issue_time: _timestamp_pb2.Timestamp
    paid_time: _timestamp_pb2.Timestamp
    amount_paid: _common_pb2.Money
    next_payment_attempt: _timestamp_pb2.Timestamp
    def __init__(self, invoice_id: _Optional[str] = ..., account_id: _Optional[str] = ..., period: _Optional[str] = ..., status: _Optional[_Union[InvoiceStatus, str]] = ..., lines: _Optional[_Iterable[_Union[InvoiceLine, _Mapping]]] = ..., subtotal: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., total: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., tenant_breakdown: _Optional[_Iterable[_Union[_common_pb2.TenantUsage, _Mapping]]] = ..., issue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paid_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount_paid: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., next_payment_attempt: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CloseBillingPeriodRequest(_message.Message):
    __slots__ = ("account_id", "period", "request_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    period: str
    request_id: str
    def __init__(self, account_id: _Optional[str] = ..., period: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CloseBillingPeriodResponse(_message.Message):
    __slots__ = ("invoice",)
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    invoice: Invoice
    def __init__(self, invoice: _Optional[_Union[Invoice, _Mapping]] = ...) -> None: ...

class GetInvoiceRequest(_message.Message):
    __slots__ = ("invoice_id",)
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    invoice_id: str
    def __init__(self, invoice_id: _Optional[str] = ...) -> None: ...

class GetInvoiceResponse(_message.Message):
    __slots__ = ("invoice",)
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    invoice: Invoice
    def __init__(self, invoice: _Optional[_Union[Invoice, _Mapping]] = ...) -> None: ...

class ListInvoicesRequest(_message.Message):
    __slots__ = ("account_id", "status", "period", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    status: InvoiceStatus
    period: str
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[str] = ..., status: _Optional[_Union[InvoiceStatus, str]] = ..., period: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInvoicesResponse(_message.Message):
    __slots__ = ("invoices", "next_page_token")
    INVOICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invoices: _containers.RepeatedCompositeFieldContainer[Invoice]
    next_page_token: str
    def __init__(self, invoices: _Optional[_Iterable[_Union[Invoice, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Credit(_message.Message):
    __slots__ = ("credit_id", "account_id", "amount", "remaining", "description", "create_time")
    CREDIT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    credit_id: str
    account_id: str
    amount: _common_pb2.Money
    remaining: _common_pb2.Money
    description: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, credit_id: _Optional[str] = ..., account_id: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., remaining: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IssueCreditRequest(_message.Message):
    __slots__ = ("account_id", "amount", "description", "request_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    amount: _common_pb2.Money
    description: str
    request_id: str
    def __init__(self, account_id: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., description: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class IssueCreditResponse(_message.Message):
    __slots__ = ("credit",)
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    credit: Credit
    def __init__(self, credit: _Optional[_Union[Credit, _Mapping]] = ...) -> None: ...

class ListCreditsRequest(_message.Message):
    __slots__ = ("account_id", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCreditsResponse(_message.Message):
    __slots__ = ("credits", "next_page_token")
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    credits: _containers.RepeatedCompositeFieldContainer[Credit]
    next_page_token: str
    def __init__(self, credits: _Optional[_Iterable[_Union[Credit, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class VoidInvoiceRequest(_message.Message):
    __slots__ = ("invoice_id", "reason", "request_id")
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    invoice_id: str
    reason: str
    request_id: str
    def __init__(self, invoice_id: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class VoidInvoiceResponse(_message.Message):
    __slots__ = ("invoice",)
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    invoice: Invoice
    def __init__(self, invoice: _Optional[_Union[Invoice, _Mapping]] = ...) -> None: ...

class RecordPaymentResultRequest(_message.Message):
    __slots__ = ("invoice_id", "succeeded", "failure_reason", "request_id", "attempt_time")
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    invoice_id: str
    succeeded: bool
    failure_reason: str
    request_id: str
    attempt_time: _timestamp_pb2.Timestamp
    def __init__(self, invoice_id: _Optional[str] = ..., succeeded: _Optional[bool] = ..., failure_reason: _Optional[str] = ..., request_id: _Optional[str] = ..., attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordPaymentResultResponse(_message.Message):
    __slots__ = ("invoice", "subscription")
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    invoice: Invoice
    subscription: Subscription
    def __init__(self, invoice: _Optional[_Union[Invoice, _Mapping]] = ..., subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("account_id", "name", "limit", "threshold_percentages")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_PERCENTAGES_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    name: str
    limit: _common_pb2.Money
    threshold_percentages: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, account_id: _Optional[str] = ..., name: _Optional[str] = ..., limit: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., threshold_percentages: _Optional[_Iterable[int]] = ...) -> None: ...

class SetBudgetRequest(_message.Message):
    __slots__ = ("account_id", "name", "limit", "threshold_percentages", "request_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_PERCENTAGES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    name: str
    limit: _common_pb2.Money
    threshold_percentages: _containers.RepeatedScalarFieldContainer[int]
    request_id: str
    def __init__(self, account_id: _Optional[str] = ..., name: _Optional[str] = ..., limit: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., threshold_percentages: _Optional[_Iterable[int]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetBudgetResponse(_message.Message):
    __slots__ = ("budget",)
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    budget: Budget
    def __init__(self, budget: _Optional[_Union[Budget, _Mapping]] = ...) -> None: ...

class ListBudgetsRequest(_message.Message):
    __slots__ = ("account_id", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBudgetsResponse(_message.Message):
    __slots__ = ("budgets", "next_page_token")
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    budgets: _containers.RepeatedCompositeFieldContainer[Budget]
    next_page_token: str
    def __init__(self, budgets: _Optional[_Iterable[_Union[Budget, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteBudgetRequest(_message.Message):
    __slots__ = ("account_id", "name")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    name: str
    def __init__(self, account_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteBudgetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CostAllocation(_message.Message):
    __slots__ = ("department", "message_count", "cost", "partners")
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    PARTNERS_FIELD_NUMBER: _ClassVar[int]
    department: str
    message_count: int
    cost: _common_pb2.Money
    partners: _containers.RepeatedCompositeFieldContainer[_common_pb2.PartnerUsage]
    def __init__(self, department: _Optional[str] = ..., message_count: _Optional[int] = ..., cost: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., partners: _Optional[_Iterable[_Union[_common_pb2.PartnerUsage, _Mapping]]] = ...) -> None: ...

class GetCostAllocationRequest(_message.Message):
    __slots__ = ("account_id", "period")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    period: str
    def __init__(self, account_id: _Optional[str] = ..., period: _Optional[str] = ...) -> None: ...

class GetCostAllocationResponse(_message.Message):
    __slots__ = ("allocations", "total", "invoiced")
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    INVOICED_FIELD_NUMBER: _ClassVar[int]
    allocations: _containers.RepeatedCompositeFieldContainer[CostAllocation]
    total: _common_pb2.Money
    invoiced: bool
    def __init__(self, allocations: _Optional[_Iterable[_Union[CostAllocation, _Mapping]]] = ..., total: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., invoiced: _Optional[bool] = ...) -> None: ...

class JournalEntry(_message.Message):
    __slots__ = ("gl_account", "department", "amount", "description", "reference")
    GL_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    gl_account: str
    department: str
    amount: _common_pb2.Money
    description: str
    reference: str
    def __init__(self, gl_account: _Optional[str] = ..., department: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., description: _Optional[str] = ..., reference: _Optional[str] = ...) -> None: ...

class ExportJournalEntriesRequest(_message.Message):
    __slots__ = ("account_id", "period")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    period: str
    def __init__(self, account_id: _Optional[str] = ..., period: _Optional[str] = ...) -> None: ...

class ExportJournalEntriesResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[JournalEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[JournalEntry, _Mapping]]] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("sequence", "account_id", "actor", "action", "before_json", "after_json", "event_time", "request_id", "previous_hash", "hash")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BEFORE_JSON_FIELD_NUMBER: _ClassVar[int]
    AFTER_JSON_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    account_id: str
    actor: str
    action: str
    before_json: str
    after_json: str
    event_time: _timestamp_pb2.Timestamp
    request_id: str
    previous_hash: str
    hash: str
    def __init__(self, sequence: _Optional[int] = ..., account_id: _Optional[str] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., before_json: _Optional[str] = ..., after_json: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., previous_hash: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("account_id", "action", "start_time", "end_time", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    action: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[str] = ..., action: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("audit_events", "next_page_token")
    AUDIT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    audit_events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, audit_events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReconciliationLine(_message.Message):
    __slots__ = ("type", "invoiced_quantity", "rerated_quantity", "invoiced_amount", "rerated_amount", "difference")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    INVOICED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    RERATED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    INVOICED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    RERATED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    type: str
    invoiced_quantity: str
    rerated_quantity: str
    invoiced_amount: _common_pb2.Money
    rerated_amount: _common_pb2.Money
    difference: _common_pb2.Money
    def __init__(self, type: _Optional[str] = ..., invoiced_quantity: _Optional[str] = ..., rerated_quantity: _Optional[str] = ..., invoiced_amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., rerated_amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., difference: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class ReconcilePeriodRequest(_message.Message):
    __slots__ = ("account_id", "period")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    period: str
    def __init__(self, account_id: _Optional[str] = ..., period: _Optional[str] = ...) -> None: ...

class ReconcilePeriodResponse(_message.Message):
    __slots__ = ("invoice_id", "matches", "lines")
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    invoice_id: str
    matches: bool
    lines: _containers.RepeatedCompositeFieldContainer[ReconciliationLine]
    def __init__(self, invoice_id: _Optional[str] = ..., matches: _Optional[bool] = ..., lines: _Optional[_Iterable[_Union[ReconciliationLine, _Mapping]]] = ...) -> None: ...

class PlanCost(_message.Message):
    __slots__ = ("plan_id", "name", "total", "lines", "horizon_monthly_total", "horizon_annual_total")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    HORIZON_MONTHLY_TOTAL_FIELD_NUMBER: _ClassVar[int]
    HORIZON_ANNUAL_TOTAL_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    name: str
    total: _common_pb2.Money
    lines: _containers.RepeatedCompositeFieldContainer[InvoiceLine]
    horizon_monthly_total: _common_pb2.Money
    horizon_annual_total: _common_pb2.Money
    def __init__(self, plan_id: _Optional[str] = ..., name: _Optional[str] = ..., total: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., lines: _Optional[_Iterable[_Union[InvoiceLine, _Mapping]]] = ..., horizon_monthly_total: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., horizon_annual_total: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class ComparePlansRequest(_message.Message):
    __slots__ = ("account_id", "period", "horizon_months")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    HORIZON_MONTHS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    period: str
    horizon_months: int
    def __init__(self, account_id: _Optional[str] = ..., period: _Optional[str] = ..., horizon_months: _Optional[int] = ...) -> None: ...

class PlanRecommendation(_message.Message):
    __slots__ = ("plan_id", "billing_interval", "total", "current_plan_id", "current_billing_interval", "current_total", "saving", "forecast_model")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    BILLING_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_BILLING_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SAVING_FIELD_NUMBER: _ClassVar[int]
    FORECAST_MODEL_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    billing_interval: BillingInterval
    total: _common_pb2.Money
    current_plan_id: str
    current_billing_interval: BillingInterval
    current_total: _common_pb2.Money
    saving: _common_pb2.Money
    forecast_model: str
    def __init__(self, plan_id: _Optional[str] = ..., billing_interval: _Optional[_Union[BillingInterval, str]] = ..., total: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., current_plan_id: _Optional[str] = ..., current_billing_interval: _Optional[_Union[BillingInterval, str]] = ..., current_total: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., saving: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., forecast_model: _Optional[str] = ...) -> None: ...

class ComparePlansResponse(_message.Message):
    __slots__ = ("plan_costs", "recommendation")
    PLAN_COSTS_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_FIELD_NUMBER: _ClassVar[int]
    plan_costs: _containers.RepeatedCompositeFieldContainer[PlanCost]
    recommendation: PlanRecommendation
    def __init__(self, plan_costs: _Optional[_Iterable[_Union[PlanCost, _Mapping]]] = ..., recommendation: _Optional[_Union[PlanRecommendation, _Mapping]] = ...) -> None: ...

class PartnerPeriodUsage(_message.Message):
    __slots__ = ("period", "message_count", "cost")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    period: str
    message_count: int
    cost: _common_pb2.Money
    def __init__(self, period: _Optional[str] = ..., message_count: _Optional[int] = ..., cost: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class PartnerUtilization(_message.Message):
    __slots__ = ("partner_id", "partner_name", "department", "periods", "message_count", "cost", "trend", "last_active_period", "last_activity_time", "idle", "create_time")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    PERIODS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    TREND_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_TIME_FIELD_NUMBER: _ClassVar[int]
    IDLE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    partner_name: str
    department: str
    periods: _containers.RepeatedCompositeFieldContainer[PartnerPeriodUsage]
    message_count: int
    cost: _common_pb2.Money
    trend: PartnerTrend
    last_active_period: str
    last_activity_time: _timestamp_pb2.Timestamp
    idle: bool
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, partner_id: _Optional[str] = ..., partner_name: _Optional[str] = ..., department: _Optional[str] = ..., periods: _Optional[_Iterable[_Union[PartnerPeriodUsage, _Mapping]]] = ..., message_count: _Optional[int] = ..., cost: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., trend: _Optional[_Union[PartnerTrend, str]] = ..., last_active_period: _Optional[str] = ..., last_activity_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idle: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetPartnerUtilizationRequest(_message.Message):
    __slots__ = ("account_id", "start_period", "end_period", "idle_periods")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    START_PERIOD_FIELD_NUMBER: _ClassVar[int]
    END_PERIOD_FIELD_NUMBER: _ClassVar[int]
    IDLE_PERIODS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    start_period: str
    end_period: str
    idle_periods: int
    def __init__(self, account_id: _Optional[str] = ..., start_period: _Optional[str] = ..., end_period: _Optional[str] = ..., idle_periods: _Optional[int] = ...) -> None: ...

class GetPartnerUtilizationResponse(_message.Message):
    __slots__ = ("partners", "periods", "total", "unpartnered_cost", "unpartnered_message_count", "included_master_partners", "partner_slots_left", "idle_partner_count")
    PARTNERS_FIELD_NUMBER: _ClassVar[int]
    PERIODS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UNPARTNERED_COST_FIELD_NUMBER: _ClassVar[int]
    UNPARTNERED_MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_MASTER_PARTNERS_FIELD_NUMBER: _ClassVar[int]
    PARTNER_SLOTS_LEFT_FIELD_NUMBER: _ClassVar[int]
    IDLE_PARTNER_COUNT_FIELD_NUMBER: _ClassVar[int]
    partners: _containers.RepeatedCompositeFieldContainer[PartnerUtilization]
    periods: _containers.RepeatedScalarFieldContainer[str]
    total: _common_pb2.Money
    unpartnered_cost: _common_pb2.Money
    unpartnered_message_count: int
    included_master_partners: int
    partner_slots_left: int
    idle_partner_count: int
    def __init__(self, partners: _Optional[_Iterable[_Union[PartnerUtilization, _Mapping]]] = ..., periods: _Optional[_Iterable[str]] = ..., total: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., unpartnered_cost: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., unpartnered_message_count: _Optional[int] = ..., included_master_partners: _Optional[int] = ..., partner_slots_left: _Optional[int] = ..., idle_partner_count: _Optional[int] = ...) -> None: ...

class ApprovalPolicy(_message.Message):
    __slots__ = ("upgrades", "downgrades", "cancellations", "custom_terms", "base_fee_above")
    UPGRADES_FIELD_NUMBER: _ClassVar[int]
    DOWNGRADES_FIELD_NUMBER: _ClassVar[int]
    CANCELLATIONS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_TERMS_FIELD_NUMBER: _ClassVar[int]
    BASE_FEE_ABOVE_FIELD_NUMBER: _ClassVar[int]
    upgrades: bool
    downgrades: bool
    cancellations: bool
    custom_terms: bool
    base_fee_above: _common_pb2.Money
    def __init__(self, upgrades: _Optional[bool] = ..., downgrades: _Optional[bool] = ..., cancellations: _Optional[bool] = ..., custom_terms: _Optional[bool] = ..., base_fee_above: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class ChangeRequest(_message.Message):
    __slots__ = ("change_request_id", "account_id", "status", "kind", "requested_by", "create_time", "expires_at", "summary", "plan_id", "billing_interval", "at_period_end", "custom_terms", "decided_by", "decided_at", "reason")
    CHANGE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    BILLING_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    AT_PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_TERMS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    change_request_id: str
    account_id: str
    status: ChangeRequestStatus
    kind: ChangeRequestKind
    requested_by: str
    create_time: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    summary: str
    plan_id: str
    billing_interval: BillingInterval
    at_period_end: bool
    custom_terms: CustomTerms
    decided_by: str
    decided_at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, change_request_id: _Optional[str] = ..., account_id: _Optional[str] = ..., status: _Optional[_Union[ChangeRequestStatus, str]] = ..., kind: _Optional[_Union[ChangeRequestKind, str]] = ..., requested_by: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., summary: _Optional[str] = ..., plan_id: _Optional[str] = ..., billing_interval: _Optional[_Union[BillingInterval, str]] = ..., at_period_end: _Optional[bool] = ..., custom_terms: _Optional[_Union[CustomTerms, _Mapping]] = ..., decided_by: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class SetApprovalPolicyRequest(_message.Message):
    __slots__ = ("account_id", "policy", "request_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    policy: ApprovalPolicy
    request_id: str
    def __init__(self, account_id: _Optional[str] = ..., policy: _Optional[_Union[ApprovalPolicy, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetApprovalPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: ApprovalPolicy
    def __init__(self, policy: _Optional[_Union[ApprovalPolicy, _Mapping]] = ...) -> None: ...

class ListChangeRequestsRequest(_message.Message):
    __slots__ = ("account_id", "status", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    status: ChangeRequestStatus
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[str] = ..., status: _Optional[_Union[ChangeRequestStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListChangeRequestsResponse(_message.Message):
    __slots__ = ("change_requests", "next_page_token")
    CHANGE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    change_requests: _containers.RepeatedCompositeFieldContainer[ChangeRequest]
    next_page_token: str
    def __init__(self, change_requests: _Optional[_Iterable[_Union[ChangeRequest, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ApproveChangeRequestRequest(_message.Message):
    __slots__ = ("change_request_id", "request_id")
    CHANGE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    change_request_id: str
    request_id: str
    def __init__(self, change_request_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ApproveChangeRequestResponse(_message.Message):
    __slots__ = ("change_request", "subscription", "effective_immediately")
    CHANGE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_IMMEDIATELY_FIELD_NUMBER: _ClassVar[int]
    change_request: ChangeRequest
    subscription: Subscription
    effective_immediately: bool
    def __init__(self, change_request: _Optional[_Union[ChangeRequest, _Mapping]] = ..., subscription: _Optional[_Union[Subscription, _Mapping]] = ..., effective_immediately: _Optional[bool] = ...) -> None: ...

class RejectChangeRequestRequest(_message.Message):
    __slots__ = ("change_request_id", "reason", "request_id")
    CHANGE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    change_request_id: str
    reason: str
    request_id: str
    def __init__(self, change_request_id: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RejectChangeRequestResponse(_message.Message):
    __slots__ = ("change_request",)
    CHANGE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    change_request: ChangeRequest
    def __init__(self, change_request: _Optional[_Union[ChangeRequest, _Mapping]] = ...) -> None: ...

class TestClock(_message.Message):
    __slots__ = ("test_clock_id", "name", "frozen_time", "status", "advancing_to", "create_time")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[TestClock.Status]
        STATUS_READY: _ClassVar[TestClock.Status]
        STATUS_ADVANCING: _ClassVar[TestClock.Status]
    STATUS_UNSPECIFIED: TestClock.Status
    STATUS_READY: TestClock.Status
    STATUS_ADVANCING: TestClock.Status
    TEST_CLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FROZEN_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ADVANCING_TO_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    test_clock_id: str
    name: str
    frozen_time: _timestamp_pb2.Timestamp
    status: TestClock.Status
    advancing_to: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, test_clock_id: _Optional[str] = ..., name: _Optional[str] = ..., frozen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[TestClock.Status, str]] = ..., advancing_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTestClockRequest(_message.Message):
    __slots__ = ("name", "frozen_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FROZEN_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    frozen_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., frozen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTestClockResponse(_message.Message):
    __slots__ = ("test_clock",)
    TEST_CLOCK_FIELD_NUMBER: _ClassVar[int]
    test_clock: TestClock
    def __init__(self, test_clock: _Optional[_Union[TestClock, _Mapping]] = ...) -> None: ...

class AdvanceTestClockRequest(_message.Message):
    __slots__ = ("test_clock_id", "frozen_time")
    TEST_CLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    FROZEN_TIME_FIELD_NUMBER: _ClassVar[int]
    test_clock_id: str
    frozen_time: _timestamp_pb2.Timestamp
    def __init__(self, test_clock_id: _Optional[str] = ..., frozen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AdvanceTestClockResponse(_message.Message):
    __slots__ = ("test_clock",)
    TEST_CLOCK_FIELD_NUMBER: _ClassVar[int]
    test_clock: TestClock
    def __init__(self, test_clock: _Optional[_Union[TestClock, _Mapping]] = ...) -> None: ...

class GetTestClockRequest(_message.Message):
    __slots__ = ("test_clock_id",)
    TEST_CLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    test_clock_id: str
    def __init__(self, test_clock_id: _Optional[str] = ...) -> None: ...

class GetTestClockResponse(_message.Message):
    __slots__ = ("test_clock",)
    TEST_CLOCK_FIELD_NUMBER: _ClassVar[int]
    test_clock: TestClock
    def __init__(self, test_clock: _Optional[_Union[TestClock, _Mapping]] = ...) -> None: ...

class DeleteTestClockRequest(_message.Message):
    __slots__ = ("test_clock_id",)
    TEST_CLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    test_clock_id: str
    def __init__(self, test_clock_id: _Optional[str] = ...) -> None: ...

class DeleteTestClockResponse(_message.Message):
    __slots__ = ("deleted_accounts",)
    DELETED_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    deleted_accounts: int
    def __init__(self, deleted_accounts: _Optional[int] = ...) -> None: ...
