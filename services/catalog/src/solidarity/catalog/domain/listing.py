"""Filters and keyset pagination for listing the catalog: what to show and where a page ends."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from solidarity.catalog.domain.errors import InvalidError
from solidarity.catalog.domain.model import Campaign, FocusDay, Organization, Resource, Session
from solidarity.shared.contracts.events.common import (
    CampaignStatus,
    OrganizationKind,
    Role,
    SessionKind,
    SessionStatus,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the previous page ended: the last item's sort value and id (opaque to clients)."""

    key: str
    id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps([self.key, str(self.id)], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            padded = text + "=" * (-len(text) % 4)
            key, id_text = json.loads(base64.urlsafe_b64decode(padded.encode()))
            return cls(key=str(key), id=uuid.UUID(str(id_text)))
        except (ValueError, TypeError, binascii.Error) as exc:
            raise InvalidError("invalid_cursor", "the cursor is not one this API gave") from exc


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidError("invalid_limit", f"limit must be between 1 and {MAX_LIMIT}")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def instant_key(value: datetime) -> str:
    """A sort key for an instant that orders as text the way the instants order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def organization_key(item: Organization) -> str:
    return item.details.name


def campaign_key(item: Campaign) -> str:
    return item.details.starts_on.isoformat()


def focus_day_key(item: FocusDay) -> str:
    return item.details.date.isoformat()


def session_key(item: Session) -> str:
    return instant_key(item.details.starts_at)


def resource_key(item: Resource) -> str:
    return item.details.title


@dataclass(frozen=True, slots=True)
class OrganizationFilter:
    kind: OrganizationKind | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class CampaignFilter:
    status: CampaignStatus | None = None
    host_organization_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class FocusDayFilter:
    campaign_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class SessionFilter:
    campaign_id: uuid.UUID | None = None
    status: SessionStatus | None = None
    kind: SessionKind | None = None
    focus_day_id: uuid.UUID | None = None
    audience: Role | None = None
    starts_from: datetime | None = None
    starts_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class ResourceFilter:
    campaign_id: uuid.UUID | None = None
    kind: str | None = None
    audience: Role | None = None
