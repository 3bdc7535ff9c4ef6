"""Events the catalog publishes: organizations, campaigns, focus days, sessions and resources.

Each carries the aggregate's `revision`, which grows with every change, so a consumer can
drop a replayed or late event whose revision it has already applied.
"""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl

from solidarity.shared.contracts.envelope import Event
from solidarity.shared.contracts.events.common import (
    CampaignStatus,
    OrganizationKind,
    Role,
    SessionKind,
    SessionStatus,
    TimeZoneName,
)


class RegistrationQuestion(BaseModel):
    """A question a campaign asks at sign-up (seed 002: ask people what solidarity means)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1, max_length=500)
    kind: str = Field(default="text", pattern=r"^(text|choice|school)$")
    choices: tuple[str, ...] = ()
    required: bool = False


class OrganizationRegisteredV1(Event):
    organization_id: uuid.UUID
    revision: int = Field(ge=1)
    kind: OrganizationKind
    name: str
    region: str | None = None
    time_zone: TimeZoneName

    def aggregate_key(self) -> str:
        return str(self.organization_id)


class _CampaignState(Event):
    campaign_id: uuid.UUID
    revision: int = Field(ge=1)
    slug: str
    name: str
    description: str = ""
    starts_on: date
    ends_on: date
    time_zone: TimeZoneName
    status: CampaignStatus
    host_organization_id: uuid.UUID | None = None
    questions: tuple[RegistrationQuestion, ...] = ()
    discreet: bool = False
    reminder_offsets_minutes: tuple[int, ...] = (24 * 60, 60)

    def aggregate_key(self) -> str:
        return str(self.campaign_id)


class CampaignPublishedV1(_CampaignState):
    """A campaign became open for sign-ups, with its full state."""


class CampaignUpdatedV1(_CampaignState):
    """A campaign changed (including archiving); the full state, plus which fields changed."""

    changed_fields: tuple[str, ...] = ()


class FocusDayAddedV1(Event):
    focus_day_id: uuid.UUID
    campaign_id: uuid.UUID
    revision: int = Field(ge=1)
    date: date
    title: str
    description: str = ""

    def aggregate_key(self) -> str:
        return str(self.campaign_id)


class _SessionState(Event):
    session_id: uuid.UUID
    campaign_id: uuid.UUID
    revision: int = Field(ge=1)
    focus_day_id: uuid.UUID | None = None
    kind: SessionKind
    title: str
    description: str = ""
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    time_zone: TimeZoneName
    display_time_zones: tuple[TimeZoneName, ...] = ()
    capacity: int | None = Field(default=None, ge=0, description="None means unlimited")
    audience: tuple[Role, ...] = ()
    registration_opens_at: AwareDatetime | None = None
    registration_closes_at: AwareDatetime | None = None
    join_url: HttpUrl | None = Field(
        default=None, description="Only ever sent to confirmed registrants."
    )
    status: SessionStatus = SessionStatus.SCHEDULED
    sequence: int = Field(default=0, ge=0, description="Calendar SEQUENCE: grows on each move")

    def aggregate_key(self) -> str:
        return str(self.session_id)


class SessionScheduledV1(_SessionState):
    """A session is open for registration, with its full state."""


class SessionRescheduledV1(_SessionState):
    """A session moved: the full new state plus the old times."""

    previous_starts_at: AwareDatetime
    previous_ends_at: AwareDatetime


class SessionCancelledV1(Event):
    session_id: uuid.UUID
    campaign_id: uuid.UUID
    revision: int = Field(ge=1)
    reason: str = Field(min_length=1, max_length=500)
    cancelled_at: AwareDatetime

    def aggregate_key(self) -> str:
        return str(self.session_id)


class SessionCapacityChangedV1(Event):
    """Capacity changed. A cut below the confirmed count is allowed: registration resolves it."""

    session_id: uuid.UUID
    campaign_id: uuid.UUID
    revision: int = Field(ge=1)
    previous_capacity: int | None
    capacity: int | None = Field(ge=0)
    note: str = (
        "A capacity below the number already confirmed is allowed; the registration "
        "service decides who keeps a seat by its documented rule."
    )

    def aggregate_key(self) -> str:
        return str(self.session_id)


class ResourcePublishedV1(Event):
    resource_id: uuid.UUID
    campaign_id: uuid.UUID
    revision: int = Field(ge=1)
    kind: str = Field(description="guide, toolkit, video, ...")
    title: str
    audience: tuple[Role, ...] = ()
    url: HttpUrl
    locale: str = "en"

    def aggregate_key(self) -> str:
        return str(self.campaign_id)
