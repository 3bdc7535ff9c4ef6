"""Commands: what an organizer (over HTTP or from a campaign file) asks the catalog to do.

`Revise*` commands carry only the fields to change, by the name of the details field.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from solidarity.catalog.domain.model import (
    DEFAULT_REMINDER_OFFSETS_MINUTES,
    CampaignDetails,
    FocusDayDetails,
    OrganizationDetails,
    ResourceDetails,
    SessionDetails,
)
from solidarity.shared.contracts.events.catalog import RegistrationQuestion
from solidarity.shared.contracts.events.common import CampaignStatus


@dataclass(frozen=True, slots=True)
class RegisterOrganization:
    details: OrganizationDetails
    organization_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class ReviseOrganization:
    organization_id: uuid.UUID
    changes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CreateCampaign:
    """A new draft campaign; without a time zone it takes its host organization's."""

    slug: str
    name: str
    starts_on: date
    ends_on: date
    time_zone: str | None = None
    description: str = ""
    host_organization_id: uuid.UUID | None = None
    questions: tuple[RegistrationQuestion, ...] = ()
    discreet: bool = False
    reminder_offsets_minutes: tuple[int, ...] = DEFAULT_REMINDER_OFFSETS_MINUTES
    campaign_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class ReviseCampaign:
    campaign_id: uuid.UUID
    changes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PublishCampaign:
    campaign_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class ArchiveCampaign:
    campaign_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class AddFocusDay:
    campaign_id: uuid.UUID
    details: FocusDayDetails
    focus_day_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class ReviseFocusDay:
    focus_day_id: uuid.UUID
    changes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RemoveFocusDay:
    focus_day_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class ScheduleSession:
    campaign_id: uuid.UUID
    details: SessionDetails
    session_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class ReviseSession:
    """Change a session; new times are a reschedule once the campaign is published."""

    session_id: uuid.UUID
    changes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CancelSession:
    session_id: uuid.UUID
    reason: str


@dataclass(frozen=True, slots=True)
class AddResource:
    campaign_id: uuid.UUID
    details: ResourceDetails
    resource_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class ReviseResource:
    resource_id: uuid.UUID
    changes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RemoveResource:
    resource_id: uuid.UUID


# A whole campaign from one file --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrganizationDefinition:
    key: str
    details: OrganizationDetails


@dataclass(frozen=True, slots=True)
class FocusDayDefinition:
    key: str
    details: FocusDayDetails


@dataclass(frozen=True, slots=True)
class SessionDefinition:
    """A session as the file says it; `focus_day` names a focus day by its key."""

    key: str
    details: SessionDetails
    focus_day: str | None = None
    cancellation_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ResourceDefinition:
    key: str
    details: ResourceDetails


@dataclass(frozen=True, slots=True)
class LoadCampaign:
    """Make the stored campaign match this definition, announcing only what differs.

    The definition is the whole truth for its campaign: focus days, sessions and resources
    it does not name are removed from a draft and refused (409) once published.
    """

    campaign: CampaignDetails
    status: CampaignStatus
    organization: OrganizationDefinition | None = None
    focus_days: tuple[FocusDayDefinition, ...] = ()
    sessions: tuple[SessionDefinition, ...] = ()
    resources: tuple[ResourceDefinition, ...] = ()


@dataclass(frozen=True, slots=True)
class Republish:
    """Re-emit the current state of everything at its current revision."""

    campaign_slugs: tuple[str, ...] = field(default=())
