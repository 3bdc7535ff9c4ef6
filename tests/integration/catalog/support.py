"""Helpers for the catalog's integration tests: settings for the test infrastructure, the
running app, and reading what reached the topics."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from solidarity.catalog.bootstrap import create_app
from solidarity.catalog.settings import CatalogSettings
from solidarity.shared.contracts.envelope import Envelope, Event
from solidarity.shared.contracts.registry import parse_event
from solidarity.shared.contracts.topics import TopicSpec
from solidarity.shared.db.pool import connect
from solidarity.shared.messaging.kafka import read_topic
from solidarity.shared.settings import DatabaseSettings, KafkaSettings

TOKEN = "integration-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def catalog_settings(bootstrap: str, dsn: str, topic_prefix: str) -> CatalogSettings:
    return CatalogSettings(
        environment="test",
        admin_token=SecretStr(TOKEN),
        database=DatabaseSettings(url=dsn, pool_min_size=1, pool_max_size=4),
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix),
        outbox_poll_interval_s=0.02,
    )


@asynccontextmanager
async def running_catalog(settings: CatalogSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The catalog app with its whole lifespan (migrations, pool, relay, broker) running."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as client:
            yield client


async def outbox_counts(dsn: str) -> tuple[int, int]:
    """(all rows, rows not yet published)."""
    conn = await connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE sent_at IS NULL) AS pending "
            "FROM outbox"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["total"]), int(row["pending"])


async def wait_until_published(dsn: str, *, expected: int, timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        total, pending = await outbox_counts(dsn)
        if total == expected and pending == 0:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"outbox has {total} rows, {pending} pending; wanted {expected}")
        await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Received:
    """One record read back from a topic, validated against the contract."""

    envelope: Envelope
    event: Event
    key: bytes
    partition: int
    offset: int


async def read_events(bootstrap: str, spec: TopicSpec, prefix: str) -> list[Received]:
    """Every record of a topic, each parsed as an envelope and a registered contract event,
    with its key and headers checked against the envelope; in partition and offset order."""
    received = []
    for record in await read_topic(bootstrap, spec.full_name(prefix)):
        assert record.value is not None
        assert record.key is not None
        envelope = Envelope.from_bytes(record.value)
        event = parse_event(envelope)
        headers = dict(record.headers)
        assert record.key == event.aggregate_key().encode()
        assert headers["event_id"] == str(envelope.event_id).encode()
        assert headers["event_type"] == envelope.event_type.encode()
        assert headers["producer"] == b"catalog"
        assert type(event) in spec.events
        received.append(Received(envelope, event, record.key, record.partition, record.offset))
    return sorted(received, key=lambda r: (r.partition, r.offset))


def by_key(received: list[Received]) -> dict[bytes, list[Received]]:
    grouped: dict[bytes, list[Received]] = defaultdict(list)
    for item in received:
        grouped[item.key].append(item)
    return grouped
