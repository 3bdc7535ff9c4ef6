"""Example data for the notifications unit tests: a campaign, a session, a person, a context."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from solidarity.notifications.adapters.rendering import MessageRenderer, Sender
from solidarity.notifications.adapters.tokens import TokenSigner
from solidarity.notifications.domain.model import (
    PURPOSE_OF,
    CampaignView,
    Delivery,
    DeliveryKind,
    FocusDayView,
    MessageContext,
    RecipientView,
    RegistrationView,
    ResourceView,
    SessionView,
    delivery_id,
)

KEY = b"unit-test-signing-key-0123456789"
CAMPAIGN_ID = uuid.UUID("00000000-0000-0000-0000-0000000000c1")
SESSION_ID = uuid.UUID("00000000-0000-0000-0000-000000000051")
REGISTRATION_ID = uuid.UUID("00000000-0000-0000-0000-000000000071")
PERSON_ID = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
# Tuesday, November 7, 2023, 2 PM in Los Angeles, 5 PM in New York.
SESSION_START = datetime(2023, 11, 7, 22, 0, tzinfo=UTC)


def campaign(*, discreet: bool = False) -> CampaignView:
    return CampaignView(
        campaign_id=CAMPAIGN_ID,
        name="Solidarity Week",
        description="A student-powered campaign for LGBTQ+ students and educators.",
        starts_on=date(2023, 11, 6),
        ends_on=date(2023, 11, 10),
        time_zone="America/New_York",
        discreet=discreet,
        focus_days=(
            FocusDayView(date(2023, 11, 6), "Black LGBTQ+ Focus Day", ""),
            FocusDayView(date(2023, 11, 7), "LGBTQ+ Disability Justice Focus Day", ""),
        ),
        resources=(
            ResourceView(
                "guide", "Student Guide", "https://example.org/student.pdf", ("student",), "en"
            ),
            ResourceView(
                "guide", "Educator Guide", "https://example.org/educator.pdf", ("educator",), "en"
            ),
            ResourceView(
                "guide", "Guía para estudiantes", "https://example.org/es.pdf", ("student",), "es"
            ),
        ),
    )


def session(**changes: object) -> SessionView:
    base = SessionView(
        session_id=SESSION_ID,
        campaign_id=CAMPAIGN_ID,
        kind="webinar",
        title="Building Solidarity in an Era of Silos",
        description="How can we build bridges across lines of difference?",
        starts_at=SESSION_START,
        ends_at=SESSION_START + timedelta(hours=1),
        time_zone="America/Los_Angeles",
        display_time_zones=("America/Los_Angeles", "America/New_York"),
        audience=(),
        join_url="https://meet.example.org/solidarity",
        status="scheduled",
        sequence=0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def person(**changes: object) -> RecipientView:
    base = RecipientView(
        recipient_id=PERSON_ID,
        email="ada@school.example",
        name="Ada",
        role="student",
        locale="en",
        time_zone="Europe/Madrid",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def delivery(kind: DeliveryKind, **changes: object) -> Delivery:
    subject = str(CAMPAIGN_ID if kind == DeliveryKind.SIGNUP_WELCOME else REGISTRATION_ID)
    if kind == DeliveryKind.INVITATION:
        subject = str(SESSION_ID)
    base = Delivery(
        delivery_id=delivery_id(PERSON_ID, kind.value, subject),
        recipient_id=PERSON_ID,
        kind=kind,
        subject_ref=subject,
        channel="email",
        purpose=PURPOSE_OF[kind],
        attempts=1,
        campaign_id=CAMPAIGN_ID,
        session_id=None if kind == DeliveryKind.SIGNUP_WELCOME else SESSION_ID,
        registration_id=(
            None
            if kind in (DeliveryKind.SIGNUP_WELCOME, DeliveryKind.INVITATION)
            else REGISTRATION_ID
        ),
        offset_minutes=24 * 60 if kind == DeliveryKind.REMINDER else None,
        sequence=0 if kind == DeliveryKind.REMINDER else None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def context(
    kind: DeliveryKind,
    *,
    discreet: bool = False,
    recipient: RecipientView | None = None,
    session_view: SessionView | None = None,
    registration_status: str = "confirmed",
    opted_out: frozenset[str] = frozenset(),
    **delivery_changes: object,
) -> MessageContext:
    item = delivery(kind, **delivery_changes)
    return MessageContext(
        delivery=item,
        recipient=recipient or person(),
        campaign=campaign(discreet=discreet),
        session=None if item.session_id is None else (session_view or session()),
        registration=(
            None
            if item.registration_id is None
            else RegistrationView(REGISTRATION_ID, registration_status, 3)
        ),
        opted_out=opted_out,
    )


def renderer() -> MessageRenderer:
    return MessageRenderer(
        signer=TokenSigner(KEY),
        public_base_url="https://notify.example.org",
        sender=Sender(address="notifications@solidarity.example"),
        domain="solidarity.local",
    )
