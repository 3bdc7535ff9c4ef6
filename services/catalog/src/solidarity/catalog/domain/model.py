"""The catalog's aggregates: organizations, campaigns, focus days, sessions and resources.

Each aggregate keeps a `revision` that grows with every change. Its methods enforce the
rules and return the contract events the change causes; a campaign's focus days, sessions
and resources are announced only once the campaign is published (drafts are private).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pydantic import HttpUrl, TypeAdapter, ValidationError

from solidarity.catalog.domain.errors import ConflictError, InvalidError
from solidarity.catalog.domain.zones import localize, zone
from solidarity.shared.contracts.envelope import Event
from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    CampaignUpdatedV1,
    FocusDayAddedV1,
    OrganizationRegisteredV1,
    RegistrationQuestion,
    ResourcePublishedV1,
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionRescheduledV1,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.common import (
    CampaignStatus,
    OrganizationKind,
    Role,
    SessionKind,
    SessionStatus,
)

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_TITLE = 300
MAX_DESCRIPTION = 10_000
DEFAULT_REMINDER_OFFSETS_MINUTES = (24 * 60, 60)

_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _text(value: str, field_name: str, *, max_length: int = MAX_TITLE) -> None:
    if not value or not value.strip():
        raise InvalidError("blank_field", f"{field_name} must not be blank")
    if len(value) > max_length:
        raise InvalidError("field_too_long", f"{field_name} is longer than {max_length} characters")


def _description(value: str) -> None:
    if len(value) > MAX_DESCRIPTION:
        raise InvalidError(
            "field_too_long", f"description is longer than {MAX_DESCRIPTION} characters"
        )


def normalize_url(value: str, field_name: str) -> str:
    """An absolute http(s) URL in its canonical spelling (so reloads compare equal)."""
    try:
        return str(_HTTP_URL.validate_python(value))
    except ValidationError as exc:
        raise InvalidError("invalid_url", f"{field_name} must be an http(s) URL") from exc


def _roles(values: Iterable[Role]) -> tuple[Role, ...]:
    """Audience roles without duplicates, in the enum's order (so equal sets compare equal)."""
    chosen = set(values)
    return tuple(role for role in Role if role in chosen)


def _changed_fields(old: object, new: object) -> tuple[str, ...]:
    return tuple(
        f.name
        for f in dataclasses.fields(old)  # type: ignore[arg-type]
        if getattr(old, f.name) != getattr(new, f.name)
    )


# Organizations -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrganizationDetails:
    """What an organizer says about a school, campus, partner or nonprofit."""

    kind: OrganizationKind
    name: str
    time_zone: str
    region: str | None = None

    def validated(self) -> OrganizationDetails:
        _text(self.name, "name")
        zone(self.time_zone)
        if self.region is not None:
            _text(self.region, "region", max_length=200)
        return self


@dataclass(slots=True)
class Organization:
    """A school, campus, partner organization or nonprofit that hosts campaigns."""

    id: uuid.UUID
    details: OrganizationDetails
    revision: int = 1

    @classmethod
    def register(
        cls, organization_id: uuid.UUID, details: OrganizationDetails
    ) -> tuple[Organization, list[Event]]:
        organization = cls(id=organization_id, details=details.validated())
        return organization, [organization.registered_event()]

    def revise(self, details: OrganizationDetails) -> list[Event]:
        details = details.validated()
        if details == self.details:
            return []
        self.details = details
        self.revision += 1
        return [self.registered_event()]

    def registered_event(self) -> OrganizationRegisteredV1:
        return OrganizationRegisteredV1(
            organization_id=self.id,
            revision=self.revision,
            kind=self.details.kind,
            name=self.details.name,
            region=self.details.region,
            time_zone=self.details.time_zone,
        )


