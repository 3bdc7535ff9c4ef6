"""Helpers for the registration service's integration tests: a real broker, a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from pydantic import SecretStr

from solidarity.registration.adapters.metrics import RegistrationMetrics
from solidarity.registration.adapters.unit_of_work import SqlUnitOfWork
from solidarity.registration.bootstrap import catalog_runner, create_app, submissions_runner
from solidarity.registration.domain.partners import (
    PARTNER_HEADER,
    SIGNATURE_HEADER,
    PartnerCredentials,
    sign,
)
from solidarity.registration.service import SERVICE
from solidarity.registration.service_layer.commands import CreatePartner
from solidarity.registration.service_layer.partners import create_partner
from solidarity.registration.settings import RegistrationSettings
from solidarity.shared.contracts.envelope import Envelope, Event
from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    RegistrationQuestion,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.common import CampaignStatus, Role, SessionKind
from solidarity.shared.contracts.events.registration import (
    RegistrantDetails,
    RegistrationSubmittedV1,
)
from solidarity.shared.contracts.registry import parse_event
from solidarity.shared.contracts.topics import (
    CATALOG_CAMPAIGNS,
    CATALOG_SESSIONS,
    REGISTRATION_OUTCOMES,
    REGISTRATION_REGISTRANTS,
    REGISTRATION_SUBMISSIONS,
    topic_for,
)
from solidarity.shared.db.migrations import migrate
from solidarity.shared.db.pool import connect, create_pool
from solidarity.shared.messaging.consumer import ConsumerRunner
from solidarity.shared.messaging.kafka import make_producer, read_topic
from solidarity.shared.messaging.outbox import Outbox
from solidarity.shared.messaging.relay import OutboxRelay
from solidarity.shared.runtime import answer_errors_as_every_service_does
from solidarity.shared.settings import DatabaseSettings, KafkaSettings
from solidarity.shared.testing.infrastructure import Infrastructure

MASTER_KEY = "integration-master-key-0123456789"


def settings_for(
    infrastructure: Infrastructure, dsn: str, prefix: str, **overrides: Any
) -> RegistrationSettings:
    options: dict[str, Any] = {
        "kafka": KafkaSettings(
            bootstrap_servers=infrastructure.kafka_bootstrap, topic_prefix=prefix
        ),
        "database": DatabaseSettings(url=dsn, pool_max_size=8),
        "partner_master_key": SecretStr(MASTER_KEY),
        "outbox_poll_interval_s": 0.02,
        "http_wait_poll_s": 0.02,
    }
    options.update(overrides)
    return RegistrationSettings(**options)


async def migrated(dsn: str) -> str:
    await migrate(dsn, service_package=SERVICE.package)
    return dsn


async def new_partner(dsn: str, *campaigns: str, name: str = "Riverside") -> PartnerCredentials:
    pool = await create_pool(DatabaseSettings(url=dsn, pool_max_size=1))
    try:
        return await create_partner(
            CreatePartner(name=name, campaigns=campaigns),
            SqlUnitOfWork(outbox=Outbox(producer="registration"), pool=pool),
            master_key=MASTER_KEY.encode(),
        )
    finally:
        await pool.close()


# Catalog events ------------------------------------------------------------------------------


def campaign_published(
    slug: str,
    *,
    campaign_id: uuid.UUID | None = None,
    revision: int = 1,
    status: CampaignStatus = CampaignStatus.PUBLISHED,
    ends_on: date | None = None,
    questions: tuple[RegistrationQuestion, ...] = (),
) -> CampaignPublishedV1:
    today = datetime.now(UTC).date()
    return CampaignPublishedV1(
        campaign_id=campaign_id or uuid.uuid4(),
        revision=revision,
        slug=slug,
        name=f"Campaign {slug}",
        starts_on=today,
        ends_on=ends_on or today + timedelta(days=30),
        time_zone="America/New_York",
        status=status,
        questions=questions,
    )


def session_scheduled(
    campaign_id: uuid.UUID,
    *,
    session_id: uuid.UUID | None = None,
    capacity: int | None = 100,
    revision: int = 1,
    audience: tuple[Role, ...] = (),
    starts_in: timedelta = timedelta(days=7),
    focus_day_id: uuid.UUID | None = None,
) -> SessionScheduledV1:
    start = datetime.now(UTC).replace(microsecond=0) + starts_in
    return SessionScheduledV1(
        session_id=session_id or uuid.uuid4(),
        campaign_id=campaign_id,
        revision=revision,
        focus_day_id=focus_day_id,
        kind=SessionKind.WEBINAR,
        title="Solidarity webinar",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        time_zone="America/New_York",
        capacity=capacity,
        audience=audience,
    )


# Submissions ---------------------------------------------------------------------------------


def submission(
    partner_id: uuid.UUID,
    campaign: str,
    *,
    email: str | None = None,
    submission_id: str | None = None,
    session_ids: Sequence[uuid.UUID] = (),
    signup: bool = True,
    role: Role = Role.STUDENT,
    school: str | None = "Riverside High",
    answers: dict[str, str] | None = None,
) -> RegistrationSubmittedV1:
    token = uuid.uuid4().hex[:12]
    return RegistrationSubmittedV1(
        partner_id=partner_id,
        submission_id=submission_id or f"sub-{token}",
        campaign=campaign,
        registrant=RegistrantDetails(
            email=email or f"person-{token}@example.org", role=role, school=school
        ),
        session_ids=tuple(session_ids),
        signup=signup,
        answers=answers or {},
    )


def http_body(event: RegistrationSubmittedV1) -> dict[str, Any]:
    data = event.model_dump(mode="json")
    data.pop("partner_id")
    return data


def signed_record(
    event: RegistrationSubmittedV1, secret: str | None, *, signer: uuid.UUID | None = None
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of a partner's signed submission on the submissions topic."""
    envelope = Envelope.wrap(event, producer="partner-platform")
    value = envelope.to_bytes()
    headers = envelope.headers()
    if secret is not None:
        headers += [
            (SIGNATURE_HEADER, sign(secret, value).encode()),
            (PARTNER_HEADER, str(signer or event.partner_id).encode()),
        ]
    return event.aggregate_key().encode(), value, headers


