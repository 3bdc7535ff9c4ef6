"""The outbox relay against a real broker and PostgreSQL: batches, keys, headers, several relays."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import asyncpg
import pytest

from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.contracts.registry import parse_event
from solidarity.shared.contracts.topics import CATALOG_SESSIONS
from solidarity.shared.db.pool import connect
from solidarity.shared.dlq import read_dead_letter, read_dead_letters, redrive
from solidarity.shared.messaging.consumer import DlqHeaders
from solidarity.shared.messaging.kafka import make_producer, read_topic
from solidarity.shared.messaging.outbox import HEADER_COLUMNS, Outbox, OutboxMessage, row_headers
from solidarity.shared.messaging.relay import (
    PENDING_SHARDS_SQL,
    TAKE_BATCH_SQL,
    OutboxRelay,
    pending_count,
)
from solidarity.shared.settings import KafkaSettings
from solidarity.shared.testing.events import session_cancelled, session_scheduled
from solidarity.shared.testing.infrastructure import Infrastructure

pytestmark = pytest.mark.integration


class RelayCrashedError(Exception):
    """Stands in for a relay process killed after publishing, before marking rows sent."""


async def _write_events(dsn: str, outbox: Outbox, count: int, sessions: int = 5) -> list[uuid.UUID]:
    session_ids = [uuid.uuid4() for _ in range(sessions)]
    conn = await connect(dsn)
    try:
        for i in range(count):
            async with conn.transaction():
                await outbox.add(
                    conn, [session_scheduled(session_id=session_ids[i % sessions], revision=i + 1)]
                )
    finally:
        await conn.close()
    return session_ids


async def test_relay_publishes_batches_with_key_and_envelope_headers(
    infrastructure: Infrastructure, kit_database_dsn: str, registry_topics: str
) -> None:
    outbox = Outbox(producer="catalog", topic_prefix=registry_topics)
    await _write_events(kit_database_dsn, outbox, 120)
    pool = await asyncpg.create_pool(kit_database_dsn, min_size=1, max_size=4)
    producer = make_producer(KafkaSettings(bootstrap_servers=infrastructure.kafka_bootstrap))
    await producer.start()
    try:
        relay = OutboxRelay(pool=pool, producer=producer, batch_size=50)
        published: list[int] = []
        while count := await relay.publish_once():
            published.append(count)
        async with pool.acquire() as conn:
            assert await pending_count(conn) == 0
    finally:
        await producer.stop()
        await pool.close()
    assert sum(published) == 120
    assert max(published) <= 50  # batches, never more than the batch size
    assert len(published) >= 3

    records = await read_topic(
        infrastructure.kafka_bootstrap, CATALOG_SESSIONS.full_name(registry_topics)
    )
    assert len(records) == 120
    for record in records:
        envelope = Envelope.from_bytes(record.value)
        event = parse_event(envelope)
        headers = dict(record.headers)
        assert record.key == str(event.session_id).encode()  # type: ignore[attr-defined]
        assert headers["event_id"] == str(envelope.event_id).encode()
        assert headers["event_type"] == b"SessionScheduled"
        assert headers["schema_version"] == b"1"
        assert headers["producer"] == b"catalog"


async def test_relay_crash_between_publish_and_mark_duplicates_on_the_wire_only(
    infrastructure: Infrastructure, kit_database_dsn: str, registry_topics: str
) -> None:
    outbox = Outbox(producer="catalog", topic_prefix=registry_topics)
    await _write_events(kit_database_dsn, outbox, 10, sessions=2)
    pool = await asyncpg.create_pool(kit_database_dsn, min_size=1, max_size=4)
    producer = make_producer(KafkaSettings(bootstrap_servers=infrastructure.kafka_bootstrap))
    await producer.start()

    async def crash(_: list[int]) -> None:
        raise RelayCrashedError

    try:
        with pytest.raises(RelayCrashedError):
            await OutboxRelay(pool=pool, producer=producer, after_publish=crash).publish_once()
        async with pool.acquire() as conn:
            assert await pending_count(conn) == 10  # nothing marked: it will go out again
        assert await OutboxRelay(pool=pool, producer=producer).publish_once() == 10
    finally:
        await producer.stop()
        await pool.close()
    records = await read_topic(
        infrastructure.kafka_bootstrap, CATALOG_SESSIONS.full_name(registry_topics)
    )
    ids = [Envelope.from_bytes(r.value).event_id for r in records]
    assert len(ids) == 20
    assert len(set(ids)) == 10  # each event twice on the wire, same event id both times


async def test_the_relay_outlives_an_unexpected_error_in_a_pass(
    infrastructure: Infrastructure, kit_database_dsn: str, registry_topics: str
) -> None:
    """asyncpg raised `InternalClientError` ("cannot switch to state ...; another operation is
    in progress") on a connection PostgreSQL dropped mid-pass; the relay caught only transient
    errors, so its task ended, silently, and the service's events stopped leaving it (a CI
    run lost 495 of 600 welcome mails that way). Whatever a pass meets, the loop goes on."""
    outbox = Outbox(producer="catalog", topic_prefix=registry_topics)
    await _write_events(kit_database_dsn, outbox, 10, sessions=2)
    pool = await asyncpg.create_pool(kit_database_dsn, min_size=1, max_size=4)
    producer = make_producer(KafkaSettings(bootstrap_servers=infrastructure.kafka_bootstrap))
    await producer.start()
    failures = [
        asyncpg.exceptions.InternalClientError("cannot switch to state 15"),
        RuntimeError("anything else"),
    ]

    async def fail_twice(_: list[int]) -> None:
        if failures:
            raise failures.pop(0)

    relay = OutboxRelay(
        pool=pool, producer=producer, after_publish=fail_twice, poll_interval_s=0.01
    )
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        async with asyncio.timeout(30):
            while True:
                async with pool.acquire() as conn:
                    if await pending_count(conn) == 0:
                        break
                assert not running.done(), running
                await asyncio.sleep(0.05)
        assert not running.done()
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await producer.stop()
        await pool.close()
    assert (relay.failures, relay.published) == (2, 10)


async def test_several_relays_publish_each_row_once_and_in_order_per_key(
    infrastructure: Infrastructure, kit_database_dsn: str, registry_topics: str
) -> None:
    outbox = Outbox(producer="catalog", topic_prefix=registry_topics)
    await _write_events(kit_database_dsn, outbox, 600, sessions=40)
    pool = await asyncpg.create_pool(kit_database_dsn, min_size=2, max_size=8)
    producer = make_producer(KafkaSettings(bootstrap_servers=infrastructure.kafka_bootstrap))
    await producer.start()
    stop = asyncio.Event()
    relays = [OutboxRelay(pool=pool, producer=producer, batch_size=25) for _ in range(3)]
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        for _ in range(200):
            async with pool.acquire() as conn:
                if await pending_count(conn) == 0:
                    break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await producer.stop()
        await pool.close()
    assert sum(r.published for r in relays) == 600
    assert sum(1 for r in relays if r.published) >= 2, "the work should be shared"

    records = await read_topic(
        infrastructure.kafka_bootstrap, CATALOG_SESSIONS.full_name(registry_topics)
    )
    assert len(records) == 600
    revisions: dict[bytes, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.key is not None
        revisions[record.key].append(parse_event(Envelope.from_bytes(record.value)).revision)  # type: ignore[attr-defined]
    for per_key in revisions.values():
        assert per_key == sorted(per_key)


async def test_outbox_refuses_writes_outside_a_transaction(kit_database_dsn: str) -> None:
    conn = await connect(kit_database_dsn)
    try:
        with pytest.raises(RuntimeError, match="transaction"):
            await Outbox(producer="catalog").add(conn, [session_cancelled(uuid.uuid4())])
    finally:
        await conn.close()


async def test_sent_rows_are_purged_after_the_retention_and_pending_rows_never(
    infrastructure: Infrastructure, kit_database_dsn: str, registry_topics: str
) -> None:
    outbox = Outbox(producer="catalog", topic_prefix=registry_topics)
    await _write_events(kit_database_dsn, outbox, 6, sessions=2)
    pool = await asyncpg.create_pool(kit_database_dsn, min_size=1, max_size=2)
    producer = make_producer(KafkaSettings(bootstrap_servers=infrastructure.kafka_bootstrap))
    await producer.start()
    try:
        relay = OutboxRelay(pool=pool, producer=producer, retention_s=3600)
        while await relay.publish_once():
            pass
        await _write_events(kit_database_dsn, outbox, 2, sessions=1)  # still pending
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE outbox SET sent_at = now() - interval '2 hours' WHERE sent_at IS NOT NULL"
            )
        assert await relay.purge_sent() == 6
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 2
            assert await pending_count(conn) == 2
    finally:
        await producer.stop()
        await pool.close()


# Legal in Kafka, refused or altered by jsonb: bytes that are not UTF-8, a NUL in a name and in
# a value, a null value; and an empty value and a repeated name, whose order counts.
ODD_HEADERS: tuple[tuple[str, bytes | None], ...] = (
    ("x-trace", b"\xff\xfe\x01"),
    ("a\x00b", b"v\x00w"),
    ("x-note", "café".encode()),
    ("x-empty", b""),
    ("x-null", None),
    ("x-trace", b"second"),
)


async def _relay_everything(pool: asyncpg.Pool, bootstrap: str) -> None:
    producer = make_producer(KafkaSettings(bootstrap_servers=bootstrap))
    await producer.start()
    try:
        relay = OutboxRelay(pool=pool, producer=producer)
        while await relay.publish_once():
            pass
    finally:
        await producer.stop()


async def test_headers_go_out_byte_for_byte_and_a_dead_letter_comes_back_the_same(
    infrastructure: Infrastructure, kit_database_dsn: str, registry_topics: str
) -> None:
    bootstrap = infrastructure.kafka_bootstrap
    source = CATALOG_SESSIONS.full_name(registry_topics)
    dlq = CATALOG_SESSIONS.full_dlq_name(registry_topics)
    letters = [
        OutboxMessage(
            event_id=uuid.uuid4(),
            event_type="DeadLetter",
            topic=dlq,
            key=b"same-key",
            value=f"broken {i}".encode(),
            headers=headers,
        )
        for i, headers in enumerate(
            [
                (*ODD_HEADERS, (DlqHeaders.SOURCE_TOPIC, source.encode())),
                (),
                ((DlqHeaders.SOURCE_TOPIC, source.encode()), *ODD_HEADERS[:2]),
            ]
        )
    ]
    pool = await asyncpg.create_pool(kit_database_dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await Outbox(producer="test").add_messages(conn, letters)
        async with pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT event_id, {HEADER_COLUMNS} FROM outbox ORDER BY id")
        await _relay_everything(pool, bootstrap)
    finally:
        await pool.close()
    assert [r["event_id"] for r in rows] == [m.event_id for m in letters]  # in order
    assert [row_headers(r) for r in rows] == [list(m.headers) for m in letters]

    on_topic = await read_dead_letters(bootstrap, dlq)
    assert [d.headers for d in on_topic] == [m.headers for m in letters]
    shown = await read_dead_letter(bootstrap, dlq, on_topic[0].offset)  # `dlq show`
    assert shown.headers == letters[0].headers
    await redrive(bootstrap, [shown])
    back = await read_dead_letters(bootstrap, source)
    assert [(d.value, d.headers) for d in back] == [(b"broken 0", ODD_HEADERS)]


async def test_rows_written_before_the_header_bytes_migration_keep_their_headers(
    infrastructure: Infrastructure, kit_database_dsn: str, registry_topics: str
) -> None:
    topic = CATALOG_SESSIONS.full_name(registry_topics)
    conn = await connect(kit_database_dsn)
    try:
        # What the previous version wrote: headers as jsonb text, the byte columns NULL.
        await conn.execute(
            "INSERT INTO outbox (event_id, event_type, shard, topic, key, value, headers) "
            "VALUES ($1, 'SessionScheduled', 3, $2, 'k', '{}', $3::jsonb)",
            uuid.uuid4(),
            topic,
            [["event_type", "SessionScheduled"], ["x-note", "café"]],
        )
        new_row = OutboxMessage(uuid.uuid4(), "SessionScheduled", topic, b"k", b"{}", ODD_HEADERS)
        async with conn.transaction():
            await Outbox(producer="test").add_messages(conn, [new_row])
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(kit_database_dsn, min_size=1, max_size=2)
    try:
        await _relay_everything(pool, infrastructure.kafka_bootstrap)
    finally:
        await pool.close()
    records = await read_topic(infrastructure.kafka_bootstrap, topic)
    assert sorted((list(r.headers) for r in records), key=len) == [
        [("event_type", b"SessionScheduled"), ("x-note", "café".encode())],
        list(ODD_HEADERS),
    ]


async def test_taking_a_batch_reads_only_pending_rows_however_many_were_sent(
    kit_database_dsn: str,
) -> None:
    """A relay pass must not grow with the rows already sent (kept a week for replays): with a
    backlog, PostgreSQL walked the primary key past them (300 ms a pass with 225,000 sent),
    so in a long burst the backlog fed itself."""
    conn = await connect(kit_database_dsn)
    try:
        await conn.execute(
            """
            INSERT INTO outbox (event_id, event_type, shard, topic, value, sent_at)
            SELECT gen_random_uuid(), 'X', (n % 16)::smallint, 't', '\\x00',
                   CASE WHEN n <= 60000 THEN now() END
            FROM generate_series(1, 100000) AS n
            """
        )
        await conn.execute("ANALYZE outbox")
        pending = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND shard = ANY($1)", [1, 2, 3, 4]
        )
        plan = "\n".join(
            row[0]
            for row in await conn.fetch(
                "EXPLAIN (ANALYZE, FORMAT TEXT) " + TAKE_BATCH_SQL, [1, 2, 3, 4], 500
            )
        )
        probe = "\n".join(
            row[0] for row in await conn.fetch("EXPLAIN ANALYZE " + PENDING_SHARDS_SQL)
        )
        taken = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND shard = ANY($1)", [1, 2, 3, 4]
        )
    finally:
        await conn.close()

    def removed(plan: str) -> int:
        return sum(
            int(line.rsplit(":", 1)[1])
            for line in plan.splitlines()
            if "Rows Removed by Filter" in line
        )

    # The oldest 60,000 sent, then a backlog of 40,000 (2,500 a shard): of the 10,000 pending in
    # the 4 shards asked for, the oldest 500 taken, without reading the sent rows before them.
    assert (pending, taken) == (10_000, 9_500)
    assert removed(plan) < 1000, plan
    assert removed(probe) < 1000, probe
    assert "Seq Scan on outbox " not in plan + probe


async def test_the_shards_waiting_longest_are_published_first(
    infrastructure: Infrastructure, kit_database_dsn: str, registry_topics: str
) -> None:
    """Under a sustained load every shard has rows waiting; a pass takes the shards whose
    oldest row has waited longest (before, the table's order: shards 12-15 starved)."""
    outbox = Outbox(producer="catalog", topic_prefix=registry_topics)
    await _write_events(kit_database_dsn, outbox, 64, sessions=64)
    conn = await connect(kit_database_dsn)
    try:
        # The 16 oldest rows in shards 12-15, the 48 newer ones in shards 0-11.
        await conn.execute(
            """
            UPDATE outbox SET shard = CASE WHEN o.n <= 16 THEN 12 + (o.n - 1) % 4
                                           ELSE (o.n - 17) % 12 END
            FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM outbox) AS o
            WHERE outbox.id = o.id
            """
        )
        assert [r["shard"] for r in await conn.fetch(PENDING_SHARDS_SQL)][:4] == [12, 13, 14, 15]
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(kit_database_dsn, min_size=1, max_size=2)
    producer = make_producer(KafkaSettings(bootstrap_servers=infrastructure.kafka_bootstrap))
    await producer.start()
    try:
        relay = OutboxRelay(pool=pool, producer=producer, batch_size=100, shards_per_pass=4)
        assert await relay.publish_once() == 16
        async with pool.acquire() as pooled:
            sent = await pooled.fetch("SELECT DISTINCT shard FROM outbox WHERE sent_at IS NOT NULL")
        assert sorted(r["shard"] for r in sent) == [12, 13, 14, 15]
    finally:
        await producer.stop()
        await pool.close()