# Campaigns -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CampaignDetails:
    """What an organizer says about a campaign; its status changes only by publish/archive."""

    slug: str
    name: str
    starts_on: date
    ends_on: date
    time_zone: str
    description: str = ""
    host_organization_id: uuid.UUID | None = None
    questions: tuple[RegistrationQuestion, ...] = ()
    discreet: bool = False
    reminder_offsets_minutes: tuple[int, ...] = DEFAULT_REMINDER_OFFSETS_MINUTES

    def validated(self) -> CampaignDetails:
        if not SLUG_PATTERN.match(self.slug) or len(self.slug) > 100:
            raise InvalidError(
                "invalid_slug", "slug must be lower-case words joined by hyphens, e.g. 'week-2023'"
            )
        _text(self.name, "name")
        _description(self.description)
        zone(self.time_zone)
        if self.ends_on < self.starts_on:
            raise InvalidError(
                "ends_before_start",
                f"the campaign ends ({self.ends_on}) before it starts ({self.starts_on})",
            )
        keys = [q.key for q in self.questions]
        if len(set(keys)) != len(keys):
            raise InvalidError("duplicate_question", "two registration questions share a key")
        for question in self.questions:
            if question.kind == "choice" and not question.choices:
                raise InvalidError(
                    "question_without_choices", f"question {question.key!r} needs choices"
                )
        if any(offset <= 0 for offset in self.reminder_offsets_minutes):
            raise InvalidError(
                "invalid_reminder_offset", "reminder offsets are positive numbers of minutes"
            )
        return dataclasses.replace(
            self,
            reminder_offsets_minutes=tuple(
                sorted(set(self.reminder_offsets_minutes), reverse=True)
            ),
        )

    def local_date(self, instant: datetime) -> date:
        return instant.astimezone(zone(self.time_zone)).date()


@dataclass(slots=True)
class Campaign:
    """A week, series or program people register for; drafts are private to the catalog."""

    id: uuid.UUID
    details: CampaignDetails
    status: CampaignStatus = CampaignStatus.DRAFT
    revision: int = 1

    @classmethod
    def create(cls, campaign_id: uuid.UUID, details: CampaignDetails) -> Campaign:
        return cls(id=campaign_id, details=details.validated())

    @property
    def announces(self) -> bool:
        """Whether changes inside the campaign are published as events now."""
        return self.status is CampaignStatus.PUBLISHED

    def ensure_editable(self) -> None:
        if self.status is CampaignStatus.ARCHIVED:
            raise ConflictError(
                "campaign_archived", "the campaign is archived: it and its contents are read-only"
            )

    def ensure_contains_date(self, day: date, what: str) -> None:
        if not self.details.starts_on <= day <= self.details.ends_on:
            raise InvalidError(
                "outside_campaign_dates",
                f"{what} ({day}) is outside the campaign's dates "
                f"({self.details.starts_on} to {self.details.ends_on})",
            )

    def ensure_contains_session(self, starts_at: datetime, ends_at: datetime) -> None:
        start, end = self.details.local_date(starts_at), self.details.local_date(ends_at)
        if start < self.details.starts_on or end > self.details.ends_on:
            raise InvalidError(
                "session_outside_campaign",
                f"the session ({start} to {end}, {self.details.time_zone}) is outside the "
                f"campaign's dates ({self.details.starts_on} to {self.details.ends_on})",
            )

    def revise(
        self,
        details: CampaignDetails,
        *,
        focus_days: Sequence[FocusDay] = (),
        sessions: Sequence[Session] = (),
    ) -> list[Event]:
        """Change what the campaign says; its focus days and sessions must still fit."""
        details = details.validated()
        changed = _changed_fields(self.details, details)
        if not changed:
            return []
        self.ensure_editable()
        previous, self.details = self.details, details
        try:
            ensure_consistent(self, focus_days, sessions)
        except InvalidError:
            self.details = previous
            raise
        self.revision += 1
        if not self.announces:
            return []
        return [self.state_event(CampaignUpdatedV1, changed_fields=changed)]

    def publish(
        self,
        *,
        focus_days: Sequence[FocusDay] = (),
        sessions: Sequence[Session] = (),
        resources: Sequence[Resource] = (),
    ) -> list[Event]:
        """Open the campaign: announce it and everything it holds. Publishing twice is a no-op."""
        if self.status is CampaignStatus.PUBLISHED:
            return []
        self.ensure_editable()
        self.status = CampaignStatus.PUBLISHED
        self.revision += 1
        events: list[Event] = [self.state_event(CampaignPublishedV1)]
        events += [day.added_event() for day in focus_days]
        events += [resource.published_event() for resource in resources]
        events += [s.scheduled_event() for s in sessions if s.status is not SessionStatus.CANCELLED]
        return events

    def archive(self) -> list[Event]:
        """Close the campaign for good; a draft is archived without ever being announced."""
        if self.status is CampaignStatus.ARCHIVED:
            return []
        was_announced = self.announces
        self.status = CampaignStatus.ARCHIVED
        self.revision += 1
        if not was_announced:
            return []
        return [self.state_event(CampaignUpdatedV1, changed_fields=("status",))]

    def state_event(
        self,
        event_class: type[CampaignPublishedV1] | type[CampaignUpdatedV1],
        *,
        changed_fields: tuple[str, ...] = (),
    ) -> Event:
        d = self.details
        fields = {
            "campaign_id": self.id,
            "revision": self.revision,
            "slug": d.slug,
            "name": d.name,
            "description": d.description,
            "starts_on": d.starts_on,
            "ends_on": d.ends_on,
            "time_zone": d.time_zone,
            "status": self.status,
            "host_organization_id": d.host_organization_id,
            "questions": d.questions,
            "discreet": d.discreet,
            "reminder_offsets_minutes": d.reminder_offsets_minutes,
        }
        if event_class is CampaignUpdatedV1:
            return CampaignUpdatedV1(**fields, changed_fields=changed_fields)
        return CampaignPublishedV1(**fields)

    def snapshot_events(self) -> list[Event]:
        """The current state as events, for a republish (nothing for a draft)."""
        if self.status is CampaignStatus.PUBLISHED:
            return [self.state_event(CampaignPublishedV1)]
        if self.status is CampaignStatus.ARCHIVED:
            return [self.state_event(CampaignUpdatedV1)]
        return []


