"""Read dead-letter topics and re-drive their messages to the topic they failed on.

A DLQ topic is read from its beginning to its end offsets at the moment of reading, with no
consumer group (nothing is committed, so reading changes nothing). A re-drive publishes the
original key, value and headers (every header but the `dlq.*` ones the consumer added) to the
topic named in `dlq.source_topic`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from solidarity.shared.contracts.topics import DLQ_SUFFIX
from solidarity.shared.messaging.consumer import DlqHeaders

DLQ_HEADER_PREFIX = "dlq."


class DlqError(RuntimeError):
    """A DLQ operation cannot go ahead; the message is one line for a person."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message on a DLQ topic, with the failure details its headers carry."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes | None], ...]
    """As on the topic, byte for byte; a null header value stays None."""

    def header(self, name: str) -> str | None:
        for key, raw in self.headers:
            if key == name:
                return None if raw is None else raw.decode("utf-8", errors="replace")
        return None

    @property
    def source_topic(self) -> str | None:
        return self.header(DlqHeaders.SOURCE_TOPIC)

    @property
    def source_partition(self) -> int | None:
        return _int_or_none(self.header(DlqHeaders.SOURCE_PARTITION))

    @property
    def source_offset(self) -> int | None:
        return _int_or_none(self.header(DlqHeaders.SOURCE_OFFSET))

    @property
    def consumer_group(self) -> str | None:
        return self.header(DlqHeaders.CONSUMER_GROUP)

    @property
    def error_type(self) -> str | None:
        return self.header(DlqHeaders.ERROR_TYPE)

    @property
    def error_message(self) -> str | None:
        return self.header(DlqHeaders.ERROR_MESSAGE)

    @property
    def failed_at(self) -> str | None:
        return self.header(DlqHeaders.FAILED_AT)

    @property
    def size(self) -> int:
        return len(self.value)

    @property
    def original_headers(self) -> list[tuple[str, bytes | None]]:
        """The headers the message had before it failed."""
        return [(k, v) for k, v in self.headers if not k.startswith(DLQ_HEADER_PREFIX)]

    def summary(self) -> dict[str, Any]:
        """The listing fields, as plain values (for tables and JSON)."""
        return {
            "partition": self.partition,
            "offset": self.offset,
            "source_topic": self.source_topic,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "consumer_group": self.consumer_group,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "failed_at": self.failed_at,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class Redriven:
    """Where a re-driven message went."""

    dlq_partition: int
    dlq_offset: int
    topic: str
    partition: int
    offset: int


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# Control characters (tab and new line aside): invisible, or commands to a terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def decode_bytes(data: bytes | None) -> tuple[Literal["text", "hex", "empty"], str]:
    """Bytes for a person: the text if it is UTF-8 without control characters, else hex."""
    if not data:
        return "empty", ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "hex", data.hex(" ")
    if _CONTROL.search(text):
        return "hex", data.hex(" ")
    return "text", text


def printable(text: str) -> str:
    """A header name (any str) for a person: each control character as `\\xNN`."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _consumer(bootstrap_servers: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="solidarity-dlq",
        request_timeout_ms=15_000,
    )


async def _start(client: AIOKafkaConsumer | AIOKafkaProducer, bootstrap_servers: str) -> None:
    try:
        await client.start()
    except KafkaConnectionError as exc:
        await client.stop()
        raise DlqError(f"could not reach the broker at {bootstrap_servers}") from exc


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    topics = await consumer.topics()
    partitions = consumer.partitions_for_topic(topic) if topic in topics else None
    if not partitions:
        raise DlqError(f"there is no topic {topic} on this broker")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


def _letter(record: Any) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value or b"",
        headers=tuple((k, None if v is None else bytes(v)) for k, v in (record.headers or ())),
    )


async def read_dead_letters(
    bootstrap_servers: str,
    topic: str,
    *,
    partition: int | None = None,
    timeout_s: float = 30.0,
) -> list[DeadLetter]:
    """Every message on a DLQ topic up to its current end, in partition then offset order."""
    consumer = _consumer(bootstrap_servers)
    await _start(consumer, bootstrap_servers)
    try:
        tps = await _partitions(consumer, topic)
        if partition is not None:
            tps = [tp for tp in tps if tp.partition == partition]
            if not tps:
                raise DlqError(f"{topic} has no partition {partition}")
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        begin = await consumer.beginning_offsets(tps)
        pending = {tp for tp in tps if end[tp] > begin[tp]}
        letters: list[DeadLetter] = []
        if not pending:
            return letters
        await consumer.seek_to_beginning(*pending)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise DlqError(f"reading {topic} took longer than {timeout_s:.0f} s")
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for records in batch.values():
                letters.extend(_letter(r) for r in records)
            # Some brokers (the embedded one) report the end as the last batch's base offset
            # + 1, so reaching `end` is not enough: a partition is done once it is past `end`
            # and a poll brings nothing more.
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp] and not batch.get(tp):
                    pending.discard(tp)
                    consumer.pause(tp)
        letters.sort(key=lambda d: (d.partition, d.offset))
        return letters
    finally:
        await consumer.stop()


async def read_dead_letter(
    bootstrap_servers: str,
    topic: str,
    offset: int,
    *,
    partition: int = 0,
    timeout_s: float = 15.0,
) -> DeadLetter:
    """The message at one offset of a DLQ topic.

    Seeks to the offset and reads, without trusting the broker's reported end offset (the
    embedded broker reports the last record batch's base offset + 1, which would refuse most
    of a batch). The offset is missing once a poll brings nothing and the high watermark of
    the fetch responses, which every broker reports right, is not past it.
    """
    consumer = _consumer(bootstrap_servers)
    await _start(consumer, bootstrap_servers)
    try:
        tps = await _partitions(consumer, topic)
        tp = TopicPartition(topic, partition)
        if tp not in tps:
            raise DlqError(f"{topic} has no partition {partition}")
        consumer.assign([tp])
        begin = (await consumer.beginning_offsets([tp]))[tp]
        if offset < begin:
            raise DlqError(
                f"{topic} partition {partition} has no offset {offset} (it starts at {begin})"
            )
        consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                if record.offset < offset:
                    continue  # an out-of-range fetch reset the position to the beginning
                if record.offset == offset:
                    return _letter(record)
                raise DlqError(f"{topic} partition {partition} has no message at offset {offset}")
            if batch.get(tp):
                continue
            if await consumer.position(tp) > offset:  # passed over it: not a message
                raise DlqError(f"{topic} partition {partition} has no message at offset {offset}")
            highwater = consumer.highwater(tp)
            if highwater is not None and offset >= highwater:
                held = f"offsets {begin} to {highwater - 1}" if highwater > begin else "nothing"
                raise DlqError(
                    f"{topic} partition {partition} has no offset {offset} (it holds {held})"
                )
        raise DlqError(f"reading {topic} took longer than {timeout_s:.0f} s")
    finally:
        await consumer.stop()


async def redrive(
    bootstrap_servers: str,
    letters: Sequence[DeadLetter],
    *,
    value: bytes | None = None,
    enable_idempotence: bool = False,
) -> list[Redriven]:
    """Publish each letter's original key, value and headers back to its source topic.

    `value` replaces the body (a fixed message); only for a single letter.
    """
    if value is not None and len(letters) != 1:
        raise DlqError("a replacement body is for exactly one message")
    targets: list[str] = []
    for letter in letters:
        source = letter.source_topic
        if not source:
            raise DlqError(
                f"{letter.topic} partition {letter.partition} offset {letter.offset} has no "
                f"{DlqHeaders.SOURCE_TOPIC} header, so it has nowhere to go back to"
            )
        if source.endswith(DLQ_SUFFIX):
            raise DlqError(f"refusing to re-drive into another DLQ ({source})")
        targets.append(source)
    if not letters:
        return []
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id="solidarity-dlq-redrive",
        acks="all",
        enable_idempotence=enable_idempotence,
        request_timeout_ms=15_000,
    )
    await _start(producer, bootstrap_servers)
    try:
        metadata = await producer.client.fetch_all_metadata()
        missing = sorted(set(targets) - set(metadata.topics()))
        if missing:
            raise DlqError(f"the source topic {missing[0]} does not exist on this broker")
        done: list[Redriven] = []
        for letter, target in zip(letters, targets, strict=True):
            sent = await producer.send_and_wait(
                target,
                value=letter.value if value is None else value,
                key=letter.key,
                headers=letter.original_headers,
            )
            done.append(
                Redriven(
                    dlq_partition=letter.partition,
                    dlq_offset=letter.offset,
                    topic=target,
                    partition=sent.partition,
                    offset=sent.offset,
                )
            )
        return done
    finally:
        await producer.stop()
