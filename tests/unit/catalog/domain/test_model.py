"""The catalog's domain rules and the events each change causes."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from solidarity.catalog.domain.errors import ConflictError, InvalidError
from solidarity.catalog.domain.model import (
    FocusDay,
    FocusDayDetails,
    Organization,
    Resource,
    Session,
    ensure_consistent,
)
from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    CampaignUpdatedV1,
    FocusDayAddedV1,
    OrganizationRegisteredV1,
    ResourcePublishedV1,
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionRescheduledV1,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.common import CampaignStatus, SessionStatus
from tests.unit.catalog.examples import (
    LOS_ANGELES,
    NEW_YORK,
    black_lgbtq_day,
    draft_campaign,
    glsen,
    published_campaign,
    solidarity_week,
    student_guide,
    webinar,
)

pytestmark = pytest.mark.unit


def _code(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    assert isinstance(excinfo.value, InvalidError | ConflictError)
    return excinfo.value.code


# Organizations -------------------------------------------------------------------------------


def test_an_organization_is_announced_on_registration_and_on_each_change() -> None:
    organization, events = Organization.register(uuid.uuid4(), glsen())
    assert [type(e) for e in events] == [OrganizationRegisteredV1]
    assert organization.revision == 1

    events = organization.revise(dataclasses.replace(glsen(), region="US and territories"))
    assert organization.revision == 2
    assert isinstance(events[0], OrganizationRegisteredV1)
    assert events[0].revision == 2
    assert events[0].region == "US and territories"
    assert organization.revise(organization.details) == []  # no change, no event
    assert organization.revision == 2


def test_an_organization_needs_a_known_time_zone() -> None:
    with pytest.raises(InvalidError) as excinfo:
        Organization.register(uuid.uuid4(), dataclasses.replace(glsen(), time_zone="Mars/Olympus"))
    assert _code(excinfo) == "unknown_time_zone"


# Campaigns -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"ends_on": date(2023, 11, 5)}, "ends_before_start"),
        ({"time_zone": "Eastern"}, "unknown_time_zone"),
        ({"slug": "Solidarity Week!"}, "invalid_slug"),
        ({"name": "  "}, "blank_field"),
        ({"reminder_offsets_minutes": (60, -5)}, "invalid_reminder_offset"),
    ],
)
def test_a_campaign_refuses_bad_details(overrides: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidError) as excinfo:
        draft_campaign(**overrides)
    assert _code(excinfo) == code


def test_a_draft_is_private_and_publishing_announces_everything_in_it() -> None:
    campaign = draft_campaign()
    day, day_events = FocusDay.add(
        uuid.uuid4(), campaign, FocusDayDetails(date(2023, 11, 6), "Black LGBTQ+ Focus Day")
    )
    session, session_events = Session.schedule(uuid.uuid4(), campaign, webinar(), focus_day=day)
    cancelled, _ = Session.schedule(uuid.uuid4(), campaign, webinar(title="Dropped"))
    cancelled.cancel(campaign, reason="speaker unavailable", at=datetime.now(UTC))
    resource, resource_events = Resource.add(uuid.uuid4(), campaign, student_guide())
    assert day_events == session_events == resource_events == []

    events = campaign.publish(focus_days=[day], sessions=[session, cancelled], resources=[resource])

    assert campaign.status is CampaignStatus.PUBLISHED
    assert [type(e) for e in events] == [
        CampaignPublishedV1,
        FocusDayAddedV1,
        ResourcePublishedV1,
        SessionScheduledV1,  # the session cancelled while in draft is never announced
    ]
    assert campaign.publish() == []  # publishing twice changes nothing


def test_changes_to_a_published_campaign_say_which_fields_changed() -> None:
    campaign = published_campaign()
    events = campaign.revise(solidarity_week(name="Solidarity Week 2023", description="Join us"))
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, CampaignUpdatedV1)
    assert set(event.changed_fields) == {"name", "description"}
    assert event.revision == campaign.revision == 3


def test_a_campaign_cannot_shrink_past_its_sessions() -> None:
    campaign = published_campaign()
    session, _ = Session.schedule(uuid.uuid4(), campaign, webinar())
    with pytest.raises(InvalidError) as excinfo:
        campaign.revise(solidarity_week(starts_on=date(2023, 11, 7)), sessions=[session])
    assert _code(excinfo) == "session_outside_campaign"
    assert campaign.details.starts_on == date(2023, 11, 6)  # unchanged after the refusal


def test_an_archived_campaign_and_everything_in_it_is_read_only() -> None:
    campaign = published_campaign()
    session, _ = Session.schedule(uuid.uuid4(), campaign, webinar())
    events = campaign.archive()
    assert isinstance(events[0], CampaignUpdatedV1)
    assert events[0].status is CampaignStatus.ARCHIVED
    assert events[0].changed_fields == ("status",)

    for attempt in (
        lambda: campaign.revise(solidarity_week(name="Renamed")),
        lambda: campaign.publish(),
        lambda: Session.schedule(uuid.uuid4(), campaign, webinar()),
        lambda: session.revise(campaign, webinar(capacity=5)),
        lambda: session.cancel(campaign, reason="too late", at=datetime.now(UTC)),
        lambda: Resource.add(uuid.uuid4(), campaign, student_guide()),
    ):
        with pytest.raises(ConflictError) as excinfo:
            attempt()
        assert _code(excinfo) == "campaign_archived"
    # Saying again what it already says is not an edit.
    assert campaign.revise(campaign.details) == []


def test_a_draft_archived_is_never_announced() -> None:
    campaign = draft_campaign()
    assert campaign.archive() == []
    assert campaign.status is CampaignStatus.ARCHIVED


# Focus days ----------------------------------------------------------------------------------


def test_a_focus_day_falls_within_its_campaign() -> None:
    campaign = draft_campaign()
    with pytest.raises(InvalidError) as excinfo:
        FocusDay.add(uuid.uuid4(), campaign, FocusDayDetails(date(2022, 11, 10), "Typo day"))
    assert _code(excinfo) == "outside_campaign_dates"


def test_a_focus_day_cannot_move_away_from_its_sessions() -> None:
    campaign = published_campaign()
    day = black_lgbtq_day(campaign)
    session, _ = Session.schedule(
        uuid.uuid4(), campaign, webinar(focus_day_id=day.id), focus_day=day
    )
    with pytest.raises(InvalidError) as excinfo:
        day.revise(
            campaign,
            FocusDayDetails(date(2023, 11, 7), "Black LGBTQ+ Focus Day"),
            sessions=[session],
        )
    assert _code(excinfo) == "session_not_on_focus_day"
    assert day.details.date == date(2023, 11, 6)


def test_announced_focus_days_and_resources_cannot_be_removed() -> None:
    campaign = published_campaign()
    day = black_lgbtq_day(campaign)
    resource, _ = Resource.add(uuid.uuid4(), campaign, student_guide())
    with pytest.raises(ConflictError):
        day.ensure_removable(campaign, used_by_sessions=False)
    with pytest.raises(ConflictError):
        resource.ensure_removable(campaign)


# Sessions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        (
            {"ends_at": datetime(2023, 11, 6, 18, 0, tzinfo=NEW_YORK)},
            "ends_before_start",
        ),
        ({"time_zone": "America/Gotham"}, "unknown_time_zone"),
        ({"display_time_zones": ("PT", "ET")}, "unknown_time_zone"),
        ({"capacity": -1}, "negative_capacity"),
        (
            {
                "starts_at": datetime(2023, 11, 11, 10, 0, tzinfo=NEW_YORK),
                "ends_at": datetime(2023, 11, 11, 11, 0, tzinfo=NEW_YORK),
            },
            "session_outside_campaign",
        ),
        (
            {"registration_closes_at": datetime(2023, 11, 6, 21, 0, tzinfo=NEW_YORK)},
            "registration_closes_after_session",
        ),
        (
            {
                "registration_opens_at": datetime(2023, 11, 2, tzinfo=NEW_YORK),
                "registration_closes_at": datetime(2023, 11, 1, tzinfo=NEW_YORK),
            },
            "registration_closes_before_opening",
        ),
        ({"join_url": "zoom meeting 123"}, "invalid_url"),
        ({"title": ""}, "blank_field"),
    ],
)
def test_a_session_refuses_bad_details(overrides: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidError) as excinfo:
        Session.schedule(uuid.uuid4(), published_campaign(), webinar(**overrides))
    assert _code(excinfo) == code


def test_naive_times_are_wall_clock_times_in_the_session_zone() -> None:
    campaign = published_campaign(
        slug="state-of-solidarity-2024",
        starts_on=date(2024, 4, 30),
        ends_on=date(2024, 11, 14),
        time_zone="America/Los_Angeles",
    )
    session, events = Session.schedule(
        uuid.uuid4(),
        campaign,
        webinar(
            title="Building Solidarity in an Era of Silos",
            starts_at=datetime(2024, 4, 30, 14, 0),
            ends_at=datetime(2024, 4, 30, 15, 30),
            time_zone="America/Los_Angeles",
        ),
    )
    assert session.details.starts_at == datetime(2024, 4, 30, 21, 0, tzinfo=UTC)
    event = events[0]
    assert isinstance(event, SessionScheduledV1)
    assert event.starts_at.astimezone(LOS_ANGELES).hour == 14


def test_a_session_on_a_focus_day_happens_that_day() -> None:
    campaign = published_campaign()
    day = black_lgbtq_day(campaign)
    tuesday = webinar(
        focus_day_id=day.id,
        starts_at=datetime(2023, 11, 7, 19, 0, tzinfo=NEW_YORK),
        ends_at=datetime(2023, 11, 7, 20, 0, tzinfo=NEW_YORK),
    )
    with pytest.raises(InvalidError) as excinfo:
        Session.schedule(uuid.uuid4(), campaign, tuesday, focus_day=day)
    assert _code(excinfo) == "session_not_on_focus_day"
    other_campaign = published_campaign(slug="other-week")
    other_day = black_lgbtq_day(other_campaign)
    with pytest.raises(InvalidError) as excinfo:
        Session.schedule(
            uuid.uuid4(), campaign, webinar(focus_day_id=other_day.id), focus_day=other_day
        )
    assert _code(excinfo) == "focus_day_not_in_campaign"


def test_moving_an_announced_session_is_a_reschedule_with_old_and_new_times() -> None:
    campaign = published_campaign()
    session, _ = Session.schedule(uuid.uuid4(), campaign, webinar())
    old = session.details
    later = webinar(
        starts_at=old.starts_at + timedelta(hours=1), ends_at=old.ends_at + timedelta(hours=1)
    )

    events = session.revise(campaign, later)

    assert len(events) == 1
    event = events[0]
    assert isinstance(event, SessionRescheduledV1)
    assert event.previous_starts_at == old.starts_at
    assert event.previous_ends_at == old.ends_at
    assert event.starts_at == later.starts_at
    assert event.sequence == 1
    assert event.status is SessionStatus.RESCHEDULED
    assert event.revision == 2


def test_moving_a_draft_session_is_a_plain_edit() -> None:
    campaign = draft_campaign()
    session, _ = Session.schedule(uuid.uuid4(), campaign, webinar())
    events = session.revise(
        campaign,
        webinar(
            starts_at=datetime(2023, 11, 6, 18, 0, tzinfo=NEW_YORK),
            ends_at=datetime(2023, 11, 6, 19, 0, tzinfo=NEW_YORK),
        ),
    )
    assert events == []
    assert session.status is SessionStatus.SCHEDULED
    assert session.sequence == 0
    assert session.revision == 2


def test_a_capacity_cut_is_allowed_and_has_its_own_event() -> None:
    campaign = published_campaign()
    session, _ = Session.schedule(uuid.uuid4(), campaign, webinar(capacity=100))
    events = session.revise(campaign, webinar(capacity=10))
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, SessionCapacityChangedV1)
    assert (event.previous_capacity, event.capacity) == (100, 10)
    assert "registration service" in event.note


def test_each_event_of_one_change_has_its_own_revision_capacity_first() -> None:
    campaign = published_campaign()
    session, _ = Session.schedule(uuid.uuid4(), campaign, webinar(capacity=100))
    moved = webinar(
        capacity=None,
        starts_at=datetime(2023, 11, 6, 18, 0, tzinfo=NEW_YORK),
        ends_at=datetime(2023, 11, 6, 19, 0, tzinfo=NEW_YORK),
    )
    events = session.revise(campaign, moved)
    assert [type(e) for e in events] == [SessionCapacityChangedV1, SessionRescheduledV1]
    assert [e.revision for e in events] == [2, 3]  # type: ignore[attr-defined]
    assert session.revision == 3


def test_other_changes_announce_the_full_state_again() -> None:
    campaign = published_campaign()
    session, _ = Session.schedule(uuid.uuid4(), campaign, webinar())
    events = session.revise(campaign, webinar(title="Black LGBTQ+ Focus Day: solidarity"))
    assert [type(e) for e in events] == [SessionScheduledV1]
    assert session.revise(campaign, session.details) == []


def test_a_cancellation_carries_its_reason_and_freezes_the_session() -> None:
    campaign = published_campaign()
    session, _ = Session.schedule(uuid.uuid4(), campaign, webinar())
    at = datetime(2023, 11, 5, 9, 0, tzinfo=UTC)
    events = session.cancel(campaign, reason="speaker unavailable", at=at)
    event = events[0]
    assert isinstance(event, SessionCancelledV1)
    assert (event.reason, event.cancelled_at, event.revision) == ("speaker unavailable", at, 2)
    assert session.cancel(campaign, reason="again", at=at) == []  # once is enough
    with pytest.raises(ConflictError) as excinfo:
        session.revise(campaign, webinar(title="Back from the dead"))
    assert _code(excinfo) == "session_cancelled"


def test_a_republish_snapshot_carries_the_current_revision() -> None:
    campaign = published_campaign()
    session, _ = Session.schedule(uuid.uuid4(), campaign, webinar(capacity=100))
    session.revise(campaign, webinar(capacity=50))
    (snapshot,) = session.snapshot_events()
    assert isinstance(snapshot, SessionScheduledV1)
    assert (snapshot.revision, snapshot.capacity) == (2, 50)
    session.cancel(campaign, reason="storm", at=datetime.now(UTC))
    assert isinstance(session.snapshot_events()[0], SessionCancelledV1)
    assert draft_campaign().snapshot_events() == []


def test_consistency_check_covers_focus_days_and_live_sessions() -> None:
    campaign = draft_campaign()
    day = black_lgbtq_day(campaign)
    session, _ = Session.schedule(
        uuid.uuid4(), campaign, webinar(focus_day_id=day.id), focus_day=day
    )
    ensure_consistent(campaign, [day], [session])
    campaign.details = solidarity_week(starts_on=date(2023, 11, 7))
    with pytest.raises(InvalidError):
        ensure_consistent(campaign, [day], [])
    with pytest.raises(InvalidError):
        ensure_consistent(campaign, [], [session])
    session.cancel(campaign, reason="moved online", at=datetime.now(UTC))
    ensure_consistent(campaign, [], [session])  # a cancelled session no longer has to fit
