"""The admin API's request and response bodies (what OpenAPI documents)."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import date, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from solidarity.catalog.domain.model import (
    DEFAULT_REMINDER_OFFSETS_MINUTES,
    Campaign,
    FocusDay,
    Organization,
    Resource,
    Session,
)
from solidarity.catalog.domain.zones import display_label, zone
from solidarity.shared.contracts.events.catalog import RegistrationQuestion
from solidarity.shared.contracts.events.common import (
    CampaignStatus,
    OrganizationKind,
    Role,
    SessionKind,
    SessionStatus,
)

T = TypeVar("T")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Patch(_Body):
    """Only the fields sent change; `null` is refused for fields that cannot be empty."""

    required_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> _Patch:
        for name in self.model_fields_set & self.required_fields:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


# Errors --------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(examples=["session_outside_campaign"])
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer of the admin API."""

    error: ErrorDetail


class PageOut(BaseModel, Generic[T]):
    """One page; pass `next_cursor` as `cursor` for the next one (null: this is the last)."""

    items: list[T]
    next_cursor: str | None


# Organizations -------------------------------------------------------------------------------


class OrganizationIn(_Body):
    kind: OrganizationKind
    name: str = Field(min_length=1, max_length=300)
    time_zone: str = Field(description="Default IANA time zone, e.g. America/New_York")
    region: str | None = Field(default=None, max_length=200)


class OrganizationPatch(_Patch):
    required_fields = frozenset({"kind", "name", "time_zone"})

    kind: OrganizationKind | None = None
    name: str | None = Field(default=None, min_length=1, max_length=300)
    time_zone: str | None = None
    region: str | None = Field(default=None, max_length=200)


class OrganizationOut(BaseModel):
    id: uuid.UUID
    kind: OrganizationKind
    name: str
    region: str | None
    time_zone: str
    revision: int

    @classmethod
    def of(cls, item: Organization) -> OrganizationOut:
        d = item.details
        return cls(
            id=item.id,
            kind=d.kind,
            name=d.name,
            region=d.region,
            time_zone=d.time_zone,
            revision=item.revision,
        )


# Campaigns -----------------------------------------------------------------------------------


class CampaignIn(_Body):
    slug: str = Field(min_length=1, max_length=100, examples=["glsen-solidarity-week-2023"])
    name: str = Field(min_length=1, max_length=300)
    description: str = ""
    starts_on: date
    ends_on: date
    time_zone: str | None = Field(
        default=None, description="IANA zone; default: the host organization's"
    )
    host_organization_id: uuid.UUID | None = None
    questions: list[RegistrationQuestion] = Field(
        default_factory=list, description="What the campaign asks at sign-up"
    )
    discreet: bool = False
    reminder_offsets_minutes: list[int] = Field(
        default_factory=lambda: list(DEFAULT_REMINDER_OFFSETS_MINUTES)
    )


class CampaignPatch(_Patch):
    required_fields = frozenset(
        {"slug", "name", "description", "starts_on", "ends_on", "time_zone", "questions"}
        | {"discreet", "reminder_offsets_minutes"}
    )

    slug: str | None = Field(default=None, min_length=1, max_length=100)
    name: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    time_zone: str | None = None
    host_organization_id: uuid.UUID | None = None
    questions: list[RegistrationQuestion] | None = None
    discreet: bool | None = None
    reminder_offsets_minutes: list[int] | None = None

    def changes(self) -> dict[str, Any]:
        changes = super().changes()
        for name in ("questions", "reminder_offsets_minutes"):
            if name in changes:
                changes[name] = tuple(changes[name])
        return changes


class CampaignOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    description: str
    starts_on: date
    ends_on: date
    time_zone: str
    status: CampaignStatus
    host_organization_id: uuid.UUID | None
    questions: list[RegistrationQuestion]
    discreet: bool
    reminder_offsets_minutes: list[int]
    revision: int

    @classmethod
    def of(cls, item: Campaign) -> CampaignOut:
        d = item.details
        return cls(
            id=item.id,
            slug=d.slug,
            name=d.name,
            description=d.description,
            starts_on=d.starts_on,
            ends_on=d.ends_on,
            time_zone=d.time_zone,
            status=item.status,
            host_organization_id=d.host_organization_id,
            questions=list(d.questions),
            discreet=d.discreet,
            reminder_offsets_minutes=list(d.reminder_offsets_minutes),
            revision=item.revision,
        )


# Focus days ----------------------------------------------------------------------------------


class FocusDayIn(_Body):
    date: dt.date
    title: str = Field(min_length=1, max_length=300)
    description: str = ""


class FocusDayPatch(_Patch):
    required_fields = frozenset({"date", "title", "description"})

    date: dt.date | None = None
    title: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = None


