"""The ports the use cases need; SQL, SMTP and HTTP adapters implement them, tests fake them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from solidarity.notifications.domain.model import (
    Delivery,
    DeliveryKind,
    MessageContext,
    Purpose,
)
from solidarity.notifications.domain.outcomes import SendOutcome
from solidarity.shared.contracts.envelope import Event
from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    CampaignUpdatedV1,
    FocusDayAddedV1,
    ResourcePublishedV1,
    SessionCancelledV1,
    SessionRescheduledV1,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.registration import (
    RegistrantRecordedV1,
    SignupConfirmedV1,
)

CampaignState = CampaignPublishedV1 | CampaignUpdatedV1
SessionState = SessionScheduledV1 | SessionRescheduledV1


class CatalogReadModel(Protocol):
    """Campaigns, focus days, resources and sessions as the catalog last described them."""

    async def upsert_campaign(self, event: CampaignState) -> bool:
        """True when applied; False for a revision already held (stale or replayed)."""
        ...

    async def add_focus_day(self, event: FocusDayAddedV1) -> bool: ...

    async def add_resource(self, event: ResourcePublishedV1) -> bool: ...

    async def upsert_session(self, event: SessionState, *, moved: bool) -> int | None:
        """The session's calendar sequence after applying it, or None when stale."""
        ...

    async def cancel_session(self, event: SessionCancelledV1) -> int | None: ...

    async def bump_session_revision(self, session_id: uuid.UUID, revision: int) -> bool: ...


class PeopleRepository(Protocol):
    """Recipients, their sign-ups, registrations and opt-outs."""

    async def is_erased(self, recipient_id: uuid.UUID) -> bool: ...

    async def record_recipient(self, event: RegistrantRecordedV1) -> None: ...

    async def erase(self, recipient_id: uuid.UUID, *, at: datetime) -> None: ...

    async def record_signup(self, event: SignupConfirmedV1) -> None: ...

    async def set_registration(
        self,
        *,
        registration_id: uuid.UUID,
        recipient_id: uuid.UUID,
        session_id: uuid.UUID,
        campaign_id: uuid.UUID,
        partner_id: uuid.UUID | None,
        status: str,
        waitlist_position: int | None = None,
    ) -> None: ...

    async def opted_out(self, recipient_id: uuid.UUID) -> set[str]: ...

    async def set_opt_outs(
        self, recipient_id: uuid.UUID, purposes: Mapping[Purpose, bool], *, at: datetime
    ) -> None:
        """purpose -> True to opt out, False to opt back in."""
        ...

    async def exists(self, recipient_id: uuid.UUID) -> bool: ...

    async def locale_of(self, recipient_id: uuid.UUID) -> str | None: ...


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    recipient_id: uuid.UUID
    kind: DeliveryKind
    subject_ref: str
    due_at: datetime
    campaign_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    registration_id: uuid.UUID | None = None
    sequence: int | None = None
    channel: str = "email"
    payload: dict[str, Any] | None = None


class DeliveryPlanner(Protocol):
    """Writes delivery intents (the ledger rows) inside the consumer's transaction."""

    async def plan(self, delivery: PlannedDelivery) -> bool:
        """Insert one intent; False when (recipient, kind, subject) is already in the ledger."""
        ...

    async def invite_audience(
        self, session_id: uuid.UUID, *, now: datetime, kinds: Sequence[str]
    ) -> int:
        """Invitations to everyone signed up to the session's campaign who consented and is in
        its audience, in one statement; returns how many were new."""
        ...

    async def invite_to_upcoming(
        self,
        recipient_id: uuid.UUID,
        campaign_id: uuid.UUID,
        *,
        now: datetime,
        kinds: Sequence[str],
    ) -> int: ...

    async def plan_reminders(
        self,
        *,
        now: datetime,
        session_id: uuid.UUID | None = None,
        registration_id: uuid.UUID | None = None,
        campaign_id: uuid.UUID | None = None,
    ) -> int: ...

    async def drop_pending(
        self,
        *,
        reason: str,
        kinds: Sequence[DeliveryKind],
        session_id: uuid.UUID | None = None,
        registration_id: uuid.UUID | None = None,
        campaign_id: uuid.UUID | None = None,
    ) -> int: ...

    async def drop_unwanted_reminders(self, campaign_id: uuid.UUID) -> int:
        """Pending reminders at an offset the campaign no longer uses."""
        ...

    async def notify_registrants(
        self,
        session_id: uuid.UUID,
        *,
        kind: DeliveryKind,
        sequence: int,
        statuses: Sequence[str],
        now: datetime,
    ) -> int:
        """One update per registration of a session (reschedule, cancellation), one statement."""
        ...

    async def plan_webhook(
        self, partner_id: uuid.UUID, *, event_id: uuid.UUID, body: dict[str, Any], now: datetime
    ) -> bool:
        """A signed webhook of an outcome, if the partner asked for them."""
        ...


