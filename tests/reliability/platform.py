"""What the reliability scenarios run against: the real services, their databases and topics.

Services run in this process (their whole lifespan, as in production) when a scenario needs to
look inside them, or as subprocesses (`python -m solidarity.<service>`) when it kills them.
Imported by the scenario modules (never from a conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from fastapi import FastAPI
from pydantic import SecretStr

from solidarity.notifications.bootstrap import create_app as notifications_app
from solidarity.notifications.service import SERVICE as NOTIFICATIONS
from solidarity.notifications.settings import NotificationsSettings
from solidarity.registration.adapters.unit_of_work import SqlUnitOfWork
from solidarity.registration.bootstrap import create_app as registration_app
from solidarity.registration.domain.partners import signing_secret
from solidarity.registration.service import SERVICE as REGISTRATION
from solidarity.registration.service_layer.commands import CreatePartner
from solidarity.registration.service_layer.partners import create_partner
from solidarity.registration.settings import RegistrationSettings
from solidarity.shared.contracts.envelope import Envelope, Event
from solidarity.shared.contracts.events.catalog import CampaignPublishedV1, SessionScheduledV1
from solidarity.shared.contracts.events.common import CampaignStatus, Role, SessionKind
from solidarity.shared.contracts.events.registration import (
    RegistrantDetails,
    RegistrationSubmittedV1,
)
from solidarity.shared.contracts.topics import topic_for
from solidarity.shared.db.migrations import migrate
from solidarity.shared.db.pool import connect, create_pool, drop_database, ensure_database
from solidarity.shared.db.pool import with_database as database_in
from solidarity.shared.devstack.embedded import free_port
from solidarity.shared.devstack.mailsink import MailSink, running_mail_sink
from solidarity.shared.dlq import DeadLetter
from solidarity.shared.messaging.outbox import Outbox
from solidarity.shared.partners import PartnerCredentials
from solidarity.shared.runtime import answer_errors_as_every_service_does
from solidarity.shared.settings import DatabaseSettings, KafkaSettings
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.reliability.figures import time_factor

MASTER_KEY = "reliability-master-key-0123456789"
UNSUBSCRIBE_KEY = "reliability-unsubscribe-key-0123456789"

# Every email address and name the scenarios make up, and every log file their service
# processes write: scenario 12 looks for the one in the other.
PERSONAL_DATA: set[str] = set()
SERVICE_LOGS: list[Path] = []

# The embedded stack's processes ----------------------------------------------------------------

# The embedded PostgreSQL and broker are started with PR_SET_PDEATHSIG, which fires when the
# *thread* that started them exits. So they are (re)started from one thread that lives as long
# as the test session: from a short-lived worker (asyncio.to_thread) they would be shut down as
# soon as the event loop closes its executor at the end of the test.
_INFRA_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reliability-infra")


async def in_infra_thread(action: Callable[[], None]) -> None:
    """Run a blocking infrastructure action (stop or start PostgreSQL, restart the broker)."""
    await asyncio.get_running_loop().run_in_executor(_INFRA_THREAD, action)


# Waiting ---------------------------------------------------------------------------------------


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 60.0, what: str = "condition"
) -> float:
    """Poll `check` until it holds; returns how long that took (seconds). `timeout_s` is for
    the CI sizes: a scenario run bigger waits proportionally longer (`figures.time_factor`)."""
    timeout_s *= time_factor()
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await check():
        if loop.time() - started > timeout_s:
            raise AssertionError(f"{what} not reached in {timeout_s:.0f} s")
        await asyncio.sleep(0.1)
    return loop.time() - started


async def settles(check: Callable[[], Awaitable[bool]], *, timeout_s: float = 60.0) -> float | None:
    """Like `wait_until`, but gives None instead of raising when time runs out (so a scenario
    can still count what was lost before it asserts)."""
    try:
        return await wait_until(check, timeout_s=timeout_s)
    except AssertionError:
        return None


# Databases -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def service_databases(
    infrastructure: Infrastructure, unique: str, names: Iterable[str]
) -> AsyncIterator[dict[str, str]]:
    """A fresh database per service for this scenario (dropped afterwards): name -> DSN."""
    made: dict[str, str] = {}
    try:
        for name in names:
            database = f"rel_{unique}_{name}"
            await ensure_database(infrastructure.postgres_admin_dsn, database)
            made[name] = database_in(infrastructure.postgres_admin_dsn, database)
        yield made
    finally:
        for dsn in made.values():
            database = dsn.rsplit("/", 1)[-1].split("?", 1)[0]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    drop_database(infrastructure.postgres_admin_dsn, database), 30
                )


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def fetchval(dsn: str, query: str, *args: Any) -> Any:
    conn = await connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def applied_ids(dsn: str, consumer: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these events the consumer has applied (its inbox, written with the effect)."""
    rows = await fetch(
        dsn,
        "SELECT event_id FROM inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
        consumer,
        list(event_ids),
    )
    return {r["event_id"] for r in rows}


