"""The rule book of one submission: each way to be refused, and what a repeat gets."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from solidarity.registration.domain.submissions import (
    Knowledge,
    PriorSubmission,
    Rejection,
    SubmissionStatus,
    assess,
    body_sha256,
    check_answers,
    normalise_email,
)
from solidarity.shared.contracts.events.catalog import RegistrationQuestion
from solidarity.shared.contracts.events.common import CampaignStatus, RejectionReason, Role
from solidarity.shared.contracts.events.registration import registrant_key
from tests.unit.registration.builders import NOW, campaign, partner, session, submitted

pytestmark = pytest.mark.unit

WEEK = campaign("week")
OPEN = session(WEEK.campaign_id)
PARTNER = partner("week", "draft", "missing")
KNOWLEDGE = Knowledge(
    partners={PARTNER.partner_id: PARTNER},
    campaigns={"week": WEEK, "draft": campaign("draft", status=CampaignStatus.DRAFT)},
    sessions={OPEN.session_id: OPEN},
)


def reason(event: object, knowledge: Knowledge = KNOWLEDGE) -> RejectionReason | None:
    verdict = assess(event, authentication=None, knowledge=knowledge, now=NOW)  # type: ignore[arg-type]
    return verdict.rejection.reason if verdict.rejection else None


def test_a_good_submission_is_granted() -> None:
    verdict = assess(
        submitted(PARTNER.partner_id, session_ids=(OPEN.session_id,)),
        authentication=None,
        knowledge=KNOWLEDGE,
        now=NOW,
    )
    assert verdict.rejection is None
    assert verdict.signup
    assert [s.session_id for s in verdict.sessions] == [OPEN.session_id]
    assert verdict.profile is not None
    assert verdict.profile.role == "student"


def test_each_refusal_has_its_reason() -> None:
    pid = PARTNER.partner_id
    assert reason(submitted(uuid.uuid4())) is RejectionReason.UNKNOWN_PARTNER
    assert reason(submitted(pid, "elsewhere")) is RejectionReason.PARTNER_NOT_ALLOWED
    assert reason(submitted(pid, "missing")) is RejectionReason.UNKNOWN_CAMPAIGN
    assert reason(submitted(pid, "draft")) is RejectionReason.CAMPAIGN_NOT_OPEN
    assert reason(submitted(pid, email="no-at-sign")) is RejectionReason.INVALID_EMAIL
    unknown = submitted(pid, session_ids=(uuid.uuid4(),), signup=False)
    assert reason(unknown) is RejectionReason.UNKNOWN_SESSION
    cancelled = replace(OPEN, status="cancelled")
    knowledge = replace(KNOWLEDGE, sessions={OPEN.session_id: cancelled})
    only_session = submitted(pid, session_ids=(OPEN.session_id,), signup=False)
    assert reason(only_session, knowledge) is RejectionReason.SESSION_CANCELLED
    educators = replace(OPEN, audience=(Role.EDUCATOR,))
    knowledge = replace(KNOWLEDGE, sessions={OPEN.session_id: educators})
    assert reason(only_session, knowledge) is RejectionReason.NOT_IN_AUDIENCE
    refused = assess(
        only_session,
        authentication=Rejection(RejectionReason.INVALID_SIGNATURE),
        knowledge=KNOWLEDGE,
        now=NOW,
    )
    assert refused.rejection == Rejection(RejectionReason.INVALID_SIGNATURE)


def test_a_partly_refused_submission_keeps_what_can_be_granted() -> None:
    missing = uuid.uuid4()
    verdict = assess(
        submitted(PARTNER.partner_id, session_ids=(OPEN.session_id, missing)),
        authentication=None,
        knowledge=KNOWLEDGE,
        now=NOW,
    )
    assert verdict.rejection is None
    assert verdict.session_rejections == ((missing, Rejection(RejectionReason.UNKNOWN_SESSION)),)


def test_the_same_submission_id_with_another_body_is_a_duplicate() -> None:
    first = submitted(PARTNER.partner_id, submission_id="s-1")
    other = submitted(PARTNER.partner_id, submission_id="s-1")
    prior = {
        (PARTNER.partner_id, "s-1"): PriorSubmission(
            SubmissionStatus.DECIDED, body_sha256(first), uuid.uuid4()
        )
    }
    knowledge = replace(KNOWLEDGE, prior=prior)
    assert reason(first, knowledge) is None
    assert assess(first, authentication=None, knowledge=knowledge, now=NOW).repeat
    assert reason(other, knowledge) is RejectionReason.DUPLICATE
    erased = replace(
        KNOWLEDGE, prior={k: replace(v, status=SubmissionStatus.ERASED) for k, v in prior.items()}
    )
    assert reason(first, erased) is RejectionReason.ERASED
    rejected = replace(
        KNOWLEDGE, prior={k: replace(v, status=SubmissionStatus.REJECTED) for k, v in prior.items()}
    )
    assert reason(other, rejected) is None, "a refused submission may be corrected and resent"


def test_what_a_person_already_holds_is_answered_even_after_the_window_closes() -> None:
    closed = replace(WEEK, ends_on=NOW.date().replace(day=1))
    event = submitted(PARTNER.partner_id, email="Sam@Example.org", session_ids=(OPEN.session_id,))
    person = registrant_key("sam@example.org")
    holding = replace(
        KNOWLEDGE,
        campaigns={"week": closed},
        signups=frozenset({(WEEK.campaign_id, person)}),
        registrations=frozenset({(OPEN.session_id, person)}),
    )
    assert reason(event, holding) is None
    assert reason(event, replace(KNOWLEDGE, campaigns={"week": closed})) is (
        RejectionReason.REGISTRATION_WINDOW_CLOSED
    )


def test_answers_must_fit_the_campaigns_questions() -> None:
    questions = (
        RegistrationQuestion(key="why", label="Why?", required=True),
        RegistrationQuestion(key="grade", label="Grade", kind="choice", choices=("6", "7", "8")),
    )
    assert check_answers(questions, {"why": "because"}) is None
    assert check_answers(questions, {}) == "missing answer to required question 'why'"
    assert "choices" in (check_answers(questions, {"why": "x", "grade": "12"}) or "")
    asking = replace(KNOWLEDGE, campaigns={"week": replace(WEEK, questions=questions)})
    unanswered = submitted(PARTNER.partner_id, answers={"grade": "7"})
    assert reason(unanswered, asking) is RejectionReason.INVALID_SUBMISSION


def test_emails_are_normalised_without_dns() -> None:
    assert normalise_email("  Amara@Example.ORG ") == "amara@example.org"
    assert normalise_email("amara@localhost") is None
    assert normalise_email("not an email") is None
