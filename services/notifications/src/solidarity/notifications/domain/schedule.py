"""When things are due: reminders before a session, and retries after a temporary failure."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT_REMINDER_OFFSETS_MINUTES: tuple[int, ...] = (24 * 60, 60)


def reminder_due_at(starts_at: datetime, offset_minutes: int) -> datetime:
    """An exact instant before the start, in UTC. Python subtracts within one zone on the
    wall clock (9 AM EST minus a day is 9 AM EDT, 23 real hours), so convert first: a
    daylight-saving change between reminder and session cannot move it."""
    if starts_at.tzinfo is None:
        raise ValueError("a session start must be timezone-aware")
    return starts_at.astimezone(UTC) - timedelta(minutes=offset_minutes)


def reminders_ahead(
    starts_at: datetime, offsets_minutes: tuple[int, ...], *, now: datetime
) -> list[tuple[int, datetime]]:
    """(offset, due instant) for each reminder still in the future."""
    due = [(offset, reminder_due_at(starts_at, offset)) for offset in sorted(set(offsets_minutes))]
    return [(offset, at) for offset, at in due if at > now]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff: base, doubling, capped, with a little jitter."""

    base_s: float = 30.0
    max_s: float = 3600.0
    max_attempts: int = 8
    jitter: float = 0.1

    def delay(self, attempts: int, *, rand: random.Random | None = None) -> timedelta:
        """The wait after the `attempts`-th failed attempt (1 for the first)."""
        seconds = min(self.base_s * (2 ** max(0, attempts - 1)), self.max_s)
        if self.jitter:
            spread = seconds * self.jitter
            seconds += (rand or random).uniform(-spread, spread)
        return timedelta(seconds=max(0.0, seconds))

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
