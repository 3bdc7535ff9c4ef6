"""Small builders of valid events for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from solidarity.shared.contracts.events.catalog import SessionCancelledV1, SessionScheduledV1
from solidarity.shared.contracts.events.common import SessionKind


def session_scheduled(
    *, session_id: uuid.UUID | None = None, title: str = "Solidarity webinar", revision: int = 1
) -> SessionScheduledV1:
    start = datetime(2023, 11, 7, 22, 0, tzinfo=UTC)
    return SessionScheduledV1(
        session_id=session_id or uuid.uuid4(),
        campaign_id=uuid.UUID(int=1),
        revision=revision,
        kind=SessionKind.WEBINAR,
        title=title,
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        time_zone="America/New_York",
        display_time_zones=("America/Los_Angeles", "America/New_York"),
        capacity=100,
    )


def session_cancelled(session_id: uuid.UUID, *, revision: int = 2) -> SessionCancelledV1:
    return SessionCancelledV1(
        session_id=session_id,
        campaign_id=uuid.UUID(int=1),
        revision=revision,
        reason="speaker unavailable",
        cancelled_at=datetime(2023, 11, 1, tzinfo=UTC),
    )
