"""What a submission asks for, and whether each part of it can be granted.

`assess` is the whole rule book for one submission, given what the service knows (the
partner, the campaign, the sessions, any earlier submission with the same id) and the
time. It never touches a database: the handler loads what it needs, in batches, and
applies the verdicts.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email

from solidarity.registration.domain.catalog import CampaignView, SessionRecord
from solidarity.registration.domain.partners import PartnerAccount
from solidarity.shared.contracts.events.catalog import RegistrationQuestion
from solidarity.shared.contracts.events.common import RejectionReason
from solidarity.shared.contracts.events.registration import (
    RegistrantDetails,
    RegistrationSubmittedV1,
    registrant_key,
)


class SubmissionStatus(StrEnum):
    DECIDED = "decided"  # at least part of it was granted (or answered as a repeat)
    REJECTED = "rejected"  # refused as a whole
    ERASED = "erased"  # its registrant has since been erased


@dataclass(frozen=True, slots=True)
class PriorSubmission:
    """An earlier submission with the same partner and submission id."""

    status: SubmissionStatus
    body_sha256: str | None
    registrant_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectionReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RegistrantProfile:
    """A registrant's details after validation (email normalised)."""

    email: str
    name: str | None
    pronouns: str | None
    role: str
    age_band: str
    school: str | None
    organization: str | None
    time_zone: str | None
    locale: str
    email_sha256: str = ""  # the registrant key: set from the email when not given

    def __post_init__(self) -> None:
        if not self.email_sha256:
            object.__setattr__(self, "email_sha256", registrant_key(self.email))

    @property
    def details_sha256(self) -> str:
        fields = [
            self.email,
            self.name,
            self.pronouns,
            self.role,
            self.age_band,
            self.school,
            self.organization,
            self.time_zone,
            self.locale,
        ]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()

    @property
    def school_or_organization(self) -> str | None:
        return self.school or self.organization


@dataclass(frozen=True, slots=True)
class Assessment:
    """The verdict on one submission before seats are decided."""

    rejection: Rejection | None = None
    profile: RegistrantProfile | None = None
    campaign: CampaignView | None = None
    signup: bool = False
    sessions: tuple[SessionRecord, ...] = ()
    session_rejections: tuple[tuple[uuid.UUID, Rejection], ...] = ()
    repeat: bool = False  # the same submission again: answered with what exists

    @property
    def grants_anything(self) -> bool:
        return self.rejection is None and (self.signup or bool(self.sessions))


@dataclass(frozen=True, slots=True)
class Knowledge:
    """What the service knows that bears on a batch of submissions."""

    partners: dict[uuid.UUID, PartnerAccount] = field(default_factory=dict)
    campaigns: dict[str, CampaignView] = field(default_factory=dict)
    sessions: dict[uuid.UUID, SessionRecord] = field(default_factory=dict)
    prior: dict[tuple[uuid.UUID, str], PriorSubmission] = field(default_factory=dict)
    # What people (by email hash) already hold: answered as it is, whatever the rules say now.
    signups: frozenset[tuple[uuid.UUID, str]] = frozenset()  # (campaign_id, email_sha256)
    registrations: frozenset[tuple[uuid.UUID, str]] = frozenset()  # (session_id, email_sha256)
    # Addresses already normalised for this batch (raw -> canonical, None when invalid).
    emails: dict[str, str | None] = field(default_factory=dict)


def body_sha256(submission: RegistrationSubmittedV1) -> str:
    """A fingerprint of what was asked, the same whether it came over Kafka or HTTP."""
    return hashlib.sha256(submission.model_dump_json().encode()).hexdigest()


def normalise_email(raw: str) -> str | None:
    """The address in canonical form, or None if it is not a valid address (no DNS lookups).

    Lower-cased as a whole: the registrant key ignores case, so the address kept does too.
    """
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.normalized.lower()


