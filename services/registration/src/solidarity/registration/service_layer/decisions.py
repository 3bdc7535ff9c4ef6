"""Deciding submissions: the one path every submission takes, Kafka or HTTP, a batch at a time.

For a batch: authenticate each submission (HTTP intake record or partner signature), load
what the rules need in a few statements, assess each submission in order, record the people
and their sign-ups, take seats under the sessions' locks (in id order), and publish an
answer for every submission. All of it is one transaction.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from solidarity.registration.domain.catalog import SessionRecord
from solidarity.registration.domain.partners import (
    PartnerAccount,
    signature_matches,
    signing_secret,
)
from solidarity.registration.domain.records import (
    IntakeRecord,
    OutcomeItem,
    Registration,
    RegistrationStatus,
    Signup,
    SubmissionRecord,
)
from solidarity.registration.domain.submissions import (
    Assessment,
    Knowledge,
    PriorSubmission,
    RegistrantProfile,
    Rejection,
    SubmissionStatus,
    assess,
    body_sha256,
    normalise_email,
)
from solidarity.registration.service_layer.commands import DecideSubmissions, ReceivedSubmission
from solidarity.registration.service_layer.unit_of_work import UnitOfWork
from solidarity.shared.contracts.envelope import utc_now
from solidarity.shared.contracts.events.common import RejectionReason
from solidarity.shared.contracts.events.registration import (
    RegistrantRecordedV1,
    SessionRegistrationConfirmedV1,
    SessionRegistrationRejectedV1,
    SessionRegistrationWaitlistedV1,
    SignupConfirmedV1,
    registrant_key,
)

# Refusals that say nothing about the submission itself: nothing is recorded under its id,
# so a forged or mistaken message cannot take a partner's submission id.
_NOT_RECORDED = frozenset(
    {
        RejectionReason.INVALID_SIGNATURE,
        RejectionReason.UNKNOWN_PARTNER,
        RejectionReason.DUPLICATE,
        RejectionReason.ERASED,
    }
)

Source = Literal["kafka", "http"]


@dataclass
class DecisionReport:
    """What a batch came to, for metrics and logs (no personal data)."""

    by_source: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rejections: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class _Plan:
    """One submission on its way through the batch."""

    received: ReceivedSubmission
    source: Source
    assessment: Assessment
    registrant_id: uuid.UUID | None = None
    outcome: list[OutcomeItem] = field(default_factory=list)
    # Sessions found cancelled under their lock, after the assessment read them open.
    late_rejections: list[tuple[uuid.UUID, Rejection]] = field(default_factory=list)

    @property
    def granted_nothing(self) -> bool:
        return not any(item.kind in ("signup", "session") for item in self.outcome)


@dataclass(frozen=True, slots=True)
class _SeatRequest:
    plan: _Plan
    session: SessionRecord


def authenticate(
    received: ReceivedSubmission,
    *,
    intake: dict[uuid.UUID, IntakeRecord],
    partners: dict[uuid.UUID, PartnerAccount],
    master_key: bytes | None,
) -> tuple[Source, Rejection | None]:
    """Where it came from, and why it cannot be trusted (or None when it can)."""
    submission = received.submission
    accepted = intake.get(received.event_id)
    if (
        accepted is not None
        and accepted.partner_id == submission.partner_id
        and accepted.envelope_sha256 == hashlib.sha256(received.raw_envelope).digest()
    ):
        return "http", None  # this service wrote it after checking the partner's API key
    partner = partners.get(submission.partner_id)
    if partner is None or not partner.active:
        return "kafka", Rejection(RejectionReason.UNKNOWN_PARTNER)
    if master_key is None:
        return "kafka", Rejection(
            RejectionReason.INVALID_SIGNATURE, "signed submissions are not enabled on this service"
        )
    if received.signed_partner != str(submission.partner_id):
        return "kafka", Rejection(
            RejectionReason.INVALID_SIGNATURE, "x-solidarity-partner does not match partner_id"
        )
    secret = signing_secret(master_key, partner.partner_id, partner.secret_version)
    if not signature_matches(secret, received.raw_envelope, received.signature):
        return "kafka", Rejection(RejectionReason.INVALID_SIGNATURE)
    return "kafka", None


async def decide_submissions(
    cmd: DecideSubmissions,
    uow: UnitOfWork,
    *,
    master_key: bytes | None,
    clock: Callable[[], datetime] = utc_now,
) -> DecisionReport:
    """Decide a batch of submissions in one unit of work; every one gets an answer."""
    report = DecisionReport()
    async with uow:
        plans = await _assess_all(cmd, uow, master_key=master_key, now=clock())
        await _record_people(plans, uow)
        await _record_signups(plans, uow)
        await _take_seats(plans, uow)
        _publish_answers(plans, uow, report)
        repo = uow.repository
        await repo.save_submissions(
            [record for plan in plans if (record := _submission_record(plan)) is not None]
        )
        await repo.forget_intake([p.received.event_id for p in plans])
        await uow.commit()
    return report


async def _assess_all(
    cmd: DecideSubmissions, uow: UnitOfWork, *, master_key: bytes | None, now: datetime
) -> list[_Plan]:
    repo = uow.repository
    subs = [r.submission for r in cmd.submissions]
    intake = await repo.intake([r.event_id for r in cmd.submissions])
    partners = await repo.partners({s.partner_id for s in subs})
    campaigns = await repo.campaigns_by_slug({s.campaign for s in subs})
    sessions = await repo.sessions({sid for s in subs for sid in s.session_ids})
    prior = await repo.prior_submissions({(s.partner_id, s.submission_id) for s in subs})
    emails = {s.registrant.email: normalise_email(s.registrant.email) for s in subs}
    people = await repo.registrants_by_email(
        {registrant_key(e) for e in emails.values() if e is not None}
    )
    signups = await repo.signups_of(
        {
            (campaigns[s.campaign].campaign_id, people[key])
            for s in subs
            if s.campaign in campaigns
            and (email := emails[s.registrant.email]) is not None
            and (key := registrant_key(email)) in people
        }
    )
    held = await repo.live_registrations_of(
        {
            (sid, people[key])
            for s in subs
            if (email := emails[s.registrant.email]) is not None
            and (key := registrant_key(email)) in people
            for sid in s.session_ids
        }
    )
    hash_of = {registrant_id: key for key, registrant_id in people.items()}
    knowledge = Knowledge(
        partners=partners,
        campaigns=campaigns,
        sessions=sessions,
        prior=dict(prior),
        signups=frozenset((c, hash_of[r]) for c, r in signups),
        registrations=frozenset((s, hash_of[r]) for s, r in held),
        emails=emails,
    )
    plans: list[_Plan] = []
    for received in cmd.submissions:
        source, refusal = authenticate(
            received, intake=intake, partners=partners, master_key=master_key
        )
        assessment = assess(
            received.submission, authentication=refusal, knowledge=knowledge, now=now
        )
        plans.append(_Plan(received=received, source=source, assessment=assessment))
        rejection = assessment.rejection
        if rejection is None or rejection.reason not in _NOT_RECORDED:
            # A later copy in this same batch is a repeat of this one.
            submission = received.submission
            knowledge.prior[(submission.partner_id, submission.submission_id)] = PriorSubmission(
                status=SubmissionStatus.REJECTED if rejection else SubmissionStatus.DECIDED,
                body_sha256=body_sha256(submission),
                registrant_id=None,
            )
    return plans


async def _record_people(plans: list[_Plan], uow: UnitOfWork) -> None:
    granted = [p for p in plans if p.assessment.grants_anything]
    latest: dict[str, tuple[_Plan, RegistrantProfile]] = {}
    for plan in granted:
        profile = plan.assessment.profile
        assert profile is not None
        latest[profile.email_sha256] = (plan, profile)  # the last details in the batch win
    recorded = await uow.repository.record_registrants([p for _, p in latest.values()])
    for plan in granted:
        profile = plan.assessment.profile
        assert profile is not None
        plan.registrant_id = recorded[profile.email_sha256].registrant_id
    for email_sha256, (plan, profile) in latest.items():
        person = recorded[email_sha256]
        if not (person.inserted or person.changed):
            continue
        # Contact details go only to the platform's own services, never to outcomes.
        uow.publish(
            RegistrantRecordedV1(
                registrant_id=person.registrant_id,
                email=profile.email,
                name=profile.name,
                role=plan.received.submission.registrant.role,
                locale=profile.locale,
                time_zone=profile.time_zone,
            ),
            correlation_id=plan.received.correlation_id,
            causation_id=plan.received.event_id,
        )


async def _record_signups(plans: list[_Plan], uow: UnitOfWork) -> None:
    wanted = [p for p in plans if p.assessment.grants_anything and p.assessment.signup]
    keys = {_campaign_key(p) for p in wanted}
    existing = await uow.repository.signups_of(keys)
    made: dict[tuple[uuid.UUID, uuid.UUID], Signup] = {}
    for plan in wanted:
        key = _campaign_key(plan)
        signup = existing.get(key) or made.get(key)
        duplicate = signup is not None
        if signup is None:
            submission = plan.received.submission
            profile = plan.assessment.profile
            assert profile is not None
            assert plan.registrant_id is not None
            signup = Signup(
                signup_id=uuid.uuid4(),
                campaign_id=key[0],
                registrant_id=plan.registrant_id,
                partner_id=submission.partner_id,
                role=profile.role,
                school=profile.school_or_organization,
                invitations=submission.consents.invitations,
                giveaways=submission.consents.giveaways,
                news=submission.consents.news,
                answers=_answers_kept(plan),
            )
            made[key] = signup
        plan.outcome.append(
            OutcomeItem(
                kind="signup",
                signup_id=signup.signup_id,
                status="confirmed",
                duplicate=duplicate,
            )
        )
    await uow.repository.add_signups(list(made.values()))


async def _take_seats(plans: list[_Plan], uow: UnitOfWork) -> None:
    repo = uow.repository
    granted = [p for p in plans if p.assessment.grants_anything]
    keys = {(s.session_id, p.registrant_id) for p in granted for s in p.assessment.sessions}
    existing = await repo.live_registrations_of({(s, r) for s, r in keys if r is not None})
    requests: dict[uuid.UUID, list[_SeatRequest]] = defaultdict(list)
    first_in_batch: dict[tuple[uuid.UUID, uuid.UUID], _SeatRequest] = {}
    repeats: list[tuple[_Plan, _SeatRequest]] = []
    for plan in granted:
        assert plan.registrant_id is not None
        for session in plan.assessment.sessions:
            key = (session.session_id, plan.registrant_id)
            held = existing.get(key)
            if held is not None:
                plan.outcome.append(_held_outcome(held))
            elif key in first_in_batch:
                repeats.append((plan, first_in_batch[key]))
                plan.outcome.append(OutcomeItem(kind="session", session_id=session.session_id))
            else:
                request = _SeatRequest(plan, session)
                first_in_batch[key] = request
                requests[session.session_id].append(request)
                plan.outcome.append(OutcomeItem(kind="session", session_id=session.session_id))
    if not requests:
        return
    counters = await repo.lock_seats(list(requests))
    new_rows: list[Registration] = []
    decided: dict[tuple[uuid.UUID, uuid.UUID], OutcomeItem] = {}
    for session_id in sorted(requests):
        seats = counters[session_id]
        queue = requests[session_id]
        if not seats.accepting:  # cancelled since the assessment read it: no seat, no wait
            refusal = Rejection(RejectionReason.SESSION_CANCELLED)
            for request in queue:
                request.plan.outcome = [
                    i for i in request.plan.outcome if i.session_id != session_id
                ]
                request.plan.late_rejections.append((session_id, refusal))
            continue
        allocation = seats.allocate(len(queue))
        for index, request in enumerate(queue):
            slot = allocation.slot_for(index)
            registrant_id = request.plan.registrant_id
            assert registrant_id is not None
            submission = request.plan.received.submission
            profile = request.plan.assessment.profile
            assert profile is not None
            row = Registration(
                registration_id=uuid.uuid4(),
                session_id=session_id,
                campaign_id=request.session.campaign_id,
                focus_day_id=request.session.focus_day_id,
                registrant_id=registrant_id,
                partner_id=submission.partner_id,
                submission_id=submission.submission_id,
                status=RegistrationStatus.CONFIRMED
                if slot is None
                else RegistrationStatus.WAITLISTED,
                role=profile.role,
                school=profile.school_or_organization,
                waitlist_ordinal=None if slot is None else slot.ordinal,
            )
            new_rows.append(row)
            item = OutcomeItem(
                kind="session",
                session_id=session_id,
                registration_id=row.registration_id,
                status=row.status.value,
                position=None if slot is None else slot.position,
            )
            decided[(session_id, registrant_id)] = item
            _replace_placeholder(request.plan, item)
    for plan, first in repeats:
        assert first.plan.registrant_id is not None
        earlier = decided.get((first.session.session_id, first.plan.registrant_id))
        if earlier is None:  # the first request met a cancelled session: so does this one
            plan.outcome = [i for i in plan.outcome if i.session_id != first.session.session_id]
            plan.late_rejections += first.plan.late_rejections[-1:]
            continue
        _replace_placeholder(plan, _as_duplicate(earlier))
    await repo.add_registrations(new_rows)
    await repo.save_seats([counters[s] for s in sorted(counters)])


def _replace_placeholder(plan: _Plan, item: OutcomeItem) -> None:
    for index, existing in enumerate(plan.outcome):
        if (
            existing.kind == "session"
            and existing.session_id == item.session_id
            and existing.registration_id is None
        ):
            plan.outcome[index] = item
            return
    raise AssertionError("no placeholder for this session")


def _as_duplicate(item: OutcomeItem) -> OutcomeItem:
    return OutcomeItem(
        kind=item.kind,
        session_id=item.session_id,
        registration_id=item.registration_id,
        signup_id=item.signup_id,
        status=item.status,
        position=item.position,
        duplicate=True,
    )


def _held_outcome(held: Registration) -> OutcomeItem:
    return OutcomeItem(
        kind="session",
        session_id=held.session_id,
        registration_id=held.registration_id,
        status=held.status.value,
        position=held.position,
        duplicate=True,
    )


def _campaign_key(plan: _Plan) -> tuple[uuid.UUID, uuid.UUID]:
    campaign = plan.assessment.campaign
    assert campaign is not None
    assert plan.registrant_id is not None
    return (campaign.campaign_id, plan.registrant_id)


def _answers_kept(plan: _Plan) -> dict[str, str]:
    """Only answers to the campaign's own questions are kept."""
    campaign = plan.assessment.campaign
    assert campaign is not None
    asked = {q.key for q in campaign.questions}
    return {k: v for k, v in plan.received.submission.answers.items() if k in asked}


