"""The read model of the catalog: campaigns and sessions as registration needs them.

Every catalog event carries its aggregate's revision. A campaign keeps the revision of its
last applied state; a session keeps one revision per aspect (description, status, capacity),
because a cancellation or a capacity change can arrive before the session itself. An event
whose revision is not newer than the one applied for its aspect changes nothing, so replays
and late events are harmless.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    CampaignUpdatedV1,
    RegistrationQuestion,
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionRescheduledV1,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.common import (
    CampaignStatus,
    RejectionReason,
    Role,
    SessionStatus,
)

PENDING = "pending"  # a session known only from a cancellation or capacity change so far


@dataclass(frozen=True, slots=True)
class CampaignView:
    """A campaign as sign-ups need it."""

    campaign_id: uuid.UUID
    slug: str
    status: CampaignStatus
    starts_on: date
    ends_on: date
    time_zone: str
    questions: tuple[RegistrationQuestion, ...]
    revision: int

    def refuses_signups(self, now: datetime) -> RejectionReason | None:
        """Why this campaign takes no sign-up now, or None."""
        if self.status is not CampaignStatus.PUBLISHED:
            return RejectionReason.CAMPAIGN_NOT_OPEN
        if now.astimezone(ZoneInfo(self.time_zone)).date() > self.ends_on:
            return RejectionReason.REGISTRATION_WINDOW_CLOSED
        return None


def campaign_from_event(event: CampaignPublishedV1 | CampaignUpdatedV1) -> CampaignView:
    return CampaignView(
        campaign_id=event.campaign_id,
        slug=event.slug,
        status=event.status,
        starts_on=event.starts_on,
        ends_on=event.ends_on,
        time_zone=event.time_zone,
        questions=event.questions,
        revision=event.revision,
    )


def apply_campaign_event(
    current: CampaignView | None, event: CampaignPublishedV1 | CampaignUpdatedV1
) -> CampaignView | None:
    """The campaign after the event, or None when the event is not newer than what we have."""
    if current is not None and current.revision >= event.revision:
        return None
    return campaign_from_event(event)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session in the read model (its seat counters are a `SeatCounter`)."""

    session_id: uuid.UUID
    campaign_id: uuid.UUID
    focus_day_id: uuid.UUID | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    audience: tuple[Role, ...] = ()
    registration_opens_at: datetime | None = None
    registration_closes_at: datetime | None = None
    status: str = PENDING
    capacity: int | None = None
    state_revision: int = 0
    status_revision: int = 0
    capacity_revision: int = 0

    @property
    def known(self) -> bool:
        """True once the session's own description has arrived."""
        return self.state_revision > 0

    @property
    def cancelled(self) -> bool:
        return self.status == SessionStatus.CANCELLED.value

    def refuses(
        self, *, campaign_id: uuid.UUID, role: Role, now: datetime
    ) -> RejectionReason | None:
        """Why this session takes no registration from this person now, or None."""
        if self.cancelled:
            return RejectionReason.SESSION_CANCELLED
        if not self.known or self.campaign_id != campaign_id:
            return RejectionReason.UNKNOWN_SESSION
        if self.registration_opens_at is not None and now < self.registration_opens_at:
            return RejectionReason.REGISTRATION_WINDOW_CLOSED
        closes_at = self.registration_closes_at or self.ends_at
        if closes_at is not None and now >= closes_at:
            return RejectionReason.REGISTRATION_WINDOW_CLOSED
        if self.audience and role not in self.audience:
            return RejectionReason.NOT_IN_AUDIENCE
        return None


SessionEvent = (
    SessionScheduledV1 | SessionRescheduledV1 | SessionCancelledV1 | SessionCapacityChangedV1
)


def apply_session_event(current: SessionRecord | None, event: SessionEvent) -> SessionRecord | None:
    """The session after the event, or None when the event changes nothing (stale or replayed)."""
    record = current or SessionRecord(session_id=event.session_id, campaign_id=event.campaign_id)
    revision = event.revision
    if isinstance(event, SessionScheduledV1 | SessionRescheduledV1):
        changed = record
        if revision > record.state_revision:
            changed = replace(
                changed,
                campaign_id=event.campaign_id,
                focus_day_id=event.focus_day_id,
                starts_at=event.starts_at,
                ends_at=event.ends_at,
                audience=tuple(event.audience),
                registration_opens_at=event.registration_opens_at,
                registration_closes_at=event.registration_closes_at,
                state_revision=revision,
            )
        if revision > record.status_revision:
            changed = replace(changed, status=event.status.value, status_revision=revision)
        if revision > record.capacity_revision:
            changed = replace(changed, capacity=event.capacity, capacity_revision=revision)
        return None if changed == current else changed
    if isinstance(event, SessionCancelledV1):
        if revision <= record.status_revision:
            return None
        return replace(record, status=SessionStatus.CANCELLED.value, status_revision=revision)
    if revision <= record.capacity_revision:
        return None
    return replace(record, capacity=event.capacity, capacity_revision=revision)
