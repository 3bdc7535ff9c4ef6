"""The partner API's request and response bodies (what OpenAPI documents).

Response models describe the bodies the routes build, field for field: a route that declares
one has its answer checked against it (and schemathesis, in the reliability suite, checks
every answer against the document). Fields a body may leave out are not required here, and
the route whose bodies leave some out (a submission's status) answers with
`response_model_exclude_unset`, so the model adds nothing to the wire.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from solidarity.shared.contracts.events.common import Consents
from solidarity.shared.contracts.events.registration import (
    RegistrantDetails,
    RegistrationSubmittedV1,
)
from solidarity.shared.http_models import FieldError

# Requests ------------------------------------------------------------------------------------


class SubmissionIn(BaseModel):
    """One submission over HTTP: `RegistrationSubmittedV1` without `partner_id` (the key says).

    The event's own rules (a sign-up, sessions, or both) apply in `for_partner`: a body that
    breaks them is a 422 like any other.
    """

    model_config = ConfigDict(extra="ignore")

    submission_id: str = Field(min_length=1, max_length=200)
    campaign: str = Field(min_length=1, max_length=200)
    registrant: RegistrantDetails
    consents: Consents = Field(default_factory=Consents)
    answers: dict[str, str] = Field(default_factory=dict)
    signup: bool = True
    session_ids: tuple[uuid.UUID, ...] = ()

    def for_partner(self, partner_id: uuid.UUID) -> RegistrationSubmittedV1:
        return RegistrationSubmittedV1(partner_id=partner_id, **dict(self))


class BatchIn(BaseModel):
    """Up to 1,000 submissions; each is checked on its own and answered by index."""

    submissions: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


class ErasureIn(BaseModel):
    registrant_id: uuid.UUID | None = None
    email: str | None = Field(default=None, max_length=320)

    @model_validator(mode="after")
    def _one_of(self) -> ErasureIn:
        if (self.registrant_id is None) == (self.email is None):
            raise ValueError("give either registrant_id or email")
        return self


# Answers -------------------------------------------------------------------------------------


class SubmissionAcceptedOut(BaseModel):
    """202: the submission is stored and will be decided; its status is at `status_url`."""

    submission_id: str
    state: Literal["pending"]
    status_url: str


class BatchItemOut(BaseModel):
    """One submission of a batch, by its index: accepted (`pending`) or `invalid`."""

    index: int
    state: Literal["pending", "invalid"]
    submission_id: str | None = None
    status_url: str | None = None
    errors: list[FieldError] | None = None


class BatchAcceptedOut(BaseModel):
    """A batch's answer: 202 if any submission was accepted, 422 if none was."""

    accepted: int
    invalid: int
    items: list[BatchItemOut]


class SignupOut(BaseModel):
    signup_id: uuid.UUID
    status: Literal["confirmed"]
    duplicate: bool | None = None


class SessionRegistrationOut(BaseModel):
    """A session asked for: its registration's status now (a waitlist position if waiting)."""

    session_id: uuid.UUID
    registration_id: uuid.UUID
    status: Literal["confirmed", "waitlisted", "cancelled"]
    position: int | None = None
    duplicate: bool | None = None


class RejectionOut(BaseModel):
    """Why a submission, or one session of it, was refused (machine-readable `reason`)."""

    reason: str = Field(examples=["unknown_session", "campaign_not_open"])
    session_id: uuid.UUID | None = None
    detail: str | None = None


class SubmissionStatusOut(BaseModel):
    """Where a submission stands: `pending` until decided, then its outcome as it is now."""

    submission_id: str
    state: Literal["pending", "decided", "rejected", "erased"]
    status_url: str
    registrant_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None
    signup: SignupOut | None = None
    sessions: list[SessionRegistrationOut] | None = None
    rejections: list[RejectionOut] | None = None


class CancelledRegistrationOut(BaseModel):
    registration_id: uuid.UUID
    session_id: uuid.UUID


class CancelledOut(BaseModel):
    submission_id: str
    cancelled: list[CancelledRegistrationOut]


class ErasedOut(BaseModel):
    registrant_id: uuid.UUID
    erased_at: str = Field(json_schema_extra={"format": "date-time"})
    already_erased: bool


class SignupStatsOut(BaseModel):
    total: int
    by_role: dict[str, int]
    by_school: dict[str, int]


class SessionSeatsOut(BaseModel):
    capacity: int | None
    confirmed: int
    waitlisted: int
    cancelled: int


class RegistrationStatsOut(BaseModel):
    by_status: dict[str, int]
    by_role: dict[str, int]
    by_school: dict[str, int]
    by_focus_day: dict[str, dict[str, int]]
    by_session: dict[str, SessionSeatsOut]


class CampaignStatsOut(BaseModel):
    """Counts only: never a person."""

    campaign: str
    campaign_id: uuid.UUID
    signups: SignupStatsOut
    registrations: RegistrationStatsOut