class FocusDayOut(BaseModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    date: dt.date
    title: str
    description: str
    revision: int

    @classmethod
    def of(cls, item: FocusDay) -> FocusDayOut:
        return cls(
            id=item.id,
            campaign_id=item.campaign_id,
            date=item.details.date,
            title=item.details.title,
            description=item.details.description,
            revision=item.revision,
        )


# Sessions ------------------------------------------------------------------------------------

_NAIVE = "A time without an offset is read as wall-clock time in `time_zone`."


class SessionIn(_Body):
    kind: SessionKind
    title: str = Field(min_length=1, max_length=300)
    description: str = ""
    focus_day_id: uuid.UUID | None = None
    starts_at: datetime = Field(description=_NAIVE, examples=["2024-04-30T14:00:00"])
    ends_at: datetime = Field(description=_NAIVE)
    time_zone: str = Field(examples=["America/Los_Angeles"])
    display_time_zones: list[str] = Field(
        default_factory=list,
        description="Zones to show the time in, e.g. ['America/Los_Angeles', 'America/New_York']",
    )
    capacity: int | None = Field(default=None, description="Seats; null means unlimited")
    audience: list[Role] = Field(default_factory=list, description="Empty means everyone")
    registration_opens_at: datetime | None = None
    registration_closes_at: datetime | None = None
    join_url: str | None = Field(
        default=None, description="Only confirmed registrants ever receive it"
    )


class SessionPatch(_Patch):
    """Changing `starts_at`/`ends_at` of a published session is a reschedule."""

    required_fields = frozenset(
        {"kind", "title", "description", "starts_at", "ends_at", "time_zone"}
        | {"display_time_zones", "audience"}
    )

    kind: SessionKind | None = None
    title: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = None
    focus_day_id: uuid.UUID | None = None
    starts_at: datetime | None = Field(default=None, description=_NAIVE)
    ends_at: datetime | None = Field(default=None, description=_NAIVE)
    time_zone: str | None = None
    display_time_zones: list[str] | None = None
    capacity: int | None = Field(
        default=None, description="A cut below the confirmed count is allowed"
    )
    audience: list[Role] | None = None
    registration_opens_at: datetime | None = None
    registration_closes_at: datetime | None = None
    join_url: str | None = None

    def changes(self) -> dict[str, Any]:
        changes = super().changes()
        for name in ("display_time_zones", "audience"):
            if name in changes:
                changes[name] = tuple(changes[name])
        return changes


class SessionCancelIn(_Body):
    reason: str = Field(min_length=1, max_length=500, examples=["speaker unavailable"])


class CancellationOut(BaseModel):
    reason: str
    cancelled_at: datetime


def _local(value: datetime | None, zone_name: str) -> datetime | None:
    return value.astimezone(zone(zone_name)) if value is not None else None


class SessionOut(BaseModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    focus_day_id: uuid.UUID | None
    kind: SessionKind
    title: str
    description: str
    starts_at: datetime = Field(description="In the session's time zone")
    ends_at: datetime
    time_zone: str
    display_time_zones: list[str]
    display_time: str = Field(examples=["2 pm PT / 5 pm ET"])
    capacity: int | None
    audience: list[Role]
    registration_opens_at: datetime | None
    registration_closes_at: datetime | None
    join_url: str | None
    status: SessionStatus
    sequence: int
    revision: int
    cancellation: CancellationOut | None
    previous_starts_at: datetime | None
    previous_ends_at: datetime | None

    @classmethod
    def of(cls, item: Session) -> SessionOut:
        d = item.details
        tz = d.time_zone
        previous = item.previous_times
        return cls(
            id=item.id,
            campaign_id=item.campaign_id,
            focus_day_id=d.focus_day_id,
            kind=d.kind,
            title=d.title,
            description=d.description,
            starts_at=d.starts_at.astimezone(zone(tz)),
            ends_at=d.ends_at.astimezone(zone(tz)),
            time_zone=tz,
            display_time_zones=list(d.display_time_zones),
            display_time=display_label(d.starts_at, d.display_time_zones or (tz,)),
            capacity=d.capacity,
            audience=list(d.audience),
            registration_opens_at=_local(d.registration_opens_at, tz),
            registration_closes_at=_local(d.registration_closes_at, tz),
            join_url=d.join_url,
            status=item.status,
            sequence=item.sequence,
            revision=item.revision,
            cancellation=(
                CancellationOut(
                    reason=item.cancellation.reason,
                    cancelled_at=item.cancellation.cancelled_at,
                )
                if item.cancellation
                else None
            ),
            previous_starts_at=_local(previous[0], tz) if previous else None,
            previous_ends_at=_local(previous[1], tz) if previous else None,
        )


# Resources -----------------------------------------------------------------------------------


class ResourceIn(_Body):
    kind: str = Field(default="guide", min_length=1, max_length=50, examples=["guide"])
    title: str = Field(min_length=1, max_length=300)
    url: str = Field(examples=["https://example.org/student-guide.pdf"])
    audience: list[Role] = Field(default_factory=list, description="Empty means everyone")
    locale: str = Field(default="en", min_length=1, max_length=35)


class ResourcePatch(_Patch):
    required_fields = frozenset({"kind", "title", "url", "audience", "locale"})

    kind: str | None = Field(default=None, min_length=1, max_length=50)
    title: str | None = Field(default=None, min_length=1, max_length=300)
    url: str | None = None
    audience: list[Role] | None = None
    locale: str | None = Field(default=None, min_length=1, max_length=35)

    def changes(self) -> dict[str, Any]:
        changes = super().changes()
        if "audience" in changes:
            changes["audience"] = tuple(changes["audience"])
        return changes


class ResourceOut(BaseModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    kind: str
    title: str
    url: str
    audience: list[Role]
    locale: str
    revision: int

    @classmethod
    def of(cls, item: Resource) -> ResourceOut:
        d = item.details
        return cls(
            id=item.id,
            campaign_id=item.campaign_id,
            kind=d.kind,
            title=d.title,
            url=d.url,
            audience=list(d.audience),
            locale=d.locale,
            revision=item.revision,
        )
