"""Value types several events share: roles, consents, reasons."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone: {value!r}") from exc
    return value


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]
"""An IANA time zone name such as 'America/Los_Angeles'."""


class Role(StrEnum):
    STUDENT = "student"
    EDUCATOR = "educator"
    FAMILY = "family"
    STAFF = "staff"
    COMMUNITY = "community"


class AgeBand(StrEnum):
    UNDER_13 = "under_13"
    AGE_13_17 = "13_17"
    AGE_18_24 = "18_24"
    AGE_25_PLUS = "25_plus"
    UNDISCLOSED = "undisclosed"


class OrganizationKind(StrEnum):
    SCHOOL = "school"
    CAMPUS = "campus"
    PARTNER = "partner"
    NONPROFIT = "nonprofit"


class SessionKind(StrEnum):
    WEBINAR = "webinar"
    TRAINING = "training"
    WORKSHOP = "workshop"
    SPEAKING_ENGAGEMENT = "speaking_engagement"
    IN_PERSON_EVENT = "in_person_event"


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"


class Consents(BaseModel):
    """What a person agreed to receive, per purpose."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    invitations: bool = False
    giveaways: bool = False
    news: bool = False


class RejectionReason(StrEnum):
    """Machine-readable reasons a submission is rejected."""

    INVALID_SIGNATURE = "invalid_signature"
    UNKNOWN_PARTNER = "unknown_partner"
    PARTNER_NOT_ALLOWED = "partner_not_allowed_for_campaign"
    UNKNOWN_CAMPAIGN = "unknown_campaign"
    CAMPAIGN_NOT_OPEN = "campaign_not_open"
    UNKNOWN_SESSION = "unknown_session"
    SESSION_CANCELLED = "session_cancelled"
    REGISTRATION_WINDOW_CLOSED = "registration_window_closed"
    NOT_IN_AUDIENCE = "not_in_audience"
    INVALID_EMAIL = "invalid_email"
    INVALID_SUBMISSION = "invalid_submission"
    DUPLICATE = "duplicate"
    ERASED = "registrant_erased"
