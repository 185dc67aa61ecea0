"""The plan catalog and the terms in force for an account (spec §1.2).

The catalog is data (``plans.json`` shipped with the package); an account's effective terms are its
catalog plan with its negotiated Custom Enterprise terms laid over it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from billing_svc.domain import bounds
from billing_svc.domain.errors import InvalidArgument, NotFound, shown


@dataclass(frozen=True)
class MessageTier:
    """Messages up to ``up_to_messages`` (cumulative; ``None`` = no bound) cost ``unit_price``."""

    up_to_messages: int | None
    unit_price: Decimal


@dataclass(frozen=True)
class Terms:
    """Every number that prices an account's period. ``None`` limits mean unlimited."""

    plan_id: str
    name: str
    base_fee: Decimal
    trial_days: int
    included_tenants: int | None
    included_master_partners: int | None
    included_messages: int
    included_storage_gb: Decimal
    tenant_overage: Decimal
    message_overage: Decimal
    storage_overage_per_gb: Decimal
    support: str
    message_tiers: tuple[MessageTier, ...] = ()
    custom: bool = False
    contract_start: datetime | None = None
    contract_end: datetime | None = None
    account_manager: str = ""


@dataclass(frozen=True)
class CustomTerms:
    """Negotiated overrides; a ``None`` field keeps the catalog value."""

    base_fee: Decimal | None = None
    included_tenants: int | None = None
    unlimited_tenants: bool = False
    included_master_partners: int | None = None
    unlimited_master_partners: bool = False
    included_messages: int | None = None
    included_storage_gb: Decimal | None = None
    tenant_overage: Decimal | None = None
    message_overage: Decimal | None = None
    storage_overage_per_gb: Decimal | None = None
    message_tiers: tuple[MessageTier, ...] = field(default_factory=tuple)
    contract_start: datetime | None = None
    contract_end: datetime | None = None
    account_manager: str = ""

    def validate(self) -> None:
        """Raise ``InvalidArgument`` naming the first field that cannot be a term: every amount
        finite, not negative, within its maximum (``domain.bounds``) and with at most 6 decimal
        places, so that any usage within the bounds can be rated exactly."""
        for name, most in (
            ("base_fee", bounds.MAX_BASE_FEE),
            ("included_storage_gb", bounds.MAX_INCLUDED_STORAGE_GB),
            ("tenant_overage", bounds.MAX_TENANT_OVERAGE),
            ("message_overage", bounds.MAX_MESSAGE_RATE),
            ("storage_overage_per_gb", bounds.MAX_STORAGE_RATE),
        ):
            _check_amount(f"terms.{name}", getattr(self, name), most)
        for name in ("included_tenants", "included_master_partners", "included_messages"):
            value = getattr(self, name)
            if value is not None and not (
                type(value) is int and 0 <= value <= bounds.MAX_INCLUDED_COUNT
            ):
                raise InvalidArgument(
                    f"terms.{name}", f"must be a whole number within 0..{bounds.INT64_MAX}"
                )
        if len(self.message_tiers) > bounds.MAX_MESSAGE_TIERS:
            raise InvalidArgument(
                "terms.message_tiers", f"at most {bounds.MAX_MESSAGE_TIERS} tiers"
            )
        previous = 0
        for index, tier in enumerate(self.message_tiers):
            where = f"terms.message_tiers[{index}]"
            _check_amount(f"{where}.unit_price", tier.unit_price, bounds.MAX_MESSAGE_RATE)
            if tier.up_to_messages is None:
                if index != len(self.message_tiers) - 1:
                    raise InvalidArgument(where, "only the last tier may be unbounded (0)")
            elif not (
                type(tier.up_to_messages) is int
                and previous < tier.up_to_messages <= bounds.INT64_MAX
            ):
                raise InvalidArgument(where, "up_to_messages must increase from tier to tier")
            else:
                previous = tier.up_to_messages
        if len(self.account_manager) > bounds.MAX_ACCOUNT_MANAGER_LENGTH:
            raise InvalidArgument(
                "terms.account_manager",
                f"is longer than {bounds.MAX_ACCOUNT_MANAGER_LENGTH} characters",
            )
        if self.contract_start and self.contract_end and self.contract_end <= self.contract_start:
            raise InvalidArgument("terms.contract_end", "must be after contract_start")

    def to_json(self) -> str:
        def encode(value: Any) -> Any:
            if isinstance(value, Decimal):
                return str(value)
            if isinstance(value, datetime):
                return value.isoformat()
            return value

        data = {k: encode(v) for k, v in self.__dict__.items() if k != "message_tiers"}
        data["message_tiers"] = [
            {"up_to_messages": t.up_to_messages, "unit_price": str(t.unit_price)}
            for t in self.message_tiers
        ]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CustomTerms:
        data = json.loads(text)
        tiers = tuple(
            MessageTier(t["up_to_messages"], Decimal(t["unit_price"]))
            for t in data.pop("message_tiers", [])
        )
        for name in (
            "base_fee",
            "included_storage_gb",
            "tenant_overage",
            "message_overage",
            "storage_overage_per_gb",
        ):
            if data.get(name) is not None:
                data[name] = Decimal(data[name])
        for name in ("contract_start", "contract_end"):
            if data.get(name):
                data[name] = datetime.fromisoformat(data[name])
        return cls(message_tiers=tiers, **data)


