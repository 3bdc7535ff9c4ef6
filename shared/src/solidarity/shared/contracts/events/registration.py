"""Events of the registration service, and the partner-facing submission contract.

Outcome events (on `registration.outcomes.v1`, which partners read) carry opaque ids and
never personal data. Contact details travel only on `registration.registrants.v1`, which
only the platform's own services read.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from solidarity.shared.contracts.envelope import Event
from solidarity.shared.contracts.events.common import (
    AgeBand,
    Consents,
    RejectionReason,
    Role,
    TimeZoneName,
)


def registrant_key(email: str) -> str:
    """The Kafka key of a person's submissions: a hash, so no address shows in broker tools."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


class RegistrantDetails(BaseModel):
    """Who is registering: the least the campaign needs."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Kept a plain string here so a bad address becomes a rejected outcome, not a DLQ entry.
    email: str = Field(max_length=320)
    name: str | None = Field(default=None, max_length=200)
    pronouns: str | None = Field(default=None, max_length=50)
    role: Role
    age_band: AgeBand = AgeBand.UNDISCLOSED
    school: str | None = Field(default=None, max_length=300)
    organization: str | None = Field(default=None, max_length=300)
    time_zone: TimeZoneName | None = None
    locale: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")


class RegistrationSubmittedV1(Event):
    """What a partner platform publishes for one person (the partner-facing contract).

    `signup` asks for a campaign sign-up; `session_ids` asks for seats; both may be set.
    Sign it: HMAC-SHA256 of the exact body bytes with the partner's signing secret, hex,
    in the `x-solidarity-signature` header, with the partner id in `x-solidarity-partner`.
    """

    partner_id: uuid.UUID
    submission_id: str = Field(min_length=1, max_length=200, description="The partner's own id")
    campaign: str = Field(min_length=1, max_length=200, description="The campaign's slug")
    registrant: RegistrantDetails
    consents: Consents = Field(default_factory=Consents)
    answers: dict[str, str] = Field(default_factory=dict)
    signup: bool = True
    session_ids: tuple[uuid.UUID, ...] = ()

    @model_validator(mode="after")
    def _asks_for_something(self) -> RegistrationSubmittedV1:
        if not self.signup and not self.session_ids:
            raise ValueError("a submission asks for a sign-up, one or more sessions, or both")
        return self

    def aggregate_key(self) -> str:
        return registrant_key(self.registrant.email)


class _Outcome(Event):
    partner_id: uuid.UUID | None = None
    submission_id: str | None = None
    registrant_id: uuid.UUID
    campaign_id: uuid.UUID

    def aggregate_key(self) -> str:
        return str(self.registrant_id)


class SignupConfirmedV1(_Outcome):
    signup_id: uuid.UUID
    role: Role
    consents: Consents
    duplicate: bool = Field(default=False, description="A repeat answered with the existing one")


class SessionRegistrationConfirmedV1(_Outcome):
    registration_id: uuid.UUID
    session_id: uuid.UUID
    duplicate: bool = False


class SessionRegistrationWaitlistedV1(_Outcome):
    registration_id: uuid.UUID
    session_id: uuid.UUID
    position: int = Field(ge=1)
    duplicate: bool = False


class SessionRegistrationRejectedV1(Event):
    """A submission, or one of its session requests, refused with a machine-readable reason."""

    partner_id: uuid.UUID | None = None
    submission_id: str | None = None
    registrant_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    reason: RejectionReason
    detail: str = Field(default="", max_length=500, description="Never contains personal data")

    def aggregate_key(self) -> str:
        for candidate in (self.registrant_id, self.submission_id, self.partner_id):
            if candidate is not None:
                return str(candidate)
        return "unidentified"


class RegistrationCancelledV1(_Outcome):
    registration_id: uuid.UUID
    session_id: uuid.UUID
    reason: Literal["registrant", "session_cancelled", "capacity_reduced", "erased"]


class WaitlistPromotedV1(_Outcome):
    registration_id: uuid.UUID
    session_id: uuid.UUID
    previous_position: int = Field(ge=1)


class RegistrantRecordedV1(Event):
    """A registrant's contact details, for the platform's own services only."""

    registrant_id: uuid.UUID
    email: str
    name: str | None = None
    role: Role
    locale: str = "en"
    time_zone: TimeZoneName | None = None

    def aggregate_key(self) -> str:
        return str(self.registrant_id)


class RegistrantErasedV1(Event):
    """A person asked to be forgotten: every service removes their personal data."""

    registrant_id: uuid.UUID
    erased_at: AwareDatetime

    def aggregate_key(self) -> str:
        return str(self.registrant_id)
