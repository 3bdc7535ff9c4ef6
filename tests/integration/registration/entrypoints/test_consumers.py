"""The consumers against a real broker and PostgreSQL: read model, decisions, bad input."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest

from solidarity.registration.domain.partners import (
    PARTNER_HEADER,
    SIGNATURE_HEADER,
    sign,
    signing_secret,
)
from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.contracts.events.catalog import (
    CampaignUpdatedV1,
    RegistrationQuestion,
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionRescheduledV1,
)
from solidarity.shared.contracts.events.common import CampaignStatus, Role
from solidarity.shared.contracts.events.registration import (
    RegistrantRecordedV1,
    RegistrationCancelledV1,
    RegistrationSubmittedV1,
    SessionRegistrationConfirmedV1,
    SessionRegistrationRejectedV1,
    SessionRegistrationWaitlistedV1,
    SignupConfirmedV1,
    WaitlistPromotedV1,
)
from solidarity.shared.contracts.topics import REGISTRATION_SUBMISSIONS
from solidarity.shared.db.pool import Connection
from solidarity.shared.messaging.consumer import InboundMessage, TransientError
from solidarity.shared.messaging.kafka import read_topic
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.integration.registration.support import (
    MASTER_KEY,
    campaign_published,
    consumers,
    fetch,
    fetchval,
    new_partner,
    outcomes,
    produce,
    publish_events,
    registrant_events,
    relay_all,
    session_scheduled,
    signed_record,
    submission,
)

pytestmark = pytest.mark.integration


async def test_read_model_ignores_replays_and_late_events(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    campaign = campaign_published(f"c-{unique}")
    updated = CampaignUpdatedV1(
        **{**campaign.model_dump(), "revision": 2, "status": CampaignStatus.ARCHIVED}
    )
    session_id = uuid.uuid4()
    scheduled = session_scheduled(campaign.campaign_id, session_id=session_id, capacity=10)
    cut = SessionCapacityChangedV1(
        session_id=session_id,
        campaign_id=campaign.campaign_id,
        revision=3,
        previous_capacity=10,
        capacity=5,
    )
    other = session_scheduled(campaign.campaign_id, capacity=4)
    cancelled = SessionCancelledV1(
        session_id=other.session_id,
        campaign_id=campaign.campaign_id,
        revision=5,
        reason="speaker unavailable",
        cancelled_at=other.starts_at - timedelta(days=1),
    )
    late = SessionRescheduledV1(
        **{
            **other.model_dump(),
            "revision": 4,
            "previous_starts_at": other.starts_at,
            "previous_ends_at": other.ends_at,
        }
    )
    async with consumers(infrastructure, database_dsn, prefix) as driven:
        # Late: the capacity change and the cancellation come before what they change.
        await publish_events(bootstrap, prefix, [updated, cut, cancelled])
        await driven.catalog_events()
        await publish_events(bootstrap, prefix, [campaign, scheduled, other, late])
        await driven.catalog_events()
        # Replays: the same records again (inbox), and the same events re-published anew.
        again = await read_topic(bootstrap, f"{prefix}catalog.sessions.v1")
        report = await driven.catalog.process_batch(again)
        await publish_events(bootstrap, prefix, [campaign, scheduled, cut, other, cancelled])
        await driven.catalog_events()
    assert report.duplicates == len(again)
    row = (await fetch(database_dsn, "SELECT * FROM campaigns"))[0]
    assert (row["revision"], row["status"]) == (2, "archived")
    sessions = {r["session_id"]: r for r in await fetch(database_dsn, "SELECT * FROM sessions")}
    assert sessions[session_id]["capacity"] == 5, "the later capacity change wins"
    assert sessions[session_id]["state_revision"] == 1
    assert sessions[session_id]["status"] == "scheduled"
    assert sessions[other.session_id]["status"] == "cancelled", "a late reschedule cannot revive"
    assert sessions[other.session_id]["state_revision"] == 4


async def test_every_bad_submission_is_answered_and_nothing_stops_the_consumer(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    slug, draft_slug, absent_slug = f"c-{unique}", f"d-{unique}", f"x-{unique}"
    topic = REGISTRATION_SUBMISSIONS.full_name(prefix)
    async with consumers(infrastructure, database_dsn, prefix) as driven:
        partner = await new_partner(database_dsn, slug, draft_slug, absent_slug)
        secret = signing_secret(MASTER_KEY.encode(), partner.partner_id)
        question = RegistrationQuestion(
            key="why", label="What does solidarity mean?", required=True
        )
        campaign = campaign_published(slug, questions=(question,))
        draft = campaign_published(draft_slug, status=CampaignStatus.DRAFT)
        open_session = session_scheduled(campaign.campaign_id, capacity=5)
        over = session_scheduled(campaign.campaign_id, starts_in=timedelta(days=-2))
        educators = session_scheduled(campaign.campaign_id, audience=(Role.EDUCATOR,))
        gone = session_scheduled(campaign.campaign_id)
        gone_cancelled = SessionCancelledV1(
            session_id=gone.session_id,
            campaign_id=campaign.campaign_id,
            revision=2,
            reason="cancelled",
            cancelled_at=gone.starts_at,
        )
        await publish_events(
            bootstrap,
            prefix,
            [campaign, draft, open_session, over, educators, gone, gone_cancelled],
        )
        await driven.catalog_events()

        answer = {"why": "showing up for each other"}

        def good(sub_id: str, email: str | None = None) -> RegistrationSubmittedV1:
            return submission(
                partner.partner_id,
                slug,
                submission_id=sub_id,
                email=email,
                session_ids=[open_session.session_id],
                answers=answer,
            )

        first = good("first")
        cases = {
            "bad-signature": signed_record(good("bad-signature"), "sws_not-the-secret"),
            "unsigned": signed_record(good("unsigned"), None),
            "unknown-partner": signed_record(
                submission(uuid.uuid4(), slug, submission_id="unknown-partner"), secret
            ),
            "not-allowed": signed_record(
                submission(partner.partner_id, "someone-elses", submission_id="not-allowed"),
                secret,
            ),
            "unknown-campaign": signed_record(
                submission(partner.partner_id, absent_slug, submission_id="unknown-campaign"),
                secret,
            ),
            "draft": signed_record(
                submission(partner.partner_id, draft_slug, submission_id="draft"), secret
            ),
            "bad-email": signed_record(good("bad-email", email="not-an-address"), secret),
            "no-answer": signed_record(
                submission(
                    partner.partner_id,
                    slug,
                    submission_id="no-answer",
                    session_ids=[open_session.session_id],
                ),
                secret,
            ),
            "unknown-session": signed_record(
                submission(
                    partner.partner_id,
                    slug,
                    submission_id="unknown-session",
                    session_ids=[uuid.uuid4()],
                    signup=False,
                    answers=answer,
                ),
                secret,
            ),
            "cancelled": signed_record(
                submission(
                    partner.partner_id,
                    slug,
                    submission_id="cancelled",
                    session_ids=[gone.session_id],
                    signup=False,
                    answers=answer,
                ),
                secret,
            ),
            "closed": signed_record(
                submission(
                    partner.partner_id,
                    slug,
                    submission_id="closed",
                    session_ids=[over.session_id],
                    signup=False,
                    answers=answer,
                ),
                secret,
            ),
            "audience": signed_record(
                submission(
                    partner.partner_id,
                    slug,
                    submission_id="audience",
                    session_ids=[educators.session_id],
                    signup=False,
                    answers=answer,
                ),
                secret,
            ),
        }
        # Schema-invalid (no role) but signed: dead-lettered, and still answered.
        envelope = Envelope.wrap(good("no-role"), producer="partner-platform")
        payload = dict(envelope.payload)
        payload["registrant"] = {k: v for k, v in payload["registrant"].items() if k != "role"}
        broken = envelope.model_copy(update={"payload": payload}).to_bytes()
        broken_headers = [
            *envelope.headers(),
            (SIGNATURE_HEADER, sign(secret, broken).encode()),
            (PARTNER_HEADER, str(partner.partner_id).encode()),
        ]
        records = [
            signed_record(first, secret),
            *cases.values(),
            (b"no-role", broken, broken_headers),
            (b"junk", b"\xff not json", []),
            signed_record(good("after"), secret),
            # The same submission id with another body.
            signed_record(good("first", email="someone-else@example.org"), secret),
        ]
        await produce(bootstrap, topic, records)
        await driven.submissions_topic()
        await relay_all(infrastructure, database_dsn)

    answers = await outcomes(infrastructure, prefix)
    rejected = {
        e.submission_id: e.reason.value
        for e in answers
        if isinstance(e, SessionRegistrationRejectedV1)
    }
    assert rejected == {
        "bad-signature": "invalid_signature",
        "unsigned": "invalid_signature",
        "unknown-partner": "unknown_partner",
        "not-allowed": "partner_not_allowed_for_campaign",
        "unknown-campaign": "unknown_campaign",
        "draft": "campaign_not_open",
        "bad-email": "invalid_email",
        "no-answer": "invalid_submission",
        "unknown-session": "unknown_session",
        "cancelled": "session_cancelled",
        "closed": "registration_window_closed",
        "audience": "not_in_audience",
        "no-role": "invalid_submission",
        "first": "duplicate",
    }
    confirmed = {e.submission_id for e in answers if isinstance(e, SessionRegistrationConfirmedV1)}
    assert confirmed == {"first", "after"}, "the consumer went on after every bad message"
    dead = await read_topic(bootstrap, f"{topic}.dlq")
    assert sorted(r.value for r in dead) == sorted([broken, b"\xff not json"])
    # No personal data in outcomes.
    for record in await read_topic(bootstrap, f"{prefix}registration.outcomes.v1"):
        assert b"@" not in record.value


async def test_repeats_are_answered_with_the_existing_outcome(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    slug = f"c-{unique}"
    topic = REGISTRATION_SUBMISSIONS.full_name(prefix)
    async with consumers(infrastructure, database_dsn, prefix) as driven:
        partner = await new_partner(database_dsn, slug)
        secret = signing_secret(MASTER_KEY.encode(), partner.partner_id)
        campaign = campaign_published(slug)
        session = session_scheduled(campaign.campaign_id, capacity=1)
        await publish_events(bootstrap, prefix, [campaign, session])
        await driven.catalog_events()
        email = f"amara-{unique}@example.org"
        original = submission(
            partner.partner_id,
            slug,
            email=email,
            submission_id="s1",
            session_ids=[session.session_id],
        )
        same_person = submission(
            partner.partner_id,
            slug,
            email=email.upper(),
            submission_id="s2",
            session_ids=[session.session_id],
        )
        new_school = submission(
            partner.partner_id,
            slug,
            email=email,
            submission_id="s3",
            school="Lakeside Middle",
            session_ids=[session.session_id],
        )
        # In one batch: the submission, a retry of it (new event id), the same person again.
        await produce(
            bootstrap,
            topic,
            [signed_record(e, secret) for e in (original, original, same_person)],
        )
        await driven.submissions_topic()
        # Later batches: a retry, then new details for the same person.
        await produce(bootstrap, topic, [signed_record(original, secret)])
        await driven.submissions_topic()
        await produce(bootstrap, topic, [signed_record(new_school, secret)])
        await driven.submissions_topic()
        # Redelivery of everything (a rebalance): the inbox drops it all.
        redelivered = await read_topic(bootstrap, topic)
        report = await driven.submissions.process_batch(redelivered)
        await relay_all(infrastructure, database_dsn)

    assert report.duplicates == len(redelivered) == 5
    answers = await outcomes(infrastructure, prefix)
    seats = [
        e
        for e in answers
        if isinstance(e, SessionRegistrationConfirmedV1 | SessionRegistrationWaitlistedV1)
    ]
    assert len(seats) == 5
    assert len({e.registration_id for e in seats}) == 1, "one registration, answered five times"
    assert [e.duplicate for e in seats] == [False, True, True, True, True]
    assert all(isinstance(e, SessionRegistrationConfirmedV1) for e in seats)
    signups = [e for e in answers if isinstance(e, SignupConfirmedV1)]
    assert len({e.signup_id for e in signups}) == 1
    assert await fetchval(database_dsn, "SELECT count(*) FROM registrants") == 1
    recorded = list(await registrant_events(infrastructure, prefix))
    assert [type(e) for e in recorded] == [RegistrantRecordedV1, RegistrantRecordedV1]
    assert all(isinstance(e, RegistrantRecordedV1) and e.email == email for e in recorded)


async def test_capacity_changes_promote_and_demote_and_a_cancelled_session_cancels_all(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    slug = f"c-{unique}"
    topic = REGISTRATION_SUBMISSIONS.full_name(prefix)
    async with consumers(infrastructure, database_dsn, prefix) as driven:
        partner = await new_partner(database_dsn, slug)
        secret = signing_secret(MASTER_KEY.encode(), partner.partner_id)
        campaign = campaign_published(slug)
        session = session_scheduled(campaign.campaign_id, capacity=2)
        await publish_events(bootstrap, prefix, [campaign, session])
        await driven.catalog_events()
        people = [
            submission(
                partner.partner_id, slug, submission_id=f"p{i}", session_ids=[session.session_id]
            )
            for i in range(5)
        ]
        for person in people:  # one batch each: confirmation order is p0, p1
            await produce(bootstrap, topic, [signed_record(person, secret)])
            await driven.submissions_topic()

        async def change(capacity: int, revision: int) -> None:
            await publish_events(
                bootstrap,
                prefix,
                [
                    SessionCapacityChangedV1(
                        session_id=session.session_id,
                        campaign_id=campaign.campaign_id,
                        revision=revision,
                        previous_capacity=None,
                        capacity=capacity,
                    )
                ],
            )
            await driven.catalog_events()

        async def statuses() -> dict[str, tuple[str, int | None]]:
            rows = await fetch(
                database_dsn,
                """
                SELECT submission_id, status, CASE WHEN status = 'waitlisted' THEN rank()
                    OVER (PARTITION BY status ORDER BY waitlist_ordinal) END AS position
                FROM registrations WHERE session_id = $1 AND status <> 'cancelled'
                """,
                session.session_id,
            )
            return {r["submission_id"]: (r["status"], r["position"]) for r in rows}

        assert await statuses() == {
            "p0": ("confirmed", None),
            "p1": ("confirmed", None),
            "p2": ("waitlisted", 1),
            "p3": ("waitlisted", 2),
            "p4": ("waitlisted", 3),
        }
        await change(3, revision=2)  # the head of the waitlist is promoted
        assert await statuses() == {
            "p0": ("confirmed", None),
            "p1": ("confirmed", None),
            "p2": ("confirmed", None),
            "p3": ("waitlisted", 1),
            "p4": ("waitlisted", 2),
        }
        await change(1, revision=3)  # the two most recently confirmed go back to the head
        assert await statuses() == {
            "p0": ("confirmed", None),
            "p1": ("waitlisted", 1),
            "p2": ("waitlisted", 2),
            "p3": ("waitlisted", 3),
            "p4": ("waitlisted", 4),
        }
        await change(2, revision=4)
        assert (await statuses())["p1"] == ("confirmed", None)
        await publish_events(
            bootstrap,
            prefix,
            [
                SessionCancelledV1(
                    session_id=session.session_id,
                    campaign_id=campaign.campaign_id,
                    revision=5,
                    reason="venue closed",
                    cancelled_at=session.starts_at,
                )
            ],
        )
        await driven.catalog_events()
        late = submission(
            partner.partner_id, slug, submission_id="late", session_ids=[session.session_id]
        )
        await produce(bootstrap, topic, [signed_record(late, secret)])
        await driven.submissions_topic()
        await relay_all(infrastructure, database_dsn)

    assert await statuses() == {}
    counters = (await fetch(database_dsn, "SELECT confirmed, waitlisted FROM sessions"))[0]
    assert (counters["confirmed"], counters["waitlisted"]) == (0, 0)
    answers = await outcomes(infrastructure, prefix)
    promoted = [
        (e.submission_id, e.previous_position) for e in answers if isinstance(e, WaitlistPromotedV1)
    ]
    assert sorted(promoted) == [("p1", 1), ("p2", 1)]  # p2 by the raise, p1 after the cut
    demoted = [
        (e.submission_id, e.position)
        for e in answers
        if isinstance(e, SessionRegistrationWaitlistedV1) and e.submission_id in ("p1", "p2")
    ]
    assert sorted(demoted) == [("p1", 1), ("p2", 1), ("p2", 2)]  # p2 waited first, at 1
    cancelled = [e for e in answers if isinstance(e, RegistrationCancelledV1)]
    assert len(cancelled) == 5
    assert {e.reason for e in cancelled} == {"session_cancelled"}
    late_answer = [
        e
        for e in answers
        if isinstance(e, SessionRegistrationRejectedV1) and e.submission_id == "late"
    ]
    assert [e.reason.value for e in late_answer] == ["session_cancelled"]


async def test_a_retried_decision_batch_counts_its_metrics_once(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    """The first attempt decides everything, then its transaction is lost: only the
    committed retry counts (the handler counts through the kit's `on_commit`)."""
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    slug = f"c-{unique}"
    async with consumers(infrastructure, database_dsn, prefix) as driven:
        partner = await new_partner(database_dsn, slug)
        secret = signing_secret(MASTER_KEY.encode(), partner.partner_id)
        campaign = campaign_published(slug)
        session = session_scheduled(campaign.campaign_id, capacity=2)
        await publish_events(bootstrap, prefix, [campaign, session])
        await driven.catalog_events()
        decide = driven.submissions.handler
        attempts = 0

        async def decide_then_lose_the_first_attempt(
            conn: Connection, messages: Sequence[InboundMessage]
        ) -> None:
            nonlocal attempts
            attempts += 1
            await decide(conn, messages)
            if attempts == 1:
                raise TransientError("connection lost before the commit")

        driven.submissions.handler = decide_then_lose_the_first_attempt
        people = [
            submission(partner.partner_id, slug, session_ids=[session.session_id]) for _ in range(3)
        ]
        await produce(
            bootstrap,
            REGISTRATION_SUBMISSIONS.full_name(prefix),
            [signed_record(p, secret) for p in people],
        )
        await driven.submissions_topic()
    assert attempts == 2
    registry = driven.metrics.registry
    assert (
        registry.get_sample_value("solidarity_registration_submissions_total", {"source": "kafka"})
        == 3
    )
    assert (
        registry.get_sample_value("solidarity_registration_outcomes_total", {"kind": "confirmed"})
        == 2
    )
    assert (
        registry.get_sample_value("solidarity_registration_outcomes_total", {"kind": "waitlisted"})
        == 1
    )
    assert registry.get_sample_value("solidarity_registration_decision_batch_seconds_count") == 1
    assert await fetchval(database_dsn, "SELECT count(*) FROM registrations") == 3