@dataclass(frozen=True, slots=True)
class PlanningLocks:
    """What a batch must hold before it plans anything, taken up front in one fixed order.

    Planning reads rows another topic's events write (a session's fan-out reads sign-ups; a
    sign-up's invitations read sessions; reminders read both registrations and sessions). Two
    instances applying those in concurrent transactions would each miss the other's rows (write
    skew), and some invitations or reminders would never be planned. So every batch that plans
    for a campaign holds that campaign's lock until it commits; erasures hold an exclusive lock
    that outcome batches share, so an erasure never interleaves with planning for that person.
    """

    campaigns: tuple[uuid.UUID, ...] = ()
    erasure: Literal["none", "shared", "exclusive"] = "none"


class ConsumerUnitOfWork(Protocol):
    """The consumer's transaction, with the repositories bound to it."""

    async def hold(self, locks: PlanningLocks) -> None:
        """Take the batch's planning locks (until the transaction ends), in a fixed order."""
        ...

    @property
    def catalog(self) -> CatalogReadModel: ...

    @property
    def people(self) -> PeopleRepository: ...

    @property
    def deliveries(self) -> DeliveryPlanner: ...


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class ClaimedWork:
    """A claimed delivery and what it needs: a message context (email) or a target (webhook)."""

    delivery: Delivery
    context: MessageContext | None = None
    webhook: WebhookTarget | None = None


SettledState = Literal["sent", "failed", "pending", "unknown", "dropped"]


@dataclass(frozen=True, slots=True)
class Settlement:
    """What became of a claimed delivery: its new state, why, when to try again (`pending`),
    and the event to publish with it (`sent`, `failed`)."""

    delivery: Delivery
    state: SettledState
    reason: str | None = None
    due_at: datetime | None = None
    event: Event | None = None


class DeliveryLedger(Protocol):
    """The sender's side of the ledger: claim what is due, record what happened."""

    async def claim_due(self, *, now: datetime, limit: int) -> list[ClaimedWork]:
        """Mark up to `limit` due deliveries `sending` (committed) and return them; a
        registration's mails one at a time, in the order they were planned."""
        ...

    async def settle(self, settlements: Sequence[Settlement], *, now: datetime) -> set[uuid.UUID]:
        """Record the outcomes of a claimed batch and their events in one transaction; returns
        the deliveries settled (not those erased or settled by someone else meanwhile). Only a
        `sending` delivery moves, or an `unknown` one to `sent`."""
        ...

    async def record_sent(
        self, delivery: Delivery, *, now: datetime, event: Event | None
    ) -> bool: ...

    async def record_failed(
        self, delivery: Delivery, *, now: datetime, reason: str, event: Event | None
    ) -> bool: ...

    async def record_retry(
        self, delivery: Delivery, *, now: datetime, due_at: datetime, reason: str
    ) -> bool: ...

    async def record_unknown(self, delivery: Delivery, *, now: datetime, reason: str) -> bool: ...

    async def record_dropped(self, delivery: Delivery, *, now: datetime, reason: str) -> bool: ...

    async def mark_stuck_unknown(self, *, claimed_before: datetime) -> int:
        """`sending` rows older than the lease become `unknown` (their sender died)."""
        ...

    async def in_doubt(self, *, limit: int) -> list[Delivery]: ...

    async def requeue(self, delivery: Delivery, *, now: datetime) -> bool:
        """An `unknown` delivery known not to have arrived goes back to `pending`."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class Rendered(Protocol):
    @property
    def data(self) -> bytes:
        """The message as it goes over SMTP: CRLF line ends, 7-bit."""
        ...


class Renderer(Protocol):
    """Makes the email for a message context (templates, calendar invite, headers)."""

    def render(self, context: MessageContext, *, now: datetime) -> Rendered: ...


class Mailer(Protocol):
    async def send(self, data: bytes, *, sender: str, recipient: str) -> SendOutcome: ...

    async def close(self) -> None: ...


class WebhookPoster(Protocol):
    async def post(
        self, target: WebhookTarget, *, event_id: str, body: bytes, now: datetime
    ) -> SendOutcome: ...


class InDoubtResolver(Protocol):
    """Knows whether mail in doubt arrived: by asking the mailbox (dev) or by a policy."""

    name: str

    async def delivered(self, message_ids: Sequence[str]) -> dict[str, bool] | None:
        """Message-ID -> arrived; None when it cannot tell now (ask again later)."""
        ...
