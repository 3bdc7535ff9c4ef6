"""The bench's trace of a lost submission, on a real broker and a real registration database:
each stage it reports is set up by hand and must be found where it was put."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from solidarity.registration.bootstrap import submissions_group
from solidarity.shared.bench.trace import SUBMISSIONS_GROUP, describe, trace_unanswered
from solidarity.shared.contracts.topics import REGISTRATION_OUTCOMES, REGISTRATION_SUBMISSIONS
from solidarity.shared.db.migrations import migrate
from solidarity.shared.messaging.consumer import DlqHeaders
from solidarity.shared.testing.infrastructure import Infrastructure

pytestmark = pytest.mark.integration

PARTNER = str(uuid.uuid4())


async def _produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    headers: Sequence[tuple[str, bytes]] = (),
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=value[:8], headers=list(headers))
    finally:
        await producer.stop()


async def test_each_stage_a_submission_reached_is_reported(
    infrastructure: Infrastructure, registry_topics: str, database_dsn: str, unique: str
) -> None:
    await migrate(database_dsn, service_package="solidarity.registration")
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    never_read, stuck_in_outbox, answered, never_sent = (
        f"riverside-{unique}-{n}" for n in (1, 2, 3, 4)
    )
    body = [
        json.dumps({"submission_id": s}).encode() for s in (never_read, stuck_in_outbox, answered)
    ]
    await _produce(bootstrap, REGISTRATION_SUBMISSIONS.full_name(prefix), body)
    await _produce(bootstrap, REGISTRATION_OUTCOMES.full_name(prefix), [body[2]])
    # An id that holds another's as a prefix is another submission, not a copy of it.
    await _produce(
        bootstrap,
        REGISTRATION_SUBMISSIONS.full_name(prefix),
        [json.dumps({"submission_id": f"{never_sent}0"}).encode()],
    )
    await _produce(
        bootstrap,
        f"{REGISTRATION_SUBMISSIONS.full_name(prefix)}.dlq",
        [body[0]],
        headers=[
            (DlqHeaders.ERROR_TYPE, b"ValidationError"),
            (DlqHeaders.SOURCE_PARTITION, b"3"),
            (DlqHeaders.SOURCE_OFFSET, b"17"),
        ],
    )
    conn = await asyncpg.connect(database_dsn)
    try:
        for submission in (stuck_in_outbox, answered):
            await conn.execute(
                "INSERT INTO submissions (partner_id, submission_id, event_id, source, status, "
                "outcome) VALUES ($1::uuid, $2, $3, 'kafka', 'decided', '{}'::jsonb)",
                PARTNER,
                submission,
                uuid.uuid4(),
            )
            await conn.execute(
                "INSERT INTO outbox (event_id, event_type, shard, topic, value, sent_at) "
                "VALUES ($1, 'SignupConfirmed', 3, $2, $3, "
                "CASE WHEN $4 THEN now() END)",
                uuid.uuid4(),
                REGISTRATION_OUTCOMES.full_name(prefix),
                json.dumps({"submission_id": submission}).encode(),
                submission == answered,
            )
    finally:
        await conn.close()

    traced = await trace_unanswered(
        bootstrap=bootstrap,
        registration_dsn=database_dsn,
        submissions=[(PARTNER, s) for s in (never_read, stuck_in_outbox, answered, never_sent)],
        topic_prefix=prefix,
    )

    by_id = {t["submission_id"]: t for t in traced}
    assert [t["submission_id"] for t in traced] == [
        never_read,
        stuck_in_outbox,
        answered,
        never_sent,
    ]
    on_topic = by_id[never_read]["on_submissions_topic"]
    assert [p["committed"] for p in on_topic] == [0]  # on the topic once, never consumed
    assert by_id[never_read]["status"] == "not decided"
    assert by_id[never_read]["outbox"] == []
    assert by_id[stuck_in_outbox]["status"] == "decided"
    assert [(r["event_type"], r["shard"], r["sent"]) for r in by_id[stuck_in_outbox]["outbox"]] == [
        ("SignupConfirmed", 3, False)
    ]
    assert by_id[stuck_in_outbox]["answers_on_outcomes_topic"] == 0
    assert [r["sent"] for r in by_id[answered]["outbox"]] == [True]
    assert by_id[answered]["answers_on_outcomes_topic"] == 1
    assert by_id[never_sent]["on_submissions_topic"] == []
    assert "NOT FOUND ON THE TOPIC" in describe(by_id[never_sent])
    assert [t["dead_letters"] for t in traced] == [1, 0, 0, 0]
    assert {t["records_on_submissions_topic"] for t in traced} == {4}
    assert {t["repeated_records_on_submissions_topic"] for t in traced} == {0}
    assert by_id[never_sent]["dead_letters_on_submissions_dlq"] == [
        {"source_partition": "3", "source_offset": "17", "error_type": "ValidationError"}
    ]
    assert "1 dead letters in all on the submissions DLQ: ValidationError from 3:17" in describe(
        by_id[never_sent]
    )
    assert "PENDING" in describe(by_id[stuck_in_outbox])


def test_the_trace_reads_the_registration_services_own_consumer_group() -> None:
    assert submissions_group("") == SUBMISSIONS_GROUP
