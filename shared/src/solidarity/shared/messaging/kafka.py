"""aiokafka and FastStream plumbing: producers, the broker object, and topic creation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from solidarity.shared.contracts.topics import TOPICS, TopicSpec
from solidarity.shared.logging import get_logger
from solidarity.shared.messaging.records import tolerate_header_names_not_utf8
from solidarity.shared.settings import KafkaSettings

log = get_logger(__name__)

TRANSIENT_KAFKA_ERRORS: tuple[type[BaseException], ...] = (KafkaError, OSError, ConnectionError)
_TOPIC_EXISTS = TopicAlreadyExistsError.errno


def make_producer(settings: KafkaSettings, **overrides: object) -> AIOKafkaProducer:
    """A producer for the outbox relay; idempotence is a setting (off on the embedded broker)."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.client_id}-relay",
        "acks": "all",
        "enable_idempotence": settings.enable_idempotence,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 15_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_broker(settings: KafkaSettings, *, service: str) -> KafkaBroker:
    """The FastStream broker a service's consumers hang on.

    `apply_types=False`: the consumer runner parses raw bytes itself, so that a bad message
    reaches the DLQ instead of failing inside the framework; and a header name that is not
    UTF-8 no longer stops a partition before the runner sees it (`messaging.records`).
    """
    tolerate_header_names_not_utf8()
    return KafkaBroker(
        settings.bootstrap_servers,
        client_id=f"{settings.client_id}-{service}",
        enable_idempotence=settings.enable_idempotence,
        apply_types=False,
        # FastStream's per-message lines at DEBUG: they cap throughput; its errors stay visible.
        logger=logging.getLogger("solidarity.faststream"),
        log_level=logging.DEBUG,
    )


def stay_in_groups_on_stop(broker: KafkaBroker) -> int:
    """Make the broker's consumers close without a LeaveGroup request; how many were changed.

    Their members then leave their groups when their sessions time out, as if the process had
    been killed. For the embedded broker, where a leader's LeaveGroup during a rebalance
    leaves the group without a leader for good (see `KafkaSettings.leave_group_on_stop`).
    aiokafka has no option for it: its coordinator's leave step is replaced on the instance.
    """

    async def stay() -> None:
        return None

    changed = 0
    for subscriber in broker.subscribers:
        coordinator = getattr(getattr(subscriber, "consumer", None), "_coordinator", None)
        if coordinator is None:
            continue
        if not hasattr(coordinator, "_maybe_leave_group"):  # aiokafka changed: say so
            log.warning("group_leave_not_skipped", group=getattr(subscriber, "group_id", None))
            continue
        coordinator._maybe_leave_group = stay
        changed += 1
    return changed


def topic_requests(specs: Iterable[TopicSpec], *, prefix: str = "") -> list[NewTopic]:
    """What to create for these specs: each topic and its DLQ twin."""
    requests: list[NewTopic] = []
    for spec in specs:
        requests.append(NewTopic(spec.full_name(prefix), spec.partitions, 1))
        if spec.dlq:
            requests.append(NewTopic(spec.full_dlq_name(prefix), 1, 1))
    return requests


async def create_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec] = TOPICS,
    *,
    prefix: str = "",
    extra: Iterable[NewTopic] = (),
) -> list[str]:
    """Create the registry's topics (and DLQ twins); existing ones are left as they are."""
    requests = topic_requests(specs, prefix=prefix) + list(extra)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="solidarity-topics")
    await admin.start()
    created: list[str] = []
    try:
        response = await admin.create_topics(requests)
        for name, code, message in _topic_errors(response):
            if code == 0:
                created.append(name)
            elif code != _TOPIC_EXISTS:
                raise RuntimeError(f"could not create topic {name}: {message} (code {code})")
    finally:
        await admin.close()
    log.info("topics_created", created=len(created), requested=len(requests))
    return created


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    result: list[tuple[str, int, str | None]] = []
    for entry in getattr(response, "topic_errors", []):
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        result.append((name, code, message))
    return result


async def read_topic(
    bootstrap_servers: str, topic: str, *, timeout_s: float = 10.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic from the beginning to its current end, without a group."""
    tolerate_header_names_not_utf8()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        end = await consumer.end_offsets(assigned)
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end in {timeout_s} s")
            batch = await consumer.getmany(*assigned, timeout_ms=200)
            for tp_records in batch.values():
                records.extend(tp_records)
            behind = [tp for tp in assigned if await consumer.position(tp) < end[tp]]
            # Past the reported end and a poll that brought nothing: done. (Some brokers, the
            # embedded one among them, report the end as the last batch's base offset + 1.)
            if not behind and not batch:
                return records
    finally:
        await consumer.stop()
