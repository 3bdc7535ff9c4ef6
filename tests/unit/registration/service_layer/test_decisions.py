"""Deciding batches with a fake unit of work: seats, waitlists, repeats, answers for all."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection
from dataclasses import replace

import pytest

from solidarity.registration.domain.catalog import SessionRecord
from solidarity.registration.domain.partners import signing_secret
from solidarity.registration.domain.records import IntakeRecord, RegistrationStatus
from solidarity.registration.service_layer.commands import DecideSubmissions
from solidarity.registration.service_layer.decisions import decide_submissions
from solidarity.shared.contracts.events.common import RejectionReason
from solidarity.shared.contracts.events.registration import (
    RegistrantRecordedV1,
    SessionRegistrationConfirmedV1,
    SessionRegistrationRejectedV1,
    SessionRegistrationWaitlistedV1,
    SignupConfirmedV1,
)
from tests.unit.registration.builders import (
    MASTER_KEY,
    NOW,
    campaign,
    partner,
    received,
    seed,
    session,
    submitted,
)
from tests.unit.registration.fakes import FakeRepository, FakeUnitOfWork

pytestmark = pytest.mark.unit


def world(capacity: int | None = 2) -> tuple[FakeUnitOfWork, uuid.UUID, uuid.UUID, str]:
    week = campaign("week")
    seats = session(week.campaign_id, capacity=capacity)
    account = partner("week")
    repo = FakeRepository()
    seed(repo, campaigns=(week,), sessions=(seats,), partners=(account,))
    secret = signing_secret(MASTER_KEY, account.partner_id)
    return FakeUnitOfWork(repo), account.partner_id, seats.session_id, secret


async def decide(uow: FakeUnitOfWork, *items: object) -> None:
    await decide_submissions(
        DecideSubmissions(tuple(items)),  # type: ignore[arg-type]
        uow,
        master_key=MASTER_KEY,
        clock=lambda: NOW,
    )


async def test_seats_go_first_come_first_served_then_an_ordered_waitlist() -> None:
    uow, partner_id, session_id, secret = world(capacity=2)
    people = [submitted(partner_id, session_ids=(session_id,)) for _ in range(5)]
    await decide(uow, *(received(p, secret=secret) for p in people))
    confirmed = uow.events(SessionRegistrationConfirmedV1)
    waitlisted = uow.events(SessionRegistrationWaitlistedV1)
    assert [e.submission_id for e in confirmed] == [p.submission_id for p in people[:2]]
    assert [(e.submission_id, e.position) for e in waitlisted] == [
        (p.submission_id, i) for i, p in enumerate(people[2:], start=1)
    ]
    assert len(uow.events(SignupConfirmedV1)) == 5
    assert len(uow.events(RegistrantRecordedV1)) == 5
    seats = uow.repository.state.seats[session_id]
    assert (seats.confirmed, seats.waitlisted) == (2, 3)
    assert uow.commits == 1


async def test_one_registration_per_person_per_session_whatever_the_repeats() -> None:
    uow, partner_id, session_id, secret = world(capacity=5)
    original = submitted(partner_id, email="sam@example.org", session_ids=(session_id,))
    other_id = submitted(partner_id, email="SAM@example.org", session_ids=(session_id,))
    await decide(uow, received(original, secret=secret), received(original, secret=secret))
    await decide(uow, received(other_id, secret=secret))
    seats = uow.events(SessionRegistrationConfirmedV1)
    assert len({e.registration_id for e in seats}) == 1
    assert [e.duplicate for e in seats] == [False, True, True]
    signups = uow.events(SignupConfirmedV1)
    assert [e.duplicate for e in signups] == [False, True, True]
    assert len(uow.events(RegistrantRecordedV1)) == 1
    assert len(uow.repository.state.registrations) == 1


async def test_every_refusal_is_published_and_partial_grants_stand() -> None:
    uow, partner_id, session_id, secret = world()
    missing = uuid.uuid4()
    partly = submitted(partner_id, session_ids=(session_id, missing))
    forged = submitted(partner_id)
    bad_email = submitted(partner_id, email="nope")
    await decide(
        uow,
        received(partly, secret=secret),
        received(forged, secret="sws_wrong"),
        received(bad_email, secret=secret),
    )
    rejected = {
        (e.submission_id, e.reason, e.session_id) for e in uow.events(SessionRegistrationRejectedV1)
    }
    assert rejected == {
        (partly.submission_id, RejectionReason.UNKNOWN_SESSION, missing),
        (forged.submission_id, RejectionReason.INVALID_SIGNATURE, None),
        (bad_email.submission_id, RejectionReason.INVALID_EMAIL, None),
    }
    state = uow.repository.state
    assert (partner_id, forged.submission_id) not in state.submissions, "forgeries take no id"
    assert state.submissions[(partner_id, bad_email.submission_id)].status.value == "rejected"
    assert state.submissions[(partner_id, partly.submission_id)].status.value == "decided"
    for event, _ in uow.outbox:
        if not isinstance(event, RegistrantRecordedV1):
            assert "@" not in event.model_dump_json(), "outcomes carry no personal data"


async def test_http_submissions_are_trusted_by_their_intake_record_not_a_signature() -> None:
    uow, partner_id, session_id, _ = world()
    event = submitted(partner_id, session_ids=(session_id,))
    item = received(event)  # unsigned
    uow.repository.state.intake[item.event_id] = IntakeRecord(
        item.event_id, partner_id, event.submission_id, hashlib.sha256(item.raw_envelope).digest()
    )
    tampered = received(submitted(partner_id))
    uow.repository.state.intake[tampered.event_id] = IntakeRecord(
        tampered.event_id, partner_id, "x", hashlib.sha256(b"other bytes").digest()
    )
    report = await decide_submissions(
        DecideSubmissions((item, tampered)), uow, master_key=MASTER_KEY, clock=lambda: NOW
    )
    assert report.by_source == {"http": 1, "kafka": 1}
    assert [e.reason for e in uow.events(SessionRegistrationRejectedV1)] == [
        RejectionReason.INVALID_SIGNATURE
    ]
    assert uow.repository.state.intake == {}, "decided intake is forgotten"
    record = uow.repository.state.submissions[(partner_id, event.submission_id)]
    assert record.source == "http"


async def test_without_a_master_key_signed_submissions_cannot_be_trusted() -> None:
    uow, partner_id, _, secret = world()
    await decide_submissions(
        DecideSubmissions((received(submitted(partner_id), secret=secret),)),
        uow,
        master_key=None,
        clock=lambda: NOW,
    )
    assert [e.reason for e in uow.events(SessionRegistrationRejectedV1)] == [
        RejectionReason.INVALID_SIGNATURE
    ]


async def test_the_registrations_recorded_match_the_answers() -> None:
    uow, partner_id, session_id, secret = world(capacity=1)
    people = [submitted(partner_id, session_ids=(session_id,)) for _ in range(3)]
    await decide(uow, *(received(p, secret=secret) for p in people))
    rows = sorted(
        uow.repository.state.registrations.values(), key=lambda r: r.waitlist_ordinal or 0
    )
    assert [r.status for r in rows] == [
        RegistrationStatus.CONFIRMED,
        RegistrationStatus.WAITLISTED,
        RegistrationStatus.WAITLISTED,
    ]
    record = uow.repository.state.submissions[(partner_id, people[2].submission_id)]
    assert [(i.kind, i.status, i.position) for i in record.outcome] == [
        ("signup", "confirmed", None),
        ("session", "waitlisted", 2),
    ]


class StaleSessions(FakeRepository):
    """Reads sessions as they were before a cancellation that another instance committed."""

    def __init__(self, stale: dict[uuid.UUID, SessionRecord]) -> None:
        super().__init__()
        self.stale = stale

    async def sessions(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, SessionRecord]:
        return {i: self.stale[i] for i in ids if i in self.stale}


async def test_a_session_cancelled_under_the_lock_gives_no_seat_and_no_waitlist() -> None:
    week = campaign("week")
    open_session = session(week.campaign_id, capacity=5)
    account = partner("week")
    repo = StaleSessions({open_session.session_id: open_session})
    seed(repo, campaigns=(week,), sessions=(open_session,), partners=(account,))
    repo.state.sessions[open_session.session_id] = replace(open_session, status="cancelled")
    uow = FakeUnitOfWork(repo)
    secret = signing_secret(MASTER_KEY, account.partner_id)
    only = submitted(account.partner_id, session_ids=(open_session.session_id,), signup=False)
    both = submitted(account.partner_id, session_ids=(open_session.session_id,))
    await decide(uow, received(only, secret=secret), received(both, secret=secret))
    assert not uow.events(SessionRegistrationConfirmedV1)
    assert [(e.submission_id, e.reason) for e in uow.events(SessionRegistrationRejectedV1)] == [
        (only.submission_id, RejectionReason.SESSION_CANCELLED),
        (both.submission_id, RejectionReason.SESSION_CANCELLED),
    ]
    assert repo.state.registrations == {}
    records = repo.state.submissions
    assert records[(account.partner_id, only.submission_id)].status.value == "rejected"
    assert records[(account.partner_id, both.submission_id)].status.value == "decided"