# Focus days ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FocusDayDetails:
    date: date
    title: str
    description: str = ""

    def validated(self) -> FocusDayDetails:
        _text(self.title, "title")
        _description(self.description)
        return self


@dataclass(slots=True)
class FocusDay:
    """A themed day of a campaign (GLSEN 2023: Black LGBTQ+ Focus Day, Monday November 6)."""

    id: uuid.UUID
    campaign_id: uuid.UUID
    details: FocusDayDetails
    revision: int = 1

    @classmethod
    def add(
        cls, focus_day_id: uuid.UUID, campaign: Campaign, details: FocusDayDetails
    ) -> tuple[FocusDay, list[Event]]:
        campaign.ensure_editable()
        details = details.validated()
        campaign.ensure_contains_date(details.date, "the focus day")
        day = cls(id=focus_day_id, campaign_id=campaign.id, details=details)
        return day, [day.added_event()] if campaign.announces else []

    def revise(
        self, campaign: Campaign, details: FocusDayDetails, *, sessions: Sequence[Session] = ()
    ) -> list[Event]:
        """Change the day; the sessions held on it must still fall on its date."""
        details = details.validated()
        if details == self.details:
            return []
        campaign.ensure_editable()
        campaign.ensure_contains_date(details.date, "the focus day")
        previous, self.details = self.details, details
        try:
            ensure_consistent(
                campaign, [self], [s for s in sessions if s.details.focus_day_id == self.id]
            )
        except InvalidError:
            self.details = previous
            raise
        self.revision += 1
        return [self.added_event()] if campaign.announces else []

    def ensure_removable(self, campaign: Campaign, *, used_by_sessions: bool) -> None:
        campaign.ensure_editable()
        if campaign.status is not CampaignStatus.DRAFT:
            raise ConflictError(
                "already_announced",
                "the focus day was announced with its published campaign; change it instead "
                "of removing it",
            )
        if used_by_sessions:
            raise ConflictError("focus_day_in_use", "sessions still belong to this focus day")

    def added_event(self) -> FocusDayAddedV1:
        return FocusDayAddedV1(
            focus_day_id=self.id,
            campaign_id=self.campaign_id,
            revision=self.revision,
            date=self.details.date,
            title=self.details.title,
            description=self.details.description,
        )


