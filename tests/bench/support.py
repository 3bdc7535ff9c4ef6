"""Made-up campaigns, partners and outcomes for the bench's unit tests."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from solidarity.shared.contracts.events.catalog import RegistrationQuestion
from solidarity.shared.demo import CampaignInfo, School, SessionInfo
from solidarity.shared.partners import Outcome, PartnerCredentials


def session(*, capacity: int = 500, audience: tuple[str, ...] = ()) -> SessionInfo:
    return SessionInfo(
        session_id=uuid.uuid4(),
        kind="webinar",
        title=f"Webinar {uuid.uuid4().hex[:4]}",
        starts_at=datetime(2027, 11, 2, 19, tzinfo=UTC),
        ends_at=datetime(2027, 11, 2, 20, tzinfo=UTC),
        time_zone="America/New_York",
        capacity=capacity,
        audience=audience,
        status="scheduled",
        sequence=0,
    )


def campaign(*sessions: SessionInfo) -> CampaignInfo:
    return CampaignInfo(
        campaign_id=uuid.uuid4(),
        slug="solidarity-week-2027",
        name="Solidarity Week",
        starts_on=date(2027, 11, 1),
        ends_on=date(2027, 11, 5),
        time_zone="America/New_York",
        status="published",
        questions=(
            RegistrationQuestion(
                key="role",
                label="I am a...",
                kind="choice",
                choices=("student", "educator", "family", "staff"),
                required=True,
            ),
            RegistrationQuestion(key="school", label="My school", kind="school"),
        ),
        sessions=sessions,
    )


def partner(name: str = "Riverside") -> PartnerCredentials:
    return PartnerCredentials(
        partner_id=uuid.uuid4(),
        name=name,
        api_key="sws_key_for_tests",
        signing_secret="sws_secret_for_tests_0123456789",
    )


SCHOOLS = [School(name=f"School {i}", time_zone="America/Chicago") for i in range(20)]


def outcome(
    event_type: str,
    submission_id: str,
    *,
    session_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
    duplicate: bool = False,
    reason: str | None = None,
) -> Outcome:
    payload: dict[str, Any] = {"submission_id": submission_id, "duplicate": duplicate}
    if session_id is not None:
        payload["session_id"] = str(session_id)
    if reason is not None:
        payload["reason"] = reason
    return Outcome(
        event_id=event_id or uuid.uuid4(),
        event_type=event_type,
        correlation_id=uuid.uuid4(),
        causation_id=uuid.uuid4(),
        payload=payload,
    )
