"""Every event type survives the envelope's trip to bytes and back, headers included."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from solidarity.shared.contracts.envelope import Envelope, Event, EventHeaders, headers_to_dict
from solidarity.shared.contracts.events import catalog, notifications, registration
from solidarity.shared.contracts.events.common import (
    AgeBand,
    CampaignStatus,
    Consents,
    OrganizationKind,
    RejectionReason,
    Role,
    SessionKind,
    SessionStatus,
)
from solidarity.shared.contracts.registry import ALL_EVENTS, EVENT_TYPES, parse_event

pytestmark = pytest.mark.unit

STARTS_AT = datetime(2026, 10, 20, 17, 0, tzinfo=UTC)
ENDS_AT = STARTS_AT + timedelta(hours=1)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def campaign_state() -> dict[str, object]:
    return {
        "campaign_id": new_id(),
        "revision": 3,
        "slug": "solidarity-week-2026",
        "name": "Solidarity Week 2026",
        "description": "A week of workshops.",
        "starts_on": date(2026, 10, 19),
        "ends_on": date(2026, 10, 23),
        "time_zone": "America/Los_Angeles",
        "status": CampaignStatus.PUBLISHED,
        "host_organization_id": new_id(),
        "questions": (
            catalog.RegistrationQuestion(
                key="meaning", label="What does solidarity mean to you?", required=True
            ),
        ),
        "discreet": True,
        "reminder_offsets_minutes": (1440, 30),
    }


def session_state() -> dict[str, object]:
    return {
        "session_id": new_id(),
        "campaign_id": new_id(),
        "revision": 2,
        "focus_day_id": new_id(),
        "kind": SessionKind.WORKSHOP,
        "title": "Allyship 101",
        "starts_at": STARTS_AT,
        "ends_at": ENDS_AT,
        "time_zone": "Europe/Paris",
        "display_time_zones": ("America/New_York",),
        "capacity": 40,
        "audience": (Role.STUDENT, Role.EDUCATOR),
        "registration_opens_at": STARTS_AT - timedelta(days=14),
        "registration_closes_at": STARTS_AT - timedelta(hours=1),
        "join_url": "https://meet.example.org/allyship-101",
        "status": SessionStatus.SCHEDULED,
        "sequence": 1,
    }


def outcome() -> dict[str, object]:
    return {
        "partner_id": new_id(),
        "submission_id": "partner-sub-0001",
        "registrant_id": new_id(),
        "campaign_id": new_id(),
    }


EXAMPLES: dict[type[Event], Callable[[], Event]] = {
    catalog.OrganizationRegisteredV1: lambda: catalog.OrganizationRegisteredV1(
        organization_id=new_id(),
        revision=1,
        kind=OrganizationKind.SCHOOL,
        name="Example High School",
        region="CA",
        time_zone="America/Los_Angeles",
    ),
    catalog.CampaignPublishedV1: lambda: catalog.CampaignPublishedV1.model_validate(
        campaign_state()
    ),
    catalog.CampaignUpdatedV1: lambda: catalog.CampaignUpdatedV1.model_validate(
        {**campaign_state(), "changed_fields": ("name", "status")}
    ),
    catalog.FocusDayAddedV1: lambda: catalog.FocusDayAddedV1(
        focus_day_id=new_id(),
        campaign_id=new_id(),
        revision=4,
        date=date(2026, 10, 21),
        title="Educators' day",
    ),
    catalog.SessionScheduledV1: lambda: catalog.SessionScheduledV1.model_validate(session_state()),
    catalog.SessionRescheduledV1: lambda: catalog.SessionRescheduledV1.model_validate(
        {
            **session_state(),
            "status": SessionStatus.RESCHEDULED,
            "previous_starts_at": STARTS_AT - timedelta(days=1),
            "previous_ends_at": ENDS_AT - timedelta(days=1),
        }
    ),
    catalog.SessionCancelledV1: lambda: catalog.SessionCancelledV1(
        session_id=new_id(),
        campaign_id=new_id(),
        revision=5,
        reason="The facilitator is unavailable.",
        cancelled_at=STARTS_AT - timedelta(days=2),
    ),
    catalog.SessionCapacityChangedV1: lambda: catalog.SessionCapacityChangedV1(
        session_id=new_id(),
        campaign_id=new_id(),
        revision=6,
        previous_capacity=40,
        capacity=None,
    ),
    catalog.ResourcePublishedV1: lambda: catalog.ResourcePublishedV1(
        resource_id=new_id(),
        campaign_id=new_id(),
        revision=7,
        kind="toolkit",
        title="Classroom toolkit",
        audience=(Role.EDUCATOR,),
        url="https://resources.example.org/toolkit.pdf",
        locale="es",
    ),
    registration.RegistrationSubmittedV1: lambda: registration.RegistrationSubmittedV1(
        partner_id=new_id(),
        submission_id="partner-sub-0001",
        campaign="solidarity-week-2026",
        registrant=registration.RegistrantDetails(
            email="registrant@example.org",
            name="Test Registrant",
            role=Role.STUDENT,
            age_band=AgeBand.AGE_18_24,
            time_zone="America/Chicago",
            locale="en-US",
        ),
        consents=Consents(invitations=True, news=True),
        answers={"meaning": "Showing up for each other."},
        signup=True,
        session_ids=(new_id(), new_id()),
    ),
    registration.SignupConfirmedV1: lambda: registration.SignupConfirmedV1.model_validate(
        {**outcome(), "signup_id": new_id(), "role": Role.FAMILY, "consents": Consents()}
    ),
    registration.SessionRegistrationConfirmedV1: lambda: (
        registration.SessionRegistrationConfirmedV1.model_validate(
            {**outcome(), "registration_id": new_id(), "session_id": new_id(), "duplicate": True}
        )
    ),
    registration.SessionRegistrationWaitlistedV1: lambda: (
        registration.SessionRegistrationWaitlistedV1.model_validate(
            {**outcome(), "registration_id": new_id(), "session_id": new_id(), "position": 3}
        )
    ),
    registration.SessionRegistrationRejectedV1: lambda: registration.SessionRegistrationRejectedV1(
        partner_id=new_id(),
        submission_id="partner-sub-0002",
        session_id=new_id(),
        reason=RejectionReason.SESSION_CANCELLED,
        detail="session cancelled",
    ),
    registration.RegistrationCancelledV1: lambda: (
        registration.RegistrationCancelledV1.model_validate(
            {
                **outcome(),
                "registration_id": new_id(),
                "session_id": new_id(),
                "reason": "capacity_reduced",
            }
        )
    ),
    registration.WaitlistPromotedV1: lambda: registration.WaitlistPromotedV1.model_validate(
        {
            **outcome(),
            "registration_id": new_id(),
            "session_id": new_id(),
            "previous_position": 1,
        }
    ),
    registration.RegistrantRecordedV1: lambda: registration.RegistrantRecordedV1(
        registrant_id=new_id(),
        email="registrant@example.org",
        name="Test Registrant",
        role=Role.COMMUNITY,
        locale="fr",
        time_zone="Europe/Paris",
    ),
    registration.RegistrantErasedV1: lambda: registration.RegistrantErasedV1(
        registrant_id=new_id(), erased_at=STARTS_AT
    ),
    notifications.NotificationSentV1: lambda: notifications.NotificationSentV1(
        delivery_id=new_id(),
        recipient_id=new_id(),
        kind="reminder",
        channel="email",
        subject_ref=str(new_id()),
        sent_at=STARTS_AT,
        attempts=1,
    ),
    notifications.NotificationFailedV1: lambda: notifications.NotificationFailedV1(
        delivery_id=new_id(),
        recipient_id=new_id(),
        kind="webhook",
        channel="webhook",
        subject_ref=str(new_id()),
        failed_at=STARTS_AT,
        attempts=5,
        permanent=True,
        reason="http_410",
    ),
}


def test_there_is_an_example_of_every_event_type() -> None:
    assert set(EXAMPLES) == set(ALL_EVENTS)
    assert len(EVENT_TYPES) == len(ALL_EVENTS), "two event classes share a type and version"


@pytest.mark.parametrize("event_class", ALL_EVENTS, ids=lambda cls: cls.__name__)
def test_an_event_survives_the_envelope_round_trip(event_class: type[Event]) -> None:
    event = EXAMPLES[event_class]()
    assert type(event) is event_class
    correlation_id, causation_id = new_id(), new_id()

    envelope = Envelope.wrap(
        event, producer="tests", correlation_id=correlation_id, causation_id=causation_id
    )
    received = Envelope.from_bytes(envelope.to_bytes())

    assert received == envelope
    parsed = parse_event(received)
    assert type(parsed) is event_class
    assert parsed == event
    assert parsed.aggregate_key() == event.aggregate_key()

    headers = headers_to_dict(envelope.headers())
    assert headers[EventHeaders.EVENT_ID] == str(envelope.event_id)
    assert headers[EventHeaders.EVENT_TYPE] == event_class.event_type
    assert headers[EventHeaders.SCHEMA_VERSION] == str(event_class.schema_version)
    assert headers[EventHeaders.CORRELATION_ID] == str(correlation_id)
    assert headers[EventHeaders.CAUSATION_ID] == str(causation_id)
    assert headers[EventHeaders.PRODUCER] == "tests"
    assert headers[EventHeaders.CONTENT_TYPE] == "application/json"


def test_a_new_conversation_is_correlated_to_its_first_event() -> None:
    envelope = Envelope.wrap(EXAMPLES[catalog.SessionScheduledV1](), producer="catalog")
    headers = headers_to_dict(envelope.headers())
    assert envelope.correlation_id == envelope.event_id
    assert headers[EventHeaders.CORRELATION_ID] == str(envelope.event_id)
    assert EventHeaders.CAUSATION_ID not in headers


def test_the_occurrence_time_travels_in_utc() -> None:
    local = datetime(2026, 10, 20, 10, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    envelope = Envelope.wrap(
        EXAMPLES[registration.RegistrantErasedV1](), producer="registration", occurred_at=local
    )
    received = Envelope.from_bytes(envelope.to_bytes())
    assert received.occurred_at == local
    assert received.occurred_at.utcoffset() == timedelta(0)