async def produce(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes, list[Any]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def publish_events(bootstrap: str, prefix: str, events: Sequence[Event]) -> list[Envelope]:
    """Publish events as their owner would (envelope in body and headers, keyed)."""
    envelopes: list[Envelope] = []
    by_topic: dict[str, list[tuple[bytes | None, bytes, list[Any]]]] = {}
    for event in events:
        envelope = Envelope.wrap(event, producer="catalog")
        envelopes.append(envelope)
        topic = topic_for(event).full_name(prefix)
        by_topic.setdefault(topic, []).append(
            (event.aggregate_key().encode(), envelope.to_bytes(), envelope.headers())
        )
    for topic, records in by_topic.items():
        await produce(bootstrap, topic, records)
    return envelopes


# Running the consumers -----------------------------------------------------------------------


@dataclass
class Consumers:
    """The service's two consumer runners on a pool, driven batch by batch from the topics."""

    infrastructure: Infrastructure
    prefix: str
    pool: asyncpg.Pool
    submissions: ConsumerRunner
    catalog: ConsumerRunner
    metrics: RegistrationMetrics
    _read: dict[str, int]

    async def _feed(self, runner: ConsumerRunner, topics: Sequence[str]) -> int:
        total = 0
        for topic in topics:
            records = await read_topic(self.infrastructure.kafka_bootstrap, topic)
            fresh = [r for r in records if r.offset >= self._read.get(f"{topic}:{r.partition}", 0)]
            for r in fresh:
                key = f"{topic}:{r.partition}"
                self._read[key] = max(self._read.get(key, 0), r.offset + 1)
            if fresh:
                fresh.sort(key=lambda r: (r.partition, r.offset))
                await runner.process_batch(fresh)
                total += len(fresh)
        return total

    async def catalog_events(self) -> int:
        """Apply every catalog event published since the last call."""
        return await self._feed(
            self.catalog,
            [CATALOG_CAMPAIGNS.full_name(self.prefix), CATALOG_SESSIONS.full_name(self.prefix)],
        )

    async def submissions_topic(self) -> int:
        """Decide every submission published since the last call, as one batch."""
        return await self._feed(self.submissions, [REGISTRATION_SUBMISSIONS.full_name(self.prefix)])


@contextlib.asynccontextmanager
async def consumers(
    infrastructure: Infrastructure, dsn: str, prefix: str, **overrides: Any
) -> AsyncIterator[Consumers]:
    settings = settings_for(infrastructure, dsn, prefix, **overrides)
    await migrated(dsn)
    pool = await create_pool(DatabaseSettings(url=dsn, pool_max_size=4))
    outbox = Outbox(producer="registration", topic_prefix=prefix)
    metrics = RegistrationMetrics()
    try:
        yield Consumers(
            infrastructure=infrastructure,
            prefix=prefix,
            pool=pool,
            submissions=submissions_runner(
                pool=pool, outbox=outbox, settings=settings, metrics=metrics
            ),
            catalog=catalog_runner(pool=pool, outbox=outbox, settings=settings, metrics=metrics),
            metrics=metrics,
            _read={},
        )
    finally:
        await pool.close()


async def relay_all(infrastructure: Infrastructure, dsn: str) -> int:
    """Publish every pending outbox row (as the service's relay would)."""
    pool = await create_pool(DatabaseSettings(url=dsn, pool_max_size=2))
    producer = make_producer(KafkaSettings(bootstrap_servers=infrastructure.kafka_bootstrap))
    await producer.start()
    total = 0
    try:
        relay = OutboxRelay(pool=pool, producer=producer, batch_size=1000, shards_per_pass=16)
        while count := await relay.publish_once():
            total += count
    finally:
        await producer.stop()
        await pool.close()
    return total


async def outcomes(infrastructure: Infrastructure, prefix: str) -> list[Event]:
    records = await read_topic(
        infrastructure.kafka_bootstrap, REGISTRATION_OUTCOMES.full_name(prefix), timeout_s=30
    )
    return [parse_event(Envelope.from_bytes(r.value)) for r in records]


async def registrant_events(infrastructure: Infrastructure, prefix: str) -> list[Event]:
    records = await read_topic(
        infrastructure.kafka_bootstrap, REGISTRATION_REGISTRANTS.full_name(prefix), timeout_s=30
    )
    return [parse_event(Envelope.from_bytes(r.value)) for r in records]


# Running the whole service -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(
    settings: RegistrationSettings,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The whole service (lifespan: migrations, pool, relay, consumers) and an HTTP client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://registration", timeout=60
        ) as client:
            yield app, client