_TERM_QUANTUM = Decimal(1).scaleb(-bounds.TERM_DECIMAL_PLACES)


def _check_amount(field: str, value: Decimal | None, most: Decimal) -> None:
    if value is None:
        return
    if not value.is_finite():
        raise InvalidArgument(field, "must be a finite number")
    if value < 0:
        raise InvalidArgument(field, "must not be negative")
    if value > most:
        raise InvalidArgument(field, f"is above the most billing-svc takes, {most:,f}")
    if value != value.quantize(_TERM_QUANTUM):
        raise InvalidArgument(field, f"has more than {bounds.TERM_DECIMAL_PLACES} decimal places")


def _terms_from_record(record: dict[str, Any]) -> Terms:
    return Terms(
        plan_id=record["plan_id"],
        name=record["name"],
        base_fee=Decimal(record["base_fee"]),
        trial_days=int(record["trial_days"]),
        included_tenants=record["included_tenants"],
        included_master_partners=record["included_master_partners"],
        included_messages=int(record["included_messages"]),
        included_storage_gb=Decimal(record["included_storage_gb"]),
        tenant_overage=Decimal(record["tenant_overage"]),
        message_overage=Decimal(record["message_overage"]),
        storage_overage_per_gb=Decimal(record["storage_overage_per_gb"]),
        support=record["support"],
    )


@cache
def catalog() -> tuple[Terms, ...]:
    """The catalog plans, in the order they are offered."""
    text = resources.files("billing_svc.domain").joinpath("plans.json").read_text("utf-8")
    return tuple(_terms_from_record(r) for r in json.loads(text)["plans"])


def plan(plan_id: str) -> Terms:
    """The catalog plan ``plan_id``; raises ``NotFound`` listing the valid ids otherwise."""
    for terms in catalog():
        if terms.plan_id == plan_id:
            return terms
    valid = ", ".join(t.plan_id for t in catalog())
    raise NotFound(f"plan {shown(plan_id)} does not exist; choose one of: {valid}")


def effective_terms(plan_id: str, custom: CustomTerms | None) -> Terms:
    """The catalog plan with the account's negotiated terms laid over it."""
    base = plan(plan_id)
    if custom is None:
        return base
    overrides: dict[str, Any] = {
        "custom": True,
        "account_manager": custom.account_manager,
        "contract_start": custom.contract_start,
        "contract_end": custom.contract_end,
    }
    for name in (
        "base_fee",
        "included_messages",
        "included_storage_gb",
        "tenant_overage",
        "message_overage",
        "storage_overage_per_gb",
    ):
        value = getattr(custom, name)
        if value is not None:
            overrides[name] = value
    if custom.unlimited_tenants:
        overrides["included_tenants"] = None
    elif custom.included_tenants is not None:
        overrides["included_tenants"] = custom.included_tenants
    if custom.unlimited_master_partners:
        overrides["included_master_partners"] = None
    elif custom.included_master_partners is not None:
        overrides["included_master_partners"] = custom.included_master_partners
    if custom.message_tiers:
        overrides["message_tiers"] = custom.message_tiers
    return replace(base, **overrides)
