"""What consumed events plan: the right intents, nothing for stale or erased, no sending."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from solidarity.notifications.domain.model import DeliveryKind
from solidarity.notifications.service_layer import handlers
from solidarity.notifications.service_layer.handlers import PlanningRules
from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    SessionCancelledV1,
    SessionRescheduledV1,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.common import (
    CampaignStatus,
    Consents,
    Role,
    SessionKind,
)
from solidarity.shared.contracts.events.registration import (
    RegistrantErasedV1,
    RegistrantRecordedV1,
    RegistrationCancelledV1,
    SessionRegistrationConfirmedV1,
    SignupConfirmedV1,
    WaitlistPromotedV1,
)
from tests.unit.notifications.fakes import FakeUnitOfWork

pytestmark = pytest.mark.unit

NOW = datetime(2023, 11, 1, 12, 0, tzinfo=UTC)
RULES = PlanningRules()
CAMPAIGN = uuid.uuid4()
PERSON = uuid.uuid4()


def scheduled(
    session_id: uuid.UUID, *, revision: int = 1, kind: SessionKind = SessionKind.WEBINAR
) -> SessionScheduledV1:
    start = datetime(2023, 11, 7, 22, 0, tzinfo=UTC)
    return SessionScheduledV1(
        session_id=session_id,
        campaign_id=CAMPAIGN,
        revision=revision,
        kind=kind,
        title="Webinar",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        time_zone="America/New_York",
    )


def signup(*, invitations: bool) -> SignupConfirmedV1:
    return SignupConfirmedV1(
        registrant_id=PERSON,
        campaign_id=CAMPAIGN,
        signup_id=uuid.uuid4(),
        role=Role.STUDENT,
        consents=Consents(invitations=invitations),
    )


async def apply_outcome(uow: FakeUnitOfWork, event: object) -> None:
    envelope = Envelope.wrap(event, producer="registration")  # type: ignore[arg-type]
    await handlers.apply_outcome(envelope, event, uow, now=NOW, rules=RULES)  # type: ignore[arg-type]


async def test_a_scheduled_webinar_fans_out_invitations_and_reminders() -> None:
    uow = FakeUnitOfWork()
    session = uuid.uuid4()

    await handlers.apply_catalog_event(scheduled(session), uow, now=NOW, rules=RULES)

    assert ("invite_audience", session) in uow.deliveries.fan_outs
    assert ("reminders", {"session_id": session}) in uow.deliveries.fan_outs


async def test_a_training_is_not_broadcast() -> None:
    uow = FakeUnitOfWork()

    await handlers.apply_catalog_event(
        scheduled(uuid.uuid4(), kind=SessionKind.TRAINING), uow, now=NOW, rules=RULES
    )

    assert [name for name, _ in uow.deliveries.fan_outs] == ["reminders"]


async def test_a_revision_already_held_changes_nothing() -> None:
    uow = FakeUnitOfWork()
    session = uuid.uuid4()
    await handlers.apply_catalog_event(scheduled(session, revision=2), uow, now=NOW, rules=RULES)
    uow.deliveries.fan_outs.clear()

    await handlers.apply_catalog_event(scheduled(session, revision=1), uow, now=NOW, rules=RULES)
    await handlers.apply_catalog_event(scheduled(session, revision=2), uow, now=NOW, rules=RULES)

    assert uow.deliveries.fan_outs == []


async def test_a_reschedule_drops_old_reminders_and_sends_an_update_with_a_higher_sequence() -> (
    None
):
    uow = FakeUnitOfWork()
    session = uuid.uuid4()
    first = scheduled(session)
    await handlers.apply_catalog_event(first, uow, now=NOW, rules=RULES)
    uow.deliveries.fan_outs.clear()
    moved = SessionRescheduledV1(
        **first.model_dump(exclude={"revision", "starts_at", "ends_at"}),
        revision=2,
        starts_at=first.starts_at + timedelta(days=1),
        ends_at=first.ends_at + timedelta(days=1),
        previous_starts_at=first.starts_at,
        previous_ends_at=first.ends_at,
    )

    await handlers.apply_catalog_event(moved, uow, now=NOW, rules=RULES)

    assert uow.deliveries.dropped[0][0] == "session_moved"
    assert ("notify_rescheduled", (1, ("confirmed",))) in uow.deliveries.fan_outs
    assert ("reminders", {"session_id": session}) in uow.deliveries.fan_outs


async def test_a_cancellation_drops_what_is_pending_and_tells_seat_holders() -> None:
    uow = FakeUnitOfWork()
    session = uuid.uuid4()
    await handlers.apply_catalog_event(scheduled(session), uow, now=NOW, rules=RULES)
    cancel = SessionCancelledV1(
        session_id=session, campaign_id=CAMPAIGN, revision=2, reason="speaker ill", cancelled_at=NOW
    )

    await handlers.apply_catalog_event(cancel, uow, now=NOW, rules=RULES)

    assert uow.deliveries.dropped[-1][0] == "session_cancelled"
    assert ("notify_cancelled", (1, ("confirmed", "waitlisted"))) in uow.deliveries.fan_outs


async def test_a_signup_without_consent_gets_a_welcome_and_no_invitations() -> None:
    uow = FakeUnitOfWork()

    await apply_outcome(uow, signup(invitations=False))

    assert uow.deliveries.kinds() == ["signup_welcome"]
    assert not [f for f in uow.deliveries.fan_outs if f[0] == "invite_to_upcoming"]


async def test_a_later_signup_with_consent_is_invited_to_sessions_ahead() -> None:
    uow = FakeUnitOfWork()

    await apply_outcome(uow, signup(invitations=True))
    await apply_outcome(uow, signup(invitations=True))  # a repeat plans nothing new

    assert uow.deliveries.kinds() == ["signup_welcome"]
    assert ("invite_to_upcoming", PERSON) in uow.deliveries.fan_outs


async def test_a_confirmation_plans_the_mail_and_its_reminders() -> None:
    uow = FakeUnitOfWork()
    registration, session = uuid.uuid4(), uuid.uuid4()

    await apply_outcome(
        uow,
        SessionRegistrationConfirmedV1(
            registrant_id=PERSON,
            campaign_id=CAMPAIGN,
            registration_id=registration,
            session_id=session,
        ),
    )

    assert uow.deliveries.kinds() == ["confirmation"]
    assert uow.people.registrations[registration] == "confirmed"
    assert ("reminders", {"registration_id": registration}) in uow.deliveries.fan_outs


async def test_a_promotion_replaces_the_waitlist_notice() -> None:
    uow = FakeUnitOfWork()
    registration = uuid.uuid4()

    await apply_outcome(
        uow,
        WaitlistPromotedV1(
            registrant_id=PERSON,
            campaign_id=CAMPAIGN,
            registration_id=registration,
            session_id=uuid.uuid4(),
            previous_position=2,
        ),
    )

    assert uow.deliveries.kinds() == ["promoted"]
    assert uow.deliveries.dropped == [("promoted", (DeliveryKind.WAITLISTED,))]


async def test_a_cancelled_registration_is_told_unless_erased() -> None:
    uow = FakeUnitOfWork()

    for reason in ("registrant", "erased"):
        await apply_outcome(
            uow,
            RegistrationCancelledV1(
                registrant_id=uuid.uuid4() if reason == "erased" else PERSON,
                campaign_id=CAMPAIGN,
                registration_id=uuid.uuid4(),
                session_id=uuid.uuid4(),
                reason=reason,
            ),
        )

    assert uow.deliveries.kinds() == ["cancelled"]


async def test_nothing_is_planned_for_an_erased_person() -> None:
    uow = FakeUnitOfWork()
    await handlers.apply_registrant_event(
        RegistrantErasedV1(registrant_id=PERSON, erased_at=NOW), uow
    )

    await apply_outcome(uow, signup(invitations=True))
    await handlers.apply_registrant_event(
        RegistrantRecordedV1(registrant_id=PERSON, email="late@school.example", role=Role.STUDENT),
        uow,
    )

    assert uow.deliveries.planned == {}
    assert uow.people.recipients == {}


async def test_partner_outcomes_become_webhooks() -> None:
    uow = FakeUnitOfWork()
    event = signup(invitations=False).model_copy(update={"partner_id": uuid.uuid4()})
    envelope = Envelope.wrap(event, producer="registration")

    await handlers.apply_outcome(envelope, event, uow, now=NOW, rules=RULES)

    assert ("webhook", envelope.event_id) in uow.deliveries.fan_outs


async def test_a_campaign_change_replans_reminders_at_its_offsets() -> None:
    uow = FakeUnitOfWork()
    campaign = CampaignPublishedV1(
        campaign_id=CAMPAIGN,
        revision=1,
        slug="solidarity-week-2023",
        name="Solidarity Week",
        starts_on=date(2023, 11, 6),
        ends_on=date(2023, 11, 10),
        time_zone="America/New_York",
        status=CampaignStatus.PUBLISHED,
        reminder_offsets_minutes=(120,),
    )

    await handlers.apply_catalog_event(campaign, uow, now=NOW, rules=RULES)

    assert uow.deliveries.dropped == [("reminder_offset_removed", (DeliveryKind.REMINDER,))]
    assert ("reminders", {"campaign_id": CAMPAIGN}) in uow.deliveries.fan_outs


def test_a_batch_locks_its_campaigns_in_order_and_shares_the_erasure_lock() -> None:
    other = uuid.UUID(int=1)
    events = [
        signup(invitations=True),
        scheduled(uuid.uuid4()).model_copy(update={"campaign_id": other}),
        RegistrantRecordedV1(registrant_id=PERSON, email="a@school.example", role=Role.STUDENT),
    ]

    locks = handlers.planning_locks(events)

    assert locks.campaigns == tuple(sorted({CAMPAIGN, other}))
    assert locks.erasure == "shared"
    erasing = handlers.planning_locks(
        [*events, RegistrantErasedV1(registrant_id=PERSON, erased_at=NOW)]
    )
    assert erasing.erasure == "exclusive"
    assert handlers.planning_locks(events[2:]).erasure == "none"
