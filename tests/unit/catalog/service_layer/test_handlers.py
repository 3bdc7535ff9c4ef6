"""The command handlers on the fake unit of work: state and outbox after each command."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import pytest

from solidarity.catalog.domain.errors import ConflictError, InvalidError, NotFoundError
from solidarity.catalog.domain.listing import Cursor, PageRequest, SessionFilter
from solidarity.catalog.domain.model import FocusDayDetails
from solidarity.catalog.service_layer import commands, handlers, queries
from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    FocusDayAddedV1,
    OrganizationRegisteredV1,
    ResourcePublishedV1,
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionRescheduledV1,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.common import CampaignStatus, Role, SessionStatus
from tests.unit.catalog.examples import NEW_YORK, glsen, student_guide, webinar
from tests.unit.catalog.fakes import FakeStore, FakeUnitOfWork, FixedClock

pytestmark = pytest.mark.unit


async def _week(store: FakeStore, *, time_zone: str | None = None) -> uuid.UUID:
    organization = await handlers.register_organization(
        commands.RegisterOrganization(details=glsen()), FakeUnitOfWork(store)
    )
    campaign = await handlers.create_campaign(
        commands.CreateCampaign(
            slug="glsen-solidarity-week-2023",
            name="Solidarity Week",
            starts_on=date(2023, 11, 6),
            ends_on=date(2023, 11, 10),
            time_zone=time_zone,
            host_organization_id=organization.id,
        ),
        FakeUnitOfWork(store),
    )
    return campaign.id


async def test_registering_an_organization_commits_it_and_its_event() -> None:
    uow = FakeUnitOfWork()
    organization = await handlers.register_organization(
        commands.RegisterOrganization(details=glsen()), uow
    )
    assert uow.committed
    assert uow.store.organizations[organization.id].details.name == "GLSEN"
    assert [type(e) for e in uow.store.outbox] == [OrganizationRegisteredV1]


async def test_a_campaign_takes_its_host_zone_and_stays_private_until_published() -> None:
    store = FakeStore()
    campaign_id = await _week(store)
    assert store.campaigns[campaign_id].details.time_zone == "America/New_York"
    assert [type(e) for e in store.outbox] == [OrganizationRegisteredV1]  # no campaign event

    await handlers.add_focus_day(
        commands.AddFocusDay(
            campaign_id=campaign_id,
            details=FocusDayDetails(date(2023, 11, 6), "Black LGBTQ+ Focus Day"),
        ),
        FakeUnitOfWork(store),
    )
    await handlers.schedule_session(
        commands.ScheduleSession(campaign_id=campaign_id, details=webinar()), FakeUnitOfWork(store)
    )
    await handlers.add_resource(
        commands.AddResource(campaign_id=campaign_id, details=student_guide()),
        FakeUnitOfWork(store),
    )
    assert len(store.outbox) == 1

    uow = FakeUnitOfWork(store)
    campaign = await handlers.publish_campaign(commands.PublishCampaign(campaign_id), uow)
    assert campaign.status is CampaignStatus.PUBLISHED
    assert store.campaigns[campaign_id].status is CampaignStatus.PUBLISHED
    assert [type(e) for e in store.outbox[1:]] == [
        CampaignPublishedV1,
        FocusDayAddedV1,
        ResourcePublishedV1,
        SessionScheduledV1,
    ]


async def test_a_campaign_without_zone_or_host_is_refused() -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(InvalidError) as excinfo:
        await handlers.create_campaign(
            commands.CreateCampaign(
                slug="week", name="Week", starts_on=date(2023, 1, 1), ends_on=date(2023, 1, 2)
            ),
            uow,
        )
    assert excinfo.value.code == "time_zone_required"
    assert not uow.committed
    assert uow.store.campaigns == {}


async def test_a_slug_belongs_to_one_campaign() -> None:
    store = FakeStore()
    await _week(store)
    with pytest.raises(ConflictError) as excinfo:
        await _week(store)
    assert excinfo.value.code == "slug_taken"


async def test_an_unknown_host_is_an_input_error() -> None:
    with pytest.raises(InvalidError) as excinfo:
        await handlers.create_campaign(
            commands.CreateCampaign(
                slug="week",
                name="Week",
                starts_on=date(2023, 1, 1),
                ends_on=date(2023, 1, 2),
                host_organization_id=uuid.uuid4(),
            ),
            FakeUnitOfWork(),
        )
    assert excinfo.value.code == "unknown_organization"


async def test_rescheduling_capacity_cut_and_cancellation_reach_the_outbox_in_order() -> None:
    store = FakeStore()
    campaign_id = await _week(store)
    await handlers.publish_campaign(commands.PublishCampaign(campaign_id), FakeUnitOfWork(store))
    session = await handlers.schedule_session(
        commands.ScheduleSession(campaign_id=campaign_id, details=webinar(capacity=100)),
        FakeUnitOfWork(store),
    )
    start = len(store.outbox)

    await handlers.revise_session(
        commands.ReviseSession(
            session_id=session.id,
            changes={
                "starts_at": datetime(2023, 11, 7, 19, 0, tzinfo=NEW_YORK),
                "ends_at": datetime(2023, 11, 7, 20, 0, tzinfo=NEW_YORK),
                "capacity": 20,
            },
        ),
        FakeUnitOfWork(store),
    )
    clock = FixedClock()
    await handlers.cancel_session(
        commands.CancelSession(session_id=session.id, reason="speaker unavailable"),
        FakeUnitOfWork(store),
        clock=clock,
    )

    events = store.outbox[start:]
    assert [type(e) for e in events] == [
        SessionCapacityChangedV1,
        SessionRescheduledV1,
        SessionCancelledV1,
    ]
    assert [e.revision for e in events] == [2, 3, 4]  # type: ignore[attr-defined]
    stored = store.sessions[session.id]
    assert stored.status is SessionStatus.CANCELLED
    assert stored.sequence == 1
    assert stored.cancellation is not None
    assert stored.cancellation.cancelled_at == clock.now


async def test_a_refused_change_leaves_state_and_outbox_untouched() -> None:
    store = FakeStore()
    campaign_id = await _week(store)
    await handlers.publish_campaign(commands.PublishCampaign(campaign_id), FakeUnitOfWork(store))
    session = await handlers.schedule_session(
        commands.ScheduleSession(campaign_id=campaign_id, details=webinar()), FakeUnitOfWork(store)
    )
    before = list(store.outbox)
    uow = FakeUnitOfWork(store)
    with pytest.raises(InvalidError) as excinfo:
        await handlers.revise_session(
            commands.ReviseSession(session_id=session.id, changes={"capacity": -5}), uow
        )
    assert excinfo.value.code == "negative_capacity"
    assert not uow.committed
    assert store.outbox == before
    assert store.sessions[session.id].details.capacity == 100


async def test_unknown_things_are_not_found() -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(NotFoundError):
        await handlers.publish_campaign(commands.PublishCampaign(uuid.uuid4()), uow)
    with pytest.raises(NotFoundError):
        await handlers.cancel_session(
            commands.CancelSession(session_id=uuid.uuid4(), reason="x"), uow
        )
    with pytest.raises(NotFoundError):
        await queries.get_resource(uow, uuid.uuid4())


async def test_an_archived_campaign_refuses_edits() -> None:
    store = FakeStore()
    campaign_id = await _week(store)
    await handlers.archive_campaign(commands.ArchiveCampaign(campaign_id), FakeUnitOfWork(store))
    with pytest.raises(ConflictError) as excinfo:
        await handlers.revise_campaign(
            commands.ReviseCampaign(campaign_id=campaign_id, changes={"name": "Renamed"}),
            FakeUnitOfWork(store),
        )
    assert excinfo.value.code == "campaign_archived"


async def test_removing_a_focus_day_in_use_is_refused_and_in_a_draft_allowed() -> None:
    store = FakeStore()
    campaign_id = await _week(store)
    day = await handlers.add_focus_day(
        commands.AddFocusDay(
            campaign_id=campaign_id,
            details=FocusDayDetails(date(2023, 11, 6), "Black LGBTQ+ Focus Day"),
        ),
        FakeUnitOfWork(store),
    )
    session = await handlers.schedule_session(
        commands.ScheduleSession(campaign_id=campaign_id, details=webinar(focus_day_id=day.id)),
        FakeUnitOfWork(store),
    )
    with pytest.raises(ConflictError) as excinfo:
        await handlers.remove_focus_day(commands.RemoveFocusDay(day.id), FakeUnitOfWork(store))
    assert excinfo.value.code == "focus_day_in_use"
    await handlers.revise_session(
        commands.ReviseSession(session_id=session.id, changes={"focus_day_id": None}),
        FakeUnitOfWork(store),
    )
    await handlers.remove_focus_day(commands.RemoveFocusDay(day.id), FakeUnitOfWork(store))
    assert day.id not in store.focus_days


async def test_listing_pages_with_a_cursor_and_filters() -> None:
    store = FakeStore()
    campaign_id = await _week(store)
    for hour in range(9, 16):
        await handlers.schedule_session(
            commands.ScheduleSession(
                campaign_id=campaign_id,
                details=webinar(
                    title=f"Session at {hour}",
                    starts_at=datetime(2023, 11, 8, hour, 0, tzinfo=NEW_YORK),
                    ends_at=datetime(2023, 11, 8, hour, 45, tzinfo=NEW_YORK),
                    audience=(Role.EDUCATOR,) if hour % 2 else (),
                ),
            ),
            FakeUnitOfWork(store),
        )
    seen: list[str] = []
    page = PageRequest(limit=3)
    while True:
        found = await queries.list_sessions(
            FakeUnitOfWork(store), SessionFilter(campaign_id=campaign_id), page
        )
        seen += [s.details.title for s in found.items]
        if found.next_cursor is None:
            break
        page = PageRequest(limit=3, after=Cursor.decode(found.next_cursor))
    assert seen == [f"Session at {h}" for h in range(9, 16)]

    students = await queries.list_sessions(
        FakeUnitOfWork(store), SessionFilter(audience=Role.STUDENT), PageRequest(limit=50)
    )
    # Sessions for educators only are left out; an empty audience means everyone.
    assert [s.details.title for s in students.items] == [
        f"Session at {h}" for h in range(9, 16) if h % 2 == 0
    ]
