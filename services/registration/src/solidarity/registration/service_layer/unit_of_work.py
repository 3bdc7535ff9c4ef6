"""The unit of work (one database transaction) and the repository port handlers use.

Handlers never touch Kafka: `uow.publish(event)` collects events, and `commit()` writes them
to the outbox in the same transaction as the changes that caused them.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Protocol, Self

from solidarity.registration.domain.catalog import CampaignView, SessionRecord
from solidarity.registration.domain.partners import PartnerAccount
from solidarity.registration.domain.records import (
    IntakeRecord,
    RecordedRegistrant,
    Registration,
    RegistrationChange,
    Signup,
    SubmissionRecord,
)
from solidarity.registration.domain.seats import SeatCounter
from solidarity.registration.domain.submissions import PriorSubmission, RegistrantProfile
from solidarity.shared.contracts.envelope import Envelope, Event


class ConcurrentDecisionError(Exception):
    """Another instance decided the same thing at the same moment: retry the whole batch."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response kept under an Idempotency-Key."""

    request_sha256: bytes
    status_code: int
    body: bytes  # exactly what was answered


@dataclass(frozen=True, slots=True)
class RegistrantSummary:
    registrant_id: uuid.UUID
    erased_at: datetime | None


class Repository(Protocol):
    """Everything the handlers read and write, in batches."""

    # Partners and intake
    async def partners(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, PartnerAccount]: ...
    async def partner_by_api_key(self, api_key_sha256: bytes) -> PartnerAccount | None: ...
    async def add_partner(self, partner: PartnerAccount, *, api_key_sha256: bytes) -> None: ...
    async def list_partners(self) -> list[PartnerAccount]: ...
    async def intake(self, event_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, IntakeRecord]: ...
    async def add_intake(self, records: Sequence[IntakeRecord]) -> None: ...
    async def forget_intake(self, event_ids: Collection[uuid.UUID]) -> None: ...
    async def pending_intake(self, partner_id: uuid.UUID, submission_id: str) -> bool: ...
    async def claim_idempotency_key(
        self, partner_id: uuid.UUID, key: str, response: StoredResponse
    ) -> StoredResponse | None: ...

    # Catalog read model
    async def campaigns_by_slug(self, slugs: Collection[str]) -> dict[str, CampaignView]: ...
    async def campaign(self, campaign_id: uuid.UUID) -> CampaignView | None: ...
    async def save_campaign(self, campaign: CampaignView) -> None: ...
    async def save_focus_day(
        self, focus_day_id: uuid.UUID, campaign_id: uuid.UUID, day: date, revision: int
    ) -> None: ...
    async def sessions(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, SessionRecord]: ...
    async def lock_session(
        self, session_id: uuid.UUID
    ) -> tuple[SessionRecord, SeatCounter] | None: ...
    async def save_session(self, record: SessionRecord, seats: SeatCounter) -> None: ...

    # Decisions
    async def prior_submissions(
        self, keys: Collection[tuple[uuid.UUID, str]]
    ) -> dict[tuple[uuid.UUID, str], PriorSubmission]: ...
    async def registrants_by_email(self, hashes: Collection[str]) -> dict[str, uuid.UUID]: ...
    async def record_registrants(
        self, profiles: Sequence[RegistrantProfile]
    ) -> dict[str, RecordedRegistrant]: ...
    async def signups_of(
        self, keys: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], Signup]: ...
    async def add_signups(self, signups: Sequence[Signup]) -> None: ...
    async def live_registrations_of(
        self, keys: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], Registration]: ...
    async def lock_seats(
        self, session_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, SeatCounter]: ...
    async def save_seats(self, counters: Sequence[SeatCounter]) -> None: ...
    async def add_registrations(self, registrations: Sequence[Registration]) -> None: ...
    async def save_submissions(self, records: Sequence[SubmissionRecord]) -> None: ...

    # Changes after the decision
    async def submission(
        self, partner_id: uuid.UUID, submission_id: str
    ) -> SubmissionRecord | None: ...
    async def registrations(self, ids: Collection[uuid.UUID]) -> list[Registration]: ...
    async def waitlist_head(self, session_id: uuid.UUID, count: int) -> list[Registration]: ...
    async def latest_confirmed(self, session_id: uuid.UUID, count: int) -> list[Registration]: ...
    async def live_registrations_of_session(self, session_id: uuid.UUID) -> list[Registration]: ...
    async def live_registrations_of_registrant(
        self, registrant_id: uuid.UUID
    ) -> list[Registration]: ...
    async def update_registrations(
        self, changes: Sequence[RegistrationChange], *, at: datetime
    ) -> None: ...
    async def registrant(self, registrant_id: uuid.UUID) -> RegistrantSummary | None: ...
    async def partner_knows(self, partner_id: uuid.UUID, registrant_id: uuid.UUID) -> bool: ...
    async def erase_registrant(self, registrant_id: uuid.UUID, *, at: datetime) -> None: ...


class UnitOfWork:
    """One transaction: changes through `repository`, events through `publish`, then commit."""

    repository: Repository

    def __init__(self, *, producer: str) -> None:
        self._producer = producer
        self._finished = True
        self.pending: list[tuple[Event, Envelope]] = []
        self.committed: list[tuple[Event, Envelope]] = []

    def publish(
        self,
        event: Event,
        *,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> Envelope:
        """Record an event to publish when this unit of work commits; returns its envelope."""
        envelope = Envelope.wrap(
            event,
            producer=self._producer,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
        self.pending.append((event, envelope))
        return envelope

    async def __aenter__(self) -> Self:
        self.pending = []
        self._finished = False
        await self._begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._finished:
            await self.rollback()  # leaving without commit() undoes everything

    async def commit(self) -> None:
        await self._write_events(self.pending)
        await self._commit()
        self._finished = True
        self.committed.extend(self.pending)
        self.pending = []

    async def rollback(self) -> None:
        self.pending = []
        self._finished = True
        await self._rollback()

    async def _begin(self) -> None:
        raise NotImplementedError

    async def _write_events(self, events: Sequence[tuple[Event, Envelope]]) -> None:
        raise NotImplementedError

    async def _commit(self) -> None:
        raise NotImplementedError

    async def _rollback(self) -> None:
        raise NotImplementedError
