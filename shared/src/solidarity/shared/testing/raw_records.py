"""Records with header names that are not UTF-8, as a Kafka client other than aiokafka sends.

aiokafka's producer only sends names that are UTF-8 (it takes `str`); tests of what a consumer
does with other bytes build the record batch with aiokafka's Python builder, which encodes a
name through the name's own `encode()`, and hand it to the producer whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

RawRecord = tuple[bytes | None, bytes | None, Sequence[tuple[bytes, bytes | None]]]
"""(key, value, headers as (name bytes, value bytes))."""

_BATCH_BYTES = 1 << 20


class RawName(str):
    """A header name whose bytes on the wire are exactly `raw`."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawName:
        name = super().__new__(cls, raw.decode("utf-8", errors="surrogateescape"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def record_batch(records: Sequence[RawRecord], *, compression_type: int = 0) -> bytearray:
    """The bytes of one record batch (v2) holding `records`, offsets from 0."""
    builder = _builder(compression_type)
    for offset, (key, value, headers) in enumerate(records):
        builder.append(offset, None, key, value, [(RawName(name), v) for name, v in headers])
    built: bytearray = builder.build()
    return built


async def send_batch(
    producer: AIOKafkaProducer, topic: str, partition: int, records: Sequence[RawRecord]
) -> int:
    """Send `records` as one batch to a partition; the offset of the first."""
    batch = producer.create_batch()
    batch._builder = _builder(0)
    for key, value, headers in records:
        appended = batch.append(
            timestamp=None,
            key=key,
            value=value,
            headers=[(RawName(name), v) for name, v in headers],
        )
        if appended is None:
            raise ValueError("the records do not fit in one batch")
    sent = await producer.send_batch(batch, topic, partition=partition)
    metadata = await sent
    return int(metadata.offset)


def _builder(compression_type: int) -> _DefaultRecordBatchBuilderPy:
    return _DefaultRecordBatchBuilderPy(
        magic=2,
        compression_type=compression_type,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=0,
        batch_size=_BATCH_BYTES,
    )