# Settings --------------------------------------------------------------------------------------


def registration_settings(
    infrastructure: Infrastructure, dsn: str, prefix: str, **overrides: Any
) -> RegistrationSettings:
    options: dict[str, Any] = {
        "environment": "test",
        "kafka": KafkaSettings(
            bootstrap_servers=infrastructure.kafka_bootstrap, topic_prefix=prefix
        ),
        "database": DatabaseSettings(url=dsn, pool_max_size=6),
        "partner_master_key": SecretStr(MASTER_KEY),
        "outbox_poll_interval_s": 0.02,
        "http_wait_poll_s": 0.02,
    }
    options.update(overrides)
    return RegistrationSettings(**options)


def notifications_settings(
    infrastructure: Infrastructure, dsn: str, prefix: str, sink: MailSink, **overrides: Any
) -> NotificationsSettings:
    options: dict[str, Any] = {
        "environment": "test",
        "kafka": KafkaSettings(
            bootstrap_servers=infrastructure.kafka_bootstrap, topic_prefix=prefix
        ),
        "database": DatabaseSettings(url=dsn, pool_min_size=1, pool_max_size=6),
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.smtp_port,
        "unsubscribe_signing_key": SecretStr(UNSUBSCRIBE_KEY),
        "public_base_url": "http://127.0.0.1:8003",
        "sender_poll_interval_s": 0.05,
        "outbox_poll_interval_s": 0.05,
        "retry_base_s": 0.2,
        "retry_max_s": 1.0,
        "retry_jitter": 0.0,
        "reconcile_interval_s": 0.3,
        "metrics_refresh_s": 0.2,
        "in_doubt_policy": "mailbox",
        "mailbox_api_url": f"http://127.0.0.1:{sink.http_port}",
    }
    options.update(overrides)
    return NotificationsSettings(**options)


