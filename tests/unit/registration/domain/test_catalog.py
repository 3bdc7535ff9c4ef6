"""The read model's revision rules: replays and late events change nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from solidarity.registration.domain.catalog import (
    SessionRecord,
    apply_campaign_event,
    apply_session_event,
    campaign_from_event,
)
from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionRescheduledV1,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.common import (
    CampaignStatus,
    RejectionReason,
    Role,
    SessionKind,
)

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 10, 22, tzinfo=UTC)
CAMPAIGN = uuid.uuid4()


def scheduled(
    session_id: uuid.UUID, revision: int = 1, capacity: int | None = 10
) -> SessionScheduledV1:
    return SessionScheduledV1(
        session_id=session_id,
        campaign_id=CAMPAIGN,
        revision=revision,
        kind=SessionKind.WEBINAR,
        title="t",
        starts_at=START,
        ends_at=START + timedelta(hours=1),
        time_zone="America/New_York",
        capacity=capacity,
        audience=(Role.EDUCATOR,),
    )


def test_a_session_event_applies_only_when_newer_for_its_aspect() -> None:
    sid = uuid.uuid4()
    first = apply_session_event(None, scheduled(sid))
    assert first is not None
    assert first.known
    assert apply_session_event(first, scheduled(sid)) is None  # replay
    cut = apply_session_event(
        first,
        SessionCapacityChangedV1(
            session_id=sid, campaign_id=CAMPAIGN, revision=3, previous_capacity=10, capacity=4
        ),
    )
    assert cut is not None
    assert cut.capacity == 4
    moved = SessionRescheduledV1(
        **{
            **scheduled(sid, revision=2, capacity=10).model_dump(),
            "previous_starts_at": START,
            "previous_ends_at": START,
        }
    )
    later = apply_session_event(cut, moved)
    assert later is not None
    assert later.capacity == 4, "revision 2 is older than the capacity's revision 3"
    assert later.state_revision == 2


def test_a_cancellation_that_arrives_first_is_not_undone_by_the_late_schedule() -> None:
    sid = uuid.uuid4()
    cancelled = apply_session_event(
        None,
        SessionCancelledV1(
            session_id=sid,
            campaign_id=CAMPAIGN,
            revision=2,
            reason="x",
            cancelled_at=START,
        ),
    )
    assert cancelled is not None
    assert cancelled.cancelled
    assert not cancelled.known
    late = apply_session_event(cancelled, scheduled(sid, revision=1))
    assert late is not None
    assert late.known
    assert late.cancelled


def test_session_refusals() -> None:
    record = apply_session_event(None, scheduled(uuid.uuid4()))
    assert isinstance(record, SessionRecord)
    before = START - timedelta(days=1)
    assert record.refuses(campaign_id=CAMPAIGN, role=Role.EDUCATOR, now=before) is None
    assert record.refuses(campaign_id=CAMPAIGN, role=Role.STUDENT, now=before) is (
        RejectionReason.NOT_IN_AUDIENCE
    )
    assert record.refuses(campaign_id=uuid.uuid4(), role=Role.EDUCATOR, now=before) is (
        RejectionReason.UNKNOWN_SESSION
    )
    after = START + timedelta(hours=2)
    assert record.refuses(campaign_id=CAMPAIGN, role=Role.EDUCATOR, now=after) is (
        RejectionReason.REGISTRATION_WINDOW_CLOSED
    )


def test_campaigns_keep_their_newest_revision_and_close_after_their_last_day() -> None:
    event = CampaignPublishedV1(
        campaign_id=CAMPAIGN,
        revision=2,
        slug="week",
        name="Week",
        starts_on=date(2026, 11, 1),
        ends_on=date(2026, 11, 7),
        time_zone="America/Los_Angeles",
        status=CampaignStatus.PUBLISHED,
    )
    view = campaign_from_event(event)
    assert apply_campaign_event(view, event.model_copy(update={"revision": 1})) is None
    # 07:00 UTC on the 8th is still the 7th in Los Angeles.
    assert view.refuses_signups(datetime(2026, 11, 8, 7, tzinfo=UTC)) is None
    assert view.refuses_signups(datetime(2026, 11, 8, 9, tzinfo=UTC)) is (
        RejectionReason.REGISTRATION_WINDOW_CLOSED
    )
