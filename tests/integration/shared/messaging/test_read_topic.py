"""Reading a topic to its end, on a broker that reports the end at the last batch's base."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic

from solidarity.shared.dlq import read_dead_letters
from solidarity.shared.messaging.kafka import create_topics, read_topic
from solidarity.shared.testing.infrastructure import Infrastructure

pytestmark = pytest.mark.integration


async def _produce_with_batches(bootstrap: str, topic: str) -> list[bytes]:
    """a0, then a batch b0..b2, then c0, then a batch d0 d1 (all on partition 0)."""
    sent: list[bytes] = []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for group in (["a0"], ["b0", "b1", "b2"], ["c0"], ["d0", "d1"]):
            batch = producer.create_batch()
            for value in group:
                assert batch.append(key=None, value=value.encode(), timestamp=None) is not None
                sent.append(value.encode())
            batch.close()
            await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()
    return sent


async def test_every_record_is_read_even_past_a_misreported_end(
    infrastructure: Infrastructure, unique: str
) -> None:
    topic = f"t{unique}.batches.dlq"
    await create_topics(
        infrastructure.kafka_bootstrap,
        (),
        extra=[NewTopic(topic, num_partitions=1, replication_factor=1)],
    )
    sent = await _produce_with_batches(infrastructure.kafka_bootstrap, topic)
    records = await read_topic(infrastructure.kafka_bootstrap, topic)
    assert [r.value for r in records] == sent
    letters = await read_dead_letters(infrastructure.kafka_bootstrap, topic)
    assert len(letters) == len(sent)
