"""Events of the notifications service: what was sent and what failed, by id, never by address."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, Field

from solidarity.shared.contracts.envelope import Event

DeliveryKind = Literal[
    "signup_welcome",
    "invitation",
    "confirmation",
    "waitlisted",
    "promoted",
    "reminder",
    "rescheduled",
    "cancelled",
    "webhook",
]
Channel = Literal["email", "webhook"]


class NotificationSentV1(Event):
    delivery_id: uuid.UUID
    recipient_id: uuid.UUID
    kind: DeliveryKind
    channel: Channel
    subject_ref: str = Field(
        description="What it was about: a session, campaign or registration id"
    )
    sent_at: AwareDatetime
    attempts: int = Field(ge=1)

    def aggregate_key(self) -> str:
        return str(self.recipient_id)


class NotificationFailedV1(Event):
    delivery_id: uuid.UUID
    recipient_id: uuid.UUID
    kind: DeliveryKind
    channel: Channel
    subject_ref: str
    failed_at: AwareDatetime
    attempts: int = Field(ge=1)
    permanent: bool
    reason: str = Field(max_length=200, description="A code such as smtp_550; never an address")

    def aggregate_key(self) -> str:
        return str(self.recipient_id)
