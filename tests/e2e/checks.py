"""What the end-to-end test checks, as plain functions over what it planned and read."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import icalendar

from solidarity.shared.demo import (
    AnswerBook,
    CampaignInfo,
    Kind,
    Plan,
    Planned,
    Verdict,
    verdict,
)
from solidarity.shared.partners import Outcome

MESSAGE_ID_DOMAIN = "solidarity.local"  # SOLIDARITY_MESSAGE_ID_DOMAIN's default
INVITED_KINDS = ("webinar", "speaking_engagement")  # SOLIDARITY_INVITATION_SESSION_KINDS
CONFIRMED = "SessionRegistrationConfirmed"
WAITLISTED = "SessionRegistrationWaitlisted"
REJECTED = "SessionRegistrationRejected"
SIGNUP = "SignupConfirmed"


def message_id(recipient_id: uuid.UUID, kind: str, subject_ref: str) -> str:
    """The Message-ID of a delivery (docs/services/notifications.md: the ledger key
    md5(recipient | kind | subject) as a UUID, at the Message-ID domain)."""
    digest = hashlib.md5(f"{recipient_id}|{kind}|{subject_ref}".encode(), usedforsecurity=False)
    return f"<{uuid.UUID(digest.hexdigest())}@{MESSAGE_ID_DOMAIN}>"


# Answers -------------------------------------------------------------------------------------


def fits(group: Sequence[Outcome], message: Planned) -> bool:
    """Whether one envelope's answers are exactly what the plan says this message gets."""
    if verdict(group, signup=message.signup, sessions=message.sessions) is not Verdict.COMPLETE:
        return False
    answers = [o for o in group if o.is_answer]
    if message.whole_rejection is not None:
        only = answers[0]
        return (
            only.event_type == REJECTED
            and only.session_id is None
            and (only.reason == message.whole_rejection)
        )
    for outcome in answers:
        if outcome.event_type == REJECTED:
            if outcome.session_id is None:
                return False
            if message.session_rejections.get(outcome.session_id) != outcome.reason:
                return False
        elif outcome.session_id is not None and outcome.session_id in message.session_rejections:
            return False
        if message.kind is Kind.REPEAT and outcome.event_type != REJECTED and not outcome.duplicate:
            return False
    return True


@dataclass
class Assignment:
    """Which envelope's answers belong to which planned message, and what did not fit."""

    answers: dict[int, list[Outcome]] = field(default_factory=dict)  # by index in plan
    problems: list[str] = field(default_factory=list)


def assign_answers(plan: Plan, book: AnswerBook) -> Assignment:
    """Give every decided message the answers to its envelope: by event id over Kafka; over
    HTTP (the service makes the envelope) by trying every pairing for a submission id."""
    assignment = Assignment()
    keyed: dict[tuple[int, str], list[int]] = defaultdict(list)
    for index, message in enumerate(plan.messages):
        keyed[(message.partner, message.submission_id)].append(index)
    for key in set(book.groups) - set(keyed):
        assignment.problems.append(f"answers for a submission nobody sent: {key}")
    for key, indexes in keyed.items():
        groups = book.groups.get(key, {})
        decided = [i for i in indexes if plan.messages[i].decided]
        if len(groups) != len(decided):
            assignment.problems.append(
                f"{key}: {len(decided)} envelope(s) sent, answers to {len(groups)}"
            )
            continue
        by_event = {plan.messages[i].event_id: i for i in decided}
        if None not in by_event:
            for event_id, group in groups.items():
                found_at = by_event.get(event_id)
                if found_at is None or not fits(group, plan.messages[found_at]):
                    assignment.problems.append(f"{key}: answers {_brief(group)} do not fit")
                    continue
                assignment.answers[found_at] = group
            continue
        found = next(
            (
                pairing
                for pairing in itertools.permutations(decided)
                if all(
                    fits(g, plan.messages[i]) for g, i in zip(groups.values(), pairing, strict=True)
                )
            ),
            None,
        )
        if found is None:
            shown = [_brief(g) for g in groups.values()]
            kinds = [plan.messages[i].kind.value for i in decided]
            assignment.problems.append(f"{key}: answers {shown} do not fit {kinds}")
            continue
        for group, index in zip(groups.values(), found, strict=True):
            assignment.answers[index] = group
    return assignment


def _brief(group: Iterable[Outcome]) -> list[str]:
    return [
        f"{o.event_type}{'(dup)' if o.duplicate else ''}{':' + o.reason if o.reason else ''}"
        for o in group
    ]


@dataclass(frozen=True, slots=True)
class Seat:
    """A person's registration for a session, as first answered."""

    registration_id: uuid.UUID
    registrant_id: uuid.UUID
    session_id: uuid.UUID
    person: int
    status: str  # "confirmed" or "waitlisted"
    position: int | None
    message: int  # the plan index of the message first answered with it