def check_answers(
    questions: tuple[RegistrationQuestion, ...], answers: dict[str, str]
) -> str | None:
    """Why the answers do not fit the campaign's questions (no answer text in it), or None."""
    for question in questions:
        answer = answers.get(question.key, "").strip()
        if question.required and not answer:
            return f"missing answer to required question {question.key!r}"
        if answer and question.kind == "choice" and answer not in (question.choices or (answer,)):
            return f"answer to {question.key!r} is not one of its choices"
        if len(answer) > 2000:
            return f"answer to {question.key!r} is longer than 2000 characters"
    return None


def profile_of(details: RegistrantDetails, email: str) -> RegistrantProfile:
    return RegistrantProfile(
        email=email,
        name=details.name,
        pronouns=details.pronouns,
        role=details.role.value,
        age_band=details.age_band.value,
        school=details.school,
        organization=details.organization,
        time_zone=details.time_zone,
        locale=details.locale,
    )


def assess(
    submission: RegistrationSubmittedV1,
    *,
    authentication: Rejection | None,
    knowledge: Knowledge,
    now: datetime,
) -> Assessment:
    """The verdict on one submission; `authentication` is the signature check's refusal."""
    if authentication is not None:
        return Assessment(rejection=authentication)
    partner = knowledge.partners.get(submission.partner_id)
    if partner is None or not partner.active:
        return Assessment(rejection=Rejection(RejectionReason.UNKNOWN_PARTNER))
    prior = knowledge.prior.get((submission.partner_id, submission.submission_id))
    repeat = False
    if prior is not None and prior.status is not SubmissionStatus.REJECTED:
        if prior.status is SubmissionStatus.ERASED:
            return Assessment(rejection=Rejection(RejectionReason.ERASED))
        if prior.body_sha256 != body_sha256(submission):
            return Assessment(
                rejection=Rejection(
                    RejectionReason.DUPLICATE,
                    "this submission_id was already used for a different submission",
                )
            )
        repeat = True
    if not partner.may_register_for(submission.campaign):
        return Assessment(rejection=Rejection(RejectionReason.PARTNER_NOT_ALLOWED))
    campaign = knowledge.campaigns.get(submission.campaign)
    if campaign is None:
        return Assessment(rejection=Rejection(RejectionReason.UNKNOWN_CAMPAIGN))
    raw = submission.registrant.email
    email = knowledge.emails[raw] if raw in knowledge.emails else normalise_email(raw)
    if email is None:
        return Assessment(rejection=Rejection(RejectionReason.INVALID_EMAIL))
    problem = check_answers(campaign.questions, submission.answers)
    if problem is not None:
        return Assessment(rejection=Rejection(RejectionReason.INVALID_SUBMISSION, problem))
    person = registrant_key(email)
    wanted = list(dict.fromkeys(submission.session_ids))  # a session asked twice counts once
    held_signup = (campaign.campaign_id, person) in knowledge.signups
    held = {s for s in wanted if (s, person) in knowledge.registrations}
    refusal = campaign.refuses_signups(now)
    if refusal is not None and not ((held_signup or not submission.signup) and held == set(wanted)):
        return Assessment(rejection=Rejection(refusal))
    granted: list[SessionRecord] = []
    refused: list[tuple[uuid.UUID, Rejection]] = []
    for session_id in wanted:
        session = knowledge.sessions.get(session_id)
        if session is None:
            refused.append((session_id, Rejection(RejectionReason.UNKNOWN_SESSION)))
            continue
        reason = None
        if session_id not in held:
            reason = session.refuses(
                campaign_id=campaign.campaign_id, role=submission.registrant.role, now=now
            )
        if reason is None:
            granted.append(session)
        else:
            refused.append((session_id, Rejection(reason)))
    assessment = Assessment(
        profile=profile_of(submission.registrant, email),
        campaign=campaign,
        signup=submission.signup,
        sessions=tuple(granted),
        session_rejections=tuple(refused),
        repeat=repeat,
    )
    if not assessment.grants_anything:
        # Nothing to grant: refuse the whole submission with the first session's reason.
        first = refused[0][1] if refused else Rejection(RejectionReason.INVALID_SUBMISSION)
        return Assessment(
            rejection=first,
            campaign=campaign,
            session_rejections=tuple(refused),
        )
    return assessment
