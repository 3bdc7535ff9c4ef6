"""The consumer runner on FastStream against a real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.contracts.events.catalog import SessionScheduledV1
from solidarity.shared.contracts.topics import CATALOG_SESSIONS
from solidarity.shared.db.pool import Connection, connect
from solidarity.shared.messaging.consumer import (
    ConsumerRunner,
    DlqHeaders,
    InboundMessage,
    TransientError,
    on_commit,
)
from solidarity.shared.messaging.kafka import make_broker, make_producer, read_topic
from solidarity.shared.messaging.outbox import Outbox, OutboxMessage
from solidarity.shared.messaging.relay import OutboxRelay
from solidarity.shared.settings import KafkaSettings
from solidarity.shared.testing.events import session_scheduled
from solidarity.shared.testing.infrastructure import Infrastructure

pytestmark = pytest.mark.integration

EFFECTS_DDL = "CREATE TABLE effects (event_id uuid NOT NULL, session_id uuid NOT NULL, title text)"


async def record_effects(conn: Connection, messages: Sequence[InboundMessage]) -> None:
    rows = []
    for m in messages:
        assert isinstance(m.event, SessionScheduledV1)
        rows.append((m.event_id, m.event.session_id, m.event.title))
    await conn.executemany("INSERT INTO effects VALUES ($1, $2, $3)", rows)


async def effect_counts(dsn: str) -> dict[uuid.UUID, int]:
    conn = await connect(dsn)
    try:
        rows = await conn.fetch("SELECT event_id, count(*) AS n FROM effects GROUP BY event_id")
    finally:
        await conn.close()
    return {r["event_id"]: r["n"] for r in rows}


async def wait_until(check: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def produce_envelopes(
    bootstrap: str, topic: str, events: Sequence[SessionScheduledV1]
) -> list[Envelope]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    envelopes = []
    try:
        for event in events:
            envelope = Envelope.wrap(event, producer="catalog")
            envelopes.append(envelope)
            await producer.send(
                topic,
                value=envelope.to_bytes(),
                key=event.aggregate_key().encode(),
                headers=envelope.headers(),
            )
        await producer.flush()
    finally:
        await producer.stop()
    return envelopes


@pytest.fixture
async def effects_dsn(kit_database_dsn: str) -> str:
    conn = await connect(kit_database_dsn)
    try:
        await conn.execute(EFFECTS_DDL)
    finally:
        await conn.close()
    return kit_database_dsn


async def run_consumer(
    infrastructure: Infrastructure,
    runner: ConsumerRunner,
    topic: str,
    until: Callable[[], Awaitable[bool]],
    *,
    max_records: int = 100,
) -> None:
    broker = make_broker(
        KafkaSettings(bootstrap_servers=infrastructure.kafka_bootstrap), service="test"
    )
    runner.subscribe(broker, topic, max_records=max_records)
    await broker.start()
    try:
        await wait_until(until, timeout_s=60)
    finally:
        await broker.stop()


async def test_a_relay_duplicate_on_the_wire_has_a_single_effect(
    infrastructure: Infrastructure, effects_dsn: str, registry_topics: str, unique: str
) -> None:
    outbox = Outbox(producer="catalog", topic_prefix=registry_topics)
    keys = [uuid.uuid4(), uuid.uuid4()]  # two keys: one relay pass takes every row
    conn = await connect(effects_dsn)
    try:
        for i in range(10):
            async with conn.transaction():
                await outbox.add(conn, [session_scheduled(session_id=keys[i % 2])])
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(effects_dsn, min_size=1, max_size=4)
    producer = make_producer(KafkaSettings(bootstrap_servers=infrastructure.kafka_bootstrap))
    await producer.start()

    async def crash(_: list[int]) -> None:
        raise RuntimeError("killed between publish and mark-sent")

    try:
        with pytest.raises(RuntimeError, match="killed"):
            await OutboxRelay(pool=pool, producer=producer, after_publish=crash).publish_once()
        while await OutboxRelay(pool=pool, producer=producer).publish_once():
            pass
        topic = CATALOG_SESSIONS.full_name(registry_topics)
        on_wire = await read_topic(infrastructure.kafka_bootstrap, topic)
        assert len(on_wire) > len({Envelope.from_bytes(r.value).event_id for r in on_wire})

        runner = ConsumerRunner(
            name=f"effects-{unique}",
            pool=pool,
            outbox=outbox,
            handler=record_effects,
            handles=[SessionScheduledV1],
        )

        async def all_read() -> bool:
            return runner.stats.received >= len(on_wire)

        await run_consumer(infrastructure, runner, topic, all_read)
    finally:
        await producer.stop()
        await pool.close()
    counts = await effect_counts(effects_dsn)
    assert len(on_wire) == 20
    assert len(counts) == 10
    assert set(counts.values()) == {1}
    assert runner.stats.duplicates == 10


async def test_poison_messages_go_to_the_dlq_and_the_next_message_is_processed(
    infrastructure: Infrastructure, effects_dsn: str, registry_topics: str, unique: str
) -> None:
    topic = CATALOG_SESSIONS.full_name(registry_topics)
    good = [session_scheduled(title=f"good {i}") for i in range(3)]
    producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
    await producer.start()
    unknown = Envelope.wrap(good[0], producer="catalog").model_copy(
        update={"event_type": "SessionTeleported", "event_id": uuid.uuid4()}
    )
    invalid = Envelope.wrap(good[0], producer="catalog").model_copy(
        update={"payload": {"session_id": "not-a-uuid"}, "event_id": uuid.uuid4()}
    )
    poison = [b"not json at all", b"123", unknown.to_bytes(), invalid.to_bytes(), b"\xff\xfe"]
    try:
        # Poison first on one key (one partition), so valid messages come after it in order.
        for value in poison:
            await producer.send_and_wait(topic, value=value, key=b"same-key")
        for event in good:
            envelope = Envelope.wrap(event, producer="catalog")
            await producer.send_and_wait(
                topic, value=envelope.to_bytes(), key=b"same-key", headers=envelope.headers()
            )
    finally:
        await producer.stop()

    pool = await asyncpg.create_pool(effects_dsn, min_size=1, max_size=4)
    outbox = Outbox(producer="test", topic_prefix=registry_topics)
    runner = ConsumerRunner(
        name=f"effects-{unique}",
        pool=pool,
        outbox=outbox,
        handler=record_effects,
        handles=[SessionScheduledV1],
    )
    relay_producer = make_producer(KafkaSettings(bootstrap_servers=infrastructure.kafka_bootstrap))
    await relay_producer.start()
    try:

        async def all_read() -> bool:
            return runner.stats.received >= 8

        await run_consumer(infrastructure, runner, topic, all_read, max_records=2)
        while await OutboxRelay(pool=pool, producer=relay_producer).publish_once():
            pass
    finally:
        await relay_producer.stop()
        await pool.close()

    counts = await effect_counts(effects_dsn)
    assert len(counts) == 3, "every valid message after the poison was applied"
    dead = await read_topic(infrastructure.kafka_bootstrap, f"{topic}.dlq")
    assert sorted(r.value for r in dead) == sorted(poison)
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers[DlqHeaders.SOURCE_TOPIC] == topic
        assert headers[DlqHeaders.CONSUMER_GROUP] == f"effects-{unique}"
        assert headers[DlqHeaders.SOURCE_OFFSET].isdigit()
        assert headers[DlqHeaders.SOURCE_PARTITION].isdigit()
        assert headers[DlqHeaders.ERROR_TYPE]
        assert headers[DlqHeaders.ERROR_MESSAGE]
        assert headers[DlqHeaders.FAILED_AT]
        assert record.key == b"same-key"


async def test_a_consumer_stopped_mid_batch_resumes_without_losing_or_reapplying(
    infrastructure: Infrastructure, effects_dsn: str, registry_topics: str, unique: str
) -> None:
    topic = CATALOG_SESSIONS.full_name(registry_topics)
    envelopes = await produce_envelopes(
        infrastructure.kafka_bootstrap, topic, [session_scheduled() for _ in range(3000)]
    )
    pool = await asyncpg.create_pool(effects_dsn, min_size=1, max_size=4)
    outbox = Outbox(producer="test", topic_prefix=registry_topics)
    in_third_batch = asyncio.Event()
    batches = 0

    async def stuck_on_third_batch(conn: Connection, messages: Sequence[InboundMessage]) -> None:
        nonlocal batches
        batches += 1
        await record_effects(conn, messages)
        if batches == 3:
            in_third_batch.set()
            await asyncio.sleep(3600)  # the effect is written but never committed

    group = f"effects-{unique}"
    first = ConsumerRunner(
        name=group,
        pool=pool,
        outbox=outbox,
        handler=stuck_on_third_batch,
        handles=[SessionScheduledV1],
    )
    broker = make_broker(
        KafkaSettings(bootstrap_servers=infrastructure.kafka_bootstrap), service="test"
    )
    first.subscribe(broker, topic, max_records=100)
    await broker.start()
    try:
        await asyncio.wait_for(in_third_batch.wait(), 60)
    finally:
        await asyncio.wait_for(broker.stop(), 30)
    applied_before = sum((await effect_counts(effects_dsn)).values())
    assert 0 < applied_before < 3000

    second = ConsumerRunner(
        name=group,
        pool=pool,
        outbox=outbox,
        handler=record_effects,
        handles=[SessionScheduledV1],
    )

    async def all_applied() -> bool:
        return len(await effect_counts(effects_dsn)) >= 3000

    try:
        await run_consumer(infrastructure, second, topic, all_applied)
    finally:
        await pool.close()
    counts = await effect_counts(effects_dsn)
    assert set(counts) == {e.event_id for e in envelopes}, "nothing lost"
    assert set(counts.values()) == {1}, "nothing applied twice"
    # Redelivered records were recognised in the inbox, not applied again.
    assert second.stats.duplicates + second.stats.applied == second.stats.received


async def test_transient_failures_are_retried_and_bad_handler_input_is_isolated(
    infrastructure: Infrastructure, effects_dsn: str, registry_topics: str, unique: str
) -> None:
    topic = CATALOG_SESSIONS.full_name(registry_topics)
    await produce_envelopes(
        infrastructure.kafka_bootstrap,
        topic,
        [session_scheduled(title=t) for t in ("ok 1", "explodes", "ok 2", "ok 3")],
    )
    records = await read_topic(infrastructure.kafka_bootstrap, topic)
    failures_left = 2

    async def flaky(conn: Connection, messages: Sequence[InboundMessage]) -> None:
        nonlocal failures_left
        if failures_left:
            failures_left -= 1
            raise TransientError("database briefly away")
        for m in messages:
            assert isinstance(m.event, SessionScheduledV1)
            if m.event.title == "explodes":
                raise ValueError("a rule this event breaks")
        await record_effects(conn, messages)

    pool = await asyncpg.create_pool(effects_dsn, min_size=1, max_size=4)
    runner = ConsumerRunner(
        name=f"effects-{unique}",
        pool=pool,
        outbox=Outbox(producer="test", topic_prefix=registry_topics),
        handler=flaky,
        handles=[SessionScheduledV1],
        max_backoff_s=0.2,
    )
    try:
        report = await runner.process_batch(records)
        again = await runner.process_batch(records)  # a redelivery of the same batch
        conn = await pool.acquire()
        try:
            dead_rows = await conn.fetch(
                "SELECT topic, headers FROM outbox WHERE event_type = 'DeadLetter'"
            )
        finally:
            await pool.release(conn)
    finally:
        await pool.close()
    assert report.retries == 2
    assert report.applied == 3
    assert report.dead_lettered == 1
    assert again.applied == 0
    assert again.duplicates == 3
    # The failing event was released from the inbox, not marked applied: a redelivery tries it
    # again (and dead-letters it again), and a fixed, re-driven copy will apply once.
    assert again.dead_lettered == 1
    assert len(dead_rows) == 2
    assert {r["topic"] for r in dead_rows} == {f"{topic}.dlq"}
    assert len(await effect_counts(effects_dsn)) == 3


class _OutboxThatFailsOnce(Outbox):
    """The batch's own infrastructure failing, the way asyncpg failed when PostgreSQL stopped."""

    failures = 1

    async def add_messages(self, conn: Connection, messages: Sequence[OutboxMessage]) -> None:
        if self.failures:
            self.failures -= 1
            raise asyncpg.exceptions.InternalClientError("cannot switch to state 15")
        await super().add_messages(conn, messages)