# Resources -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResourceDetails:
    kind: str
    title: str
    url: str
    audience: tuple[Role, ...] = ()
    locale: str = "en"

    def validated(self) -> ResourceDetails:
        _text(self.kind, "kind", max_length=50)
        _text(self.title, "title")
        _text(self.locale, "locale", max_length=35)
        return dataclasses.replace(
            self, url=normalize_url(self.url, "url"), audience=_roles(self.audience)
        )


@dataclass(slots=True)
class Resource:
    """A guide or material for a campaign's audience (the student guide, the educator guide)."""

    id: uuid.UUID
    campaign_id: uuid.UUID
    details: ResourceDetails
    revision: int = 1

    @classmethod
    def add(
        cls, resource_id: uuid.UUID, campaign: Campaign, details: ResourceDetails
    ) -> tuple[Resource, list[Event]]:
        campaign.ensure_editable()
        resource = cls(id=resource_id, campaign_id=campaign.id, details=details.validated())
        return resource, [resource.published_event()] if campaign.announces else []

    def revise(self, campaign: Campaign, details: ResourceDetails) -> list[Event]:
        details = details.validated()
        if details == self.details:
            return []
        campaign.ensure_editable()
        self.details = details
        self.revision += 1
        return [self.published_event()] if campaign.announces else []

    def ensure_removable(self, campaign: Campaign) -> None:
        campaign.ensure_editable()
        if campaign.status is not CampaignStatus.DRAFT:
            raise ConflictError(
                "already_announced",
                "the resource was announced with its published campaign; change it instead "
                "of removing it",
            )

    def published_event(self) -> ResourcePublishedV1:
        return ResourcePublishedV1(
            resource_id=self.id,
            campaign_id=self.campaign_id,
            revision=self.revision,
            kind=self.details.kind,
            title=self.details.title,
            audience=self.details.audience,
            url=HttpUrl(self.details.url),
            locale=self.details.locale,
        )


# Sessions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionDetails:
    """What an organizer says about a session; naive times are wall-clock in `time_zone`."""

    kind: SessionKind
    title: str
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    description: str = ""
    focus_day_id: uuid.UUID | None = None
    display_time_zones: tuple[str, ...] = ()
    capacity: int | None = None
    audience: tuple[Role, ...] = ()
    registration_opens_at: datetime | None = None
    registration_closes_at: datetime | None = None
    join_url: str | None = None

    def validated(self) -> SessionDetails:
        _text(self.title, "title")
        _description(self.description)
        zone(self.time_zone)
        for name in self.display_time_zones:
            zone(name)
        # Stored and announced in UTC, one spelling for one instant; shown in `time_zone`.
        starts_at = localize(self.starts_at, self.time_zone).astimezone(UTC)
        ends_at = localize(self.ends_at, self.time_zone).astimezone(UTC)
        if ends_at <= starts_at:
            raise InvalidError("ends_before_start", "the session must end after it starts")
        if self.capacity is not None and self.capacity < 0:
            raise InvalidError(
                "negative_capacity", "capacity must be zero or more (leave it empty for unlimited)"
            )
        opens_at = (
            localize(self.registration_opens_at, self.time_zone).astimezone(UTC)
            if self.registration_opens_at is not None
            else None
        )
        closes_at = (
            localize(self.registration_closes_at, self.time_zone).astimezone(UTC)
            if self.registration_closes_at is not None
            else None
        )
        if opens_at is not None and closes_at is not None and closes_at <= opens_at:
            raise InvalidError(
                "registration_closes_before_opening", "registration must close after it opens"
            )
        if closes_at is not None and closes_at > ends_at:
            raise InvalidError(
                "registration_closes_after_session", "registration must close by the session's end"
            )
        if opens_at is not None and opens_at >= ends_at:
            raise InvalidError(
                "registration_opens_after_session", "registration must open before the session ends"
            )
        return dataclasses.replace(
            self,
            starts_at=starts_at,
            ends_at=ends_at,
            registration_opens_at=opens_at,
            registration_closes_at=closes_at,
            display_time_zones=tuple(dict.fromkeys(self.display_time_zones)),
            audience=_roles(self.audience),
            join_url=normalize_url(self.join_url, "join_url") if self.join_url else None,
        )


