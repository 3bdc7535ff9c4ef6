"""The clock port: what time it is for the scheduler. Tests set it; production reads the system."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from solidarity.notifications.service_layer.ports import Clock

__all__ = ["Clock", "SettableClock", "SystemClock"]


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SettableClock:
    """A clock that stands still until told otherwise (tests, demos)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the clock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        if instant.tzinfo is None:
            raise ValueError("the clock needs an aware datetime")
        self._now = instant.astimezone(UTC)

    def advance(self, by: timedelta) -> None:
        self._now += by