async def test_an_unexpected_error_outside_the_handler_is_retried_not_dead_lettered(
    infrastructure: Infrastructure, effects_dsn: str, registry_topics: str, unique: str
) -> None:
    topic = CATALOG_SESSIONS.full_name(registry_topics)
    await produce_envelopes(
        infrastructure.kafka_bootstrap, topic, [session_scheduled(title=t) for t in "abc"]
    )
    records = await read_topic(infrastructure.kafka_bootstrap, topic)
    pool = await asyncpg.create_pool(effects_dsn, min_size=1, max_size=2)
    runner = ConsumerRunner(
        name=f"effects-{unique}",
        pool=pool,
        outbox=_OutboxThatFailsOnce(producer="test", topic_prefix=registry_topics),
        handler=record_effects,
        handles=[SessionScheduledV1],
        max_backoff_s=0.2,
    )
    try:
        report = await runner.process_batch(records)
    finally:
        await pool.close()
    assert (report.retries, report.applied, report.dead_lettered) == (1, 3, 0)
    assert sorted((await effect_counts(effects_dsn)).values()) == [1, 1, 1]


async def test_after_commit_callbacks_run_once_and_dead_letters_can_be_answered(
    infrastructure: Infrastructure, effects_dsn: str, registry_topics: str, unique: str
) -> None:
    topic = CATALOG_SESSIONS.full_name(registry_topics)
    await produce_envelopes(infrastructure.kafka_bootstrap, topic, [session_scheduled()])
    producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=b"{broken", key=b"k")
    finally:
        await producer.stop()
    records = await read_topic(infrastructure.kafka_bootstrap, topic)
    committed: list[str] = []
    attempts = 0

    async def flaky_counting(conn: Connection, messages: Sequence[InboundMessage]) -> None:
        nonlocal attempts
        attempts += 1
        on_commit(lambda: committed.append(f"attempt {attempts}"))
        if attempts == 1:
            raise TransientError("database briefly away")
        await record_effects(conn, messages)

    outbox = Outbox(producer="test", topic_prefix=registry_topics)

    async def answer(_: Connection, letter: OutboxMessage) -> list[OutboxMessage]:
        reply = session_scheduled(title="answer to a dead letter")
        return [outbox.message(reply, outbox.envelope(reply))]

    pool = await asyncpg.create_pool(effects_dsn, min_size=1, max_size=2)
    runner = ConsumerRunner(
        name=f"effects-{unique}",
        pool=pool,
        outbox=outbox,
        handler=flaky_counting,
        handles=[SessionScheduledV1],
        max_backoff_s=0.1,
        on_dead_letter=answer,
    )
    try:
        report = await runner.process_batch(records)
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT event_type, topic FROM outbox ORDER BY id")
    finally:
        await pool.close()
    assert report.retries == 1
    assert committed == ["attempt 2"]  # the rolled-back attempt's callback never ran
    assert [(r["event_type"], r["topic"]) for r in rows] == [
        ("DeadLetter", f"{topic}.dlq"),
        ("SessionScheduled", topic),
    ]


