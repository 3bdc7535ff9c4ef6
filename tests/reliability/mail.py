"""People who get mail, the events that make the notifications service write to them, and
reading what the mail sink kept."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from email import message_from_bytes, policy

from solidarity.shared.contracts.events.common import Consents, Role
from solidarity.shared.contracts.events.registration import (
    RegistrantRecordedV1,
    SessionRegistrationConfirmedV1,
    SignupConfirmedV1,
)
from solidarity.shared.devstack.mailsink import MailSink
from tests.reliability import platform


@dataclass(frozen=True)
class Person:
    recipient_id: uuid.UUID
    email: str
    name: str | None = None

    @classmethod
    def new(cls, label: str, *, name: str | None = None) -> Person:
        token = uuid.uuid4().hex[:10]
        email = f"{label}-{token}@school.example"
        platform.PERSONAL_DATA.update({email, *([name] if name else [])})
        return cls(uuid.uuid4(), email, name)

    def recorded(self) -> RegistrantRecordedV1:
        return RegistrantRecordedV1(
            registrant_id=self.recipient_id,
            email=self.email,
            name=self.name,
            role=Role.STUDENT,
            locale="en",
            time_zone="America/Chicago",
        )

    def signed_up(
        self,
        campaign_id: uuid.UUID,
        *,
        invitations: bool = True,
        partner_id: uuid.UUID | None = None,
    ) -> SignupConfirmedV1:
        return SignupConfirmedV1(
            registrant_id=self.recipient_id,
            campaign_id=campaign_id,
            signup_id=uuid.uuid5(campaign_id, str(self.recipient_id)),
            role=Role.STUDENT,
            consents=Consents(invitations=invitations),
            partner_id=partner_id,
        )

    def confirmed(
        self, campaign_id: uuid.UUID, session_id: uuid.UUID
    ) -> SessionRegistrationConfirmedV1:
        return SessionRegistrationConfirmedV1(
            registrant_id=self.recipient_id,
            campaign_id=campaign_id,
            registration_id=uuid.uuid5(session_id, str(self.recipient_id)),
            session_id=session_id,
        )


@dataclass(frozen=True)
class Kept:
    """One mail in the sink: to whom, its Message-ID, the delivery kind it says it is."""

    to: str
    message_id: str
    subject: str
    received_at: str


def kept(sink: MailSink) -> list[Kept]:
    return [
        Kept(
            to=m.to[0].lower() if m.to else "",
            message_id=m.message_id or "",
            subject=m.subject,
            received_at=m.received_at,
        )
        for m in sink.store.list()
    ]


def copies_by_recipient(mails: list[Kept]) -> Counter[str]:
    return Counter(m.to for m in mails)


def body_text(sink: MailSink, mail_id: str) -> str:
    raw = sink.store.raw(mail_id)
    if raw is None:
        return ""
    message = message_from_bytes(raw, policy=policy.default)
    return str(message)
