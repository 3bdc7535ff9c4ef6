"""The demo's pure parts: people, the campaign copy, the plan, answers, mail and the summary."""

from __future__ import annotations

import io
import json
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from rich.console import Console

from solidarity.registration.domain.partners import signature_matches, signing_secret
from solidarity.registration.domain.submissions import normalise_email
from solidarity.registration.entrypoints.http_models import SubmissionIn
from solidarity.shared.cli.app import run
from solidarity.shared.contracts.envelope import Envelope, headers_to_dict
from solidarity.shared.contracts.events.catalog import RegistrationQuestion
from solidarity.shared.contracts.events.registration import RegistrationSubmittedV1
from solidarity.shared.contracts.signing import SIGNATURE_HEADER
from solidarity.shared.demo import (
    DEMO_ROLES,
    AnswerBook,
    CampaignInfo,
    CatalogAdmin,
    DemoError,
    DemoSummary,
    Kind,
    Plan,
    SessionInfo,
    Verdict,
    answers_for,
    copy_slug,
    count_outcomes,
    generate_people,
    hot_session,
    kafka_message,
    mail_kind,
    metric_values,
    open_campaign,
    partner_seats,
    people_needed,
    plan_submissions,
    planned_counts,
    summary_tables,
    verdict,
    weeks_ahead,
)
from solidarity.shared.partners import Outcome, PartnerCredentials

pytestmark = pytest.mark.unit

ZONE = "America/New_York"
QUESTIONS = (
    RegistrationQuestion(
        key="role",
        label="I am a...",
        kind="choice",
        choices=("student", "educator", "family", "staff"),
        required=True,
    ),
    RegistrationQuestion(key="school", label="My school", kind="school"),
    RegistrationQuestion(key="solidarity_looks_like", label="What does solidarity look like?"),
)


def _session(
    title: str, day: int, capacity: int | None, audience: tuple[str, ...], kind: str = "webinar"
) -> SessionInfo:
    starts = datetime(2027, 11, day, 19, tzinfo=ZoneInfo(ZONE))
    return SessionInfo(
        session_id=uuid.uuid5(uuid.NAMESPACE_URL, title),
        kind=kind,
        title=title,
        starts_at=starts,
        ends_at=starts + timedelta(hours=1),
        time_zone=ZONE,
        capacity=capacity,
        audience=audience,
        status="scheduled",
        sequence=0,
    )


CAMPAIGN = CampaignInfo(
    campaign_id=uuid.uuid4(),
    slug="solidarity-week-2027-demo",
    name="Solidarity Week",
    starts_on=date(2027, 11, 1),
    ends_on=date(2027, 11, 5),
    time_zone=ZONE,
    status="published",
    questions=QUESTIONS,
    sessions=(
        _session("black-lgbtq", 1, 500, ("student", "educator")),
        _session("disability-justice", 2, 500, ("student", "educator")),
        _session("intersex-youth", 3, 500, ("student", "educator", "family")),
        _session(
            "immigrant-youth",
            5,
            30,
            ("student", "educator", "family", "staff"),
            kind="speaking_engagement",
        ),
    ),
)
CLOSED = CampaignInfo(
    campaign_id=uuid.uuid4(),
    slug="solidarity-week-2023",
    name="Solidarity Week",
    starts_on=date(2023, 11, 6),
    ends_on=date(2023, 11, 10),
    time_zone=ZONE,
    status="published",
    questions=QUESTIONS,
    sessions=(),
)


def _plan(total: int = 400, seed: int = 7) -> Plan:
    seats = partner_seats(3)
    counts = planned_counts(total, CAMPAIGN, kafka=True, http=True, closed=CLOSED)
    people = generate_people(people_needed(counts), seed=seed, run="t")
    hot = hot_session(CAMPAIGN)
    assert hot is not None
    return plan_submissions(
        people,
        CAMPAIGN,
        seats,
        total=total,
        seed=seed,
        run="t",
        closed=CLOSED,
        hot_session=hot.session_id,
    )


# People --------------------------------------------------------------------------------------


def test_people_are_many_distinct_valid_and_reproducible() -> None:
    people = generate_people(2_000, seed=1, run="r1")

    assert [p.number for p in people] == list(range(1, 2_001))
    assert len({p.email for p in people}) == 2_000
    assert all(normalise_email(p.email) == p.email for p in people)  # the service takes them
    assert all(p.email.endswith("-r1@demo.example.org") for p in people)
    named = [p.name for p in people if p.name is not None]
    assert len(set(named)) == len(named)  # the end-to-end test erases one by name
    assert len({p.school for p in people}) >= 100
    assert {p.role for p in people} == set(DEMO_ROLES)
    assert {p.time_zone.split("/")[0] for p in people} <= {"America", "Pacific"}
    assert 0.3 < sum(p.consents.invitations for p in people) / 2_000 < 0.5
    assert {p.locale for p in people} == {"en", "es-US"}
    assert generate_people(2_000, seed=1, run="r1") == people
    assert generate_people(2_000, seed=2, run="r1") != people