@dataclass(frozen=True, slots=True)
class Cancellation:
    reason: str
    cancelled_at: datetime


def _ensure_focus_day_fits(
    campaign: Campaign, details: SessionDetails, focus_day: FocusDay | None
) -> None:
    if details.focus_day_id is None:
        return
    if focus_day is None or focus_day.id != details.focus_day_id:
        raise InvalidError("unknown_focus_day", "the focus day does not exist")
    if focus_day.campaign_id != campaign.id:
        raise InvalidError("focus_day_not_in_campaign", "the focus day is another campaign's")
    if campaign.details.local_date(details.starts_at) != focus_day.details.date:
        raise InvalidError(
            "session_not_on_focus_day",
            f"the session starts on {campaign.details.local_date(details.starts_at)} "
            f"({campaign.details.time_zone}); its focus day is {focus_day.details.date}",
        )


def ensure_consistent(
    campaign: Campaign, focus_days: Sequence[FocusDay], sessions: Sequence[Session]
) -> None:
    """Every focus day within the campaign's dates; every live session within them and on
    its focus day's date."""
    by_id = {day.id: day for day in focus_days}
    for day in focus_days:
        campaign.ensure_contains_date(day.details.date, f"the focus day {day.details.title!r}")
    for session in sessions:
        if session.status is SessionStatus.CANCELLED:
            continue
        campaign.ensure_contains_session(session.details.starts_at, session.details.ends_at)
        focus_day_id = session.details.focus_day_id
        if focus_day_id is not None and focus_day_id in by_id:
            _ensure_focus_day_fits(campaign, session.details, by_id[focus_day_id])


