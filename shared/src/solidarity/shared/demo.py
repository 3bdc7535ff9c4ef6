"""`solidarity demo`: partner platforms register people for a campaign, and what came of it.

A run reads the campaign's sessions from the catalog's admin API (copying a campaign whose
sign-ups have closed to dates ahead, so it can take registrations), creates partner
accounts with the registration CLI, generates people across many schools, plans what each
partner sends (first submissions, repeats, and some deliberately invalid ones), sends it
(Kafka partners signed, the HTTP partner with its API key and Idempotency-Keys), reads every
answer from `registration.outcomes.v1`, waits for the mail to settle, and sums it all up.

The pieces are public because the end-to-end tests play the same partners with them:
`generate_people`, `CatalogAdmin` and `open_campaign`, `plan_submissions`, `send_plan`,
`AnswerBook`, `MailSink`, `dead_letter_counts`, `count_outcomes` and `mail_kind`.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar
from zoneinfo import ZoneInfo

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from solidarity.shared.contracts.events.catalog import RegistrationQuestion
from solidarity.shared.contracts.events.common import AgeBand, Consents, Role
from solidarity.shared.contracts.events.registration import RegistrationSubmittedV1
from solidarity.shared.contracts.topics import TOPICS
from solidarity.shared.partners import (
    HttpAnswer,
    HttpPartner,
    KafkaPartner,
    Outcome,
    OutcomeReader,
    PartnerCredentials,
    SignedMessage,
    create_partner_account,
    raw_envelope,
    raw_headers,
    signed_message,
    signed_value,
)

if TYPE_CHECKING:
    from solidarity.shared.devstack.stack import StackState

T = TypeVar("T")

DEFAULT_CAMPAIGN = "glsen-solidarity-week-2023"
DEMO_EMAIL_DOMAIN = "demo.example.org"  # reserved for examples; `.invalid` fails validation
PRODUCER = "solidarity-demo"

Channel = Literal["kafka", "http"]


class DemoError(RuntimeError):
    """The demo cannot go ahead; the message is one line for a person."""


# People --------------------------------------------------------------------------------------

_TOWNS: tuple[tuple[str, str, str], ...] = (
    ("Riverside", "CA", "America/Los_Angeles"),
    ("Spokane", "WA", "America/Los_Angeles"),
    ("Eugene", "OR", "America/Los_Angeles"),
    ("Reno", "NV", "America/Los_Angeles"),
    ("Tucson", "AZ", "America/Phoenix"),
    ("Flagstaff", "AZ", "America/Phoenix"),
    ("Boise", "ID", "America/Boise"),
    ("Albuquerque", "NM", "America/Denver"),
    ("Missoula", "MT", "America/Denver"),
    ("Fort Collins", "CO", "America/Denver"),
    ("El Paso", "TX", "America/Denver"),
    ("Anchorage", "AK", "America/Anchorage"),
    ("Juneau", "AK", "America/Juneau"),
    ("Hilo", "HI", "Pacific/Honolulu"),
    ("Duluth", "MN", "America/Chicago"),
    ("Cedar Rapids", "IA", "America/Chicago"),
    ("Madison", "WI", "America/Chicago"),
    ("Tulsa", "OK", "America/Chicago"),
    ("Omaha", "NE", "America/Chicago"),
    ("Baton Rouge", "LA", "America/Chicago"),
    ("Fargo", "ND", "America/Chicago"),
    ("San Antonio", "TX", "America/Chicago"),
    ("Louisville", "KY", "America/Kentucky/Louisville"),
    ("Indianapolis", "IN", "America/Indiana/Indianapolis"),
    ("Detroit", "MI", "America/Detroit"),
    ("Asheville", "NC", "America/New_York"),
    ("Savannah", "GA", "America/New_York"),
    ("Burlington", "VT", "America/New_York"),
    ("Providence", "RI", "America/New_York"),
    ("Richmond", "VA", "America/New_York"),
    ("Portland", "ME", "America/New_York"),
    ("Rochester", "NY", "America/New_York"),
    ("Columbus", "OH", "America/New_York"),
)
_SCHOOL_STEMS = (
    "Lincoln",
    "Roosevelt",
    "Jefferson",
    "Sojourner Truth",
    "Harvey Milk",
    "Cesar Chavez",
    "Maya Angelou",
    "Frederick Douglass",
    "Cedar Ridge",
    "Lakeview",
    "Hillcrest",
    "Oak Grove",
    "Pine Valley",
    "Northside",
    "Eastwood",
    "Westfield",
    "Bayside",
    "Mountain View",
    "Sunnyside",
    "Riverbend",
)
_SCHOOL_KINDS = (
    "High School",
    "Middle School",
    "Senior High School",
    "Junior High School",
    "Academy",
    "Charter School",
    "Community School",
)
_FIRST_NAMES_TEXT = (
    "Amara Jordan Mateo Priya Kai Noor Riley Sofia Dakota Wei Imani Elliot Camila Rowan "
    "Aisha Tomas Quinn Leilani Sam Yusuf Avery Mei Malik Harper Diego Zoe Emeka Skyler "
    "Lucia Jamie Ananya Micah Talia Reza Nia Oliver Ximena Ash Hana Cruz"
)
_FIRST_NAMES = tuple(_FIRST_NAMES_TEXT.split())
_LAST_NAMES_TEXT = (
    "Okafor Nguyen Garcia Patel Kowalski Haddad Begay Johnson Silva Kim Brooks Morales "
    "Chen Adeyemi Rivera Novak Yazzie Hughes Tanaka Osei Ramirez Lindqvist Baptiste Cohen "
    "Mensah Park Torres Flores Sato Walker Dubois Ibrahim Castillo Reyes Kaur Young "
    "Schmidt Alvarez Kahale Mwangi Fischer Ortiz Bui Santos Grant Wolfe Petrov Romero "
    "Ahmed Lopez Murphy Jensen Diallo Vargas Ito Hassan Reed Banks Cruz Medina"
)
_LAST_NAMES = tuple(_LAST_NAMES_TEXT.split())
_SAYINGS = (
    "Showing up for each other",
    "Sitting with someone new at lunch",
    "Using the names and pronouns people ask for",
    "Speaking up when someone is picked on",
    "A GSA where everyone feels welcome",
    "Listening first",
    "Making the library display together",
)


DEMO_ROLES = (Role.STUDENT, Role.EDUCATOR, Role.FAMILY, Role.STAFF)


@dataclass(frozen=True, slots=True)
class School:
    name: str
    time_zone: str


@dataclass(frozen=True, slots=True)
class Person:
    """Someone a partner registers: fake, but shaped like the people the platform serves."""

    number: int
    email: str
    name: str | None
    role: Role
    age_band: AgeBand
    school: str
    time_zone: str
    locale: str
    consents: Consents
    signs_up: bool
    says: str | None  # their answer to an open question, if they gave one

    def registrant(self, *, email: str | None = None) -> dict[str, Any]:
        """The `registrant` part of a submission: only what is known about them."""
        details: dict[str, Any] = {
            "email": self.email if email is None else email,
            "role": self.role.value,
            "age_band": self.age_band.value,
            "school": self.school,
            "time_zone": self.time_zone,
            "locale": self.locale,
        }
        if self.name is not None:
            details["name"] = self.name
        return details


def make_schools(count: int, rng: random.Random) -> list[School]:
    """`count` distinct, plausible US school names, each with its town's time zone."""
    combos = list(itertools.product(_SCHOOL_STEMS, _SCHOOL_KINDS, _TOWNS))
    rng.shuffle(combos)
    return [
        School(name=f"{stem} {kind}, {town} {state}", time_zone=zone)
        for stem, kind, (town, state, zone) in combos[: max(1, min(count, len(combos)))]
    ]


