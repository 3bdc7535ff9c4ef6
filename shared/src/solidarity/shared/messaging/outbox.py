"""The outbox writer: events become rows in the caller's transaction, never direct publishes."""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from solidarity.shared.contracts.envelope import Envelope, Event
from solidarity.shared.contracts.topics import topic_for
from solidarity.shared.db.pool import Connection

SHARDS = 16


def shard_of(key: bytes | None, event_id: uuid.UUID) -> int:
    """Rows with the same key share a shard, so one relay publishes them in order."""
    return zlib.crc32(key if key is not None else event_id.bytes) % SHARDS


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message to publish, exactly as it will go on the wire (a header value may be None,
    as Kafka allows)."""

    event_id: uuid.UUID
    event_type: str
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes | None], ...]


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
        # Each message's headers as two bytea arrays (names, values), byte for byte. An
        # unnest cannot give a row an array of its own, so the headers go in flat, with each
        # message's count, and are grouped back per message (h.r: the message's number).
        counts: list[int] = []
        names: list[bytes] = []
        values: list[bytes | None] = []
        for message in messages:
            headers = message.headers
            counts.append(len(headers))
            try:
                names.extend([name.encode() for name, _ in headers])
            except UnicodeEncodeError:
                names.extend([_name_bytes(name) for name, _ in headers])
            values.extend([value for _, value in headers])
        await conn.execute(
            """
            WITH h AS (
                SELECT r, array_agg(n ORDER BY i) AS names, array_agg(hv ORDER BY i) AS vals
                FROM unnest(
                    (SELECT array_agg(c.r ORDER BY c.r)
                     FROM unnest($7::int[]) WITH ORDINALITY AS c(n, r), generate_series(1, c.n)),
                    $8::bytea[],
                    $9::bytea[]
                ) WITH ORDINALITY AS h(r, n, hv, i)
                GROUP BY r
            )
            INSERT INTO outbox
                (event_id, event_type, shard, topic, key, value, header_names, header_values)
            SELECT u.e, u.t, u.s, u.tp, u.k, u.v,
                   coalesce(h.names, '{}'::bytea[]), coalesce(h.vals, '{}'::bytea[])
            FROM unnest($1::uuid[], $2::text[], $3::smallint[], $4::text[],
                        $5::bytea[], $6::bytea[]) WITH ORDINALITY AS u(e, t, s, tp, k, v, r)
            LEFT JOIN h ON h.r = u.r
            ORDER BY u.r
            """,
            [m.event_id for m in messages],
            [m.event_type for m in messages],
            [shard_of(m.key, m.event_id) for m in messages],
            [m.topic for m in messages],
            [m.key for m in messages],
            [m.value for m in messages],
            counts,
            names,
            values,
        )


def _name_bytes(name: str) -> bytes:
    """A header name as the bytes Kafka carries: UTF-8. A name that was not UTF-8 on the wire
    reaches the kit with its bytes kept as surrogates (`messaging.records`) and gets them back
    here; a str with other lone surrogates (which only a caller can make) is kept with those
    code points escaped (`\\udc00`). The relay sends either with its bytes escaped as text
    (`\\xff`): aiokafka's producer sends only names that are UTF-8."""
    try:
        return name.encode()
    except UnicodeEncodeError:
        pass
    try:
        return name.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return name.encode("utf-8", errors="backslashreplace")


HEADER_COLUMNS = (
    "header_names, header_values, CASE WHEN header_names IS NULL THEN headers END AS legacy_headers"
)
"""What to select from `outbox` for `row_headers`: the headers' bytes, or, for a row written
before the kit's migration 0002 (or by an instance not upgraded yet), the old jsonb."""


def row_headers(row: asyncpg.Record) -> list[tuple[str, bytes | None]]:
    """An outbox row's headers, ready for the producer, exactly as they were written."""
    names = row["header_names"]
    if names is None:
        return headers_from_json(row["legacy_headers"])
    return [
        (name.decode("utf-8", errors="backslashreplace"), value)
        for name, value in zip(names, row["header_values"], strict=True)
    ]


def headers_from_json(raw: object) -> list[tuple[str, bytes | None]]:
    """Headers in the format of rows written before migration 0002: jsonb `[[name, text]]`."""
    if isinstance(raw, str):
        raw = json.loads(raw)
    if not isinstance(raw, list):
        return []
    return [(str(k), str(v).encode()) for k, v in raw]
