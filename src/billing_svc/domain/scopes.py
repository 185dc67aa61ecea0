"""The scopes a bearer token can grant: one list for every place that checks a grant.

Settings (``BILLING_AUTH_TOKENS``), the CLI's ``create-token`` and ``services.tokens`` refuse a
scope not named here, and ``api.auth.METHOD_SCOPES`` gives each RPC one of them. It lives in the
domain, the bottom layer, because settings sit below the services (docs/architecture.md).
"""

from __future__ import annotations

SCOPES = (
    "usage:write",
    "usage:read",
    "billing:read",
    "billing:write",
    "admin",
    "billing:approve",
    "sandbox",
)
