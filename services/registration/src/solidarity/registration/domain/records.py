"""What the service records: registrations, sign-ups, submissions and their answers (ids only)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from solidarity.registration.domain.submissions import SubmissionStatus


class RegistrationStatus(StrEnum):
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"


CancelReason = Literal["registrant", "session_cancelled", "capacity_reduced", "erased"]


@dataclass(frozen=True, slots=True)
class Registration:
    """One person's registration for one session."""

    registration_id: uuid.UUID
    session_id: uuid.UUID
    campaign_id: uuid.UUID
    registrant_id: uuid.UUID
    partner_id: uuid.UUID
    submission_id: str
    status: RegistrationStatus
    role: str = "student"
    school: str | None = None
    focus_day_id: uuid.UUID | None = None
    waitlist_ordinal: int | None = None
    position: int | None = None  # rank on the waitlist when read (1 is next)

    @property
    def live(self) -> bool:
        return self.status is not RegistrationStatus.CANCELLED


@dataclass(frozen=True, slots=True)
class RegistrationChange:
    """A new status for a registration (promotion, demotion or cancellation)."""

    registration_id: uuid.UUID
    status: RegistrationStatus
    waitlist_ordinal: int | None = None
    cancel_reason: CancelReason | None = None


@dataclass(frozen=True, slots=True)
class Signup:
    signup_id: uuid.UUID
    campaign_id: uuid.UUID
    registrant_id: uuid.UUID
    partner_id: uuid.UUID
    role: str
    school: str | None
    invitations: bool
    giveaways: bool
    news: bool
    answers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedRegistrant:
    """A registrant after an upsert: who they are and whether their details are news."""

    registrant_id: uuid.UUID
    email_sha256: str
    inserted: bool
    changed: bool


@dataclass(frozen=True, slots=True)
class IntakeRecord:
    """A submission accepted over HTTP, waiting for the consumer."""

    event_id: uuid.UUID
    partner_id: uuid.UUID
    submission_id: str
    envelope_sha256: bytes


@dataclass(frozen=True, slots=True)
class OutcomeItem:
    """One line of a submission's answer, as stored and as shown to its partner (ids only)."""

    kind: Literal["signup", "session", "rejected"]
    session_id: uuid.UUID | None = None
    registration_id: uuid.UUID | None = None
    signup_id: uuid.UUID | None = None
    status: str | None = None
    position: int | None = None
    reason: str | None = None
    detail: str | None = None
    duplicate: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        for key in ("session_id", "registration_id", "signup_id"):
            value = getattr(self, key)
            if value is not None:
                data[key] = str(value)
        for key in ("status", "position", "reason", "detail"):
            value = getattr(self, key)
            if value not in (None, ""):
                data[key] = value
        if self.duplicate:
            data["duplicate"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutcomeItem:
        def ident(key: str) -> uuid.UUID | None:
            return uuid.UUID(data[key]) if data.get(key) else None

        return cls(
            kind=data["kind"],
            session_id=ident("session_id"),
            registration_id=ident("registration_id"),
            signup_id=ident("signup_id"),
            status=data.get("status"),
            position=data.get("position"),
            reason=data.get("reason"),
            detail=data.get("detail"),
            duplicate=bool(data.get("duplicate", False)),
        )


@dataclass(frozen=True, slots=True)
class SubmissionRecord:
    """The answer given to one partner submission."""

    partner_id: uuid.UUID
    submission_id: str
    event_id: uuid.UUID
    body_sha256: str | None
    source: Literal["kafka", "http"]
    status: SubmissionStatus
    registrant_id: uuid.UUID | None
    campaign_id: uuid.UUID | None
    outcome: tuple[OutcomeItem, ...]
