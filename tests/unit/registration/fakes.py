"""Hand-written fakes of the registration service's ports: an in-memory repository and UoW."""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TypeVar

from solidarity.registration.domain.catalog import CampaignView, SessionRecord
from solidarity.registration.domain.partners import PartnerAccount
from solidarity.registration.domain.records import (
    IntakeRecord,
    RecordedRegistrant,
    Registration,
    RegistrationChange,
    RegistrationStatus,
    Signup,
    SubmissionRecord,
)
from solidarity.registration.domain.seats import SeatCounter
from solidarity.registration.domain.submissions import (
    PriorSubmission,
    RegistrantProfile,
    SubmissionStatus,
)
from solidarity.registration.service_layer.unit_of_work import (
    ConcurrentDecisionError,
    RegistrantSummary,
    StoredResponse,
    UnitOfWork,
)
from solidarity.shared.contracts.envelope import Envelope, Event

E = TypeVar("E", bound=Event)


@dataclass
class FakeRegistrant:
    registrant_id: uuid.UUID
    email_sha256: str | None
    email: str | None
    details_sha256: str | None
    school: str | None
    erased_at: datetime | None = None


@dataclass
class State:
    partners: dict[uuid.UUID, PartnerAccount] = field(default_factory=dict)
    api_keys: dict[bytes, uuid.UUID] = field(default_factory=dict)
    intake: dict[uuid.UUID, IntakeRecord] = field(default_factory=dict)
    idempotency: dict[tuple[uuid.UUID, str], StoredResponse] = field(default_factory=dict)
    campaigns: dict[uuid.UUID, CampaignView] = field(default_factory=dict)
    focus_days: dict[uuid.UUID, tuple[uuid.UUID, date, int]] = field(default_factory=dict)
    sessions: dict[uuid.UUID, SessionRecord] = field(default_factory=dict)
    seats: dict[uuid.UUID, SeatCounter] = field(default_factory=dict)
    submissions: dict[tuple[uuid.UUID, str], SubmissionRecord] = field(default_factory=dict)
    registrants: dict[uuid.UUID, FakeRegistrant] = field(default_factory=dict)
    signups: dict[tuple[uuid.UUID, uuid.UUID], Signup] = field(default_factory=dict)
    registrations: dict[uuid.UUID, Registration] = field(default_factory=dict)
    confirmed_order: dict[uuid.UUID, int] = field(default_factory=dict)