def service_env(
    infrastructure: Infrastructure, dsn: str, prefix: str, **settings: str
) -> dict[str, str]:
    """The environment of a service subprocess (SOLIDARITY_* settings)."""
    env = dict(os.environ)
    env.update(
        {
            "SOLIDARITY_ENVIRONMENT": "test",
            "SOLIDARITY_DATABASE_URL": dsn,
            "SOLIDARITY_DATABASE_POOL_MAX_SIZE": "6",
            "SOLIDARITY_KAFKA_BOOTSTRAP_SERVERS": infrastructure.kafka_bootstrap,
            "SOLIDARITY_KAFKA_TOPIC_PREFIX": prefix,
            "SOLIDARITY_OUTBOX_POLL_INTERVAL_S": "0.02",
            "SOLIDARITY_LOG_LEVEL": "INFO",
            "SOLIDARITY_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({f"SOLIDARITY_{k.upper()}": v for k, v in settings.items()})
    return env


def registration_env(infrastructure: Infrastructure, dsn: str, prefix: str) -> dict[str, str]:
    return service_env(
        infrastructure, dsn, prefix, partner_master_key=MASTER_KEY, http_wait_poll_s="0.02"
    )


def notifications_env(
    infrastructure: Infrastructure, dsn: str, prefix: str, sink: MailSink, **settings: str
) -> dict[str, str]:
    values = {
        "smtp_host": "127.0.0.1",
        "smtp_port": str(sink.smtp_port),
        "smtp_pool_size": "4",
        "unsubscribe_signing_key": UNSUBSCRIBE_KEY,
        "in_doubt_policy": "mailbox",
        "mailbox_api_url": f"http://127.0.0.1:{sink.http_port}",
        "sending_lease_s": "1",
        "reconcile_interval_s": "0.3",
        "sender_batch_size": "50",
        "sender_poll_interval_s": "0.05",
        "outbox_poll_interval_s": "0.05",
        "retry_base_s": "0.2",
        "retry_max_s": "1.0",
        "retry_jitter": "0",
    }
    values.update(settings)
    return service_env(infrastructure, dsn, prefix, **values)


# Services in this process ----------------------------------------------------------------------


@dataclass
class Running:
    """A service app whose lifespan runs here, with an HTTP client on it."""

    name: str
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def runners(self) -> list[Any]:
        return list(self.app.state.runtime.consumers)

    def retries(self) -> int:
        return sum(r.stats.retries for r in self.runners)

    def received(self) -> int:
        return sum(r.stats.received for r in self.runners)


@contextlib.asynccontextmanager
async def _serving(name: str, app: FastAPI) -> AsyncIterator[Running]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=f"http://{name}", timeout=60
        ) as client:
            yield Running(name=name, app=app, client=client)


@contextlib.asynccontextmanager
async def running(**apps: FastAPI) -> AsyncIterator[dict[str, Running]]:
    """Several services at once (their consumer groups join in parallel)."""
    contexts = {name: _serving(name, app) for name, app in apps.items()}
    started = await asyncio.gather(
        *(c.__aenter__() for c in contexts.values()), return_exceptions=True
    )
    try:
        failures = [s for s in started if isinstance(s, BaseException)]
        if failures:
            raise failures[0]
        yield dict(zip(contexts, started, strict=True))  # type: ignore[arg-type]
    finally:
        for context, result in zip(contexts.values(), started, strict=True):
            if not isinstance(result, BaseException):
                with contextlib.suppress(Exception):
                    await context.__aexit__(None, None, None)


@dataclass
class Week:
    """Registration and notifications running here on their own databases, with a mail sink
    and a partner, for a published campaign whose session both services know."""

    dsns: dict[str, str]
    sink: MailSink
    partner: PartnerCredentials
    services: dict[str, Running]


@contextlib.asynccontextmanager
async def registration_and_notifications(
    infrastructure: Infrastructure,
    unique: str,
    prefix: str,
    mail: Path,
    campaign: CampaignPublishedV1,
    session: SessionScheduledV1,
    *,
    registration_overrides: dict[str, Any] | None = None,
    **notifications_overrides: Any,
) -> AsyncIterator[Week]:
    """The two services running for `campaign` (the partner may submit for it) once the
    registration service's read model holds `session`."""
    async with (
        service_databases(infrastructure, unique, ("registration", "notifications")) as dsns,
        mail_sink(mail) as sink,
    ):
        await migrated(dsns["registration"], "registration")
        partner = await partner_account(dsns["registration"], campaign.slug)
        await publish_events(infrastructure.kafka_bootstrap, prefix, [campaign, session])
        apps = {
            "registration": registration(
                registration_settings(
                    infrastructure, dsns["registration"], prefix, **(registration_overrides or {})
                )
            ),
            "notifications": notifications(
                notifications_settings(
                    infrastructure, dsns["notifications"], prefix, sink, **notifications_overrides
                )
            ),
        }
        async with running(**apps) as services:

            async def known() -> bool:
                query = "SELECT count(*) FROM sessions WHERE session_id = $1"
                return bool(await fetchval(dsns["registration"], query, session.session_id))

            await wait_until(known, what="the session in the read model")
            yield Week(dsns=dsns, sink=sink, partner=partner, services=services)


@contextlib.asynccontextmanager
async def listening(app: FastAPI) -> AsyncIterator[str]:
    """An app whose lifespan already runs, served on a loopback port (a real HTTP server, so
    an error escaping the app is the 500 a client would see)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, lifespan="off", access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def partner_routes(
    infrastructure: Infrastructure, dsn: str, prefix: str
) -> AsyncIterator[FastAPI]:
    """The registration service's partner API (its own router, on a pool and its outbox),
    without the consumers: for scenarios about the HTTP API alone."""
    from types import SimpleNamespace

    from solidarity.registration.adapters.metrics import RegistrationMetrics
    from solidarity.registration.entrypoints import http

    settings = registration_settings(infrastructure, dsn, prefix)
    pool = await create_pool(DatabaseSettings(url=dsn, pool_max_size=4))
    app = FastAPI()
    app.include_router(http.router)
    answer_errors_as_every_service_does(app)
    app.state.registration = http.RegistrationContext(
        settings=settings, metrics=RegistrationMetrics()
    )
    app.state.runtime = SimpleNamespace(
        pool=pool, outbox=Outbox(producer="registration", topic_prefix=prefix)
    )
    try:
        yield app
    finally:
        await pool.close()


def registration(settings: RegistrationSettings) -> FastAPI:
    return registration_app(settings)


def notifications(settings: NotificationsSettings) -> FastAPI:
    return notifications_app(settings)


async def migrated(dsn: str, service: str) -> str:
    package = {"registration": REGISTRATION.package, "notifications": NOTIFICATIONS.package}
    await migrate(dsn, service_package=package[service])
    return dsn


# Services as subprocesses ----------------------------------------------------------------------


@dataclass
class ServiceProcess:
    """`python -m <module>` with its own environment; every start gets its own log file."""

    module: str
    env: dict[str, str]
    log_dir: Path
    name: str = ""
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.name or self.module.rsplit(".", 1)[-1]
        self.log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def port(self) -> int:
        return int(self.env["SOLIDARITY_HTTP_PORT"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        # The same address across restarts, as behind a load balancer.
        self.env.setdefault("SOLIDARITY_HTTP_PORT", str(free_port()))
        self.starts += 1
        log = self.log_dir / f"{self.name}-{self.starts}.log"
        self.logs.append(log)
        SERVICE_LOGS.append(log)
        with log.open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, env=self.env, stdout=out, stderr=out
            )

    async def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Until `/ready` answers 200 (database and broker reachable)."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:

            async def ready() -> bool:
                assert self.alive, f"{self.name} exited: {self.tail()}"
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get("/ready")).status_code == 200
                return False

            return await wait_until(ready, timeout_s=timeout_s, what=f"{self.name} ready")

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def tail(self, chars: int = 3000) -> str:
        return self.logs[-1].read_text(errors="replace")[-chars:] if self.logs else ""

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())


@contextlib.asynccontextmanager
async def processes(*services: ServiceProcess) -> AsyncIterator[None]:
    """Stop (SIGTERM, then SIGKILL) every process on the way out, whatever happened."""
    try:
        yield
    finally:
        await asyncio.gather(*(s.stop() for s in services), return_exceptions=True)


# The mail sink ---------------------------------------------------------------------------------


mail_sink = running_mail_sink
"""A sink in this process on free ports (`solidarity.shared.devstack.mailsink`)."""


async def add_fault(sink: MailSink, **fault: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sink.http_port}") as client:
        response = await client.post("/api/faults", json=fault)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


# Partners --------------------------------------------------------------------------------------


async def partner_account(dsn: str, *campaigns: str, name: str = "Riverside") -> PartnerCredentials:
    """A partner created the way `solidarity partners create` does (same service function)."""
    pool = await create_pool(DatabaseSettings(url=dsn, pool_max_size=1))
    try:
        made = await create_partner(
            CreatePartner(name=name, campaigns=campaigns),
            SqlUnitOfWork(outbox=Outbox(producer="registration"), pool=pool),
            master_key=MASTER_KEY.encode(),
        )
    finally:
        await pool.close()
    return PartnerCredentials(
        partner_id=made.partner_id,
        name=name,
        api_key=made.api_key,
        signing_secret=signing_secret(MASTER_KEY.encode(), made.partner_id),
        campaigns=tuple(campaigns),
    )


# Events ----------------------------------------------------------------------------------------


def campaign_published(slug: str, *, campaign_id: uuid.UUID | None = None) -> CampaignPublishedV1:
    today = datetime.now(UTC).date()
    return CampaignPublishedV1(
        campaign_id=campaign_id or uuid.uuid4(),
        revision=1,
        slug=slug,
        name=f"Solidarity Week {slug}",
        description="A student-powered campaign building support for LGBTQ+ students.",
        starts_on=today,
        ends_on=today + timedelta(days=30),
        time_zone="America/New_York",
        status=CampaignStatus.PUBLISHED,
        reminder_offsets_minutes=(24 * 60, 60),
    )


def session_scheduled(
    campaign_id: uuid.UUID,
    *,
    capacity: int | None = 100,
    session_id: uuid.UUID | None = None,
    starts_in: timedelta = timedelta(days=7),
    kind: SessionKind = SessionKind.WEBINAR,
    title: str = "Building Solidarity in an Era of Silos",
    revision: int = 1,
) -> SessionScheduledV1:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + starts_in
    return SessionScheduledV1(
        session_id=session_id or uuid.uuid4(),
        campaign_id=campaign_id,
        revision=revision,
        kind=kind,
        title=title,
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        time_zone="America/New_York",
        display_time_zones=("America/Los_Angeles", "America/New_York"),
        capacity=capacity,
        join_url="https://meet.example.org/solidarity",
    )


def person_email(label: str) -> str:
    email = f"{label}-{uuid.uuid4().hex[:10]}@school.example"
    PERSONAL_DATA.add(email)
    return email


def person_name() -> str:
    """A made-up full name, distinctive enough to be searched for in logs and databases."""
    token = uuid.uuid4().hex[:6]
    name = f"Amara Okafor-{token}"
    PERSONAL_DATA.add(name)
    return name


def submission(
    partner_id: uuid.UUID,
    campaign: str,
    *,
    email: str | None = None,
    submission_id: str | None = None,
    session_ids: Sequence[uuid.UUID] = (),
    signup: bool = True,
    name: str | None = None,
    invitations: bool = False,
) -> RegistrationSubmittedV1:
    token = uuid.uuid4().hex[:12]
    return RegistrationSubmittedV1.model_validate(
        {
            "partner_id": partner_id,
            "submission_id": submission_id or f"sub-{token}",
            "campaign": campaign,
            "registrant": RegistrantDetails(
                email=email or person_email("person"),
                role=Role.STUDENT,
                school="Riverside High",
                name=name,
            ),
            "consents": {"invitations": invitations},
            "session_ids": tuple(session_ids),
            "signup": signup,
        }
    )


Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def event_record(event: Event, *, producer: str | None = None) -> tuple[Envelope, Record]:
    envelope = Envelope.wrap(event, producer=producer or topic_for(event).producer)
    return envelope, (event.aggregate_key().encode(), envelope.to_bytes(), envelope.headers())


async def produce(bootstrap: str, topic: str, records: Sequence[Record]) -> list[tuple[int, int]]:
    """Send records to one topic, wait until the broker has every one; (partition, offset)s."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in records
        ]
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in sent]


