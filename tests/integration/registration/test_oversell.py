"""Never oversold: two instances, Kafka and HTTP at once, 5,000 people for 100 seats."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import pytest

from solidarity.registration.domain.partners import signing_secret
from solidarity.shared.contracts.topics import REGISTRATION_SUBMISSIONS
from solidarity.shared.db.pool import Connection
from solidarity.shared.messaging.consumer import BatchHandler, InboundMessage
from solidarity.shared.messaging.kafka import read_topic
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.integration.registration.support import (
    MASTER_KEY,
    Consumers,
    assigned_partitions,
    campaign_published,
    consumers,
    fetch,
    fetchval,
    http_body,
    migrated,
    new_partner,
    produce,
    publish_events,
    running_together,
    session_scheduled,
    settings_for,
    signed_record,
    submission,
    wait_until,
)

pytestmark = pytest.mark.integration

SEATS = 100


def racing_runner(
    driven: Consumers, wrap: Callable[[Connection, Sequence[InboundMessage]], Awaitable[None]]
) -> BatchHandler:
    """Swap a consumer's handler for `wrap`; returns the original, for `wrap` to call."""
    original: BatchHandler = driven.submissions.handler
    driven.submissions.handler = wrap
    return original


OVER_KAFKA = 2_500
OVER_HTTP = 2_500
HTTP_BATCH = 100


