"""Settings: ``BILLING_*`` environment variables (and a ``.env`` file), read once at start.

``load_settings`` is how the service and the CLI read them: every mistake an operator can make in
them comes out as one ``SettingsError`` whose message names the ``BILLING_*`` variable and what
it expects, so that ``billing-svc`` can print one line instead of a traceback.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from billing_svc.domain.approvals import MAX_TTL_HOURS
from billing_svc.domain.retention import (
    DEFAULT_HOURLY_ROLLUP_RETENTION_DAYS,
    DEFAULT_IDEMPOTENCY_RETENTION_DAYS,
    DEFAULT_USAGE_RETENTION_DAYS,
    DEFAULT_WEBHOOK_LOG_RETENTION_DAYS,
    MAX_RETENTION_DAYS,
    MIN_IDEMPOTENCY_RETENTION_DAYS,
)
from billing_svc.domain.scopes import SCOPES
from billing_svc.operator_errors import OperatorError

# The Standard Webhooks example schedule (~3 days): seconds to wait before each retry.
DEFAULT_WEBHOOK_RETRY_SCHEDULE = "5,300,1800,7200,18000,36000,50400,72000,86400"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
PREFIX = "BILLING_"

# What a value of each kind must look like, as pydantic's error types name the kinds.
_EXPECTED = {
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
}


class SettingsError(OperatorError, ValueError):
    """A setting an operator gave cannot be used; the message names its variable and what it
    expects, on one line."""

    exit_code = 2


def variable(field: str) -> str:
    """The environment variable of a ``Settings`` field."""
    return f"{PREFIX}{field.upper()}"


def _shown(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 64 else f"{text[:64]}…")


class TokenSpec(BaseModel):
    """One entry of ``BILLING_AUTH_TOKENS``: a caller name, its token (or its SHA-256), scopes."""

    name: str
    token: str | None = None
    token_sha256: str | None = None
    scopes: list[str]

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str]) -> list[str]:
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; valid: {list(SCOPES)}")
        return scopes


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=".env", extra="ignore")

    database_url: str = "sqlite:///billing.db"
    listen: str = "127.0.0.1:50051"
    auth_tokens: str = Field(default="", description="JSON list of TokenSpec")
    webhook_allow_private_networks: bool = False
    webhook_retry_schedule: str = DEFAULT_WEBHOOK_RETRY_SCHEDULE
    auto_close_periods: bool = True
    period_close_grace_seconds: int = 3600
    # An hour is reported to billing systems this long after it closed: producers' last events of
    # the hour arrive first (later ones make a new revision).
    usage_report_grace_seconds: int = Field(default=300, ge=0, le=31 * 86_400)
    metrics_listen: str = ""
    # host:port of the seed's REST surface (api/rest.py, docs/rest.md); empty: no HTTP port.
    http_listen: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    log_level: str = "info"
    shutdown_grace_seconds: float = 10.0
    scheduler_interval_seconds: float = 30.0
    max_message_bytes: int = 16 * 1024 * 1024
    usage_retention_days: int = Field(
        default=DEFAULT_USAGE_RETENTION_DAYS, ge=1, le=MAX_RETENTION_DAYS
    )
    max_streams_per_caller: int = 16
    # Every method but StreamUsage and RecordUsage: larger requests are refused before decoding.
    max_request_bytes: int = 1024 * 1024
    # Calls in flight, open streams included: 16 producers' 16 streams each, as many unary calls.
    max_concurrent_rpcs: int = 512
    stream_idle_seconds: float = 300.0
    # The compiled ingestion kernel, when built (billing_svc.native); false: the Python path only.
    native_ingestion: bool = True
    keepalive_seconds: float = 60.0
    dunning_schedule_days: str = "3,5,7"
    gl_account: str = "6100-AS2-MESSAGING"
    # 10 s: an internal sender's timeout (Standard Webhooks: 15-30 s for the public internet).
    webhook_timeout_seconds: float = 10.0
    webhook_disable_after_days: float = 5.0
    webhook_dispatch_interval_seconds: float = 0.5
    webhook_max_concurrency: int = 64
    webhook_per_endpoint_concurrency: int = 4
    # How long a change held by an approval policy waits for a decision (fractions for tests).
    change_request_ttl_hours: float = Field(default=168.0, gt=0, le=MAX_TTL_HOURS)
    # How often the scheduler checks budgets against the forecast (a model fit per account).
    forecast_alert_interval_seconds: float = Field(default=3600.0, ge=0)
    # Traces (billing_svc.tracing): none, otlp (OTLP/HTTP, the OTEL_EXPORTER_OTLP_* variables) or
    # console (stderr).
    otel_exporter: Literal["none", "otlp", "console"] = "none"
    # Retention (services.retention, ``billing-svc purge``): days each kind of record is kept.
    webhook_log_retention_days: int = Field(
        default=DEFAULT_WEBHOOK_LOG_RETENTION_DAYS, ge=1, le=MAX_RETENTION_DAYS
    )
    idempotency_retention_days: int = Field(
        default=DEFAULT_IDEMPOTENCY_RETENTION_DAYS,
        ge=MIN_IDEMPOTENCY_RETENTION_DAYS,
        le=MAX_RETENTION_DAYS,
    )
    hourly_rollup_retention_days: int = Field(
        default=DEFAULT_HOURLY_ROLLUP_RETENTION_DAYS, ge=1, le=MAX_RETENTION_DAYS
    )
    # How often the scheduler purges; 0: never (run ``billing-svc purge`` yourself, e.g. to export).
    purge_interval_seconds: float = Field(default=3600.0, ge=0)

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, url: str) -> str:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ValueError(
                "expected an SQLAlchemy URL: sqlite:///FILE or "
                "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"
            ) from None
        backend, _, driver = parsed.drivername.partition("+")
        if backend in ("postgres", "postgresql") and driver != "psycopg":
            # psycopg 3 is the driver installed; "postgres://" is not even a SQLAlchemy name.
            wanted = parsed.set(drivername="postgresql+psycopg").render_as_string()
            raise ValueError(f"use the postgresql+psycopg:// scheme (psycopg 3), e.g. {wanted}")
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(
                "expected sqlite:///FILE or postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"
            )
        return url

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, level: str) -> str:
        if level.lower() not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
        return level.lower()

    @cached_property
    def token_specs(self) -> list[TokenSpec]:
        if not self.auth_tokens.strip():
            return []
        raw: Any = json.loads(self.auth_tokens)
        if not isinstance(raw, list):
            raise ValueError("expected a JSON list of tokens")
        specs = [TokenSpec.model_validate(item) for item in raw]
        for spec in specs:
            if not (spec.token or spec.token_sha256):
                raise ValueError(f"token {spec.name!r} needs 'token' or 'token_sha256'")
        return specs

    @cached_property
    def dunning_days(self) -> tuple[int, ...]:
        values = tuple(int(v) for v in self.dunning_schedule_days.split(",") if v.strip())
        if not values or any(v <= 0 for v in values):
            raise ValueError("BILLING_DUNNING_SCHEDULE_DAYS: comma-separated days > 0")
        return values

    @cached_property
    def retry_schedule_seconds(self) -> tuple[float, ...]:
        values = tuple(float(v) for v in self.webhook_retry_schedule.split(",") if v.strip())
        if not values or any(v < 0 for v in values):
            raise ValueError("BILLING_WEBHOOK_RETRY_SCHEDULE: comma-separated seconds >= 0")
        return values


def load_settings(**values: Any) -> Settings:
    """The settings from the environment (and ``.env``), every derived value checked too.

    Raises ``SettingsError`` naming each bad variable, what it holds and what it expects."""
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise SettingsError("; ".join(_problem(error) for error in exc.errors())) from None
    for name, field in (
        ("token_specs", "auth_tokens"),
        ("dunning_days", "dunning_schedule_days"),
        ("retry_schedule_seconds", "webhook_retry_schedule"),
    ):
        try:
            getattr(settings, name)
        except (ValueError, ValidationError) as exc:
            raise SettingsError(f"{variable(field)}: {_one_line(exc, field)}") from None
    return settings


def _problem(error: Any) -> str:
    field = str(error["loc"][0]) if error.get("loc") else "?"
    expected = _EXPECTED.get(error["type"])
    if expected is None:
        context = error.get("ctx") or {}
        expected = str(context.get("error") or error["msg"])
    else:
        expected = f"expected {expected}"
    return f"{variable(field)}={_shown(error.get('input', ''))} is not valid: {expected}"


def _one_line(exc: Exception, field: str) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
    text = str(exc)
    prefix = f"{variable(field)}: "
    if isinstance(exc, json.JSONDecodeError):
        text = f"expected a JSON list of tokens ({exc.msg} at character {exc.pos})"
    elif text.startswith("could not convert") or text.startswith("invalid literal"):
        text = f"expected comma-separated numbers ({text})"
    return " ".join(text.removeprefix(prefix).split())
