"""The outbox writer: events become rows in the caller's transaction, never direct publishes."""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from solidarity.shared.contracts.envelope import Envelope, Event
from solidarity.shared.contracts.topics import topic_for
from solidarity.shared.db.pool import Connection

SHARDS = 16


def shard_of(key: bytes | None, event_id: uuid.UUID) -> int:
    """Rows with the same key share a shard, so one relay publishes them in order."""
    return zlib.crc32(key if key is not None else event_id.bytes) % SHARDS


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message to publish, exactly as it will go on the wire."""

    event_id: uuid.UUID
    event_type: str
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


class Outbox:
    """Writes a service's events into its outbox table, inside a transaction the caller owns."""

    def __init__(self, *, producer: str, topic_prefix: str = "") -> None:
        self._producer = producer
        self._prefix = topic_prefix

    @property
    def producer(self) -> str:
        return self._producer

    def envelope(
        self,
        event: Event,
        *,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        event_id: uuid.UUID | None = None,
    ) -> Envelope:
        return Envelope.wrap(
            event,
            producer=self._producer,
            correlation_id=correlation_id,
            causation_id=causation_id,
            event_id=event_id,
        )

    def message(self, event: Event, envelope: Envelope) -> OutboxMessage:
        spec = topic_for(event)
        return OutboxMessage(
            event_id=envelope.event_id,
            event_type=envelope.event_type,
            topic=spec.full_name(self._prefix),
            key=event.aggregate_key().encode(),
            value=envelope.to_bytes(),
            headers=tuple(envelope.headers()),
        )

    async def add(
        self,
        conn: Connection,
        events: Sequence[Event],
        *,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> list[Envelope]:
        """Record events to publish; call inside the transaction that makes the change."""
        envelopes = [
            self.envelope(e, correlation_id=correlation_id, causation_id=causation_id)
            for e in events
        ]
        await self.add_messages(
            conn, [self.message(e, env) for e, env in zip(events, envelopes, strict=True)]
        )
        return envelopes

    async def add_messages(self, conn: Connection, messages: Sequence[OutboxMessage]) -> None:
        """Record ready-made messages (dead letters use this); one statement for the batch."""
        if not messages:
            return
        if not conn.is_in_transaction():
            raise RuntimeError("the outbox is written inside the caller's transaction")
        await conn.execute(
            """
            INSERT INTO outbox (event_id, event_type, shard, topic, key, value, headers)
            SELECT e, t, s, tp, k, v, h::jsonb
            FROM unnest($1::uuid[], $2::text[], $3::smallint[], $4::text[],
                        $5::bytea[], $6::bytea[], $7::text[]) AS u(e, t, s, tp, k, v, h)
            """,
            [m.event_id for m in messages],
            [m.event_type for m in messages],
            [shard_of(m.key, m.event_id) for m in messages],
            [m.topic for m in messages],
            [m.key for m in messages],
            [m.value for m in messages],
            [_headers_json(m.headers) for m in messages],
        )


def _headers_json(headers: Sequence[tuple[str, bytes]]) -> str:
    # Header values are text in this platform; anything else is kept, escaped.
    return json.dumps([[k, v.decode("utf-8", errors="backslashreplace")] for k, v in headers])


def headers_from_json(raw: object) -> list[tuple[str, bytes]]:
    if isinstance(raw, str):
        raw = json.loads(raw)
    if not isinstance(raw, list):
        return []
    return [(str(k), str(v).encode()) for k, v in raw]
