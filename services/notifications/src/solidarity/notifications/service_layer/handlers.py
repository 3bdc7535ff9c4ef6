"""What each consumed event changes here: read models, and deliveries planned (never sent).

Every handler runs inside the consumer's transaction, with the inbox claim of its event: the
deliveries it plans are durable exactly when the event counts as applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from solidarity.notifications.domain.model import DeliveryKind
from solidarity.notifications.service_layer.ports import (
    ConsumerUnitOfWork,
    PlannedDelivery,
    PlanningLocks,
)
from solidarity.shared.contracts.envelope import Envelope, Event
from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    CampaignUpdatedV1,
    FocusDayAddedV1,
    ResourcePublishedV1,
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionRescheduledV1,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.registration import (
    RegistrantErasedV1,
    RegistrantRecordedV1,
    RegistrationCancelledV1,
    SessionRegistrationConfirmedV1,
    SessionRegistrationRejectedV1,
    SessionRegistrationWaitlistedV1,
    SignupConfirmedV1,
    WaitlistPromotedV1,
)
from solidarity.shared.logging import get_logger

log = get_logger(__name__)

# Pending mail that no longer makes sense once a session is cancelled.
_UNWANTED_AFTER_CANCEL = (
    DeliveryKind.INVITATION,
    DeliveryKind.REMINDER,
    DeliveryKind.CONFIRMATION,
    DeliveryKind.PROMOTED,
    DeliveryKind.WAITLISTED,
    DeliveryKind.RESCHEDULED,
)


@dataclass(frozen=True, slots=True)
class PlanningRules:
    """Choices the handlers follow, from settings."""

    invitation_session_kinds: tuple[str, ...] = ("webinar", "speaking_engagement")
    webhook_event_types: frozenset[str] = field(
        default_factory=lambda: frozenset(
            {
                "SignupConfirmed",
                "SessionRegistrationConfirmed",
                "SessionRegistrationWaitlisted",
                "SessionRegistrationRejected",
                "RegistrationCancelled",
                "WaitlistPromoted",
            }
        )
    )


# Catalog -------------------------------------------------------------------------------------


async def campaign_changed(
    event: CampaignPublishedV1 | CampaignUpdatedV1, uow: ConsumerUnitOfWork, *, now: datetime
) -> None:
    if not await uow.catalog.upsert_campaign(event):
        return
    # Reminder offsets may have changed: drop what is no longer wanted, add what is missing.
    await uow.deliveries.drop_unwanted_reminders(event.campaign_id)
    await uow.deliveries.plan_reminders(now=now, campaign_id=event.campaign_id)


async def focus_day_added(event: FocusDayAddedV1, uow: ConsumerUnitOfWork) -> None:
    await uow.catalog.add_focus_day(event)


async def resource_published(event: ResourcePublishedV1, uow: ConsumerUnitOfWork) -> None:
    await uow.catalog.add_resource(event)


async def session_scheduled(
    event: SessionScheduledV1, uow: ConsumerUnitOfWork, *, now: datetime, rules: PlanningRules
) -> None:
    if await uow.catalog.upsert_session(event, moved=False) is None:
        return
    if event.kind.value in rules.invitation_session_kinds:
        invited = await uow.deliveries.invite_audience(
            event.session_id, now=now, kinds=rules.invitation_session_kinds
        )
        log.info("invitations_planned", session_id=str(event.session_id), count=invited)
    # Registrations seen before the session (another topic) get their reminders now.
    await uow.deliveries.plan_reminders(now=now, session_id=event.session_id)


async def session_rescheduled(
    event: SessionRescheduledV1, uow: ConsumerUnitOfWork, *, now: datetime
) -> None:
    sequence = await uow.catalog.upsert_session(event, moved=True)
    if sequence is None:
        return
    await uow.deliveries.drop_pending(
        reason="session_moved", kinds=(DeliveryKind.REMINDER,), session_id=event.session_id
    )
    updated = await uow.deliveries.notify_registrants(
        event.session_id,
        kind=DeliveryKind.RESCHEDULED,
        sequence=sequence,
        statuses=("confirmed",),
        now=now,
    )
    await uow.deliveries.plan_reminders(now=now, session_id=event.session_id)
    log.info("session_update_planned", session_id=str(event.session_id), count=updated)


async def session_cancelled(
    event: SessionCancelledV1, uow: ConsumerUnitOfWork, *, now: datetime
) -> None:
    sequence = await uow.catalog.cancel_session(event)
    if sequence is None:
        return
    await uow.deliveries.drop_pending(
        reason="session_cancelled", kinds=_UNWANTED_AFTER_CANCEL, session_id=event.session_id
    )
    notified = await uow.deliveries.notify_registrants(
        event.session_id,
        kind=DeliveryKind.CANCELLED,
        sequence=sequence,
        statuses=("confirmed", "waitlisted"),
        now=now,
    )
    log.info("session_cancellation_planned", session_id=str(event.session_id), count=notified)


async def session_capacity_changed(
    event: SessionCapacityChangedV1, uow: ConsumerUnitOfWork
) -> None:
    # Nothing to tell people (registration decides seats); keep the revision current.
    await uow.catalog.bump_session_revision(event.session_id, event.revision)


# Registration --------------------------------------------------------------------------------


async def registrant_recorded(event: RegistrantRecordedV1, uow: ConsumerUnitOfWork) -> None:
    if await uow.people.is_erased(event.registrant_id):
        return
    await uow.people.record_recipient(event)


async def registrant_erased(event: RegistrantErasedV1, uow: ConsumerUnitOfWork) -> None:
    await uow.people.erase(event.registrant_id, at=event.erased_at)
    log.info("recipient_erased", recipient_id=str(event.registrant_id))


async def signup_confirmed(
    event: SignupConfirmedV1, uow: ConsumerUnitOfWork, *, now: datetime, rules: PlanningRules
) -> None:
    await uow.people.record_signup(event)
    await uow.deliveries.plan(
        PlannedDelivery(
            recipient_id=event.registrant_id,
            kind=DeliveryKind.SIGNUP_WELCOME,
            subject_ref=str(event.campaign_id),
            campaign_id=event.campaign_id,
            due_at=now,
        )
    )
    if event.consents.invitations:
        await uow.deliveries.invite_to_upcoming(
            event.registrant_id,
            event.campaign_id,
            now=now,
            kinds=rules.invitation_session_kinds,
        )


async def registration_confirmed(
    event: SessionRegistrationConfirmedV1 | WaitlistPromotedV1,
    uow: ConsumerUnitOfWork,
    *,
    now: datetime,
) -> None:
    await uow.people.set_registration(
        registration_id=event.registration_id,
        recipient_id=event.registrant_id,
        session_id=event.session_id,
        campaign_id=event.campaign_id,
        partner_id=event.partner_id,
        status="confirmed",
    )
    promoted = isinstance(event, WaitlistPromotedV1)
    await uow.deliveries.plan(
        PlannedDelivery(
            recipient_id=event.registrant_id,
            kind=DeliveryKind.PROMOTED if promoted else DeliveryKind.CONFIRMATION,
            subject_ref=str(event.registration_id),
            campaign_id=event.campaign_id,
            session_id=event.session_id,
            registration_id=event.registration_id,
            due_at=now,
        )
    )
    if promoted:
        await uow.deliveries.drop_pending(
            reason="promoted",
            kinds=(DeliveryKind.WAITLISTED,),
            registration_id=event.registration_id,
        )
    await uow.deliveries.plan_reminders(now=now, registration_id=event.registration_id)


async def registration_waitlisted(
    event: SessionRegistrationWaitlistedV1, uow: ConsumerUnitOfWork, *, now: datetime
) -> None:
    await uow.people.set_registration(
        registration_id=event.registration_id,
        recipient_id=event.registrant_id,
        session_id=event.session_id,
        campaign_id=event.campaign_id,
        partner_id=event.partner_id,
        status="waitlisted",
        waitlist_position=event.position,
    )
    await uow.deliveries.plan(
        PlannedDelivery(
            recipient_id=event.registrant_id,
            kind=DeliveryKind.WAITLISTED,
            subject_ref=str(event.registration_id),
            campaign_id=event.campaign_id,
            session_id=event.session_id,
            registration_id=event.registration_id,
            due_at=now,
        )
    )


async def registration_cancelled(
    event: RegistrationCancelledV1, uow: ConsumerUnitOfWork, *, now: datetime
) -> None:
    await uow.people.set_registration(
        registration_id=event.registration_id,
        recipient_id=event.registrant_id,
        session_id=event.session_id,
        campaign_id=event.campaign_id,
        partner_id=event.partner_id,
        status="cancelled",
    )
    dropped = await uow.deliveries.drop_pending(
        reason="registration_cancelled",
        kinds=(
            DeliveryKind.CONFIRMATION,
            DeliveryKind.PROMOTED,
            DeliveryKind.WAITLISTED,
            DeliveryKind.REMINDER,
            DeliveryKind.RESCHEDULED,
        ),
        registration_id=event.registration_id,
    )
    if event.reason == "erased":
        return
    await uow.deliveries.plan(
        PlannedDelivery(
            recipient_id=event.registrant_id,
            kind=DeliveryKind.CANCELLED,
            subject_ref=str(event.registration_id),
            campaign_id=event.campaign_id,
            session_id=event.session_id,
            registration_id=event.registration_id,
            due_at=now,
            sequence=None,
        )
    )
    log.info("registration_cancellation_planned", dropped=dropped)


async def outcome_webhook(
    envelope: Envelope,
    event: Event,
    uow: ConsumerUnitOfWork,
    *,
    now: datetime,
    rules: PlanningRules,
) -> None:
    """A partner that asked for webhooks gets every outcome of its submissions, signed."""
    partner_id = getattr(event, "partner_id", None)
    if partner_id is None or envelope.event_type not in rules.webhook_event_types:
        return
    await uow.deliveries.plan_webhook(
        partner_id, event_id=envelope.event_id, body=envelope.model_dump(mode="json"), now=now
    )


# Concurrency ---------------------------------------------------------------------------------


def planning_locks(events: Sequence[Event]) -> PlanningLocks:
    """The locks a batch of these events must hold before planning (see `PlanningLocks`)."""
    campaigns: set[uuid.UUID] = set()
    erasure: Literal["none", "shared", "exclusive"] = "none"
    for event in events:
        campaign = getattr(event, "campaign_id", None)
        if isinstance(campaign, uuid.UUID) and type(event) in (*CATALOG_EVENTS, *OUTCOME_EVENTS):
            campaigns.add(campaign)
        if isinstance(event, RegistrantErasedV1):
            erasure = "exclusive"
        elif type(event) in OUTCOME_EVENTS and erasure == "none":
            erasure = "shared"
    return PlanningLocks(campaigns=tuple(sorted(campaigns)), erasure=erasure)


# Dispatch ------------------------------------------------------------------------------------


async def apply_catalog_event(
    event: Event, uow: ConsumerUnitOfWork, *, now: datetime, rules: PlanningRules
) -> None:
    match event:
        case CampaignPublishedV1() | CampaignUpdatedV1():
            await campaign_changed(event, uow, now=now)
        case FocusDayAddedV1():
            await focus_day_added(event, uow)
        case ResourcePublishedV1():
            await resource_published(event, uow)
        case SessionRescheduledV1():
            await session_rescheduled(event, uow, now=now)
        case SessionScheduledV1():
            await session_scheduled(event, uow, now=now, rules=rules)
        case SessionCancelledV1():
            await session_cancelled(event, uow, now=now)
        case SessionCapacityChangedV1():
            await session_capacity_changed(event, uow)


async def apply_outcome(
    envelope: Envelope,
    event: Event,
    uow: ConsumerUnitOfWork,
    *,
    now: datetime,
    rules: PlanningRules,
) -> None:
    await outcome_webhook(envelope, event, uow, now=now, rules=rules)
    registrant = getattr(event, "registrant_id", None)
    if registrant is None or await uow.people.is_erased(registrant):
        return  # a rejection with nobody to write to, or a person who asked to be forgotten
    match event:
        case SignupConfirmedV1():
            await signup_confirmed(event, uow, now=now, rules=rules)
        case SessionRegistrationConfirmedV1() | WaitlistPromotedV1():
            await registration_confirmed(event, uow, now=now)
        case SessionRegistrationWaitlistedV1():
            await registration_waitlisted(event, uow, now=now)
        case RegistrationCancelledV1():
            await registration_cancelled(event, uow, now=now)
        case SessionRegistrationRejectedV1():
            pass  # the partner hears it; the person gets nothing from here


async def apply_registrant_event(event: Event, uow: ConsumerUnitOfWork) -> None:
    match event:
        case RegistrantRecordedV1():
            await registrant_recorded(event, uow)
        case RegistrantErasedV1():
            await registrant_erased(event, uow)


CATALOG_EVENTS: Sequence[type[Event]] = (
    CampaignPublishedV1,
    CampaignUpdatedV1,
    FocusDayAddedV1,
    ResourcePublishedV1,
    SessionScheduledV1,
    SessionRescheduledV1,
    SessionCancelledV1,
    SessionCapacityChangedV1,
)
OUTCOME_EVENTS: Sequence[type[Event]] = (
    SignupConfirmedV1,
    SessionRegistrationConfirmedV1,
    SessionRegistrationWaitlistedV1,
    SessionRegistrationRejectedV1,
    RegistrationCancelledV1,
    WaitlistPromotedV1,
)
REGISTRANT_EVENTS: Sequence[type[Event]] = (RegistrantRecordedV1, RegistrantErasedV1)
