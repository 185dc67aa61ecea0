"""Billing periods: calendar months in UTC, labelled ``YYYY-MM`` (spec §1.3)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from billing_svc.domain.errors import shown

# ASCII digits only, the whole text: ``\d`` would take Arabic-Indic digits, and ``$`` a newline.
_LABEL = re.compile(r"([0-9]{4})-([0-9]{2})")

# Every moment billing-svc accepts lies in [EARLIEST, LATEST): the periods from 1970-01 to 9998-12
# (the narrowest range any part of the service handles), for every timestamp of every request.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Period:
    """One calendar month in UTC: ``[start, end)``."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise ValueError(f"month {self.month} is not within 1..12")
        if not EARLIEST.year <= self.year < LATEST.year:
            raise ValueError(f"year {self.year} is not within {EARLIEST.year}..{LATEST.year - 1}")

    @classmethod
    def parse(cls, label: str) -> Period:
        """Parse ``YYYY-MM``; raises ``ValueError`` with a readable message otherwise."""
        match = _LABEL.fullmatch(label or "")
        if not match:
            raise ValueError(f"{shown(label)} is not a period; expected YYYY-MM, e.g. 2024-01")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def containing(cls, moment: datetime) -> Period:
        moment = moment.astimezone(UTC)
        return cls(moment.year, moment.month)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        # Not next().start: the last period's end (LATEST) starts no period.
        return datetime(self.year + self.month // 12, self.month % 12 + 1, 1, tzinfo=UTC)

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def remaining_days(self, now: datetime) -> int:
        """Whole days left until the period ends, counting a started day as left."""
        remaining = self.end - now
        if remaining <= timedelta(0):
            return 0
        return remaining.days + (1 if remaining % timedelta(days=1) else 0)