@dataclass(frozen=True)
class _Polled:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()


async def test_a_dead_letter_hook_that_raises_leaves_its_letter_unanswered_not_the_batch_stuck(
    effects_dsn: str, unique: str
) -> None:
    outbox = Outbox(producer="test")
    committed: list[str] = []

    async def answer(conn: Connection, letter: OutboxMessage) -> list[OutboxMessage]:
        on_commit(lambda: committed.append(letter.value.decode()))
        if letter.value == b"poison":
            # What a hook reading the same bytes may do: write, then fail on them.
            await conn.execute("INSERT INTO effects VALUES ($1, $1, 'half done')", letter.event_id)
            raise RecursionError("maximum recursion depth exceeded")
        reply = session_scheduled(title="answer to a dead letter")
        return [outbox.message(reply, outbox.envelope(reply))]

    records = [
        _Polled("catalog.sessions.v1", 0, offset, b"k", value)
        for offset, value in enumerate([b"poison", b"{broken"])
    ]
    pool = await asyncpg.create_pool(effects_dsn, min_size=1, max_size=2)
    runner = ConsumerRunner(
        name=f"effects-{unique}",
        pool=pool,
        outbox=outbox,
        handler=record_effects,
        handles=[SessionScheduledV1],
        on_dead_letter=answer,
    )
    try:
        report = await asyncio.wait_for(runner.process_batch(records), 10)
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT event_type, value FROM outbox ORDER BY id")
    finally:
        await pool.close()
    assert (report.dead_lettered, report.retries) == (2, 0)
    assert [(r["event_type"], r["value"]) for r in rows[:2]] == [
        ("DeadLetter", b"poison"),
        ("DeadLetter", b"{broken"),
    ]
    assert [r["event_type"] for r in rows[2:]] == ["SessionScheduled"]  # the other's answer
    assert await effect_counts(effects_dsn) == {}  # the failed hook's write undone
    assert committed == ["{broken"]  # and its after-commit effect dropped
