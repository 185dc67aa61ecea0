"""Bearer tokens and the scope each RPC needs.

Tokens come from ``BILLING_AUTH_TOKENS``, or, when that is empty, from the database, where a first
start creates an admin token, prints it once and keeps only its SHA-256: the default is never an
open door. Health checking and reflection need no token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
from dataclasses import dataclass

from sqlmodel import select

from billing_svc.domain.periods import utcnow
from billing_svc.services.context import Caller
from billing_svc.settings import Settings
from billing_svc.storage.db import Database
from billing_svc.storage.tables import ApiToken

_BILLING = "/as2aas.billing.v1.BillingService/"
_USAGE = "/as2aas.billing.v1.UsageService/"

METHOD_SCOPES: dict[str, str] = {
    **{_USAGE + m: "usage:write" for m in ("StreamUsage", "RecordUsage")},
    **{_USAGE + m: "usage:read" for m in ("GetCurrentUsage", "GetMonthlyUsage",
                                           "GetUsageHistory")},
    **{_BILLING + m: "billing:read" for m in (
        "ListPlans", "GetAccountBilling", "ListWebhookEndpoints", "ListWebhookEvents",
        "GetInvoice", "ListInvoices", "ListCredits", "ListBudgets", "GetCostAllocation",
        "ExportJournalEntries", "ReconcilePeriod", "ComparePlans")},
    **{_BILLING + m: "billing:write" for m in (
        "CreateAccount", "ChangePlan", "CancelSubscription", "SetPaymentMethod",
        "SetUsageThresholds", "CreateTenant", "CreateMasterPartner", "UpdateMasterPartner",
        "CreateWebhookEndpoint", "DeleteWebhookEndpoint", "RotateWebhookSecret",
        "RedeliverWebhookEvent", "CloseBillingPeriod", "RecordPaymentResult", "SetBudget",
        "DeleteBudget")},
    **{_BILLING + m: "admin" for m in ("SetCustomTerms", "VoidInvoice", "IssueCredit",
                                       "ListAuditEvents")},
}

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "bsk_" + secrets.token_urlsafe(32)


@dataclass
class TokenStore:
    """Token SHA-256 -> caller. Lookups compare digests in constant time."""

    callers: dict[str, Caller]

    def authenticate(self, token: str) -> Caller | None:
        digest = hash_token(token)
        for known, caller in self.callers.items():
            if hmac.compare_digest(known, digest):
                return caller
        return None


def load_token_store(settings: Settings, db: Database) -> TokenStore:
    """Tokens from settings if any are configured, else the database's (bootstrapped if empty)."""
    specs = settings.token_specs
    if specs:
        return TokenStore({
            (spec.token_sha256 or hash_token(spec.token or "")).lower():
                Caller(spec.name, frozenset(spec.scopes))
            for spec in specs
        })
    with db.write() as session:
        rows = session.exec(select(ApiToken)).all()
        if not rows:
            token = new_token()
            row = ApiToken(name="admin", token_sha256=hash_token(token), scopes="admin",
                           created_at=utcnow())
            session.add(row)
            rows = [row]
            print(f"billing-svc: created the first admin token (shown once, store it now): "
                  f"{token}", file=sys.stderr, flush=True)
    return TokenStore({row.token_sha256: Caller(row.name, frozenset(row.scopes.split(",")))
                       for row in rows})


def create_token(db: Database, name: str, scopes: list[str]) -> str:
    """Create a database token (``billing-svc create-token``); returns it, shown once."""
    token = new_token()
    with db.write() as session:
        session.add(ApiToken(name=name, token_sha256=hash_token(token), scopes=",".join(scopes),
                             created_at=utcnow()))
    return token
