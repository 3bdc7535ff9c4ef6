"""Reading a campaign file (YAML): one organization, one campaign and everything in it.

Items carry a `key` that names them for good: reloading the file matches rows by it.
Times without an offset are wall-clock times in the session's zone (default: the
campaign's, whose default is the organization's).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from solidarity.catalog.domain.errors import InvalidError
from solidarity.catalog.domain.keys import organization_id_for
from solidarity.catalog.domain.model import (
    DEFAULT_REMINDER_OFFSETS_MINUTES,
    CampaignDetails,
    FocusDayDetails,
    OrganizationDetails,
    ResourceDetails,
    SessionDetails,
)
from solidarity.catalog.service_layer import commands
from solidarity.shared.contracts.events.catalog import RegistrationQuestion
from solidarity.shared.contracts.events.common import (
    CampaignStatus,
    OrganizationKind,
    Role,
    SessionKind,
)

KEY = r"^[a-z0-9][a-z0-9_-]*$"


class CampaignFileError(InvalidError):
    """The file cannot be read, or does not describe a campaign; the message says where."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_campaign_file", message)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrganizationEntry(_Strict):
    key: str = Field(pattern=KEY, max_length=100)
    kind: OrganizationKind
    name: str
    time_zone: str
    region: str | None = None


class CampaignEntry(_Strict):
    slug: str
    name: str
    description: str = ""
    starts_on: dt.date
    ends_on: dt.date
    time_zone: str | None = None
    status: CampaignStatus = CampaignStatus.DRAFT
    questions: list[RegistrationQuestion] = Field(default_factory=list)
    discreet: bool = False
    reminder_offsets_minutes: list[int] = Field(
        default_factory=lambda: list(DEFAULT_REMINDER_OFFSETS_MINUTES)
    )


class FocusDayEntry(_Strict):
    key: str = Field(pattern=KEY, max_length=100)
    date: dt.date
    title: str
    description: str = ""


class SessionEntry(_Strict):
    key: str = Field(pattern=KEY, max_length=100)
    kind: SessionKind
    title: str
    description: str = ""
    focus_day: str | None = None
    starts_at: dt.datetime
    ends_at: dt.datetime
    time_zone: str | None = None
    display_time_zones: list[str] = Field(default_factory=list)
    capacity: int | None = None
    audience: list[Role] = Field(default_factory=list)
    registration_opens_at: dt.datetime | None = None
    registration_closes_at: dt.datetime | None = None
    join_url: str | None = None
    status: Literal["scheduled", "cancelled"] = "scheduled"
    cancellation_reason: str | None = None


class ResourceEntry(_Strict):
    key: str = Field(pattern=KEY, max_length=100)
    kind: str = "guide"
    title: str
    url: str
    audience: list[Role] = Field(default_factory=list)
    locale: str = "en"


class CampaignFile(_Strict):
    """The whole file."""

    organization: OrganizationEntry | None = None
    campaign: CampaignEntry
    focus_days: list[FocusDayEntry] = Field(default_factory=list)
    sessions: list[SessionEntry] = Field(default_factory=list)
    resources: list[ResourceEntry] = Field(default_factory=list)

    def to_command(self) -> commands.LoadCampaign:
        organization = None
        if self.organization is not None:
            o = self.organization
            organization = commands.OrganizationDefinition(
                key=o.key,
                details=OrganizationDetails(
                    kind=o.kind, name=o.name, time_zone=o.time_zone, region=o.region
                ),
            )
        c = self.campaign
        campaign_zone = c.time_zone or (self.organization.time_zone if self.organization else None)
        if campaign_zone is None:
            raise CampaignFileError("campaign.time_zone is needed when no organization is given")
        campaign = CampaignDetails(
            slug=c.slug,
            name=c.name,
            description=c.description,
            starts_on=c.starts_on,
            ends_on=c.ends_on,
            time_zone=campaign_zone,
            host_organization_id=(
                organization_id_for(self.organization.key) if self.organization else None
            ),
            questions=tuple(c.questions),
            discreet=c.discreet,
            reminder_offsets_minutes=tuple(c.reminder_offsets_minutes),
        )
        return commands.LoadCampaign(
            campaign=campaign,
            status=c.status,
            organization=organization,
            focus_days=tuple(
                commands.FocusDayDefinition(
                    key=d.key,
                    details=FocusDayDetails(date=d.date, title=d.title, description=d.description),
                )
                for d in self.focus_days
            ),
            sessions=tuple(_session(s, campaign_zone) for s in self.sessions),
            resources=tuple(
                commands.ResourceDefinition(
                    key=r.key,
                    details=ResourceDetails(
                        kind=r.kind,
                        title=r.title,
                        url=r.url,
                        audience=tuple(r.audience),
                        locale=r.locale,
                    ),
                )
                for r in self.resources
            ),
        )


def _session(entry: SessionEntry, campaign_zone: str) -> commands.SessionDefinition:
    if entry.status == "cancelled" and not entry.cancellation_reason:
        raise CampaignFileError(f"session {entry.key!r} is cancelled: give cancellation_reason")
    if entry.status != "cancelled" and entry.cancellation_reason:
        raise CampaignFileError(
            f"session {entry.key!r} has a cancellation_reason but is not cancelled"
        )
    return commands.SessionDefinition(
        key=entry.key,
        focus_day=entry.focus_day,
        cancellation_reason=entry.cancellation_reason,
        details=SessionDetails(
            kind=entry.kind,
            title=entry.title,
            description=entry.description,
            starts_at=entry.starts_at,
            ends_at=entry.ends_at,
            time_zone=entry.time_zone or campaign_zone,
            display_time_zones=tuple(entry.display_time_zones),
            capacity=entry.capacity,
            audience=tuple(entry.audience),
            registration_opens_at=entry.registration_opens_at,
            registration_closes_at=entry.registration_closes_at,
            join_url=entry.join_url,
        ),
    )


def _describe(error: ValidationError) -> str:
    lines = []
    for e in error.errors()[:10]:
        where = ".".join(str(p) for p in e.get("loc", ())) or "(top)"
        lines.append(f"{where}: {e.get('msg', '')}")
    return "; ".join(lines)


def parse_campaign_file(text: str, *, source: str = "<text>") -> commands.LoadCampaign:
    """The load command a campaign file's text describes."""
    try:
        data: Any = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        # PyYAML raises ValueError for impossible dates such as 2023-11-31.
        raise CampaignFileError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CampaignFileError(f"{source} must hold a mapping with at least `campaign:`")
    try:
        parsed = CampaignFile.model_validate(data)
    except ValidationError as exc:
        raise CampaignFileError(f"{source}: {_describe(exc)}") from exc
    return parsed.to_command()


def read_campaign_file(path: Path) -> commands.LoadCampaign:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CampaignFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return parse_campaign_file(text, source=str(path))