async def publish_events(bootstrap: str, prefix: str, events: Sequence[Event]) -> list[Envelope]:
    """Events on their registry topics (under the prefix), as their owners publish them."""
    envelopes: list[Envelope] = []
    by_topic: dict[str, list[Record]] = {}
    for event in events:
        envelope, record = event_record(event)
        envelopes.append(envelope)
        by_topic.setdefault(topic_for(event).full_name(prefix), []).append(record)
    for topic, records in by_topic.items():
        await produce(bootstrap, topic, records)
    return envelopes


# Kafka -----------------------------------------------------------------------------------------


async def _partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    partitions: list[TopicPartition] = []
    for topic in topics:
        found = consumer.partitions_for_topic(topic)
        if not found:
            await consumer._client.force_metadata_update()
            found = consumer.partitions_for_topic(topic) or set()
        partitions += [TopicPartition(topic, p) for p in sorted(found)]
    return partitions


async def read_all(
    bootstrap: str, topics: Sequence[str], *, idle_s: float = 0.8, timeout_s: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of these topics, read until nothing more arrives for `idle_s`.

    Not bounded by the broker's end offsets: the embedded broker (Tansu, memory engine)
    reports the base offset of the last record batch + 1 as a partition's end, so a reader
    that stops there misses the rest of that batch (see docs/reliability.md)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topics)
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        reported = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        quiet_since = loop.time()
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            got = [r for rs in batch.values() for r in rs]
            records.extend(got)
            behind = [tp for tp in partitions if await consumer.position(tp) < reported[tp]]
            if got or behind:
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= idle_s:
                return records
        raise TimeoutError(f"reading {', '.join(topics)} did not settle in {timeout_s:.0f} s")
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """Each partition's real end (last offset + 1), read rather than asked for (see
    `read_all` for why the broker's own answer is not used)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topics)
        if not partitions:
            return {}
        reported: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        ends = dict(reported)
        consumer.assign(partitions)
        for tp, end in reported.items():
            consumer.seek(tp, max(0, end - 1))
        loop = asyncio.get_running_loop()
        quiet_since = started = loop.time()
        # Until nothing more comes (or a few seconds, on a topic still being written to).
        while loop.time() - quiet_since < 0.5 and loop.time() - started < 5.0:
            batch = await consumer.getmany(timeout_ms=100)
            for tp, records in batch.items():
                if records:
                    quiet_since = loop.time()
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
        return ends
    finally:
        await consumer.stop()


async def dead_letters_on(bootstrap: str, topic: str) -> list[DeadLetter]:
    """Every message of a DLQ topic (read to its real end; see `read_all`)."""
    return [
        DeadLetter(
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            timestamp_ms=r.timestamp,
            key=r.key,
            value=r.value or b"",
            headers=tuple((k, bytes(v or b"")) for k, v in (r.headers or ())),
        )
        for r in await read_all(bootstrap, [topic])
    ]


async def committed_total(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """The sum of a group's committed offsets over these topics (it only ever grows)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        total = 0
        for tp in await _partitions(consumer, topics):
            total += await consumer.committed(tp) or 0
        return total
    finally:
        await consumer.stop()


async def committed_lag(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """Messages after the group's committed offsets (what a restart would read again).

    Read with a consumer of the group that never joins it (the embedded broker does not
    answer the admin client's offset listing)."""
    ends = await end_offsets(bootstrap, topics)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        lag = 0
        for tp, end in ends.items():
            position = await consumer.committed(tp)
            lag += max(0, end - (position or 0))
        return lag
    finally:
        await consumer.stop()