@dataclass(slots=True)
class Session:
    """A webinar, training, workshop, speaking engagement or in-person event."""

    id: uuid.UUID
    campaign_id: uuid.UUID
    details: SessionDetails
    status: SessionStatus = SessionStatus.SCHEDULED
    sequence: int = 0
    revision: int = 1
    cancellation: Cancellation | None = None
    previous_times: tuple[datetime, datetime] | None = field(default=None)

    @classmethod
    def schedule(
        cls,
        session_id: uuid.UUID,
        campaign: Campaign,
        details: SessionDetails,
        *,
        focus_day: FocusDay | None = None,
    ) -> tuple[Session, list[Event]]:
        campaign.ensure_editable()
        details = details.validated()
        campaign.ensure_contains_session(details.starts_at, details.ends_at)
        _ensure_focus_day_fits(campaign, details, focus_day)
        session = cls(id=session_id, campaign_id=campaign.id, details=details)
        return session, [session.scheduled_event()] if campaign.announces else []

    def ensure_not_cancelled(self) -> None:
        if self.status is SessionStatus.CANCELLED:
            raise ConflictError("session_cancelled", "the session is cancelled: it is read-only")

    def revise(
        self, campaign: Campaign, details: SessionDetails, *, focus_day: FocusDay | None = None
    ) -> list[Event]:
        """Change a session. Once announced, a move is a reschedule (old and new times, a new
        `sequence`) and a capacity change has its own event; a cut below the number already
        confirmed is allowed: the registration service resolves it."""
        details = details.validated()
        changed = set(_changed_fields(self.details, details))
        if not changed:
            return []
        campaign.ensure_editable()
        self.ensure_not_cancelled()
        campaign.ensure_contains_session(details.starts_at, details.ends_at)
        _ensure_focus_day_fits(campaign, details, focus_day)
        previous = self.details
        if not campaign.announces:
            self.details = details
            self.revision += 1
            return []
        events: list[Event] = []
        if "capacity" in changed:
            # First, so that each event's revision describes exactly the state after it.
            self.details = dataclasses.replace(previous, capacity=details.capacity)
            self.revision += 1
            events.append(self.capacity_changed_event(previous.capacity))
            changed.discard("capacity")
        if changed & {"starts_at", "ends_at"}:
            self.details = details
            self.previous_times = (previous.starts_at, previous.ends_at)
            self.status = SessionStatus.RESCHEDULED
            self.sequence += 1
            self.revision += 1
            events.append(self.rescheduled_event())
        elif changed:
            self.details = details
            self.revision += 1
            events.append(self.scheduled_event())
        return events

    def cancel(self, campaign: Campaign, *, reason: str, at: datetime) -> list[Event]:
        """Cancel with a reason people will read; cancelling twice is a no-op."""
        campaign.ensure_editable()
        if self.status is SessionStatus.CANCELLED:
            return []
        _text(reason, "reason", max_length=500)
        if at.tzinfo is None:
            raise InvalidError("naive_datetime", "the cancellation time must carry a zone")
        self.status = SessionStatus.CANCELLED
        self.cancellation = Cancellation(reason=reason, cancelled_at=at.astimezone(UTC))
        self.revision += 1
        return [self.cancelled_event()] if campaign.announces else []

    def ensure_removable(self, campaign: Campaign) -> None:
        campaign.ensure_editable()
        if campaign.status is not CampaignStatus.DRAFT:
            raise ConflictError(
                "already_announced",
                "the session was announced with its published campaign; cancel it instead",
            )

    def _state(self) -> dict[str, object]:
        d = self.details
        return {
            "session_id": self.id,
            "campaign_id": self.campaign_id,
            "revision": self.revision,
            "focus_day_id": d.focus_day_id,
            "kind": d.kind,
            "title": d.title,
            "description": d.description,
            "starts_at": d.starts_at,
            "ends_at": d.ends_at,
            "time_zone": d.time_zone,
            "display_time_zones": d.display_time_zones,
            "capacity": d.capacity,
            "audience": d.audience,
            "registration_opens_at": d.registration_opens_at,
            "registration_closes_at": d.registration_closes_at,
            "join_url": d.join_url,
            "status": self.status,
            "sequence": self.sequence,
        }

    def scheduled_event(self) -> SessionScheduledV1:
        return SessionScheduledV1.model_validate(self._state())

    def rescheduled_event(self) -> SessionRescheduledV1:
        assert self.previous_times is not None
        return SessionRescheduledV1.model_validate(
            {
                **self._state(),
                "previous_starts_at": self.previous_times[0],
                "previous_ends_at": self.previous_times[1],
            }
        )

    def capacity_changed_event(self, previous_capacity: int | None) -> SessionCapacityChangedV1:
        return SessionCapacityChangedV1(
            session_id=self.id,
            campaign_id=self.campaign_id,
            revision=self.revision,
            previous_capacity=previous_capacity,
            capacity=self.details.capacity,
        )

    def cancelled_event(self) -> SessionCancelledV1:
        assert self.cancellation is not None
        return SessionCancelledV1(
            session_id=self.id,
            campaign_id=self.campaign_id,
            revision=self.revision,
            reason=self.cancellation.reason,
            cancelled_at=self.cancellation.cancelled_at,
        )

    def snapshot_events(self) -> list[Event]:
        """The current state as one event at the current revision, for a republish."""
        if self.status is SessionStatus.CANCELLED:
            return [self.cancelled_event()]
        return [self.scheduled_event()]