@dataclass
class Register:
    """What the answers established: who each person is, their sign-up, their seats."""

    registrant_of: dict[int, uuid.UUID] = field(default_factory=dict)
    signed_up: set[int] = field(default_factory=set)
    seats: dict[tuple[int, uuid.UUID], Seat] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def in_session(self, session_id: uuid.UUID) -> list[Seat]:
        return [s for (_, sid), s in self.seats.items() if sid == session_id]


def establish(plan: Plan, assignment: Assignment) -> Register:
    """One registrant per person, one sign-up and one registration per person and session,
    each answered exactly once as new and otherwise as a repeat."""
    register = Register()
    firsts: Counter[tuple[int, uuid.UUID | str]] = Counter()
    ids: dict[tuple[int, uuid.UUID | str], set[uuid.UUID]] = defaultdict(set)
    for index, group in assignment.answers.items():
        person = plan.messages[index].person.number
        for outcome in group:
            if outcome.registrant_id is None:
                continue
            known = register.registrant_of.setdefault(person, outcome.registrant_id)
            if known != outcome.registrant_id:
                register.problems.append(f"person {person} has two registrant ids")
            if outcome.event_type == SIGNUP:
                register.signed_up.add(person)
                ids[(person, SIGNUP)].add(uuid.UUID(str(outcome.payload["signup_id"])))
                firsts[(person, SIGNUP)] += not outcome.duplicate
            elif outcome.event_type in (CONFIRMED, WAITLISTED):
                assert outcome.session_id is not None
                assert outcome.registration_id is not None
                slot: tuple[int, uuid.UUID | str] = (person, outcome.session_id)
                ids[slot].add(outcome.registration_id)
                firsts[slot] += not outcome.duplicate
                if not outcome.duplicate:
                    register.seats[(person, outcome.session_id)] = Seat(
                        registration_id=outcome.registration_id,
                        registrant_id=outcome.registrant_id,
                        session_id=outcome.session_id,
                        person=person,
                        status="confirmed" if outcome.event_type == CONFIRMED else "waitlisted",
                        position=outcome.position,
                        message=index,
                    )
    for slot, found in ids.items():
        if len(found) != 1:
            register.problems.append(f"{slot}: {len(found)} different ids")
        if firsts[slot] != 1:
            register.problems.append(f"{slot}: answered as new {firsts[slot]} times")
    return register


# Mail ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpectedMail:
    kind: str
    to: str
    registration_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None


def first_mails(
    plan: Plan, register: Register, campaign: CampaignInfo, *, now: datetime
) -> dict[str, ExpectedMail]:
    """The mail the first answers must cause, by Message-ID: a welcome per sign-up; an
    invitation per webinar or speaking engagement ahead, to every signed-up person who
    consented to invitations and is in its audience; a confirmation per seat; a waitlist
    notice per waitlist place."""
    people = plan.people()
    mails: dict[str, ExpectedMail] = {}
    for number in register.signed_up:
        person = people[number]
        recipient = register.registrant_of[number]
        welcome = message_id(recipient, "signup_welcome", str(campaign.campaign_id))
        mails[welcome] = ExpectedMail("signup_welcome", person.email)
        if not person.consents.invitations:
            continue
        for session in campaign.sessions:
            if (
                session.open
                and session.kind in INVITED_KINDS
                and session.admits(person.role.value)
                and session.starts_at > now
            ):
                invite = message_id(recipient, "invitation", str(session.session_id))
                mails[invite] = ExpectedMail(
                    "invitation", person.email, session_id=session.session_id
                )
    for seat in register.seats.values():
        kind = "confirmation" if seat.status == "confirmed" else "waitlisted"
        mails[message_id(seat.registrant_id, kind, str(seat.registration_id))] = ExpectedMail(
            kind, people[seat.person].email, seat.registration_id, seat.session_id
        )
    return mails


def parse_mail(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def calendars(mail: EmailMessage) -> list[icalendar.Calendar]:
    """Every calendar in a mail (the `invite.ics` attachment and the text/calendar part)."""
    found: list[icalendar.Calendar] = []
    for part in mail.walk():
        if part.get_content_type() == "text/calendar" or part.get_filename() == "invite.ics":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found.append(icalendar.Calendar.from_ical(payload))
    return found


@dataclass(frozen=True, slots=True)
class Invite:
    method: str
    uid: str
    sequence: int
    starts_at: datetime


def invites(mail: EmailMessage) -> list[Invite]:
    """The calendar invites of a mail, each with its one VEVENT."""
    found: list[Invite] = []
    for calendar in calendars(mail):
        events = calendar.walk("VEVENT")
        assert len(events) == 1, "one VEVENT per invite"
        event = events[0]
        found.append(
            Invite(
                method=str(calendar.get("METHOD")),
                uid=str(event.get("UID")),
                sequence=int(event.get("SEQUENCE")),
                starts_at=event.decoded("DTSTART"),
            )
        )
    return found
