"""The largest quantities and prices billing-svc takes, and why every amount it can then compute
fits its money columns and the wire (issue 12, point 5).

Where amounts go: ``google.type.Money`` on the wire has int64 units (at most 9.22·10^18 dollars);
the money columns are ``NUMERIC(28, 9)`` on PostgreSQL (19 digits before the point: anything a
Money can carry) and exact decimal text on SQLite. ``MAX_AMOUNT`` stays below both.

The arithmetic, per account and period, with every bound at its maximum:

======================  ===============================  ===================================
line                    quantity at most                 x price at most = amount at most
======================  ===============================  ===================================
base fee                1 period (annual: 1 year)        10^9 a month (x 10 a year) = 10^10
tenant overage          10^4 tenants                     10^6 a tenant-month = 10^10
message overage         2^63 - 1 messages (int64)        0.1 a message = 9.22·10^17
storage overage         10^4 tenants x 10^9 GB           10^3 a GB-month = 10^16
======================  ===============================  ===================================

So a period's own charges come to at most ``LARGEST_PERIOD_CHARGES`` (about 9.33·10^17), a
tenth of ``MAX_AMOUNT``. Only late usage can add more to one invoice (each late period at most
the message line again); the invoice that would pass ``MAX_AMOUNT`` — about nine periods of
near-int64 message counts — is refused by rating (``Unratable``: FAILED_PRECONDITION) instead of
failing in the database.

Every product is exact: quantities have at most 19 digits and 9 decimal places, prices at most
13 digits and 6 decimal places, so no product needs more than rating's 100 digits.
"""

from __future__ import annotations

from decimal import Decimal

from billing_svc.domain.usage import GB_BYTES, MAX_COUNTER, MAX_STORAGE_BYTES

INT64_MAX = MAX_COUNTER  # what a counter, a Money's units and every int64 field hold

MAX_AMOUNT = Decimal(9 * 10**18)
"""The most any amount may be, in USD: an invoice total, a line, a budget limit."""

# Quantities. Message counters are int64 and a storage gauge is at most 10^18 bytes (the
# contract's limits); the number of tenants is billing-svc's own.
MAX_MESSAGES_PER_PERIOD = INT64_MAX
MAX_TENANTS_PER_ACCOUNT = 10_000
"""Also keeps an invoice's per-tenant breakdown (about 270 bytes a tenant) within a 4 MiB reply."""
MAX_GB_MONTHS = Decimal(MAX_TENANTS_PER_ACCOUNT * MAX_STORAGE_BYTES // GB_BYTES)

# Prices and included amounts of negotiated (custom) terms, in USD. The catalog's are far below.
TERM_DECIMAL_PLACES = 6
MAX_BASE_FEE = Decimal(10**9)
MAX_TENANT_OVERAGE = Decimal(10**6)
MAX_MESSAGE_RATE = Decimal("0.1")
MAX_STORAGE_RATE = Decimal(1000)
MAX_INCLUDED_STORAGE_GB = MAX_GB_MONTHS
MAX_INCLUDED_COUNT = INT64_MAX
MAX_MESSAGE_TIERS = 10
MAX_ACCOUNT_MANAGER_LENGTH = 200

# x 10: the yearly fee of an annual plan (subscriptions.ANNUAL_FEE_MONTHS).
LARGEST_PERIOD_CHARGES = (
    MAX_BASE_FEE * 10
    + MAX_TENANTS_PER_ACCOUNT * MAX_TENANT_OVERAGE
    + MAX_MESSAGES_PER_PERIOD * MAX_MESSAGE_RATE
    + MAX_GB_MONTHS * MAX_STORAGE_RATE
)
"""The most one period's own lines can add up to under the bounds above."""
