"""Who registers for what: a deterministic mix of people across many schools, sent by partners.

Submission number `i` always describes the same person and the same request for a given seed
and run tag, so two runs of the bench offer the same load. Each submission is a new person:
a campaign sign-up only, a sign-up and a session, or a session only; sessions are chosen among
those whose audience admits the person's role, and a few people ask for a session outside it
(answered `not_in_audience`). The campaign's sessions hold a few hundred seats each, so most
session requests of a large burst end on the waitlist: the over-capacity path is exercised.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from solidarity.shared.bench.ledger import (
    ASK_SESSION,
    ASK_SIGNUP,
    CONSENTS_TO_INVITATIONS,
)
from solidarity.shared.contracts.events.common import AgeBand, Consents, Role
from solidarity.shared.contracts.events.registration import (
    RegistrantDetails,
    RegistrationSubmittedV1,
)
from solidarity.shared.demo import (
    CampaignInfo,
    Person,
    School,
    SessionInfo,
    answers_for,
    person_name,
)
from solidarity.shared.partners import PartnerCredentials, SignedMessage, signed_message

EMAIL_DOMAIN = "bench.example.org"
PRODUCER = "solidarity-bench"

_ROLES = (Role.STUDENT, Role.EDUCATOR, Role.FAMILY, Role.STAFF)
_ROLE_WEIGHTS = (62, 26, 7, 5)
_STUDENT_AGES = (AgeBand.AGE_13_17, AgeBand.UNDER_13, AgeBand.AGE_18_24)
_STUDENT_AGE_WEIGHTS = (78, 14, 8)

# Shares of what people ask for.
SIGNUP_ONLY = 0.45
SIGNUP_AND_SESSION = 0.35  # the rest: a session only
OUTSIDE_AUDIENCE = 0.08  # of those asking for a session, when the campaign has such a session


@dataclass(frozen=True, slots=True)
class PartnerSeat:
    """A partner platform the bench plays (all over Kafka)."""

    name: str
    tag: str  # in its submission ids: never personal data


PARTNER_SEATS = (
    PartnerSeat("Riverside Unified School District", "riverside"),
    PartnerSeat("Prairie State GSA Network", "prairie"),
    PartnerSeat("Lakeshore Student Organizing Network", "lakeshore"),
    PartnerSeat("Desert Sky Educators Alliance", "desertsky"),
    PartnerSeat("Blue Ridge Family Alliance", "blueridge"),
)


@dataclass(frozen=True, slots=True)
class Submission:
    """One signed message, ready for its partner's producer."""

    index: int
    partner: int
    message: SignedMessage
    asks: int  # ASK_SIGNUP | ASK_SESSION | CONSENTS_TO_INVITATIONS bits


def bench_email(index: int, run: str) -> str:
    return f"b{index}.{run}@{EMAIL_DOMAIN}"


def index_of_email(address: str) -> int | None:
    """The submission number in a bench address (`b<number>.<run>@...`), else None."""
    local, _, domain = address.strip().strip("<>").partition("@")
    if domain.lower() != EMAIL_DOMAIN or not local.startswith("b"):
        return None
    number, _, _ = local[1:].partition(".")
    return int(number) if number.isdigit() else None


class Workload:
    """Builds submission number `i` for its partner (`i` modulo the number of partners)."""

    def __init__(
        self,
        *,
        campaign: CampaignInfo,
        accounts: Sequence[PartnerCredentials],
        seats: Sequence[PartnerSeat],
        schools: Sequence[School],
        run: str,
        seed: int,
        invitation_share: float,
    ) -> None:
        if not accounts or len(accounts) != len(seats):
            raise ValueError("one account per partner seat")
        if not schools:
            raise ValueError("a workload needs schools")
        self.campaign = campaign
        self.accounts = list(accounts)
        self.seats = list(seats)
        self.schools = list(schools)
        self.run = run
        self.seed = seed
        self.invitation_share = invitation_share
        self._sessions = [s for s in campaign.sessions if s.open]

    def partner_of(self, index: int) -> int:
        return index % len(self.accounts)

    def submission_id(self, index: int) -> str:
        return f"{self.seats[self.partner_of(index)].tag}-{self.run}-{index}"

    def build(self, index: int) -> Submission:
        rng = random.Random(self.seed * 1_000_003 + index)  # noqa: S311 - made-up people
        role = rng.choices(_ROLES, weights=_ROLE_WEIGHTS)[0]
        if role is Role.STUDENT:
            age = rng.choices(_STUDENT_AGES, weights=_STUDENT_AGE_WEIGHTS)[0]
        else:
            age = AgeBand.AGE_25_PLUS if rng.random() < 0.8 else AgeBand.UNDISCLOSED
        school = self.schools[rng.randrange(len(self.schools))]
        shape = rng.random()
        signup = shape < SIGNUP_ONLY + SIGNUP_AND_SESSION
        session = self._session_for(role, rng) if shape >= SIGNUP_ONLY else None
        if session is None:
            signup = True
        consents = Consents(
            invitations=rng.random() < self.invitation_share,
            giveaways=rng.random() < 0.3,
            news=rng.random() < 0.2,
        )
        person = Person(
            number=index,
            email=bench_email(index, self.run),
            name=person_name(index) if rng.random() < 0.3 else None,
            role=role,
            age_band=age,
            school=school.name,
            time_zone=school.time_zone,
            locale="es-US" if rng.random() < 0.1 else "en",
            consents=consents,
            signs_up=signup,
            says=None,
        )
        partner = self.partner_of(index)
        account = self.accounts[partner]
        submission = RegistrationSubmittedV1(
            partner_id=account.partner_id,
            submission_id=self.submission_id(index),
            campaign=self.campaign.slug,
            registrant=RegistrantDetails.model_validate(person.registrant()),
            consents=consents,
            answers=answers_for(person, self.campaign.questions),
            signup=signup,
            session_ids=(session.session_id,) if session is not None else (),
        )
        asks = (ASK_SIGNUP if signup else 0) | (ASK_SESSION if session is not None else 0)
        if signup and consents.invitations:
            asks |= CONSENTS_TO_INVITATIONS
        return Submission(
            index=index,
            partner=partner,
            message=signed_message(account, submission, producer=PRODUCER),
            asks=asks,
        )

    def _session_for(self, role: Role, rng: random.Random) -> SessionInfo | None:
        admitted = [s for s in self._sessions if s.admits(role.value)]
        outside = [s for s in self._sessions if not s.admits(role.value)]
        if outside and rng.random() < OUTSIDE_AUDIENCE:
            return rng.choice(outside)
        return rng.choice(admitted) if admitted else None