def demo_email(number: int, run: str = "", *, domain: str = DEMO_EMAIL_DOMAIN) -> str:
    return f"p{number}{'-' + run if run else ''}@{domain}"


def person_name(number: int) -> str:
    """Distinct for the first 2,400 people."""
    first = _FIRST_NAMES[number % len(_FIRST_NAMES)]
    last = _LAST_NAMES[(number // len(_FIRST_NAMES)) % len(_LAST_NAMES)]
    return f"{first} {last}"


def _weighted(rng: random.Random, choices: Sequence[tuple[T, float]]) -> T:
    values = [value for value, _ in choices]
    weights = [weight for _, weight in choices]
    return rng.choices(values, weights=weights)[0]


def generate_people(count: int, *, seed: int, run: str = "") -> list[Person]:
    """`count` people across many schools: mostly students, then educators, some family and
    staff; consents mixed (asked, never assumed); US time zones; some answer in Spanish."""
    rng = random.Random(seed)  # noqa: S311 - made-up people, not secrets
    schools = make_schools(max(20, min(400, count // 12)), rng)
    people: list[Person] = []
    for number in range(1, count + 1):
        school = rng.choice(schools)
        role = _weighted(rng, list(zip(DEMO_ROLES, (62, 26, 7, 5), strict=True)))
        if role is Role.STUDENT:
            age = _weighted(
                rng,
                [(AgeBand.AGE_13_17, 78), (AgeBand.UNDER_13, 14), (AgeBand.AGE_18_24, 8)],
            )
        else:
            age = _weighted(rng, [(AgeBand.AGE_25_PLUS, 80), (AgeBand.UNDISCLOSED, 20)])
        people.append(
            Person(
                number=number,
                email=demo_email(number, run),
                name=person_name(number) if rng.random() < 0.35 else None,
                role=role,
                age_band=age,
                school=school.name,
                time_zone=school.time_zone,
                locale="es-US" if rng.random() < 0.1 else "en",
                consents=Consents(
                    invitations=rng.random() < 0.4,
                    giveaways=rng.random() < 0.3,
                    news=rng.random() < 0.2,
                ),
                signs_up=rng.random() < 0.88,
                says=rng.choice(_SAYINGS) if rng.random() < 0.3 else None,
            )
        )
    return people


def answers_for(person: Person, questions: Iterable[RegistrationQuestion]) -> dict[str, str]:
    """Answers to the campaign's own questions, as the person would give them."""
    answers: dict[str, str] = {}
    for question in questions:
        if question.kind == "school":
            answers[question.key] = person.school
        elif question.kind == "choice" and question.choices:
            role = person.role.value
            if role in question.choices:
                answers[question.key] = role
            elif question.required:
                answers[question.key] = question.choices[0]
        elif person.says is not None or question.required:
            answers[question.key] = person.says or _SAYINGS[0]
    return answers


# The campaign --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as the catalog's admin API shows it."""

    session_id: uuid.UUID
    kind: str
    title: str
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    capacity: int | None
    audience: tuple[str, ...]
    status: str
    sequence: int

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            session_id=uuid.UUID(str(data["id"])),
            kind=str(data["kind"]),
            title=str(data["title"]),
            starts_at=datetime.fromisoformat(str(data["starts_at"])),
            ends_at=datetime.fromisoformat(str(data["ends_at"])),
            time_zone=str(data["time_zone"]),
            capacity=None if data.get("capacity") is None else int(data["capacity"]),
            audience=tuple(str(r) for r in data.get("audience", ())),
            status=str(data["status"]),
            sequence=int(data.get("sequence", 0)),
        )

    def admits(self, role: str) -> bool:
        return not self.audience or role in self.audience

    @property
    def open(self) -> bool:
        return self.status != "cancelled"


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    """A campaign and its sessions, as the catalog's admin API shows them."""

    campaign_id: uuid.UUID
    slug: str
    name: str
    starts_on: date
    ends_on: date
    time_zone: str
    status: str
    questions: tuple[RegistrationQuestion, ...]
    sessions: tuple[SessionInfo, ...]

    def takes_signups(self, now: datetime) -> bool:
        """Published, and not past its last day in its own zone (the registration rule)."""
        local = now.astimezone(ZoneInfo(self.time_zone)).date()
        return self.status == "published" and local <= self.ends_on

    def session(self, session_id: uuid.UUID) -> SessionInfo:
        return next(s for s in self.sessions if s.session_id == session_id)


class CatalogAdmin:
    """The parts of the catalog's admin API a demo needs (bearer token)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {token}"},
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = await self._client.request(method, url, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                why = f"{error['code']}: {error['message']}"
            except (ValueError, KeyError, TypeError):
                why = f"status {response.status_code}"
            raise DemoError(f"the catalog refused {method} {url} ({why})")
        return response.json() if response.content else None

    async def _all(self, url: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
            page = await self._call("GET", url, params=query)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    async def campaign_data(self, slug: str) -> dict[str, Any] | None:
        return next((c for c in await self._all("/campaigns") if c["slug"] == slug), None)

    async def campaign(self, slug: str) -> CampaignInfo | None:
        """The campaign with this slug and its sessions (None: no such campaign)."""
        data = await self.campaign_data(slug)
        if data is None:
            return None
        sessions = await self._all("/sessions", campaign_id=data["id"])
        return CampaignInfo(
            campaign_id=uuid.UUID(str(data["id"])),
            slug=str(data["slug"]),
            name=str(data["name"]),
            starts_on=date.fromisoformat(str(data["starts_on"])),
            ends_on=date.fromisoformat(str(data["ends_on"])),
            time_zone=str(data["time_zone"]),
            status=str(data["status"]),
            questions=tuple(RegistrationQuestion.model_validate(q) for q in data["questions"]),
            sessions=tuple(SessionInfo.from_api(s) for s in sessions),
        )

    async def focus_days(self, campaign_id: uuid.UUID) -> list[dict[str, Any]]:
        return await self._all(f"/campaigns/{campaign_id}/focus-days")

    async def sessions_data(self, campaign_id: uuid.UUID) -> list[dict[str, Any]]:
        return await self._all("/sessions", campaign_id=str(campaign_id))

    async def resources(self, campaign_id: uuid.UUID) -> list[dict[str, Any]]:
        return await self._all("/resources", campaign_id=str(campaign_id))

    async def create(self, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self._call("POST", url, json=dict(body))
        return created

    async def publish(self, campaign_id: uuid.UUID) -> None:
        await self._call("POST", f"/campaigns/{campaign_id}/publish")

    async def change_session(
        self, session_id: uuid.UUID, changes: Mapping[str, Any]
    ) -> SessionInfo:
        """PATCH a session: new times reschedule it, a new capacity changes its seats."""
        data = await self._call("PATCH", f"/sessions/{session_id}", json=dict(changes))
        return SessionInfo.from_api(data)


def weeks_ahead(starts_on: date, today: date, *, margin_days: int = 7) -> int:
    """The fewest whole years of 52 weeks (weekdays kept) that put a date after today."""
    years = 0
    while starts_on + timedelta(days=364 * years) <= today + timedelta(days=margin_days):
        years += 1
    return 52 * years


def copy_slug(slug: str, year: int) -> str:
    """`glsen-solidarity-week-2023` -> `glsen-solidarity-week-2027-demo`."""
    found = re.search(r"(19|20)\d{2}", slug)
    base = f"{slug[: found.start()]}{year}{slug[found.end() :]}" if found else f"{slug}-{year}"
    return f"{base[:95]}-demo"


def _local_naive(value: str | None, shift: timedelta) -> str | None:
    """An API time (in the session's zone) moved by whole weeks, as wall-clock time."""
    if value is None:
        return None
    return (datetime.fromisoformat(value).replace(tzinfo=None) + shift).isoformat()


async def open_campaign(
    admin: CatalogAdmin, slug: str, *, now: datetime | None = None
) -> tuple[CampaignInfo, CampaignInfo | None]:
    """A campaign that takes sign-ups now: the one named, or else its copy moved ahead by
    whole years of 52 weeks (weekdays and wall-clock times kept), made once through the
    admin API and published. Returns (the open campaign, the closed original or None)."""
    now = now or datetime.now(UTC)
    original = await admin.campaign(slug)
    if original is None:
        raise DemoError(f"the catalog has no campaign {slug!r}: load it first")
    if original.takes_signups(now):
        return original, None
    shift = timedelta(weeks=weeks_ahead(original.starts_on, now.date()))
    starts_on = original.starts_on + shift
    target = copy_slug(slug, starts_on.year)
    copy = await admin.campaign_data(target)
    if copy is None:
        source = await admin.campaign_data(slug)
        assert source is not None
        copy = await admin.create(
            "/campaigns",
            {
                "slug": target,
                "name": source["name"],
                "description": source["description"],
                "starts_on": starts_on.isoformat(),
                "ends_on": (original.ends_on + shift).isoformat(),
                "time_zone": source["time_zone"],
                "host_organization_id": source["host_organization_id"],
                "questions": source["questions"],
                "discreet": source["discreet"],
                "reminder_offsets_minutes": source["reminder_offsets_minutes"],
            },
        )
    copy_id = uuid.UUID(str(copy["id"]))
    if copy["status"] == "draft":
        await _fill_copy(admin, original.campaign_id, copy_id, shift)
        await admin.publish(copy_id)
    opened = await admin.campaign(target)
    assert opened is not None
    return opened, original


async def _fill_copy(
    admin: CatalogAdmin, source_id: uuid.UUID, copy_id: uuid.UUID, shift: timedelta
) -> None:
    """Add to a draft copy whatever of the original it lacks (by date or title)."""
    days = {d["date"]: d for d in await admin.focus_days(copy_id)}
    day_ids: dict[str, str] = {}
    for day in await admin.focus_days(source_id):
        moved = (date.fromisoformat(day["date"]) + shift).isoformat()
        if moved not in days:
            body = {"date": moved, "title": day["title"], "description": day["description"]}
            days[moved] = await admin.create(f"/campaigns/{copy_id}/focus-days", body)
        day_ids[day["id"]] = days[moved]["id"]
    have = {s["title"] for s in await admin.sessions_data(copy_id)}
    for session in await admin.sessions_data(source_id):
        if session["title"] in have or session["status"] == "cancelled":
            continue
        await admin.create(
            f"/campaigns/{copy_id}/sessions",
            {
                "kind": session["kind"],
                "title": session["title"],
                "description": session["description"],
                "focus_day_id": day_ids.get(session["focus_day_id"] or ""),
                "starts_at": _local_naive(session["starts_at"], shift),
                "ends_at": _local_naive(session["ends_at"], shift),
                "time_zone": session["time_zone"],
                "display_time_zones": session["display_time_zones"],
                "capacity": session["capacity"],
                "audience": session["audience"],
                "registration_opens_at": _local_naive(session["registration_opens_at"], shift),
                "registration_closes_at": _local_naive(session["registration_closes_at"], shift),
                "join_url": session["join_url"],
            },
        )
    titles = {r["title"] for r in await admin.resources(copy_id)}
    for resource in await admin.resources(source_id):
        if resource["title"] not in titles:
            body = {k: resource[k] for k in ("kind", "title", "url", "audience", "locale")}
            await admin.create(f"/campaigns/{copy_id}/resources", body)


# The plan: who sends what --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartnerSeat:
    """A partner platform the demo plays."""

    name: str
    channel: Channel
    tag: str  # in its submission ids: never personal data


_KAFKA_PARTNERS = (
    ("Riverside Unified School District", "riverside"),
    ("Prairie State GSA Network", "prairie"),
    ("Lakeshore Student Organizing Network", "lakeshore"),
    ("Desert Sky Educators Alliance", "desertsky"),
    ("Blue Ridge Family Alliance", "blueridge"),
)
_HTTP_PARTNER = ("Solidarity Sign-up Widget", "widget")


def partner_seats(count: int) -> list[PartnerSeat]:
    """`count` partners: the last one over HTTP and the others over Kafka (one alone: Kafka)."""
    if not 1 <= count <= len(_KAFKA_PARTNERS) + 1:
        raise DemoError(f"the demo plays 1 to {len(_KAFKA_PARTNERS) + 1} partners, not {count}")
    kafka = [PartnerSeat(name, "kafka", tag) for name, tag in _KAFKA_PARTNERS]
    if count == 1:
        return kafka[:1]
    name, tag = _HTTP_PARTNER
    return [*kafka[: count - 1], PartnerSeat(name, "http", tag)]


def hot_session(campaign: CampaignInfo) -> SessionInfo | None:
    """The session the plan fills past its capacity: among those open to every role the demo's
    people have, the one with the fewest seats."""
    roles = {r.value for r in DEMO_ROLES}
    candidates = [
        s
        for s in campaign.sessions
        if s.open and s.capacity is not None and all(s.admits(r) for r in roles)
    ]
    return min(candidates, key=lambda s: (s.capacity or 0, s.starts_at), default=None)


class Kind(StrEnum):
    """What a planned message is for."""

    NEW = "new"  # a person's first submission (or the fix of a malformed one)
    REPEAT = "repeat"  # the same submission again: same id and body, a new envelope
    REPEAT_PERSON = "repeat_person"  # the same person again, under a new id (maybe elsewhere)
    CONFLICT = "conflict"  # an id reused for another body: rejected `duplicate`
    INVALID_EMAIL = "invalid_email"
    INVALID_ANSWER = "invalid_answer"  # a required answer missing: `invalid_submission`
    CLOSED_CAMPAIGN = "closed_campaign"  # `registration_window_closed`
    BAD_SIGNATURE = "bad_signature"  # Kafka: `invalid_signature`
    MALFORMED = "malformed"  # Kafka, no role: dead-lettered, `invalid_submission`
    REFUSED_AT_INTAKE = "refused_at_intake"  # HTTP, no role: 422 at once, never decided


_WHOLE_REJECTION = {
    Kind.CONFLICT: "duplicate",
    Kind.INVALID_EMAIL: "invalid_email",
    Kind.INVALID_ANSWER: "invalid_submission",
    Kind.CLOSED_CAMPAIGN: "registration_window_closed",
    Kind.BAD_SIGNATURE: "invalid_signature",
    Kind.MALFORMED: "invalid_submission",
}


@dataclass(frozen=True, slots=True)
class Planned:
    """One message a partner sends, and what the plan says its answer must be."""

    partner: int
    kind: Kind
    person: Person
    submission_id: str
    body: Mapping[str, Any]  # the submission as JSON, without partner_id
    event_id: uuid.UUID | None  # the envelope id (Kafka); the service makes HTTP's
    signup: bool
    sessions: tuple[uuid.UUID, ...]  # distinct, in the order asked
    session_rejections: Mapping[uuid.UUID, str] = field(default_factory=dict)

    @property
    def decided(self) -> bool:
        """It reaches the decision path (everything but what HTTP refuses at intake)."""
        return self.kind is not Kind.REFUSED_AT_INTAKE

    @property
    def whole_rejection(self) -> str | None:
        return _WHOLE_REJECTION.get(self.kind)

    @property
    def grants(self) -> tuple[uuid.UUID, ...]:
        """The sessions it must get a seat or a waitlist place in (possibly as a repeat)."""
        if self.whole_rejection is not None or not self.decided:
            return ()
        return tuple(s for s in self.sessions if s not in self.session_rejections)


@dataclass(frozen=True, slots=True)
class Plan:
    seats: tuple[PartnerSeat, ...]
    campaign: CampaignInfo
    messages: tuple[Planned, ...]  # by partner, each in its sending order

    def for_partner(self, partner: int) -> list[Planned]:
        return [m for m in self.messages if m.partner == partner]

    def kinds(self) -> Counter[Kind]:
        return Counter(m.kind for m in self.messages)

    def demand(self) -> dict[uuid.UUID, set[int]]:
        """Per session, the people who must end up registered (confirmed or waiting)."""
        wanted: dict[uuid.UUID, set[int]] = defaultdict(set)
        for message in self.messages:
            for session_id in message.grants:
                wanted[session_id].add(message.person.number)
        return dict(wanted)

    def signed_up(self) -> set[int]:
        """The people who must end up signed up for the campaign."""
        return {
            m.person.number
            for m in self.messages
            if m.signup and m.decided and m.whole_rejection is None
        }

    def people(self) -> dict[int, Person]:
        return {m.person.number: m.person for m in self.messages}


def _share(total: int, fraction: float, *, possible: bool = True) -> int:
    if not possible:
        return 0
    count = int(total * fraction)
    return max(1, count) if total >= 100 else count


def _new_id(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _invalid_email(person: Person) -> str:
    local, _, domain = person.email.partition("@")
    forms = (f"{local}@@{domain}", f"{local} at {domain}", f"{local}@", f"{local}@{domain}..")
    return forms[person.number % len(forms)]


def plan_submissions(
    people: Sequence[Person],
    campaign: CampaignInfo,
    seats: Sequence[PartnerSeat],
    *,
    total: int,
    seed: int,
    run: str = "",
    closed: CampaignInfo | None = None,
    hot_session: uuid.UUID | None = None,
) -> Plan:
    """What each partner sends: `total` messages, most of them people's first submissions,
    with repeats of three kinds and some deliberately invalid ones.

    Needs as many people as the plan uses (`people_needed`). A person's messages all come
    from their first partner except `REPEAT_PERSON`, which may come from any partner.
    `hot_session` gets twice the interest of the others (to fill it past its capacity).
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible plan, not secrets
    kafka = [i for i, s in enumerate(seats) if s.channel == "kafka"]
    http = [i for i, s in enumerate(seats) if s.channel == "http"]
    counts = planned_counts(total, campaign, kafka=bool(kafka), http=bool(http), closed=closed)
    if len(people) < people_needed(counts):
        raise DemoError(f"the plan needs {people_needed(counts)} people, got {len(people)}")
    serial = itertools.count(1)
    tags = [s.tag for s in seats]

    def submission_id(partner: int) -> str:
        return f"{tags[partner]}-{run or 'demo'}-{next(serial):05d}"

    open_sessions = [s for s in campaign.sessions if s.open]
    hot = next((s for s in open_sessions if s.session_id == hot_session), None)

    def body(
        person: Person,
        sid: str,
        sessions: Sequence[uuid.UUID],
        signup: bool,
        *,
        of: CampaignInfo = campaign,
        email: str | None = None,
    ) -> dict[str, Any]:
        return {
            "submission_id": sid,
            "campaign": of.slug,
            "registrant": person.registrant(email=email),
            "consents": person.consents.model_dump(),
            "answers": answers_for(person, of.questions),
            "signup": signup,
            "session_ids": [str(s) for s in sessions],
        }

    def choose_sessions(person: Person) -> tuple[list[uuid.UUID], dict[uuid.UUID, str]]:
        admitted = [s for s in open_sessions if s.admits(person.role.value)]
        wanted = _weighted(rng, [(0, 22), (1, 50), (2, 22), (3, 6)])
        if not person.signs_up:
            wanted = max(wanted, 1)
        chosen: list[uuid.UUID] = []
        pool = list(admitted)
        while pool and len(chosen) < wanted:
            weights = [2.0 if s.session_id == hot_session else 1.0 for s in pool]
            pick = rng.choices(pool, weights=weights)[0]
            pool.remove(pick)
            chosen.append(pick.session_id)
        refused: dict[uuid.UUID, str] = {}
        outside = [s for s in open_sessions if not s.admits(person.role.value)]
        if outside and rng.random() < 0.25:
            refused[rng.choice(outside).session_id] = "not_in_audience"
        if rng.random() < 0.02:
            refused[_new_id(rng)] = "unknown_session"
        return chosen + list(refused), refused

    queue: dict[int, list[Planned]] = {i: [] for i in range(len(seats))}
    early: dict[int, list[Planned]] = {i: [] for i in range(len(seats))}
    late: dict[int, list[Planned]] = {i: [] for i in range(len(seats))}
    firsts: list[Planned] = []
    persons = iter(people)

    malformed_left = counts[Kind.MALFORMED]
    for _ in range(counts[Kind.NEW]):
        person = next(persons)
        partner = rng.randrange(len(seats))
        # A malformed message, then its fix, comes first from a Kafka partner, for people
        # with a name who ask for the hot session (the end-to-end test erases one of them).
        make_early = bool(malformed_left) and partner in kafka and person.name is not None
        if make_early and hot is not None and not hot.admits(person.role.value):
            make_early = False
        malformed_left -= make_early
        sessions, refused = choose_sessions(person)
        if make_early and hot is not None and hot.session_id not in sessions:
            sessions.insert(0, hot.session_id)
        signup = person.signs_up or not [s for s in sessions if s not in refused]
        sid = submission_id(partner)
        new = Planned(
            partner=partner,
            kind=Kind.NEW,
            person=person,
            submission_id=sid,
            body=body(person, sid, sessions, signup),
            event_id=_new_id(rng) if seats[partner].channel == "kafka" else None,
            signup=signup,
            sessions=tuple(sessions),
            session_rejections=refused,
        )
        firsts.append(new)
        if make_early:
            broken = {**new.body, "registrant": dict(new.body["registrant"])}
            broken["registrant"].pop("role")
            early[partner].append(
                replace(new, kind=Kind.MALFORMED, body=broken, event_id=_new_id(rng))
            )
            early[partner].append(new)
        else:
            queue[partner].append(new)

    def one_off(kind: Kind, partners: Sequence[int]) -> None:
        person = next(persons)
        partner = rng.choice(partners)
        sid = submission_id(partner)
        of = closed if kind is Kind.CLOSED_CAMPAIGN and closed is not None else campaign
        sessions: list[uuid.UUID] = []
        if kind is not Kind.CLOSED_CAMPAIGN:
            admitted = [s for s in open_sessions if s.admits(person.role.value)]
            sessions = [rng.choice(admitted).session_id] if admitted else []
        email = _invalid_email(person) if kind is Kind.INVALID_EMAIL else None
        content = body(person, sid, sessions, True, of=of, email=email)
        if kind is Kind.INVALID_ANSWER:
            content["answers"] = _broken_answers(content["answers"], campaign.questions)
        if kind is Kind.REFUSED_AT_INTAKE:
            content["registrant"] = {k: v for k, v in content["registrant"].items() if k != "role"}
        if email is not None:
            person = replace(person, email=email)
        queue[partner].append(
            Planned(
                partner=partner,
                kind=kind,
                person=person,
                submission_id=sid,
                body=content,
                event_id=_new_id(rng) if seats[partner].channel == "kafka" else None,
                signup=True,
                sessions=tuple(sessions),
            )
        )

    everyone = list(range(len(seats)))
    for kind, partners in (
        (Kind.INVALID_EMAIL, everyone),
        (Kind.INVALID_ANSWER, everyone),
        (Kind.CLOSED_CAMPAIGN, everyone),
        (Kind.BAD_SIGNATURE, kafka),
        (Kind.REFUSED_AT_INTAKE, http),
    ):
        for _ in range(counts[kind]):
            one_off(kind, partners)

    granted = [m for m in firsts if m.signup or m.grants]
    for original in rng.sample(granted, counts[Kind.REPEAT]):
        event_id = _new_id(rng) if original.event_id is not None else None
        late[original.partner].append(replace(original, kind=Kind.REPEAT, event_id=event_id))
    for original in rng.sample(granted, counts[Kind.REPEAT_PERSON]):
        partner = rng.randrange(len(seats))
        sessions = list(original.grants)
        extra = [
            s.session_id
            for s in open_sessions
            if s.admits(original.person.role.value) and s.session_id not in sessions
        ]
        if extra and rng.random() < 0.5:
            sessions.append(rng.choice(extra))
        sid = submission_id(partner)
        late[partner].append(
            Planned(
                partner=partner,
                kind=Kind.REPEAT_PERSON,
                person=original.person,
                submission_id=sid,
                body=body(original.person, sid, sessions, original.signup),
                event_id=_new_id(rng) if seats[partner].channel == "kafka" else None,
                signup=original.signup,
                sessions=tuple(sessions),
            )
        )
    signed = [m for m in firsts if m.signup]
    for original in rng.sample(signed, counts[Kind.CONFLICT]):
        # The same id with another body: other sessions (or, failing that, another consent).
        other: list[str] = []
        if not original.body["session_ids"]:
            admitted = [s for s in open_sessions if s.admits(original.person.role.value)]
            other = [str(admitted[0].session_id)] if admitted else []
        changed = {**original.body, "session_ids": other}
        if not other and not original.body["session_ids"]:
            changed["consents"] = {**changed["consents"], "news": not changed["consents"]["news"]}
        event_id = _new_id(rng) if original.event_id is not None else None
        late[original.partner].append(
            replace(
                original,
                kind=Kind.CONFLICT,
                body=changed,
                event_id=event_id,
                sessions=tuple(uuid.UUID(s) for s in other),
                session_rejections={},
            )
        )

    messages: list[Planned] = []
    for partner in range(len(seats)):
        rng.shuffle(queue[partner])
        rng.shuffle(late[partner])
        messages += early[partner] + queue[partner] + late[partner]
    return Plan(seats=tuple(seats), campaign=campaign, messages=tuple(messages))


def _broken_answers(
    answers: Mapping[str, str], questions: Sequence[RegistrationQuestion]
) -> dict[str, str]:
    """Answers the campaign refuses: a required one missing, or a choice it does not offer."""
    broken = dict(answers)
    required = [q for q in questions if q.required]
    if required:
        broken.pop(required[0].key, None)
        return broken
    choice = next(q for q in questions if q.kind == "choice" and q.choices)
    broken[choice.key] = "none of these"
    return broken


def planned_counts(
    total: int,
    campaign: CampaignInfo,
    *,
    kafka: bool,
    http: bool,
    closed: CampaignInfo | None,
) -> Counter[Kind]:
    """How many messages of each kind a plan of `total` has."""
    answerable = any(q.required or (q.kind == "choice" and q.choices) for q in campaign.questions)
    counts: Counter[Kind] = Counter(
        {
            Kind.REPEAT: _share(total, 0.04),
            Kind.REPEAT_PERSON: _share(total, 0.04),
            Kind.CONFLICT: _share(total, 0.01),
            Kind.INVALID_EMAIL: _share(total, 0.015),
            Kind.INVALID_ANSWER: _share(total, 0.01, possible=answerable),
            Kind.CLOSED_CAMPAIGN: _share(total, 0.01, possible=closed is not None),
            Kind.BAD_SIGNATURE: _share(total, 0.005, possible=kafka),
            Kind.MALFORMED: _share(total, 0.005, possible=kafka),
            Kind.REFUSED_AT_INTAKE: _share(total, 0.005, possible=http),
        }
    )
    counts[Kind.NEW] = total - sum(counts.values())
    if counts[Kind.NEW] < 1:
        raise DemoError(f"{total} submissions are too few for a demo")
    return counts


def people_needed(counts: Mapping[Kind, int]) -> int:
    reused = (Kind.REPEAT, Kind.REPEAT_PERSON, Kind.CONFLICT, Kind.MALFORMED)
    return sum(n for kind, n in counts.items() if kind not in reused)


# Sending -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpBatch:
    """One batch call the HTTP partner made, to replay it (idempotency) or read its answer."""

    partner: int
    idempotency_key: str
    submissions: tuple[Mapping[str, Any], ...]
    answer: HttpAnswer


@dataclass
class SendReport:
    sent: Counter[int] = field(default_factory=Counter)
    refused_at_intake: dict[tuple[int, str], list[Any]] = field(default_factory=dict)
    batches: list[HttpBatch] = field(default_factory=list)


def kafka_message(planned: Planned, account: PartnerCredentials) -> SignedMessage:
    """A planned message as its Kafka partner publishes it."""
    assert planned.event_id is not None
    payload = {**planned.body, "partner_id": str(account.partner_id)}
    email = str(planned.body["registrant"]["email"])
    if planned.kind is Kind.MALFORMED:
        value = raw_envelope(
            payload, producer=PRODUCER, event_id=planned.event_id, occurred_at=datetime.now(UTC)
        )
        return signed_value(
            account, value, email=email, headers=raw_headers(planned.event_id), event_id=None
        )
    submission = RegistrationSubmittedV1.model_validate(payload)
    message = signed_message(account, submission, producer=PRODUCER, event_id=planned.event_id)
    if planned.kind is Kind.BAD_SIGNATURE:
        # Signed with a secret that is not the partner's: what a forger would send.
        wrong = replace(account, signing_secret=account.signing_secret + "-forged")
        return signed_value(
            wrong,
            message.value,
            email=email,
            headers=message.headers,
            event_id=message.event_id,
        )
    return message


async def send_plan(
    plan: Plan,
    accounts: Sequence[PartnerCredentials],
    *,
    bootstrap_servers: str,
    registration_url: str,
    topic_prefix: str = "",
    http_batch_size: int = 100,
    on_sent: Callable[[int], None] | None = None,
) -> SendReport:
    """Every partner sends its messages, all partners at once, each in its own order."""
    report = SendReport()

    def sent(partner: int) -> Callable[[int], None]:
        def count(n: int) -> None:
            report.sent[partner] += n
            if on_sent is not None:
                on_sent(n)

        return count

    async def over_kafka(partner: int) -> None:
        account = accounts[partner]
        messages = [kafka_message(m, account) for m in plan.for_partner(partner)]
        async with KafkaPartner(
            account, bootstrap_servers=bootstrap_servers, topic_prefix=topic_prefix
        ) as producer:
            await producer.publish(messages, on_sent=sent(partner))

    async def over_http(partner: int) -> None:
        account = accounts[partner]
        planned = plan.for_partner(partner)
        async with HttpPartner(account, base_url=registration_url) as client:
            for start in range(0, len(planned), http_batch_size):
                chunk = planned[start : start + http_batch_size]
                key = f"{plan.seats[partner].tag}-batch-{chunk[0].submission_id}"
                bodies = tuple(m.body for m in chunk)
                answer = await client.submit_batch(bodies, idempotency_key=key)
                report.batches.append(HttpBatch(partner, key, bodies, answer))
                for item in answer.body.get("items", []):
                    if item.get("state") == "invalid":
                        message = chunk[int(item["index"])]
                        report.refused_at_intake[(partner, message.submission_id)] = item.get(
                            "errors", []
                        )
                sent(partner)(len(chunk))

    await asyncio.gather(
        *(
            over_kafka(i) if seat.channel == "kafka" else over_http(i)
            for i, seat in enumerate(plan.seats)
        )
    )
    return report


# Answers -------------------------------------------------------------------------------------


class Verdict(StrEnum):
    COMPLETE = "complete"  # exactly one answer for each thing asked for
    PARTIAL = "partial"  # some still missing (read on)
    EXCESS = "excess"  # an answer too many, or for something not asked


SIGNUP = "signup"
_REJECTED = "SessionRegistrationRejected"


def _slot(outcome: Outcome) -> uuid.UUID | str | None:
    """What an answer answers: a session, the sign-up, or (None) something unknown."""
    if outcome.session_id is not None:
        return outcome.session_id
    return SIGNUP if outcome.event_type == "SignupConfirmed" else None


def verdict(answers: Iterable[Outcome], *, signup: bool, sessions: Iterable[uuid.UUID]) -> Verdict:
    """Whether these answers to one message are exactly one per thing it asked for.

    A message refused as a whole gets a single rejection without a session; otherwise it
    gets one `SignupConfirmed` if it asked for a sign-up and one answer per distinct session
    (confirmed, waitlisted or rejected with that session's id).
    """
    firsts = [o for o in answers if o.is_answer]
    whole = [
        o for o in firsts if o.event_type == "SessionRegistrationRejected" and not o.session_id
    ]
    if whole:
        return Verdict.COMPLETE if len(firsts) == 1 else Verdict.EXCESS
    wanted: set[uuid.UUID | str] = set(sessions)
    if signup:
        wanted.add(SIGNUP)
    seen: Counter[uuid.UUID | str | None] = Counter(
        o.session_id
        if o.session_id is not None
        else (SIGNUP if o.event_type == "SignupConfirmed" else None)
        for o in firsts
    )
    if any(slot not in wanted for slot in seen) or any(n > 1 for n in seen.values()):
        return Verdict.EXCESS
    return Verdict.COMPLETE if set(seen) == wanted else Verdict.PARTIAL


def _matching(groups: Sequence[Sequence[Outcome]], messages: Sequence[Planned]) -> int:
    """The most messages that distinct answer groups complete (a few per id: try them all)."""
    if not groups or not messages:
        return 0
    fits = [
        [verdict(g, signup=m.signup, sessions=m.sessions) is Verdict.COMPLETE for m in messages]
        for g in groups
    ]
    best = 0
    for chosen in itertools.permutations(range(len(messages)), min(len(groups), len(messages))):
        best = max(best, sum(fits[g][m] for g, m in enumerate(chosen)))
    return best


class AnswerBook:
    """The answers read so far, by the message they answer, and which messages are done."""

    def __init__(self, plan: Plan, accounts: Sequence[PartnerCredentials]) -> None:
        self.plan = plan
        self.partner_of = {a.partner_id: i for i, a in enumerate(accounts)}
        self.outcomes: list[Outcome] = []
        # (partner, submission id) -> the id of the envelope answered -> its answers
        self.groups: dict[tuple[int, str], dict[uuid.UUID, list[Outcome]]] = defaultdict(dict)
        self.follow_ups: list[Outcome] = []
        self._decided: dict[tuple[int, str], list[Planned]] = defaultdict(list)
        for message in plan.messages:
            if message.decided:
                self._decided[(message.partner, message.submission_id)].append(message)

    def add(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            self.outcomes.append(outcome)
            partner = self.partner_of.get(outcome.partner_id) if outcome.partner_id else None
            if not outcome.is_answer:
                self.follow_ups.append(outcome)
            elif partner is not None and outcome.submission_id is not None:
                key = (partner, outcome.submission_id)
                self.groups[key].setdefault(outcome.answers, []).append(outcome)

    @property
    def expected(self) -> int:
        return sum(len(v) for v in self._decided.values())

    def answered(self) -> int:
        """Decided messages whose answers are complete."""
        done = 0
        for key, messages in self._decided.items():
            groups = self.groups.get(key, {})
            by_event = {m.event_id: m for m in messages if m.event_id is not None}
            if by_event:
                for event_id, message in by_event.items():
                    group = groups.get(event_id, [])
                    complete = verdict(group, signup=message.signup, sessions=message.sessions)
                    done += complete is Verdict.COMPLETE
                continue
            done += _matching(list(groups.values()), messages)
        return done

    def complete(self) -> bool:
        return self.answered() >= self.expected


def count_outcomes(outcomes: Iterable[Outcome]) -> tuple[Counter[str], Counter[str]]:
    """(outcomes by kind, rejections by reason) for the summary."""
    kinds: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    names = {
        "SignupConfirmed": "sign-ups",
        "SessionRegistrationConfirmed": "confirmed",
        "SessionRegistrationWaitlisted": "waitlisted",
        "SessionRegistrationRejected": "rejected",
        "WaitlistPromoted": "promoted from the waitlist",
        "RegistrationCancelled": "cancelled",
    }
    for outcome in outcomes:
        name = names.get(outcome.event_type, outcome.event_type)
        if outcome.duplicate:
            name += " (repeat)"
        kinds[name] += 1
        if outcome.event_type == "SessionRegistrationRejected":
            reasons[outcome.reason or "?"] += 1
    return kinds, reasons


# Mail and dead letters -----------------------------------------------------------------------

_SUBJECT_KINDS: tuple[tuple[str, str], ...] = (
    ("Welcome to ", "welcome"),
    ("Te damos la bienvenida a ", "welcome"),
    ("You're invited: ", "invitation"),
    ("Te invitamos: ", "invitation"),
    ("You're registered: ", "confirmation"),
    ("Inscripción confirmada: ", "confirmation"),
    ("You're on the waitlist: ", "waitlisted"),
    ("Estás en la lista de espera: ", "waitlisted"),
    ("A seat opened up: ", "promoted"),
    ("Se liberó un lugar: ", "promoted"),
    ("New time: ", "rescheduled"),
    ("Nuevo horario: ", "rescheduled"),
    ("Cancelled: ", "cancelled"),
    ("Cancelado: ", "cancelled"),
    ("Starting ", "reminder"),
    ("Empieza ", "reminder"),
)
_DISCREET_SUBJECTS = frozenset(
    {
        "Welcome",
        "Te damos la bienvenida",
        "An invitation",
        "Una invitación",
        "Your event details",
        "Los detalles de tu evento",
        "Your registration",
        "Tu inscripción",
        "Event update",
        "Cambio en tu evento",
        "Reminder: upcoming event",
        "Recordatorio: próximo evento",
    }
)


def mail_kind(subject: str) -> str:
    """What a mail is, from its subject (English or Spanish); discreet subjects say nothing."""
    for prefix, kind in _SUBJECT_KINDS:
        if subject.startswith(prefix):
            return kind
    if subject in _DISCREET_SUBJECTS:
        return "discreet (neutral subject)"
    return "other"


@dataclass(frozen=True, slots=True)
class Mail:
    """One message the mail sink kept."""

    id: str
    to: tuple[str, ...]
    subject: str
    message_id: str | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            id=str(data["id"]),
            to=tuple(str(t) for t in data["to"]),
            subject=str(data["subject"]),
            message_id=data.get("message_id"),
        )


class MailSink:
    """The development mail sink's HTTP API: `/api/messages` and `/api/messages/{id}`."""

    def __init__(self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None):
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=60.0, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def mails(self) -> list[Mail]:
        response = await self._client.get("/api/messages")
        response.raise_for_status()
        return [Mail.from_api(m) for m in response.json()]

    async def raw(self, mail_id: str) -> bytes:
        response = await self._client.get(f"/api/messages/{mail_id}")
        response.raise_for_status()
        return response.content


async def dead_letter_counts(
    bootstrap_servers: str, *, topic_prefix: str = ""
) -> dict[str, int | None]:
    """How many messages each DLQ topic holds (None: no such topic on the broker)."""
    from solidarity.shared.dlq import DlqError, read_dead_letters

    counts: dict[str, int | None] = {}
    for spec in TOPICS:
        if spec.dlq is None:
            continue
        name = spec.full_dlq_name(topic_prefix)
        try:
            counts[name] = len(await read_dead_letters(bootstrap_servers, name))
        except DlqError:
            counts[name] = None
    return counts


def metric_values(text: str, name: str) -> dict[str, float]:
    """`{label values: value}` of one Prometheus metric in an exposition text."""
    found: dict[str, float] = {}
    pattern = re.compile(rf"^{re.escape(name)}(\{{(?P<labels>[^}}]*)\}})?\s+(?P<value>\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if match is not None:
            found[match["labels"] or ""] = float(match["value"])
    return found


# The command ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoSettings:
    registrations: int
    partners: int
    campaign: str = DEFAULT_CAMPAIGN
    seed: int = 2023
    run: str = ""
    timeout_s: float = 180.0
    admin_token: str = ""


@dataclass(frozen=True, slots=True)
class StackAddresses:
    """Where the running stack's parts answer (from its stack.json)."""

    catalog_url: str
    registration_url: str
    notifications_url: str | None
    mail_url: str
    kafka_bootstrap: str
    data_dir: Path

    @classmethod
    def from_state(cls, state: StackState) -> Self:
        urls = {c.name: c.url for c in state.components}
        for needed in ("catalog", "registration"):
            if needed not in urls:
                raise DemoError(f"the running stack has no {needed} service")
        return cls(
            catalog_url=urls["catalog"],
            registration_url=urls["registration"],
            notifications_url=urls.get("notifications"),
            mail_url=state.mail_url,
            kafka_bootstrap=state.kafka_bootstrap,
            data_dir=Path(state.data_dir),
        )


@dataclass
class DemoSummary:
    campaign: str
    partners: list[tuple[str, str, int]]  # name, channel, messages sent
    plan: Counter[str]
    refused_at_intake: int
    answered: int
    expected: int
    outcomes: Counter[str]
    rejections: Counter[str]
    mails: Counter[str]
    dead_letters: dict[str, int | None]
    seconds: float
    notes: list[str] = field(default_factory=list)


async def wait_for_registration(
    client: HttpPartner,
    campaign: CampaignInfo,
    *,
    timeout_s: float,
    extra: Sequence[str] = (),
) -> None:
    """Until the registration service has read the campaign and every open session."""
    wanted = {str(s.session_id) for s in campaign.sessions if s.open}
    deadline = time.monotonic() + timeout_s
    while True:
        stats = await client.stats(campaign.slug)
        known = set((stats or {}).get("registrations", {}).get("by_session", {}))
        others = [await client.stats(slug) for slug in extra]
        if stats is not None and wanted <= known and all(o is not None for o in others):
            return
        if time.monotonic() > deadline:
            raise DemoError(
                f"the registration service did not learn {campaign.slug} and its sessions "
                f"within {timeout_s:.0f} s: is the catalog's relay publishing?"
            )
        await asyncio.sleep(0.5)


async def _mail_busy(sink: MailSink, notifications_url: str | None) -> tuple[int, bool]:
    """(mails in the sink, whether notifications still has work: mail due or being sent, or
    events not read yet). Its metrics refresh every few seconds: a caller waits a while."""
    count = len(await sink.mails())
    if notifications_url is None:
        return count, False
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            text = (await client.get(f"{notifications_url}/metrics")).text
    except httpx.HTTPError:
        return count, False
    depth = metric_values(text, "solidarity_notifications_queue_depth")
    lag = metric_values(text, "solidarity_consumer_lag")
    busy = sum(v for k, v in depth.items() if 'state="due"' in k or 'state="sending"' in k)
    return count, busy + sum(lag.values()) > 0


def demo_progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


async def run_demo(
    stack: StackAddresses,
    settings: DemoSettings,
    *,
    progress: Progress,
    say: Callable[[str], None],
) -> DemoSummary:
    """The whole demo against a running stack; returns what to print."""
    started = time.monotonic()
    seats = partner_seats(settings.partners)
    run = settings.run or uuid.uuid4().hex[:6]
    notes: list[str] = []
    async with CatalogAdmin(stack.catalog_url, settings.admin_token) as admin:
        campaign, closed = await open_campaign(admin, settings.campaign)
    if closed is not None:
        notes.append(
            f"{closed.slug} took its last sign-up on {closed.ends_on}: its copy "
            f"{campaign.slug} ({campaign.starts_on} to {campaign.ends_on}) is used, and a few "
            f"submissions still go to {closed.slug} (answered registration_window_closed)"
        )
    say(f"campaign {campaign.slug}: {len(campaign.sessions)} sessions")
    slugs = [campaign.slug] + ([closed.slug] if closed is not None else [])
    say(f"creating {len(seats)} partner accounts with `solidarity partners create`")
    accounts = list(
        await asyncio.gather(
            *(
                create_partner_account(f"{seat.name} (demo {run})", slugs, data_dir=stack.data_dir)
                for seat in seats
            )
        )
    )
    async with HttpPartner(accounts[0], base_url=stack.registration_url) as probe:
        await wait_for_registration(
            probe, campaign, timeout_s=60, extra=[closed.slug] if closed else []
        )
    hot = hot_session(campaign)
    counts = planned_counts(
        settings.registrations,
        campaign,
        kafka=any(s.channel == "kafka" for s in seats),
        http=any(s.channel == "http" for s in seats),
        closed=closed,
    )
    people = generate_people(people_needed(counts), seed=settings.seed, run=run)
    plan = plan_submissions(
        people,
        campaign,
        seats,
        total=settings.registrations,
        seed=settings.seed,
        run=run,
        closed=closed,
        hot_session=hot.session_id if hot else None,
    )
    book = AnswerBook(plan, accounts)
    sending = progress.add_task("partners sending", total=len(plan.messages))
    answering = progress.add_task("submissions answered", total=book.expected)
    deadline = time.monotonic() + settings.timeout_s
    async with OutcomeReader(
        bootstrap_servers=stack.kafka_bootstrap, partner_ids=[a.partner_id for a in accounts]
    ) as reader:
        send = asyncio.create_task(
            send_plan(
                plan,
                accounts,
                bootstrap_servers=stack.kafka_bootstrap,
                registration_url=stack.registration_url,
                on_sent=lambda n: progress.advance(sending, n),
            )
        )
        while time.monotonic() < deadline:
            book.add(await reader.poll(0.5))
            progress.update(answering, completed=book.answered())
            if send.done() and (send.exception() is not None or book.complete()):
                break
        report = await send
    if not book.complete():
        notes.append(
            f"{book.expected - book.answered()} submission(s) had no complete answer after "
            f"{settings.timeout_s:.0f} s"
        )
    # Settled: nothing due or being sent, nothing unread, and no new mail for a few seconds
    # (longer than the notifications service's metrics take to refresh).
    mailing = progress.add_task("mail delivered (settling)", total=None)
    last, quiet_since = -1, time.monotonic()
    async with MailSink(stack.mail_url) as sink:
        while time.monotonic() < deadline:
            count, busy = await _mail_busy(sink, stack.notifications_url)
            progress.update(mailing, completed=count)
            if busy or count != last:
                last, quiet_since = count, time.monotonic()
            elif time.monotonic() - quiet_since >= 6.0:
                break
            await asyncio.sleep(1.0)
        mails = Counter(mail_kind(m.subject) for m in await sink.mails())
    progress.update(mailing, total=sum(mails.values()), completed=sum(mails.values()))
    dead = await dead_letter_counts(stack.kafka_bootstrap)
    outcomes, rejections = count_outcomes(book.outcomes)
    return DemoSummary(
        campaign=campaign.slug,
        partners=[(f"{seat.name}", seat.channel, report.sent[i]) for i, seat in enumerate(seats)],
        plan=Counter({kind.value: n for kind, n in plan.kinds().items()}),
        refused_at_intake=len(report.refused_at_intake),
        answered=book.answered(),
        expected=book.expected,
        outcomes=outcomes,
        rejections=rejections,
        mails=mails,
        dead_letters=dead,
        seconds=time.monotonic() - started,
        notes=notes,
    )


def summary_tables(summary: DemoSummary) -> list[Table]:
    """What a person reads at the end of `solidarity demo`."""
    sent = Table(title=f"submissions for {summary.campaign}", title_justify="left")
    sent.add_column("partner")
    sent.add_column("over")
    sent.add_column("messages", justify="right")
    for name, channel, count in summary.partners:
        sent.add_row(name, channel, str(count))
    sent.add_row("[bold]all[/bold]", "", str(sum(c for _, _, c in summary.partners)))
    sent.add_row(
        "answered (every thing asked for)", "", f"{summary.answered} of {summary.expected}"
    )
    sent.add_row("refused at HTTP intake (422)", "http", str(summary.refused_at_intake))

    planned = Table(title="what the partners sent", title_justify="left")
    planned.add_column("kind")
    planned.add_column("messages", justify="right")
    for kind, count in sorted(summary.plan.items(), key=lambda kv: -kv[1]):
        planned.add_row(kind.replace("_", " "), str(count))

    outcomes = Table(title="outcomes on registration.outcomes.v1", title_justify="left")
    outcomes.add_column("outcome")
    outcomes.add_column("count", justify="right")
    for kind, count in sorted(summary.outcomes.items()):
        outcomes.add_row(kind, str(count))
    for reason, count in sorted(summary.rejections.items(), key=lambda kv: -kv[1]):
        outcomes.add_row(f"  rejected: {reason}", str(count))

    mails = Table(title="mail in the sink", title_justify="left")
    mails.add_column("kind (from the subject)")
    mails.add_column("mails", justify="right")
    for kind, count in sorted(summary.mails.items(), key=lambda kv: -kv[1]):
        mails.add_row(kind, str(count))
    mails.add_row("[bold]all[/bold]", str(sum(summary.mails.values())))

    dead = Table(title="dead letters", title_justify="left")
    dead.add_column("DLQ topic")
    dead.add_column("messages", justify="right")
    for topic, held in summary.dead_letters.items():
        dead.add_row(topic, "no topic" if held is None else str(held))
    return [sent, planned, outcomes, mails, dead]