class FakeRepository:
    """The repository port in memory; same answers as the SQL one for what handlers ask."""

    def __init__(self, state: State | None = None) -> None:
        self.state = state or State()
        self._order = itertools.count()

    # Partners and intake
    async def partners(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, PartnerAccount]:
        return {i: self.state.partners[i] for i in ids if i in self.state.partners}

    async def partner_by_api_key(self, api_key_sha256: bytes) -> PartnerAccount | None:
        partner_id = self.state.api_keys.get(api_key_sha256)
        return self.state.partners.get(partner_id) if partner_id else None

    async def add_partner(self, partner: PartnerAccount, *, api_key_sha256: bytes) -> None:
        self.state.partners[partner.partner_id] = partner
        self.state.api_keys[api_key_sha256] = partner.partner_id

    async def list_partners(self) -> list[PartnerAccount]:
        return sorted(self.state.partners.values(), key=lambda p: p.name)

    async def intake(self, event_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, IntakeRecord]:
        return {i: self.state.intake[i] for i in event_ids if i in self.state.intake}

    async def add_intake(self, records: Sequence[IntakeRecord]) -> None:
        for record in records:
            self.state.intake[record.event_id] = record

    async def forget_intake(self, event_ids: Collection[uuid.UUID]) -> None:
        for event_id in event_ids:
            self.state.intake.pop(event_id, None)

    async def pending_intake(self, partner_id: uuid.UUID, submission_id: str) -> bool:
        return any(
            r.partner_id == partner_id and r.submission_id == submission_id
            for r in self.state.intake.values()
        )

    async def claim_idempotency_key(
        self, partner_id: uuid.UUID, key: str, response: StoredResponse
    ) -> StoredResponse | None:
        stored = self.state.idempotency.get((partner_id, key))
        if stored is None:
            self.state.idempotency[(partner_id, key)] = response
        return stored

    # Catalog read model
    async def campaigns_by_slug(self, slugs: Collection[str]) -> dict[str, CampaignView]:
        found: dict[str, CampaignView] = {}
        for campaign in self.state.campaigns.values():
            if campaign.slug in slugs:
                best = found.get(campaign.slug)
                if best is None or campaign.revision > best.revision:
                    found[campaign.slug] = campaign
        return found

    async def campaign(self, campaign_id: uuid.UUID) -> CampaignView | None:
        return self.state.campaigns.get(campaign_id)

    async def save_campaign(self, campaign: CampaignView) -> None:
        current = self.state.campaigns.get(campaign.campaign_id)
        if current is None or current.revision < campaign.revision:
            self.state.campaigns[campaign.campaign_id] = campaign

    async def save_focus_day(
        self, focus_day_id: uuid.UUID, campaign_id: uuid.UUID, day: date, revision: int
    ) -> None:
        current = self.state.focus_days.get(focus_day_id)
        if current is None or current[2] < revision:
            self.state.focus_days[focus_day_id] = (campaign_id, day, revision)

    async def sessions(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, SessionRecord]:
        return {i: self.state.sessions[i] for i in ids if i in self.state.sessions}

    async def lock_session(self, session_id: uuid.UUID) -> tuple[SessionRecord, SeatCounter] | None:
        if session_id not in self.state.sessions:
            return None
        return self.state.sessions[session_id], copy.copy(self.state.seats[session_id])

    async def save_session(self, record: SessionRecord, seats: SeatCounter) -> None:
        seats.check()
        self.state.sessions[record.session_id] = record
        self.state.seats[record.session_id] = copy.copy(seats)

    # Decisions
    async def prior_submissions(
        self, keys: Collection[tuple[uuid.UUID, str]]
    ) -> dict[tuple[uuid.UUID, str], PriorSubmission]:
        return {
            k: PriorSubmission(r.status, r.body_sha256, r.registrant_id)
            for k in keys
            if (r := self.state.submissions.get(k)) is not None
        }

    async def registrants_by_email(self, hashes: Collection[str]) -> dict[str, uuid.UUID]:
        return {
            r.email_sha256: r.registrant_id
            for r in self.state.registrants.values()
            if r.email_sha256 is not None and r.email_sha256 in hashes
        }

    async def record_registrants(
        self, profiles: Sequence[RegistrantProfile]
    ) -> dict[str, RecordedRegistrant]:
        result: dict[str, RecordedRegistrant] = {}
        known = await self.registrants_by_email({p.email_sha256 for p in profiles})
        for profile in {p.email_sha256: p for p in profiles}.values():
            registrant_id = known.get(profile.email_sha256)
            if registrant_id is None:
                registrant_id = uuid.uuid4()
                self.state.registrants[registrant_id] = FakeRegistrant(
                    registrant_id,
                    profile.email_sha256,
                    profile.email,
                    profile.details_sha256,
                    profile.school,
                )
                result[profile.email_sha256] = RecordedRegistrant(
                    registrant_id, profile.email_sha256, inserted=True, changed=False
                )
                continue
            person = self.state.registrants[registrant_id]
            changed = person.details_sha256 != profile.details_sha256
            person.details_sha256 = profile.details_sha256
            person.email = profile.email
            result[profile.email_sha256] = RecordedRegistrant(
                registrant_id, profile.email_sha256, inserted=False, changed=changed
            )
        return result

    async def signups_of(
        self, keys: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], Signup]:
        return {k: self.state.signups[k] for k in keys if k in self.state.signups}

    async def add_signups(self, signups: Sequence[Signup]) -> None:
        for signup in signups:
            key = (signup.campaign_id, signup.registrant_id)
            if key in self.state.signups:
                raise ConcurrentDecisionError("signups_one_per_person")
            self.state.signups[key] = signup

    def _position(self, registration: Registration) -> Registration:
        if registration.status is not RegistrationStatus.WAITLISTED:
            return replace(registration, position=None)
        assert registration.waitlist_ordinal is not None
        rank = sum(
            1
            for r in self.state.registrations.values()
            if r.session_id == registration.session_id
            and r.status is RegistrationStatus.WAITLISTED
            and r.waitlist_ordinal is not None
            and r.waitlist_ordinal <= registration.waitlist_ordinal
        )
        return replace(registration, position=rank)

    async def live_registrations_of(
        self, keys: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], Registration]:
        wanted = set(keys)
        return {
            (r.session_id, r.registrant_id): self._position(r)
            for r in self.state.registrations.values()
            if r.live and (r.session_id, r.registrant_id) in wanted
        }

    async def lock_seats(self, session_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, SeatCounter]:
        locked = {}
        for i in sorted(set(session_ids)):
            if i in self.state.seats:
                seats = copy.copy(self.state.seats[i])
                seats.accepting = not self.state.sessions[i].cancelled
                locked[i] = seats
        return locked

    async def save_seats(self, counters: Sequence[SeatCounter]) -> None:
        for counter in counters:
            counter.check()  # the database's CHECK constraint
            self.state.seats[counter.session_id] = copy.copy(counter)

    async def add_registrations(self, registrations: Sequence[Registration]) -> None:
        for registration in registrations:
            live = await self.live_registrations_of(
                [(registration.session_id, registration.registrant_id)]
            )
            if live:
                raise ConcurrentDecisionError("registrations_one_live_per_person")
            self.state.registrations[registration.registration_id] = registration
            if registration.status is RegistrationStatus.CONFIRMED:
                self.state.confirmed_order[registration.registration_id] = next(self._order)

    async def save_submissions(self, records: Sequence[SubmissionRecord]) -> None:
        for record in records:
            key = (record.partner_id, record.submission_id)
            stored = self.state.submissions.get(key)
            if stored is not None and not (
                stored.status is SubmissionStatus.REJECTED
                or (
                    stored.status is not SubmissionStatus.ERASED
                    and stored.body_sha256 == record.body_sha256
                )
            ):
                raise ConcurrentDecisionError("submissions answered meanwhile")
            self.state.submissions[key] = record

    # Changes after the decision
    async def submission(
        self, partner_id: uuid.UUID, submission_id: str
    ) -> SubmissionRecord | None:
        return self.state.submissions.get((partner_id, submission_id))

    async def registrations(self, ids: Collection[uuid.UUID]) -> list[Registration]:
        return [
            self._position(self.state.registrations[i])
            for i in sorted(set(ids))
            if i in self.state.registrations
        ]

    async def waitlist_head(self, session_id: uuid.UUID, count: int) -> list[Registration]:
        waiting = [
            r
            for r in self.state.registrations.values()
            if r.session_id == session_id and r.status is RegistrationStatus.WAITLISTED
        ]
        waiting.sort(key=lambda r: r.waitlist_ordinal or 0)
        return waiting[: max(count, 0)]

    async def latest_confirmed(self, session_id: uuid.UUID, count: int) -> list[Registration]:
        confirmed = [
            r
            for r in self.state.registrations.values()
            if r.session_id == session_id and r.status is RegistrationStatus.CONFIRMED
        ]
        confirmed.sort(key=lambda r: self.state.confirmed_order[r.registration_id], reverse=True)
        return confirmed[: max(count, 0)]

    async def live_registrations_of_session(self, session_id: uuid.UUID) -> list[Registration]:
        return [
            r for r in self.state.registrations.values() if r.session_id == session_id and r.live
        ]

    async def live_registrations_of_registrant(
        self, registrant_id: uuid.UUID
    ) -> list[Registration]:
        return [
            r
            for r in self.state.registrations.values()
            if r.registrant_id == registrant_id and r.live
        ]

    async def update_registrations(
        self, changes: Sequence[RegistrationChange], *, at: datetime
    ) -> None:
        for change in changes:
            current = self.state.registrations[change.registration_id]
            self.state.registrations[change.registration_id] = replace(
                current, status=change.status, waitlist_ordinal=change.waitlist_ordinal
            )
            if change.status is RegistrationStatus.CONFIRMED:
                self.state.confirmed_order[change.registration_id] = next(self._order)

    async def registrant(self, registrant_id: uuid.UUID) -> RegistrantSummary | None:
        person = self.state.registrants.get(registrant_id)
        return RegistrantSummary(registrant_id, person.erased_at) if person else None

    async def partner_knows(self, partner_id: uuid.UUID, registrant_id: uuid.UUID) -> bool:
        return any(
            r.partner_id == partner_id and r.registrant_id == registrant_id
            for r in self.state.submissions.values()
        )

    async def erase_registrant(self, registrant_id: uuid.UUID, *, at: datetime) -> None:
        person = self.state.registrants[registrant_id]
        person.email = person.email_sha256 = person.details_sha256 = person.school = None
        person.erased_at = at
        for key, record in list(self.state.submissions.items()):
            if record.registrant_id == registrant_id:
                self.state.submissions[key] = replace(
                    record, status=SubmissionStatus.ERASED, body_sha256=None
                )


class FakeUnitOfWork(UnitOfWork):
    """A unit of work over the fake repository: rollback restores the state as it was."""

    def __init__(self, repository: FakeRepository | None = None) -> None:
        super().__init__(producer="registration")
        self.repository: FakeRepository = repository or FakeRepository()
        self.outbox: list[tuple[Event, Envelope]] = []
        self.commits = 0
        self._snapshot: State | None = None

    async def _begin(self) -> None:
        self._snapshot = copy.deepcopy(self.repository.state)

    async def _write_events(self, events: Sequence[tuple[Event, Envelope]]) -> None:
        self.outbox.extend(events)

    async def _commit(self) -> None:
        self.commits += 1
        self._snapshot = None

    async def _rollback(self) -> None:
        if self._snapshot is not None:
            self.repository.state = self._snapshot
            self._snapshot = None

    def events(self, kind: type[E] = Event) -> list[E]:  # type: ignore[assignment]
        """The events written to the outbox, of one kind."""
        return [e for e, _ in self.outbox if isinstance(e, kind)]
