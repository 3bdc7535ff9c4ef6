"""pytest plugin: session infrastructure and unique names per test (loaded from pyproject)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from solidarity.shared.contracts.topics import TOPICS
from solidarity.shared.db.migrations import migrate
from solidarity.shared.db.pool import drop_database, ensure_database, with_database
from solidarity.shared.messaging.kafka import create_topics
from solidarity.shared.testing.infrastructure import Infrastructure, choose


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[Infrastructure]:
    """A real broker and a real PostgreSQL, started once for the session."""
    infra = choose()
    try:
        yield infra
    finally:
        infra.close()


@pytest.fixture
def unique() -> str:
    """A short unique token for this test's names (topics, groups, databases)."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic_prefix(unique: str) -> str:
    """A prefix that gives this test its own copy of every topic."""
    return f"t{unique}."


@pytest.fixture
async def registry_topics(infrastructure: Infrastructure, topic_prefix: str) -> str:
    """Every topic of the registry (and DLQ twins) created under this test's prefix."""
    await create_topics(infrastructure.kafka_bootstrap, TOPICS, prefix=topic_prefix)
    return topic_prefix


@pytest.fixture
async def database_dsn(infrastructure: Infrastructure, unique: str) -> AsyncIterator[str]:
    """A fresh, empty database for this test, dropped afterwards."""
    name = f"test_{unique}"
    await ensure_database(infrastructure.postgres_admin_dsn, name)
    try:
        yield with_database(infrastructure.postgres_admin_dsn, name)
    finally:
        await asyncio.wait_for(drop_database(infrastructure.postgres_admin_dsn, name), 30)


@pytest.fixture
async def kit_database_dsn(database_dsn: str) -> str:
    """A fresh database with the messaging kit's tables (outbox, inbox)."""
    await migrate(database_dsn, service_package=None)
    return database_dsn
