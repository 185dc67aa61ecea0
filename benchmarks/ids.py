"""Event ids as real producers make them, and the events the scale benchmarks send.

Every figure before issue 16 used sequential ids (``s0-1``, ``s0-2``, …), the best case for a
B-tree keyed by (account, event id): each insert lands on the rightmost leaf. Producers send
UUIDv4 (random: each insert dirties a leaf of its own) or UUIDv7 (a millisecond timestamp first:
inserts land near the right edge of each account's key range). The generators are deterministic
from a seed, so the bare floor inserts exactly the keys the producer process sends, and the
pre-fill makes keys of the same kind, sorted (they are inserted in key order, to be fast).

The events of a stream are spread over the accounts batch by batch: each batch of ``batch_size``
events covers ``accounts_per_batch`` consecutive accounts (an AS2 platform batches what a few
customers' traffic made), the next batch the next accounts, round the list.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

KINDS = ("uuid4", "uuid7", "sequential")
_MASK_62 = (1 << 62) - 1
# UUIDv7 timestamps: the pre-filled events were made over the year before the streamed ones, and
# the streamed ones at ~50,000 events/s (50 per millisecond), the rate the service takes them.
_PREFILL_V7_MS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
_STREAM_V7_MS = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
_STREAM_V7_PER_MS = 50


@dataclass(frozen=True)
class BenchAccount:
    """An account made through the API, with its tenants and master partners."""

    account_id: str
    tenants: tuple[str, ...]
    partners: tuple[str, ...]

    def as_json(self) -> dict:
        return {
            "account_id": self.account_id,
            "tenants": list(self.tenants),
            "partners": list(self.partners),
        }

    @classmethod
    def from_json(cls, value: dict) -> BenchAccount:
        return cls(value["account_id"], tuple(value["tenants"]), tuple(value["partners"]))


def _text(value: int) -> str:
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def uuid4_from(bits: int) -> str:
    """A UUIDv4 from 122 random bits. The version and variant bits sit at fixed places, so the
    ids of sorted ``bits`` are sorted too (the pre-fill relies on it)."""
    value = (
        ((bits >> 74) << 80)
        | (0x4 << 76)
        | (((bits >> 62) & 0xFFF) << 64)
        | (0b10 << 62)
        | (bits & _MASK_62)
    )
    return _text(value)


def uuid7_from(unix_ms: int, bits: int) -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits."""
    value = (
        ((unix_ms & ((1 << 48) - 1)) << 80)
        | (0x7 << 76)
        | (((bits >> 62) & 0xFFF) << 64)
        | (0b10 << 62)
        | (bits & _MASK_62)
    )
    return _text(value)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown id kind {kind!r}; choose from {', '.join(KINDS)}")


class StreamIds:
    """The event ids one producer stream sends, in order."""

    def __init__(self, kind: str, seed: int, stream: int) -> None:
        _check_kind(kind)
        self.kind = kind
        self.stream = stream
        self.count = 0
        self._random = random.Random(f"stream:{seed}:{stream}")

    def take(self, n: int) -> list[str]:
        start, self.count = self.count, self.count + n
        if self.kind == "sequential":
            return [f"seq-{self.stream}-{i:012d}" for i in range(start, start + n)]
        bits = self._random.getrandbits
        if self.kind == "uuid4":
            return [uuid4_from(bits(122)) for _ in range(n)]
        return [
            uuid7_from(_STREAM_V7_MS + i // _STREAM_V7_PER_MS, bits(74))
            for i in range(start, start + n)
        ]


def prefill_ids(kind: str, seed: int, account_index: int, n: int) -> list[str]:
    """``n`` ids of ``kind`` for one account's stored events, sorted, none of them equal to a
    streamed id (sequential: another prefix; UUIDv7: a year older; UUIDv4: 122 random bits)."""
    _check_kind(kind)
    if kind == "sequential":
        return [f"pre-{i:012d}" for i in range(n)]
    rng = random.Random(f"prefill:{seed}:{account_index}")
    if kind == "uuid4":
        return [uuid4_from(bits) for bits in sorted(rng.getrandbits(122) for _ in range(n))]
    # One millisecond apart: increasing timestamps, so already in order.
    return [uuid7_from(_PREFILL_V7_MS + i, rng.getrandbits(74)) for i in range(n)]


@dataclass(frozen=True)
class StreamPlan:
    """What each producer stream sends: ``events`` events in all over ``streams`` streams."""

    kind: str
    seed: int
    streams: int
    events: int
    batch_size: int = 1000
    accounts_per_batch: int = 10

    @property
    def per_stream(self) -> int:
        return self.events // self.streams

    def batches(
        self, stream: int, accounts: list[BenchAccount]
    ) -> Iterator[list[tuple[BenchAccount, str, str, str]]]:
        """The stream's batches, each a list of ``(account, event_id, tenant, partner)``."""
        ids = StreamIds(self.kind, self.seed, stream)
        span = min(self.accounts_per_batch, len(accounts))
        for number, start in enumerate(range(0, self.per_stream, self.batch_size)):
            size = min(self.batch_size, self.per_stream - start)
            first = ((number * self.streams + stream) * span) % len(accounts)
            batch = []
            for offset, event_id in enumerate(ids.take(size)):
                account = accounts[(first + offset % span) % len(accounts)]
                i = start + offset
                batch.append(
                    (
                        account,
                        event_id,
                        account.tenants[i % len(account.tenants)],
                        account.partners[i % len(account.partners)],
                    )
                )
            yield batch
