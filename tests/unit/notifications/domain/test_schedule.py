"""Reminders land on exact instants, across daylight-saving changes; retries back off, bounded."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from solidarity.notifications.domain.schedule import (
    RetryPolicy,
    reminder_due_at,
    reminders_ahead,
)

pytestmark = pytest.mark.unit

NEW_YORK = ZoneInfo("America/New_York")


def test_a_24_hour_reminder_just_after_the_fall_change_is_24_real_hours_early() -> None:
    # Clocks went back at 2 AM on 2023-11-05. The session is Monday 9 AM EST (14:00 UTC).
    start = datetime(2023, 11, 6, 9, 0, tzinfo=NEW_YORK)

    due = reminder_due_at(start, 24 * 60)

    assert due == datetime(2023, 11, 5, 14, 0, tzinfo=UTC)
    assert due != datetime(2023, 11, 5, 13, 0, tzinfo=UTC)
    assert due.astimezone(NEW_YORK).hour == 9


def test_a_reminder_across_the_change_is_not_a_wall_clock_day_early() -> None:
    # Sunday 9 AM EST; 24 real hours before is Saturday 10 AM EDT, not 9 AM.
    start = datetime(2023, 11, 5, 9, 0, tzinfo=NEW_YORK)

    due = reminder_due_at(start, 24 * 60)

    assert due == datetime(2023, 11, 4, 14, 0, tzinfo=UTC)
    assert due.astimezone(NEW_YORK).hour == 10


def test_spring_forward_is_handled_the_same_way() -> None:
    start = datetime(2024, 3, 10, 12, 0, tzinfo=NEW_YORK)  # EDT, 16:00 UTC

    assert reminder_due_at(start, 24 * 60) == datetime(2024, 3, 9, 16, 0, tzinfo=UTC)


def test_naive_starts_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        reminder_due_at(datetime(2023, 11, 6, 9, 0), 60)


def test_only_reminders_still_ahead_are_planned() -> None:
    start = datetime(2023, 11, 7, 22, 0, tzinfo=UTC)
    now = start - timedelta(hours=5)

    ahead = reminders_ahead(start, (1440, 60, 60), now=now)

    assert ahead == [(60, start - timedelta(hours=1))]


def test_retry_delays_double_and_are_capped() -> None:
    policy = RetryPolicy(base_s=30, max_s=300, max_attempts=5, jitter=0)

    delays = [policy.delay(n).total_seconds() for n in range(1, 7)]

    assert delays == [30, 60, 120, 240, 300, 300]
    assert not policy.exhausted(4)
    assert policy.exhausted(5)


def test_jitter_stays_within_its_share() -> None:
    policy = RetryPolicy(base_s=100, max_s=1000, jitter=0.1)
    rand = random.Random(7)

    delays = [policy.delay(1, rand=rand).total_seconds() for _ in range(200)]

    assert min(delays) >= 90
    assert max(delays) <= 110
    assert len(set(delays)) > 1