async def test_two_instances_with_kafka_and_http_at_once_confirm_exactly_the_capacity(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    prefix = registry_topics
    dsn = await migrated(database_dsn)
    slug = f"week-{unique}"
    partner = await new_partner(dsn, slug)
    secret = signing_secret(MASTER_KEY.encode(), partner.partner_id)
    campaign = campaign_published(slug)
    session = session_scheduled(campaign.campaign_id, capacity=SEATS)
    await publish_events(infrastructure.kafka_bootstrap, prefix, [campaign, session])

    kafka_people = [
        submission(partner.partner_id, slug, session_ids=[session.session_id])
        for _ in range(OVER_KAFKA)
    ]
    http_people = [
        submission(partner.partner_id, slug, session_ids=[session.session_id])
        for _ in range(OVER_HTTP)
    ]
    settings = settings_for(infrastructure, dsn, prefix, consumer_max_records=500)
    topic = REGISTRATION_SUBMISSIONS.full_name(prefix)
    headers = {"Authorization": f"Bearer {partner.api_key}"}

    async with running_together(settings, 2) as [(app_a, client_a), (app_b, client_b)]:

        async def both_assigned() -> bool:
            return assigned_partitions(app_a, topic) > 0 and assigned_partitions(app_b, topic) > 0

        async def session_known() -> bool:
            known = await fetchval(
                dsn, "SELECT state_revision FROM sessions WHERE session_id = $1", session.session_id
            )
            return bool(known)

        await wait_until(both_assigned, what="both instances holding partitions", timeout_s=60)
        await wait_until(session_known, what="the session in the read model")

        async def over_kafka() -> None:
            await produce(
                infrastructure.kafka_bootstrap,
                topic,
                [signed_record(event, secret) for event in kafka_people],
            )

        async def over_http() -> None:
            clients = [client_a, client_b]

            async def post(index: int) -> None:
                chunk = http_people[index : index + HTTP_BATCH]
                response = await clients[(index // HTTP_BATCH) % 2].post(
                    "/v1/registrations/batch",
                    json={"submissions": [http_body(e) for e in chunk]},
                    headers={**headers, "Idempotency-Key": f"batch-{index}"},
                )
                assert response.status_code == 202, response.text
                assert response.json()["accepted"] == len(chunk)

            await asyncio.gather(*(post(i) for i in range(0, OVER_HTTP, HTTP_BATCH)))

        started = time.perf_counter()
        await asyncio.gather(over_kafka(), over_http())

        async def all_decided() -> bool:
            decided = await fetchval(dsn, "SELECT count(*) FROM submissions")
            return bool(decided == OVER_KAFKA + OVER_HTTP)

        await wait_until(all_decided, what="every submission decided", timeout_s=120)
        elapsed = time.perf_counter() - started
        applied = [
            sum(r.stats.applied for r in app.state.runtime.consumers if "submissions" in r.name)
            for app in (app_a, app_b)
        ]
        deciding = sum(
            app.state.registration.metrics.registry.get_sample_value(
                "solidarity_registration_decision_batch_seconds_sum"
            )
            or 0.0
            for app in (app_a, app_b)
        )

    total = OVER_KAFKA + OVER_HTTP
    print(
        f"\n[oversell] {total} submissions (Kafka {OVER_KAFKA}, HTTP {OVER_HTTP}) on 2 instances "
        f"decided in {elapsed:.1f} s: {total / elapsed:.0f} submissions/s end to end "
        f"(instance A {applied[0]}, instance B {applied[1]}); "
        f"{deciding:.2f} s inside decision transactions: {total / deciding:.0f} decisions/s "
        "on one hot session row"
    )
    statuses = {
        r["status"]: r["n"]
        for r in await fetch(
            dsn,
            "SELECT status, count(*) AS n FROM registrations WHERE session_id = $1 GROUP BY status",
            session.session_id,
        )
    }
    assert statuses == {"confirmed": SEATS, "waitlisted": total - SEATS}
    positions = [
        r["position"]
        for r in await fetch(
            dsn,
            "SELECT rank() OVER (ORDER BY waitlist_ordinal) AS position FROM registrations "
            "WHERE session_id = $1 AND status = 'waitlisted'",
            session.session_id,
        )
    ]
    assert positions == list(range(1, total - SEATS + 1))
    counters = await fetch(
        dsn, "SELECT confirmed, waitlisted FROM sessions WHERE session_id = $1", session.session_id
    )
    assert (counters[0]["confirmed"], counters[0]["waitlisted"]) == (SEATS, total - SEATS)
    # Every submission got exactly one answer, and the positions handed out are 1..4,900.
    answers = await fetch(
        dsn,
        "SELECT event_type, value FROM outbox WHERE topic = $1",
        f"{prefix}registration.outcomes.v1",
    )
    kinds: dict[str, int] = {}
    for row in answers:
        kinds[row["event_type"]] = kinds.get(row["event_type"], 0) + 1
    assert kinds == {
        "SessionRegistrationConfirmed": SEATS,
        "SessionRegistrationWaitlisted": total - SEATS,
        "SignupConfirmed": total,
    }
    handed_out = sorted(
        __import__("json").loads(r["value"])["payload"]["position"]
        for r in answers
        if r["event_type"] == "SessionRegistrationWaitlisted"
    )
    assert handed_out == list(range(1, total - SEATS + 1))
    sources = {
        r["source"]: r["n"]
        for r in await fetch(dsn, "SELECT source, count(*) AS n FROM submissions GROUP BY source")
    }
    assert sources == {"kafka": OVER_KAFKA, "http": OVER_HTTP}
    assert all(applied), "both instances decided submissions"
    assert uuid.UUID(str(partner.partner_id))


async def test_two_consumers_working_the_same_records_at_once_cannot_oversell_or_double_book(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    """What a rebalance can do: two consumers briefly deciding the same partition's records."""
    prefix = registry_topics
    slug = f"week-{unique}"
    topic = REGISTRATION_SUBMISSIONS.full_name(prefix)
    async with consumers(infrastructure, database_dsn, prefix) as first:
        partner = await new_partner(database_dsn, slug)
        secret = signing_secret(MASTER_KEY.encode(), partner.partner_id)
        campaign = campaign_published(slug)
        session = session_scheduled(campaign.campaign_id, capacity=50)
        await publish_events(infrastructure.kafka_bootstrap, prefix, [campaign, session])
        await first.catalog_events()
        people = [
            submission(partner.partner_id, slug, session_ids=[session.session_id])
            for _ in range(300)
        ]
        # Every person twice, as two different messages (a partner's retry: new event ids).
        await produce(
            infrastructure.kafka_bootstrap, topic, [signed_record(p, secret) for p in people]
        )
        originals = await read_topic(infrastructure.kafka_bootstrap, topic)
        await produce(
            infrastructure.kafka_bootstrap, topic, [signed_record(p, secret) for p in people]
        )
        seen = {(r.partition, r.offset) for r in originals}
        records = await read_topic(infrastructure.kafka_bootstrap, topic)
        retries = [r for r in records if (r.partition, r.offset) not in seen]
        assert (len(originals), len(retries)) == (300, 300)
        # The originals and the retries race in two consumers: the first holds its
        # transaction open until the second has started reading, so the second starts from
        # a view without the first's people; the row locks and unique constraints settle it.
        second_reading = asyncio.Event()

        async def first_waits(conn: Connection, messages: Sequence[InboundMessage]) -> None:
            await first_handler(conn, messages)
            await asyncio.wait_for(second_reading.wait(), 10)

        async def second_signals(conn: Connection, messages: Sequence[InboundMessage]) -> None:
            second_reading.set()
            await second_handler(conn, messages)

        first_handler = racing_runner(first, first_waits)
        async with consumers(infrastructure, database_dsn, prefix) as second:
            second_handler = racing_runner(second, second_signals)
            first_batch = asyncio.create_task(first.submissions.process_batch(originals))
            await asyncio.sleep(0.2)
            reports = [
                await second.submissions.process_batch(retries),
                await first_batch,
            ]
            # Then both consumers get every record again, as after a rebalance.
            reports += await asyncio.gather(
                first.submissions.process_batch(records),
                second.submissions.process_batch(records),
            )
    assert sum(r.applied for r in reports) == 600, "each message applied exactly once"
    assert sum(r.duplicates for r in reports) == 1200
    print(f"\n[same records] batch retries after losing a race: {sum(r.retries for r in reports)}")
    statuses = {
        r["status"]: r["n"]
        for r in await fetch(
            database_dsn,
            "SELECT status, count(*) AS n FROM registrations GROUP BY status",
        )
    }
    assert statuses == {"confirmed": 50, "waitlisted": 250}
    positions = [
        r["position"]
        for r in await fetch(
            database_dsn,
            "SELECT rank() OVER (ORDER BY waitlist_ordinal) AS position FROM registrations "
            "WHERE status = 'waitlisted'",
        )
    ]
    assert positions == list(range(1, 251))
    assert await fetchval(database_dsn, "SELECT count(*) FROM registrants") == 300
    answers = await fetchval(
        database_dsn,
        "SELECT count(*) FROM outbox WHERE event_type IN "
        "('SessionRegistrationConfirmed', 'SessionRegistrationWaitlisted')",
    )
    assert answers == 600, "every message answered once (the second copy as a duplicate)"
