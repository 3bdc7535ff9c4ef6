"""After the decision, with fakes: catalog changes, cancellations, erasure, HTTP intake."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from solidarity.registration.domain.partners import signing_secret
from solidarity.registration.domain.records import RegistrationStatus
from solidarity.registration.service_layer.catalog import apply_catalog_events
from solidarity.registration.service_layer.changes import (
    NotDecidedYetError,
    NotFoundError,
    cancel_submission,
    erase_registrant,
)
from solidarity.registration.service_layer.commands import (
    AcceptSubmissions,
    ApplyCatalogEvents,
    CancelRegistrations,
    DecideSubmissions,
    EraseRegistrant,
    ReceivedCatalogEvent,
)
from solidarity.registration.service_layer.decisions import decide_submissions
from solidarity.registration.service_layer.intake import (
    IdempotencyConflictError,
    accept_submissions,
)
from solidarity.shared.contracts.envelope import Event
from solidarity.shared.contracts.events.catalog import (
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.common import SessionKind
from solidarity.shared.contracts.events.registration import (
    RegistrantErasedV1,
    RegistrationCancelledV1,
    RegistrationSubmittedV1,
    SessionRegistrationWaitlistedV1,
    WaitlistPromotedV1,
)
from tests.unit.registration.builders import (
    MASTER_KEY,
    NOW,
    campaign,
    partner,
    received,
    seed,
    session,
    submitted,
)
from tests.unit.registration.fakes import FakeRepository, FakeUnitOfWork

pytestmark = pytest.mark.unit


class World:
    """A campaign with one session, a partner, and people registered one batch at a time."""

    def __init__(self, capacity: int) -> None:
        self.week = campaign("week")
        self.session = session(self.week.campaign_id, capacity=capacity)
        self.partner = partner("week")
        self.repo = FakeRepository()
        seed(self.repo, campaigns=(self.week,), sessions=(self.session,), partners=(self.partner,))
        self.secret = signing_secret(MASTER_KEY, self.partner.partner_id)
        self.revision = 1

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.repo)

    async def register(self, count: int) -> list[RegistrationSubmittedV1]:
        people = [
            submitted(self.partner.partner_id, session_ids=(self.session.session_id,))
            for _ in range(count)
        ]
        for person in people:
            await decide_submissions(
                DecideSubmissions((received(person, secret=self.secret),)),
                self.uow(),
                master_key=MASTER_KEY,
                clock=lambda: NOW,
            )
        return people

    async def catalog(self, event: Event) -> FakeUnitOfWork:
        uow = self.uow()
        await apply_catalog_events(
            ApplyCatalogEvents((ReceivedCatalogEvent(uuid.uuid4(), uuid.uuid4(), event),)),
            uow,
            clock=lambda: NOW,
        )
        return uow

    def capacity(self, capacity: int | None) -> SessionCapacityChangedV1:
        self.revision += 1
        return SessionCapacityChangedV1(
            session_id=self.session.session_id,
            campaign_id=self.week.campaign_id,
            revision=self.revision,
            previous_capacity=None,
            capacity=capacity,
        )

    def statuses(self, people: list[RegistrationSubmittedV1]) -> list[str]:
        by_submission = {r.submission_id: r for r in self.repo.state.registrations.values()}
        return [by_submission[p.submission_id].status.value for p in people]


async def test_a_capacity_raise_promotes_in_waitlist_order() -> None:
    world = World(capacity=1)
    people = await world.register(4)
    uow = await world.catalog(world.capacity(3))
    promoted = uow.events(WaitlistPromotedV1)
    assert [(e.submission_id, e.previous_position) for e in promoted] == [
        (people[1].submission_id, 1),
        (people[2].submission_id, 2),
    ]
    assert world.statuses(people) == ["confirmed", "confirmed", "confirmed", "waitlisted"]


async def test_a_capacity_cut_moves_the_latest_confirmed_back_to_the_head() -> None:
    world = World(capacity=3)
    people = await world.register(4)
    uow = await world.catalog(world.capacity(1))
    moved = uow.events(SessionRegistrationWaitlistedV1)
    assert [(e.submission_id, e.position) for e in moved] == [
        (people[1].submission_id, 1),
        (people[2].submission_id, 2),
    ]
    assert world.statuses(people) == ["confirmed", "waitlisted", "waitlisted", "waitlisted"]
    seats = world.repo.state.seats[world.session.session_id]
    assert (seats.capacity, seats.confirmed, seats.waitlisted) == (1, 1, 3)
    await world.catalog(world.capacity(None))  # unlimited: everyone gets in
    assert world.statuses(people) == ["confirmed"] * 4


async def test_a_cancelled_session_cancels_every_registration_without_promoting() -> None:
    world = World(capacity=1)
    people = await world.register(3)
    uow = await world.catalog(
        SessionCancelledV1(
            session_id=world.session.session_id,
            campaign_id=world.week.campaign_id,
            revision=9,
            reason="storm",
            cancelled_at=NOW,
        )
    )
    assert {e.reason for e in uow.events(RegistrationCancelledV1)} == {"session_cancelled"}
    assert not uow.events(WaitlistPromotedV1)
    assert world.statuses(people) == ["cancelled"] * 3
    replayed = await world.catalog(
        SessionCancelledV1(
            session_id=world.session.session_id,
            campaign_id=world.week.campaign_id,
            revision=9,
            reason="storm",
            cancelled_at=NOW,
        )
    )
    assert replayed.outbox == []


async def test_a_session_announced_late_is_created_then_kept_in_order() -> None:
    world = World(capacity=1)
    start = NOW + timedelta(days=2)
    late_id = uuid.uuid4()
    await world.catalog(
        SessionCapacityChangedV1(
            session_id=late_id,
            campaign_id=world.week.campaign_id,
            revision=2,
            previous_capacity=5,
            capacity=7,
        )
    )
    await world.catalog(
        SessionScheduledV1(
            session_id=late_id,
            campaign_id=world.week.campaign_id,
            revision=1,
            kind=SessionKind.WORKSHOP,
            title="t",
            starts_at=start,
            ends_at=start + timedelta(hours=1),
            time_zone="UTC",
            capacity=5,
        )
    )
    record = world.repo.state.sessions[late_id]
    assert record.known
    assert world.repo.state.seats[late_id].capacity == 7


async def test_cancelling_a_submission_frees_its_seat_for_the_head_of_the_waitlist() -> None:
    world = World(capacity=1)
    people = await world.register(2)
    uow = world.uow()
    cancelled = await cancel_submission(
        CancelRegistrations(world.partner.partner_id, people[0].submission_id), uow
    )
    assert len(cancelled) == 1
    assert [e.reason for e in uow.events(RegistrationCancelledV1)] == ["registrant"]
    assert [e.submission_id for e in uow.events(WaitlistPromotedV1)] == [people[1].submission_id]
    assert world.statuses(people) == ["cancelled", "confirmed"]
    with pytest.raises(NotFoundError):
        await cancel_submission(CancelRegistrations(world.partner.partner_id, "nope"), world.uow())


async def test_a_submission_still_in_intake_cannot_be_cancelled_yet() -> None:
    world = World(capacity=1)
    event = submitted(world.partner.partner_id)
    await accept_submissions(AcceptSubmissions(world.partner, (event,), b"h", b"{}"), world.uow())
    with pytest.raises(NotDecidedYetError):
        await cancel_submission(
            CancelRegistrations(world.partner.partner_id, event.submission_id), world.uow()
        )


async def test_erasure_cancels_frees_forgets_and_tells_the_other_services() -> None:
    world = World(capacity=1)
    people = await world.register(2)
    record = world.repo.state.submissions[(world.partner.partner_id, people[0].submission_id)]
    assert record.registrant_id is not None
    stranger = partner("week", name="Elsewhere")
    world.repo.state.partners[stranger.partner_id] = stranger
    with pytest.raises(NotFoundError):
        await erase_registrant(
            EraseRegistrant(stranger.partner_id, registrant_id=record.registrant_id), world.uow()
        )
    uow = world.uow()
    erased = await erase_registrant(
        EraseRegistrant(world.partner.partner_id, email=people[0].registrant.email.upper()),
        uow,
        clock=lambda: NOW,
    )
    assert erased.registrant_id == record.registrant_id
    assert [type(e) for e in uow.events(Event) if not isinstance(e, WaitlistPromotedV1)] == [
        RegistrationCancelledV1,
        RegistrantErasedV1,
    ]
    person = world.repo.state.registrants[record.registrant_id]
    assert (person.email, person.email_sha256, person.erased_at) == (None, None, NOW)
    assert world.statuses(people) == ["cancelled", "confirmed"]
    again = await erase_registrant(
        EraseRegistrant(world.partner.partner_id, registrant_id=record.registrant_id), world.uow()
    )
    assert again.already


async def test_an_idempotency_key_is_answered_once_and_guards_its_body() -> None:
    world = World(capacity=1)
    event = submitted(world.partner.partner_id)
    first_uow = world.uow()
    first = await accept_submissions(
        AcceptSubmissions(world.partner, (event,), b"hash-1", b'{"a":1}', idempotency_key="k"),
        first_uow,
    )
    again = await accept_submissions(
        AcceptSubmissions(world.partner, (event,), b"hash-1", b'{"a":2}', idempotency_key="k"),
        world.uow(),
    )
    assert not first.replayed
    assert again.replayed
    assert again.body == first.body == b'{"a":1}'
    assert len(first_uow.outbox) == 1
    assert len(world.repo.state.intake) == 1
    with pytest.raises(IdempotencyConflictError):
        await accept_submissions(
            AcceptSubmissions(world.partner, (event,), b"hash-2", b"{}", idempotency_key="k"),
            world.uow(),
        )
    assert RegistrationStatus.CONFIRMED.value == "confirmed"
