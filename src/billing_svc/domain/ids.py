"""Resource ids: a type prefix (``acc_``, ``cus_``, ``ten_`` ...) and a time-sortable random part.

The random part is 26 Crockford base32 characters (48 bits of milliseconds, 80 random bits), so ids
sort by creation time, which keeps pagination by id stable and index inserts append-only.
"""

from __future__ import annotations

import secrets

from billing_svc.clock import id_time_ms

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    value = (id_time_ms() << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
