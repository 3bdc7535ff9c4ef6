"""Builders of catalog state, partners and submissions for the unit tests."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from solidarity.registration.domain.catalog import CampaignView, SessionRecord
from solidarity.registration.domain.partners import PartnerAccount
from solidarity.registration.domain.seats import SeatCounter
from solidarity.registration.service_layer.commands import ReceivedSubmission
from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.contracts.events.catalog import RegistrationQuestion
from solidarity.shared.contracts.events.common import CampaignStatus, Role
from solidarity.shared.contracts.events.registration import (
    RegistrantDetails,
    RegistrationSubmittedV1,
)
from tests.unit.registration.fakes import FakeRepository

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
MASTER_KEY = b"unit-test-master-key-0123456789"


def campaign(
    slug: str = "week",
    *,
    status: CampaignStatus = CampaignStatus.PUBLISHED,
    ends_on: date = date(2026, 11, 30),
    questions: tuple[RegistrationQuestion, ...] = (),
    revision: int = 1,
    campaign_id: uuid.UUID | None = None,
) -> CampaignView:
    return CampaignView(
        campaign_id=campaign_id or uuid.uuid4(),
        slug=slug,
        status=status,
        starts_on=date(2026, 11, 1),
        ends_on=ends_on,
        time_zone="America/New_York",
        questions=questions,
        revision=revision,
    )


def session(
    campaign_id: uuid.UUID,
    *,
    capacity: int | None = 2,
    starts_at: datetime = NOW + timedelta(days=3),
    audience: tuple[Role, ...] = (),
    status: str = "scheduled",
) -> SessionRecord:
    return SessionRecord(
        session_id=uuid.uuid4(),
        campaign_id=campaign_id,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        audience=audience,
        status=status,
        capacity=capacity,
        state_revision=1,
        status_revision=1,
        capacity_revision=1,
    )


def partner(*campaigns: str, name: str = "Riverside") -> PartnerAccount:
    return PartnerAccount(partner_id=uuid.uuid4(), name=name, campaigns=frozenset(campaigns))


def submitted(
    partner_id: uuid.UUID,
    campaign_slug: str = "week",
    *,
    email: str | None = None,
    submission_id: str | None = None,
    session_ids: tuple[uuid.UUID, ...] = (),
    signup: bool = True,
    role: Role = Role.STUDENT,
    answers: dict[str, str] | None = None,
    name: str | None = None,
) -> RegistrationSubmittedV1:
    token = uuid.uuid4().hex[:8]
    return RegistrationSubmittedV1(
        partner_id=partner_id,
        submission_id=submission_id or f"s-{token}",
        campaign=campaign_slug,
        registrant=RegistrantDetails(
            email=email or f"p-{token}@example.org", role=role, name=name, school="Riverside High"
        ),
        session_ids=session_ids,
        signup=signup,
        answers=answers or {},
    )


def received(event: RegistrationSubmittedV1, *, secret: str | None = None) -> ReceivedSubmission:
    from solidarity.registration.domain.partners import sign

    envelope = Envelope.wrap(event, producer="partner")
    raw = envelope.to_bytes()
    return ReceivedSubmission(
        event_id=envelope.event_id,
        correlation_id=envelope.correlation_id,
        submission=event,
        raw_envelope=raw,
        signature=sign(secret, raw) if secret else None,
        signed_partner=str(event.partner_id) if secret else None,
    )


def seed(
    repo: FakeRepository,
    *,
    campaigns: tuple[CampaignView, ...] = (),
    sessions: tuple[SessionRecord, ...] = (),
    partners: tuple[PartnerAccount, ...] = (),
) -> None:
    for c in campaigns:
        repo.state.campaigns[c.campaign_id] = c
    for s in sessions:
        repo.state.sessions[s.session_id] = s
        repo.state.seats[s.session_id] = SeatCounter(session_id=s.session_id, capacity=s.capacity)
    for p in partners:
        repo.state.partners[p.partner_id] = p
