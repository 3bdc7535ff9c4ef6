"""The bare pipeline: the least a registration service could do, as the ceiling to compare with.

Consume submissions in batches, insert one row each in one transaction per batch, produce one
outcome each, commit the offsets. No signature, no rules, no inbox, no outbox, no seats:
what aiokafka and asyncpg allow on this machine for the shape of work the service does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from solidarity.shared.bench.raw import (
    BATCH,
    RAW_DATABASE,
    create_bench_topics,
    raw_consumer,
    topic_partitions,
)
from solidarity.shared.db.pool import Connection, connect, ensure_database, with_database
from solidarity.shared.messaging.kafka import make_producer
from solidarity.shared.partners import SignedMessage
from solidarity.shared.settings import KafkaSettings

IN_TOPIC = "bench.raw.bare.submissions"
OUT_TOPIC = "bench.raw.bare.outcomes"

_TABLE = """
DROP TABLE IF EXISTS bare_decisions;
CREATE TABLE bare_decisions (
    decision_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    partner_id uuid NOT NULL,
    submission_id text NOT NULL,
    registrant_key text NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now()
);
"""
_INSERT = """
INSERT INTO bare_decisions (partner_id, submission_id, registrant_key)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
"""


async def decide_loop(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, conn: Connection, count: int
) -> float:
    """Messages per second from the first batch to the last outcome acknowledged."""
    done, started = 0, 0.0
    while done < count:
        batches = await consumer.getmany(timeout_ms=100, max_records=BATCH)
        records = [record for part in batches.values() for record in part]
        if not records:
            continue
        started = started or time.perf_counter()
        payloads = [json.loads(record.value)["payload"] for record in records]
        async with conn.transaction():
            await conn.execute(
                _INSERT,
                [p["partner_id"] for p in payloads],
                [p["submission_id"] for p in payloads],
                [record.key.decode() for record in records],
            )
        sent = [
            await producer.send(
                OUT_TOPIC,
                key=record.key,
                value=json.dumps(
                    {"submission_id": p["submission_id"], "status": "confirmed"}
                ).encode(),
            )
            for record, p in zip(records, payloads, strict=True)
        ]
        await asyncio.gather(*sent)
        await consumer.commit()
        done += len(records)
    return done / (time.perf_counter() - started)


async def bare_pipeline(
    bootstrap: str, admin_dsn: str, samples: Sequence[SignedMessage], count: int
) -> float:
    """Fill the input topic (not timed), then time `decide_loop` over all of it."""
    await create_bench_topics(bootstrap, IN_TOPIC, OUT_TOPIC)
    await ensure_database(admin_dsn, RAW_DATABASE)
    conn = await connect(with_database(admin_dsn, RAW_DATABASE))
    producer = make_producer(KafkaSettings(bootstrap_servers=bootstrap))
    # A group for the offset commits, with the partitions assigned by hand: no join to wait for.
    consumer = raw_consumer(bootstrap, group_id="solidarity-bench-bare")
    await producer.start()
    await consumer.start()
    try:
        await conn.execute(_TABLE)
        filled = [
            await producer.send(IN_TOPIC, value=s.value, key=s.key, headers=list(s.headers))
            for s in (samples[i % len(samples)] for i in range(count))
        ]
        await asyncio.gather(*filled)
        partitions = await topic_partitions(consumer, IN_TOPIC)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        return await decide_loop(consumer, producer, conn, count)
    finally:
        await consumer.stop()
        await producer.stop()
        await conn.execute("DROP TABLE IF EXISTS bare_decisions")
        await conn.close()