def test_answers_follow_the_campaigns_questions() -> None:
    student = next(p for p in generate_people(50, seed=3) if p.role.value == "student")

    answers = answers_for(student, QUESTIONS)

    assert answers["role"] == "student"
    assert answers["school"] == student.school
    assert ("solidarity_looks_like" in answers) == (student.says is not None)


# The campaign --------------------------------------------------------------------------------


def test_a_closed_campaign_moves_ahead_by_whole_years_of_weeks() -> None:
    weeks = weeks_ahead(date(2023, 11, 6), date(2026, 11, 22))

    assert weeks == 4 * 52
    moved = date(2023, 11, 6) + timedelta(weeks=weeks)
    assert moved == date(2027, 11, 1)
    assert moved.weekday() == date(2023, 11, 6).weekday()
    assert copy_slug("glsen-solidarity-week-2023", 2027) == "glsen-solidarity-week-2027-demo"
    assert copy_slug("nyu-week", 2027) == "nyu-week-2027-demo"


class FakeCatalog:
    """The catalog admin API's campaign, focus day, session and resource routes, in memory."""

    def __init__(self) -> None:
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.focus_days: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        self.posts = 0

    def add_glsen_2023(self) -> str:
        campaign = self._campaign(
            {
                "slug": "glsen-solidarity-week-2023",
                "name": "Solidarity Week",
                "description": "",
                "starts_on": "2023-11-06",
                "ends_on": "2023-11-10",
                "time_zone": ZONE,
                "host_organization_id": str(uuid.uuid4()),
                "questions": [q.model_dump() for q in QUESTIONS],
                "discreet": False,
                "reminder_offsets_minutes": [1440, 60],
            },
            status="published",
        )
        day = self._child(self.focus_days, campaign, {"date": "2023-11-06", "title": "Black"})
        self._session(
            campaign,
            {
                "kind": "webinar",
                "title": "Webinar",
                "description": "",
                "focus_day_id": day["id"],
                "starts_at": "2023-11-06T19:00:00",
                "ends_at": "2023-11-06T20:00:00",
                "time_zone": ZONE,
                "display_time_zones": [ZONE],
                "capacity": 500,
                "audience": ["student"],
                "registration_opens_at": None,
                "registration_closes_at": "2023-11-06T19:00:00",
                "join_url": None,
            },
        )
        self._child(self.resources, campaign, {"kind": "guide", "title": "Guide", "url": "u"})
        return str(campaign["id"])

    def _campaign(self, body: dict[str, Any], *, status: str = "draft") -> dict[str, Any]:
        campaign = {**body, "id": str(uuid.uuid4()), "status": status, "revision": 1}
        self.campaigns[campaign["id"]] = campaign
        return campaign

    def _child(
        self, store: dict[str, dict[str, Any]], campaign: dict[str, Any], body: dict[str, Any]
    ) -> dict[str, Any]:
        item = {
            "description": "",
            "audience": [],
            "locale": "en",
            **body,
            "id": str(uuid.uuid4()),
            "campaign_id": campaign["id"],
        }
        store[item["id"]] = item
        return item

    def _session(self, campaign: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        zone = ZoneInfo(body["time_zone"])

        def aware(value: str | None) -> str | None:
            return (
                None
                if value is None
                else datetime.fromisoformat(value).replace(tzinfo=zone).isoformat()
            )

        item = {
            **body,
            "id": str(uuid.uuid4()),
            "campaign_id": campaign["id"],
            "status": "scheduled",
            "sequence": 0,
        }
        for name in ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at"):
            item[name] = aware(body[name])
        self.sessions[item["id"]] = item
        return item

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.strip("/").split("/")
        campaign_id = request.url.params.get("campaign_id")
        if request.method == "GET":
            if path == ["campaigns"]:
                items = list(self.campaigns.values())
            elif path[0] == "campaigns" and path[2] == "focus-days":
                items = [d for d in self.focus_days.values() if d["campaign_id"] == path[1]]
            elif path == ["sessions"]:
                items = [s for s in self.sessions.values() if s["campaign_id"] == campaign_id]
            else:
                items = [r for r in self.resources.values() if r["campaign_id"] == campaign_id]
            return httpx.Response(200, json={"items": items, "next_cursor": None})
        self.posts += 1
        body = json.loads(request.content) if request.content else {}
        if path == ["campaigns"]:
            return httpx.Response(201, json=self._campaign(body))
        campaign = self.campaigns[path[1]]
        if path[2] == "publish":
            campaign["status"] = "published"
            return httpx.Response(200, json=campaign)
        if path[2] == "sessions":
            return httpx.Response(201, json=self._session(campaign, body))
        store = self.focus_days if path[2] == "focus-days" else self.resources
        return httpx.Response(201, json=self._child(store, campaign, body))


async def test_the_closed_demo_campaign_is_copied_ahead_once() -> None:
    catalog = FakeCatalog()
    original_id = catalog.add_glsen_2023()
    now = datetime(2026, 11, 22, 6, tzinfo=UTC)
    async with CatalogAdmin(
        "http://catalog.test", "token", transport=httpx.MockTransport(catalog)
    ) as admin:
        opened, closed = await open_campaign(admin, "glsen-solidarity-week-2023", now=now)
        posts = catalog.posts
        again, _ = await open_campaign(admin, "glsen-solidarity-week-2023", now=now)

    assert closed is not None
    assert closed.campaign_id == uuid.UUID(original_id)
    assert opened.slug == "glsen-solidarity-week-2027-demo"
    assert (opened.starts_on, opened.ends_on) == (date(2027, 11, 1), date(2027, 11, 5))
    assert opened.status == "published"
    assert opened.takes_signups(now)
    assert not closed.takes_signups(now)
    (session,) = opened.sessions
    assert session.starts_at == datetime(2027, 11, 1, 19, tzinfo=ZoneInfo(ZONE))
    assert session.audience == ("student",)
    copied = next(
        s for s in catalog.sessions.values() if s["campaign_id"] == str(opened.campaign_id)
    )
    day = catalog.focus_days[copied["focus_day_id"]]
    assert day["date"] == "2027-11-01"
    assert copied["registration_closes_at"].startswith("2027-11-01T19:00:00")
    assert len(catalog.resources) == 2
    assert posts == 5  # campaign, focus day, session, resource, publish
    assert again == opened
    assert catalog.posts == posts


# The plan ------------------------------------------------------------------------------------


def test_partners_are_kafka_then_one_over_http() -> None:
    assert [s.channel for s in partner_seats(3)] == ["kafka", "kafka", "http"]
    assert [s.channel for s in partner_seats(1)] == ["kafka"]
    assert len({s.tag for s in partner_seats(6)}) == 6
    with pytest.raises(DemoError, match="partners"):
        partner_seats(7)


def test_the_plan_has_every_kind_in_its_share_and_valid_bodies() -> None:
    plan = _plan()

    assert len(plan.messages) == 400
    assert plan.kinds() == planned_counts(400, CAMPAIGN, kafka=True, http=True, closed=CLOSED)
    assert set(plan.kinds()) == set(Kind)
    for message in plan.messages:
        channel = plan.seats[message.partner].channel
        assert (message.event_id is not None) == (channel == "kafka")
        assert "@" not in message.submission_id  # never personal data in an id
        if message.kind in (Kind.MALFORMED, Kind.REFUSED_AT_INTAKE):
            assert "role" not in message.body["registrant"]
            assert channel == ("kafka" if message.kind is Kind.MALFORMED else "http")
            continue
        SubmissionIn.model_validate(message.body)  # the HTTP API takes it
    assert all(
        plan.seats[m.partner].channel == "kafka"
        for m in plan.messages
        if m.kind is Kind.BAD_SIGNATURE
    )


def test_repeats_follow_what_they_repeat_from_the_same_partner() -> None:
    plan = _plan()
    order = {id(m): i for i, m in enumerate(plan.messages)}
    firsts = {(m.partner, m.submission_id): m for m in plan.messages if m.kind is Kind.NEW}

    for message in plan.messages:
        if message.kind in (Kind.REPEAT, Kind.CONFLICT, Kind.MALFORMED):
            new = firsts[(message.partner, message.submission_id)]
            assert new.person == message.person
            if message.kind is Kind.MALFORMED:
                assert order[id(new)] == order[id(message)] + 1  # the fix comes right after
                assert new.person.name is not None
            else:
                assert order[id(new)] < order[id(message)]
                assert (message.body == new.body) == (message.kind is Kind.REPEAT)
        if message.kind is Kind.REPEAT_PERSON:
            assert (message.partner, message.submission_id) not in firsts
            assert message.signup == next(
                m.signup for m in plan.messages if m.kind is Kind.NEW and m.person == message.person
            )


def test_the_hot_session_is_wanted_by_more_people_than_it_has_seats() -> None:
    plan = _plan()
    hot = hot_session(CAMPAIGN)
    assert hot is not None
    assert hot.capacity is not None

    assert len(plan.demand()[hot.session_id]) > hot.capacity
    whole = {m.kind for m in plan.messages if m.whole_rejection}
    assert whole == {
        Kind.CONFLICT,
        Kind.INVALID_EMAIL,
        Kind.INVALID_ANSWER,
        Kind.CLOSED_CAMPAIGN,
        Kind.BAD_SIGNATURE,
        Kind.MALFORMED,
    }
    assert all(not m.grants for m in plan.messages if m.whole_rejection)


def test_kafka_messages_are_signed_except_the_forged_ones() -> None:
    plan = _plan()
    master = b"unit-master-key-0123456789"
    partner_id = uuid.uuid4()
    account = PartnerCredentials(
        partner_id=partner_id,
        name="Riverside",
        api_key="swk_x",
        signing_secret=signing_secret(master, partner_id),
    )
    seen: Counter[Kind] = Counter()
    for message in plan.for_partner(0):
        record = kafka_message(message, account)
        signature = headers_to_dict(list(record.headers))[SIGNATURE_HEADER]
        trusted = signature_matches(account.signing_secret, record.value, signature)
        assert trusted == (message.kind is not Kind.BAD_SIGNATURE)
        envelope = Envelope.from_bytes(record.value)
        assert envelope.event_id == message.event_id
        if message.kind is not Kind.MALFORMED:
            RegistrationSubmittedV1.model_validate(envelope.payload)
        seen[message.kind] += 1
    assert seen[Kind.MALFORMED] >= 1


# Answers -------------------------------------------------------------------------------------


def _answer(kind: str, cause: uuid.UUID, **payload: Any) -> Outcome:
    return Outcome(
        event_id=uuid.uuid4(),
        event_type=kind,
        correlation_id=cause,
        causation_id=cause,
        payload={"duplicate": False, **payload},
    )


def test_a_verdict_wants_exactly_one_answer_per_thing_asked() -> None:
    cause, one, two = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    signup = _answer("SignupConfirmed", cause)
    seat = _answer("SessionRegistrationConfirmed", cause, session_id=str(one))
    refused = _answer(
        "SessionRegistrationRejected", cause, session_id=str(two), reason="not_in_audience"
    )
    whole = _answer("SessionRegistrationRejected", cause, reason="invalid_email")

    assert verdict([signup, seat, refused], signup=True, sessions=[one, two]) is Verdict.COMPLETE
    assert verdict([signup, seat], signup=True, sessions=[one, two]) is Verdict.PARTIAL
    assert verdict([signup, seat, seat], signup=True, sessions=[one]) is Verdict.EXCESS
    assert verdict([signup, seat, refused], signup=True, sessions=[one]) is Verdict.EXCESS
    assert verdict([whole], signup=True, sessions=[one, two]) is Verdict.COMPLETE
    assert verdict([whole, signup], signup=True, sessions=[]) is Verdict.EXCESS
    promoted = _answer("WaitlistPromoted", cause, session_id=str(one))
    assert verdict([signup, promoted], signup=True, sessions=[]) is Verdict.COMPLETE


def test_the_answer_book_counts_complete_answers_per_envelope() -> None:
    plan = _plan(total=120, seed=11)
    accounts = [
        PartnerCredentials(partner_id=uuid.uuid4(), name=s.name, api_key="k", signing_secret="s")
        for s in plan.seats
    ]
    book = AnswerBook(plan, accounts)
    outcomes: list[Outcome] = []
    for message in plan.messages:
        if not message.decided:
            continue
        cause = message.event_id or uuid.uuid4()  # over HTTP, the service's envelope id
        ids = {
            "partner_id": str(accounts[message.partner].partner_id),
            "submission_id": message.submission_id,
        }
        if message.whole_rejection:
            outcomes.append(
                _answer("SessionRegistrationRejected", cause, reason=message.whole_rejection, **ids)
            )
            continue
        if message.signup:
            outcomes.append(_answer("SignupConfirmed", cause, **ids))
        for session_id in message.sessions:
            outcomes.append(
                _answer("SessionRegistrationConfirmed", cause, session_id=str(session_id), **ids)
            )

    book.add(outcomes[:-1])
    assert book.answered() == book.expected - 1
    assert not book.complete()
    book.add(outcomes[-1:])
    assert book.complete()
    assert (
        book.expected
        == 120
        - planned_counts(120, CAMPAIGN, kafka=True, http=True, closed=CLOSED)[
            Kind.REFUSED_AT_INTAKE
        ]
    )


# Summary -------------------------------------------------------------------------------------


def test_outcomes_are_counted_by_kind_and_reason() -> None:
    cause = uuid.uuid4()
    kinds, reasons = count_outcomes(
        [
            _answer("SignupConfirmed", cause),
            _answer("SignupConfirmed", cause, duplicate=True),
            _answer("SessionRegistrationWaitlisted", cause, position=2),
            _answer("SessionRegistrationRejected", cause, reason="invalid_email"),
            _answer("SessionRegistrationRejected", cause, reason="invalid_email"),
            _answer("WaitlistPromoted", cause, previous_position=1),
        ]
    )

    assert kinds == {
        "sign-ups": 1,
        "sign-ups (repeat)": 1,
        "waitlisted": 1,
        "rejected": 2,
        "promoted from the waitlist": 1,
    }
    assert reasons == {"invalid_email": 2}


@pytest.mark.parametrize(
    ("subject", "kind"),
    [
        ("Welcome to Solidarity Week", "welcome"),
        ("You're invited: Intersex Youth Focus Day", "invitation"),
        ("Inscripción confirmada: Black LGBTQ+ Focus Day", "confirmation"),
        ("You're on the waitlist: A conversation", "waitlisted"),
        ("Se liberó un lugar: A conversation", "promoted"),
        ("New time: A webinar", "rescheduled"),
        ("Starting in 1 hour: A webinar", "reminder"),
        ("Your event details", "discreet (neutral subject)"),
        ("Hello", "other"),
    ],
)
def test_mail_kind_comes_from_the_subject(subject: str, kind: str) -> None:
    assert mail_kind(subject) == kind


def test_metric_values_read_the_exposition_format() -> None:
    text = (
        "# HELP solidarity_notifications_queue_depth Deliveries\n"
        'solidarity_notifications_queue_depth{state="due"} 3.0\n'
        'solidarity_notifications_queue_depth{state="sending"} 0.0\n'
        "solidarity_up 1.0\n"
    )

    assert metric_values(text, "solidarity_notifications_queue_depth") == {
        'state="due"': 3.0,
        'state="sending"': 0.0,
    }
    assert metric_values(text, "solidarity_up") == {"": 1.0}


def test_the_summary_shows_outcomes_mail_and_dead_letters() -> None:
    summary = DemoSummary(
        campaign="solidarity-week-2027-demo",
        partners=[("Riverside", "kafka", 300), ("Widget", "http", 200)],
        plan=Counter({"new": 480, "repeat": 20}),
        refused_at_intake=1,
        answered=499,
        expected=499,
        outcomes=Counter({"confirmed": 400, "sign-ups": 350}),
        rejections=Counter({"invalid_email": 7}),
        mails=Counter({"confirmation": 400, "welcome": 350}),
        dead_letters={"registration.submissions.v1.dlq": 2, "catalog.sessions.v1.dlq": None},
        seconds=12.5,
    )
    out = io.StringIO()
    console = Console(file=out, width=120)

    for table in summary_tables(summary):
        console.print(table)

    text = out.getvalue()
    for expected in (
        "499 of 499",
        "rejected: invalid_email",
        "confirmation",
        "750",
        "registration.submissions.v1.dlq",
        "no topic",
    ):
        assert expected in text


# The command ---------------------------------------------------------------------------------


def test_the_demo_without_a_stack_is_one_line_saying_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["demo", "--registrations", "50", "--data-dir", str(tmp_path)])

    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "solidarity up" in err


def test_the_demo_refuses_a_run_id_that_could_not_be_part_of_an_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stack.json").write_text(
        json.dumps(
            {
                "started_at": "2026-11-22T00:00:00+00:00",
                "data_dir": str(tmp_path),
                "supervisor_pid": 1,
                "kafka_bootstrap": "127.0.0.1:1",
                "postgres_dsn": "postgresql://postgres@127.0.0.1:1/postgres",
                "smtp_host": "127.0.0.1",
                "smtp_port": 1,
                "mail_url": "http://127.0.0.1:1",
                "components": [],
            }
        )
    )

    with pytest.raises(SystemExit):
        run(["demo", "--run-id", "Not OK!", "--data-dir", str(tmp_path)])

    assert "--run-id" in capsys.readouterr().err