def _publish_answers(plans: list[_Plan], uow: UnitOfWork, report: DecisionReport) -> None:
    for plan in plans:
        received = plan.received
        submission = received.submission
        assessment = plan.assessment
        campaign_id = assessment.campaign.campaign_id if assessment.campaign else None
        ids = {
            "correlation_id": received.correlation_id,
            "causation_id": received.event_id,
        }
        report.by_source[plan.source] += 1
        rejections: list[tuple[uuid.UUID | None, Rejection]] = [
            *assessment.session_rejections,
            *plan.late_rejections,
        ]
        if assessment.rejection is not None and not rejections:
            rejections = [(None, assessment.rejection)]
        for item in plan.outcome:
            assert plan.registrant_id is not None
            assert campaign_id is not None
            if item.kind == "signup":
                assert item.signup_id is not None
                uow.publish(
                    SignupConfirmedV1(
                        partner_id=submission.partner_id,
                        submission_id=submission.submission_id,
                        registrant_id=plan.registrant_id,
                        campaign_id=campaign_id,
                        signup_id=item.signup_id,
                        role=submission.registrant.role,
                        consents=submission.consents,
                        duplicate=item.duplicate,
                    ),
                    **ids,
                )
                report.outcomes["signup_confirmed"] += 1
                continue
            assert item.session_id is not None
            assert item.registration_id is not None
            if item.status == RegistrationStatus.CONFIRMED.value:
                uow.publish(
                    SessionRegistrationConfirmedV1(
                        partner_id=submission.partner_id,
                        submission_id=submission.submission_id,
                        registrant_id=plan.registrant_id,
                        campaign_id=campaign_id,
                        registration_id=item.registration_id,
                        session_id=item.session_id,
                        duplicate=item.duplicate,
                    ),
                    **ids,
                )
                report.outcomes["confirmed"] += 1
            else:
                uow.publish(
                    SessionRegistrationWaitlistedV1(
                        partner_id=submission.partner_id,
                        submission_id=submission.submission_id,
                        registrant_id=plan.registrant_id,
                        campaign_id=campaign_id,
                        registration_id=item.registration_id,
                        session_id=item.session_id,
                        position=item.position or 1,
                        duplicate=item.duplicate,
                    ),
                    **ids,
                )
                report.outcomes["waitlisted"] += 1
        for session_id, rejection in rejections:
            uow.publish(
                SessionRegistrationRejectedV1(
                    partner_id=submission.partner_id,
                    submission_id=submission.submission_id,
                    registrant_id=plan.registrant_id,
                    campaign_id=campaign_id,
                    session_id=session_id,
                    reason=rejection.reason,
                    detail=rejection.detail,
                ),
                **ids,
            )
            plan.outcome.append(
                OutcomeItem(
                    kind="rejected",
                    session_id=session_id,
                    reason=rejection.reason.value,
                    detail=rejection.detail or None,
                )
            )
            report.outcomes["rejected"] += 1
            report.rejections[rejection.reason.value] += 1


def _submission_record(plan: _Plan) -> SubmissionRecord | None:
    assessment = plan.assessment
    rejection = assessment.rejection
    if rejection is not None and rejection.reason in _NOT_RECORDED:
        return None
    submission = plan.received.submission
    return SubmissionRecord(
        partner_id=submission.partner_id,
        submission_id=submission.submission_id,
        event_id=plan.received.event_id,
        body_sha256=body_sha256(submission),
        source=plan.source,
        status=SubmissionStatus.REJECTED
        if rejection is not None or plan.granted_nothing
        else SubmissionStatus.DECIDED,
        registrant_id=plan.registrant_id,
        campaign_id=assessment.campaign.campaign_id if assessment.campaign else None,
        outcome=tuple(plan.outcome),
    )
