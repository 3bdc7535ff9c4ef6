"""What a delivery is, what it is for, and the views of other services' data a message needs."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any


class DeliveryKind(StrEnum):
    """What a message is (the `kind` of `NotificationSentV1`)."""

    SIGNUP_WELCOME = "signup_welcome"
    INVITATION = "invitation"
    CONFIRMATION = "confirmation"
    WAITLISTED = "waitlisted"
    PROMOTED = "promoted"
    REMINDER = "reminder"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    WEBHOOK = "webhook"


class Purpose(StrEnum):
    """What a person can opt out of, one by one, on the preferences page."""

    WELCOME = "welcome"
    INVITATIONS = "invitations"
    REMINDERS = "reminders"
    REGISTRATION_UPDATES = "registration_updates"
    PARTNER_WEBHOOKS = "partner_webhooks"  # a partner's channel, never a person's choice


PERSON_PURPOSES: tuple[Purpose, ...] = (
    Purpose.INVITATIONS,
    Purpose.REMINDERS,
    Purpose.REGISTRATION_UPDATES,
    Purpose.WELCOME,
)

PURPOSE_OF: dict[DeliveryKind, Purpose] = {
    DeliveryKind.SIGNUP_WELCOME: Purpose.WELCOME,
    DeliveryKind.INVITATION: Purpose.INVITATIONS,
    DeliveryKind.CONFIRMATION: Purpose.REGISTRATION_UPDATES,
    DeliveryKind.WAITLISTED: Purpose.REGISTRATION_UPDATES,
    DeliveryKind.PROMOTED: Purpose.REGISTRATION_UPDATES,
    DeliveryKind.RESCHEDULED: Purpose.REGISTRATION_UPDATES,
    DeliveryKind.CANCELLED: Purpose.REGISTRATION_UPDATES,
    DeliveryKind.REMINDER: Purpose.REMINDERS,
    DeliveryKind.WEBHOOK: Purpose.PARTNER_WEBHOOKS,
}

# Kinds that carry a calendar invite, and with which iTIP method.
CALENDAR_METHOD: dict[DeliveryKind, str] = {
    DeliveryKind.CONFIRMATION: "REQUEST",
    DeliveryKind.PROMOTED: "REQUEST",
    DeliveryKind.RESCHEDULED: "REQUEST",
    DeliveryKind.CANCELLED: "CANCEL",
}

# Kinds only a person holding a seat receives: they may show the join link.
SEAT_HOLDER_KINDS = frozenset(
    {
        DeliveryKind.CONFIRMATION,
        DeliveryKind.PROMOTED,
        DeliveryKind.RESCHEDULED,
        DeliveryKind.REMINDER,
    }
)


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting to be due (and for the recipient's contact details)
    SENDING = "sending"  # claimed; the send may be under way
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the connection died after the data: it may have arrived
    DROPPED = "dropped"  # no longer wanted (opted out, session cancelled, erased)


def delivery_id(recipient_id: uuid.UUID, kind: str, subject_ref: str) -> uuid.UUID:
    """The ledger key of (recipient, kind, subject): stable, so it can be the Message-ID.

    The same formula runs in SQL (`md5(recipient || '|' || kind || '|' || subject)::uuid`)
    for fan-outs written with one INSERT ... SELECT.
    """
    digest = hashlib.md5(f"{recipient_id}|{kind}|{subject_ref}".encode(), usedforsecurity=False)
    return uuid.UUID(digest.hexdigest())


def message_id(delivery: uuid.UUID, *, domain: str) -> str:
    return f"<{delivery}@{domain}>"


def calendar_uid(registration_id: uuid.UUID, *, domain: str) -> str:
    """One calendar entry per registration: every update and cancel refers to it."""
    return f"{registration_id}@{domain}"


def reminder_ref(registration_id: uuid.UUID, offset_minutes: int, sequence: int) -> str:
    return f"{registration_id}:{offset_minutes}m:s{sequence}"


def rescheduled_ref(registration_id: uuid.UUID, sequence: int) -> str:
    return f"{registration_id}:s{sequence}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One row of the ledger as the sender sees it."""

    delivery_id: uuid.UUID
    recipient_id: uuid.UUID
    kind: DeliveryKind
    subject_ref: str
    channel: str
    purpose: Purpose
    attempts: int
    campaign_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    registration_id: uuid.UUID | None = None
    offset_minutes: int | None = None
    sequence: int | None = None
    payload: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RecipientView:
    recipient_id: uuid.UUID
    email: str
    name: str | None
    role: str
    locale: str
    time_zone: str | None


@dataclass(frozen=True, slots=True)
class FocusDayView:
    day: date
    title: str
    description: str


@dataclass(frozen=True, slots=True)
class ResourceView:
    kind: str
    title: str
    url: str
    audience: tuple[str, ...]
    locale: str


@dataclass(frozen=True, slots=True)
class CampaignView:
    campaign_id: uuid.UUID
    name: str
    description: str
    starts_on: date
    ends_on: date
    time_zone: str
    discreet: bool
    focus_days: tuple[FocusDayView, ...] = ()
    resources: tuple[ResourceView, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionView:
    session_id: uuid.UUID
    campaign_id: uuid.UUID
    kind: str
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    display_time_zones: tuple[str, ...]
    audience: tuple[str, ...]
    join_url: str | None
    status: str
    sequence: int

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"


@dataclass(frozen=True, slots=True)
class RegistrationView:
    registration_id: uuid.UUID
    status: str
    waitlist_position: int | None


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Everything one message is made from, loaded at send time (so it is current)."""

    delivery: Delivery
    recipient: RecipientView
    campaign: CampaignView
    session: SessionView | None = None
    registration: RegistrationView | None = None
    opted_out: frozenset[str] = field(default_factory=frozenset)


def resources_for(campaign: CampaignView, *, role: str, locale: str) -> list[ResourceView]:
    """The guides for a person's role (or for everyone), in their language when there are any."""
    for_role = [r for r in campaign.resources if not r.audience or role in r.audience]
    in_language = [r for r in for_role if r.locale.split("-")[0] == locale.split("-")[0]]
    return in_language or for_role


def why_not_send(context: MessageContext, *, now: datetime) -> str | None:
    """A reason to drop a due delivery instead of sending it, or None to send it."""
    delivery = context.delivery
    if delivery.purpose.value in context.opted_out:
        return "opted_out"
    session = context.session
    if delivery.kind in (DeliveryKind.INVITATION, DeliveryKind.REMINDER):
        if session is None or session.cancelled:
            return "session_cancelled"
        if session.starts_at <= now:
            return "session_started"
    if delivery.kind in (DeliveryKind.REMINDER, DeliveryKind.CONFIRMATION, DeliveryKind.PROMOTED):
        registration = context.registration
        if registration is None or registration.status != "confirmed":
            return "registration_not_confirmed"
    if (
        delivery.kind == DeliveryKind.REMINDER
        and session is not None
        and delivery.sequence is not None
        and delivery.sequence != session.sequence
    ):
        return "session_moved"
    return None