@contextlib.asynccontextmanager
async def running_together(
    settings: RegistrationSettings, count: int
) -> AsyncIterator[list[tuple[FastAPI, httpx.AsyncClient]]]:
    """Several instances of the service, started at once so their consumers join together."""
    contexts = [running(settings) for _ in range(count)]
    started = await asyncio.gather(*(c.__aenter__() for c in contexts), return_exceptions=True)
    try:
        failures = [s for s in started if isinstance(s, BaseException)]
        if failures:
            raise failures[0]
        yield [s for s in started if not isinstance(s, BaseException)]
    finally:
        for context, result in zip(contexts, started, strict=True):
            if not isinstance(result, BaseException):
                await context.__aexit__(None, None, None)


def assigned_partitions(app: FastAPI, topic: str) -> int:
    """How many partitions of `topic` this app's consumers hold right now."""
    count = 0
    for subscriber in app.state.runtime.broker.subscribers:
        consumer = getattr(subscriber, "consumer", None)
        if consumer is None:
            continue
        count += sum(1 for tp in consumer.assignment() if tp.topic == topic)
    return count


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 60, what: str = "condition"
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached in {timeout_s} s")
        await asyncio.sleep(0.1)


async def fetchval(dsn: str, query: str, *args: Any) -> Any:
    conn = await connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


# The partner API on a real database, with the consumers driven by hand --------------------


@dataclass
class PartnerApi:
    client: httpx.AsyncClient
    consumers: Consumers
    dsn: str

    async def decide(self) -> None:
        """Relay what HTTP wrote, then decide it (as the running service would)."""
        await relay_all(self.consumers.infrastructure, self.dsn)
        await self.consumers.submissions_topic()
        await relay_all(self.consumers.infrastructure, self.dsn)

    async def apply_catalog(self) -> None:
        await self.consumers.catalog_events()
        await relay_all(self.consumers.infrastructure, self.dsn)


@contextlib.asynccontextmanager
async def partner_api(
    infrastructure: Infrastructure, dsn: str, prefix: str
) -> AsyncIterator[PartnerApi]:
    """The HTTP routes on the service's pool and outbox; no broker subscription to wait for."""
    from types import SimpleNamespace

    from solidarity.registration.entrypoints import http

    settings = settings_for(infrastructure, dsn, prefix)
    async with consumers(infrastructure, dsn, prefix) as driven:
        app = FastAPI()
        app.include_router(http.router)
        answer_errors_as_every_service_does(app)
        app.state.registration = http.RegistrationContext(settings=settings, metrics=driven.metrics)
        app.state.runtime = SimpleNamespace(
            pool=driven.pool, outbox=Outbox(producer="registration", topic_prefix=prefix)
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://registration", timeout=60
        ) as client:
            yield PartnerApi(client=client, consumers=driven, dsn=dsn)
