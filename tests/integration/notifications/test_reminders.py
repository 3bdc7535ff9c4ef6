"""Reminders are rows due at exact instants: they fire on the (controllable) clock, right
across a daylight-saving change, and move or go with their session."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from solidarity.notifications.adapters.clock import SettableClock
from solidarity.shared.contracts.events.catalog import SessionRescheduledV1
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.integration.notifications import harness
from tests.integration.notifications.harness import Person

pytestmark = pytest.mark.integration

NEW_YORK = ZoneInfo("America/New_York")
# Monday after the fall change (clocks went back at 2 AM on Sunday, 2023-11-05).
START = datetime(2023, 11, 6, 9, 0, tzinfo=NEW_YORK)  # 14:00 UTC
DAY_BEFORE = datetime(2023, 11, 5, 14, 0, tzinfo=UTC)  # 9 AM EST; 13:00 UTC would be 8 AM
HOUR_BEFORE = datetime(2023, 11, 6, 13, 0, tzinfo=UTC)


async def test_reminders_fire_at_the_right_instant_across_daylight_saving(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, tmp_path: Path
) -> None:
    campaign_id, session_id, registration_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    person = Person.new("reminded", time_zone="Europe/Madrid")
    clock = SettableClock(datetime(2023, 11, 4, 12, 0, tzinfo=UTC))

    async with harness.mail_sink(tmp_path / "mail") as sink:
        settings = harness.settings_for(
            infrastructure, database_dsn=database_dsn, topic_prefix=registry_topics, sink=sink
        )
        async with harness.running(settings, clock=clock):
            session = harness.session(session_id, campaign_id, starts_at=START)
            await harness.publish(
                infrastructure.kafka_bootstrap,
                registry_topics,
                [
                    *harness.campaign(campaign_id),
                    session,
                    person.recorded(),
                    person.confirmed(campaign_id, session_id, registration_id),
                ],
            )

            async def reminders_planned() -> bool:
                return len(await harness.deliveries(database_dsn, kind="reminder")) == 2

            await harness.wait_until(reminders_planned, what="two reminders planned")

            async def reminders_sent() -> int:
                rows = await harness.deliveries(database_dsn, kind="reminder", state="sent")
                return len(rows)

            async def confirmation_sent() -> bool:
                return bool(
                    await harness.deliveries(database_dsn, kind="confirmation", state="sent")
                )

            await harness.wait_until(confirmation_sent, what="the confirmation")
            due = sorted(
                r["due_at"] for r in await harness.deliveries(database_dsn, kind="reminder")
            )
            assert due == [DAY_BEFORE, HOUR_BEFORE]

            # A second before: nothing. (13:00 UTC, a naive "same wall clock" answer, is
            # long past by then and nothing went.)
            clock.set(DAY_BEFORE - timedelta(seconds=1))
            await asyncio.sleep(0.6)
            assert await reminders_sent() == 0

            clock.set(DAY_BEFORE)

            async def first_reminder() -> bool:
                return await reminders_sent() == 1

            await harness.wait_until(first_reminder, timeout_s=10, what="the 24-hour reminder")

            # The session moves an hour later: the pending 1-hour reminder moves with it.
            moved = START + timedelta(hours=1)
            await harness.publish(
                infrastructure.kafka_bootstrap,
                registry_topics,
                [
                    SessionRescheduledV1(
                        **session.model_dump(exclude={"revision", "starts_at", "ends_at"}),
                        revision=2,
                        starts_at=moved,
                        ends_at=moved + timedelta(hours=1),
                        previous_starts_at=START,
                        previous_ends_at=START + timedelta(hours=1),
                    )
                ],
            )

            async def replanned() -> bool:
                rows = await harness.deliveries(database_dsn, kind="reminder", state="pending")
                return [r["due_at"] for r in rows] == [HOUR_BEFORE + timedelta(hours=1)]

            await harness.wait_until(replanned, what="the 1-hour reminder moved")
            clock.set(HOUR_BEFORE)  # the old time: nothing
            await asyncio.sleep(0.6)
            assert await reminders_sent() == 1
            clock.set(HOUR_BEFORE + timedelta(hours=1))

            async def second_reminder() -> bool:
                return await reminders_sent() == 2

            await harness.wait_until(second_reminder, timeout_s=10, what="the moved reminder")

        kept = harness.mails(sink)

    reminders = [m for m in kept if m.subject.startswith("Starting")]
    assert [m.subject.split(":")[0] for m in reminders] == [
        "Starting in 24 hours",
        "Starting in 1 hour",
    ]
    day_before = reminders[0].text
    assert "6:00 AM PT / 9:00 AM ET" in day_before, "the session's display zones"
    assert "3:00 PM CET, Monday, November 6, 2023" in day_before, "and the reader's own zone"
    assert "10:00 AM ET" in reminders[1].text, "the moved time"
    states = {
        r["subject_ref"].split(":")[1]: r["state"]
        for r in await harness.deliveries(database_dsn, kind="reminder")
        if r["state"] != "dropped"
    }
    assert states == {"1440m": "sent", "60m": "sent"}
