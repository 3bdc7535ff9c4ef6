"""Helpers for the notifications integration tests: the sink, the service, events, the ledger.

Imported by the test modules (never from a conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from solidarity.notifications.adapters.clock import Clock
from solidarity.notifications.bootstrap import create_app
from solidarity.notifications.settings import NotificationsSettings
from solidarity.shared.contracts.envelope import Envelope, Event
from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    FocusDayAddedV1,
    ResourcePublishedV1,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.common import (
    CampaignStatus,
    Consents,
    Role,
    SessionKind,
)
from solidarity.shared.contracts.events.registration import (
    RegistrantRecordedV1,
    SessionRegistrationConfirmedV1,
    SignupConfirmedV1,
)
from solidarity.shared.contracts.topics import topic_for
from solidarity.shared.db.pool import connect
from solidarity.shared.devstack.mailsink import MailSink, running_mail_sink
from solidarity.shared.settings import DatabaseSettings, KafkaSettings
from solidarity.shared.testing.infrastructure import Infrastructure

SIGNING_KEY = "integration-test-signing-key"


# The mail sink ----------------------------------------------------------------------------


mail_sink = running_mail_sink
"""A sink in this process on free ports (`solidarity.shared.devstack.mailsink`)."""


@dataclass(frozen=True)
class Mail:
    """One message the sink kept, parsed."""

    to: str
    message_id: str
    subject: str
    message: EmailMessage

    @property
    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        assert body is not None
        return str(body.get_content())

    @property
    def ics(self) -> bytes | None:
        for part in self.message.iter_attachments():
            if part.get_filename() == "invite.ics":
                content = part.get_content()
                return content if isinstance(content, bytes) else str(content).encode()
        return None


def mails(sink: MailSink) -> list[Mail]:
    found = []
    for stored in sink.store.list():
        raw = sink.store.raw(stored.id)
        assert raw is not None
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        found.append(
            Mail(
                to=stored.to[0].lower(),
                message_id=stored.message_id or "",
                subject=stored.subject,
                message=parsed,
            )
        )
    return found


async def add_fault(sink: MailSink, **fault: Any) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sink.http_port}") as client:
        response = await client.post("/api/faults", json=fault)
        response.raise_for_status()


async def faults(sink: MailSink) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sink.http_port}") as client:
        result: list[dict[str, Any]] = (await client.get("/api/faults")).json()
        return result


# The service ------------------------------------------------------------------------------


def settings_for(
    infrastructure: Infrastructure,
    *,
    database_dsn: str,
    topic_prefix: str,
    sink: MailSink,
    **overrides: Any,
) -> NotificationsSettings:
    values: dict[str, Any] = {
        "kafka": KafkaSettings(
            bootstrap_servers=infrastructure.kafka_bootstrap, topic_prefix=topic_prefix
        ),
        "database": DatabaseSettings(url=database_dsn, pool_min_size=1, pool_max_size=6),
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.smtp_port,
        "unsubscribe_signing_key": SIGNING_KEY,
        "public_base_url": "http://127.0.0.1:8003",
        "sender_poll_interval_s": 0.05,
        "consumer_max_records": 500,
        "outbox_poll_interval_s": 0.05,
        "retry_base_s": 0.2,
        "retry_max_s": 1.0,
        "retry_jitter": 0.0,
        "reconcile_interval_s": 0.3,
        "metrics_refresh_s": 0.2,
        "in_doubt_policy": "mailbox",
        "mailbox_api_url": f"http://127.0.0.1:{sink.http_port}",
    }
    values.update(overrides)
    return NotificationsSettings(**values)


@contextlib.asynccontextmanager
async def running(
    settings: NotificationsSettings, *, clock: Clock | None = None
) -> AsyncIterator[FastAPI]:
    """The service's whole lifespan (migrations, consumers, sender), in this process."""
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0, what: str = "condition"
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached in {timeout_s} s")
        await asyncio.sleep(0.05)


# Events -----------------------------------------------------------------------------------


async def publish(bootstrap: str, prefix: str, events: Sequence[Event]) -> list[Envelope]:
    """Each event on its registry topic (under the test's prefix), keyed like its producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    envelopes = []
    try:
        for event in events:
            envelope = Envelope.wrap(event, producer=topic_for(event).producer)
            envelopes.append(envelope)
            await producer.send(
                topic_for(event).full_name(prefix),
                value=envelope.to_bytes(),
                key=event.aggregate_key().encode(),
                headers=envelope.headers(),
            )
        await producer.flush()
    finally:
        await producer.stop()
    return envelopes


def campaign(
    campaign_id: uuid.UUID, *, discreet: bool = False, offsets: tuple[int, ...] = (1440, 60)
) -> list[Event]:
    return [
        CampaignPublishedV1(
            campaign_id=campaign_id,
            revision=1,
            slug=f"solidarity-week-{campaign_id.hex[:6]}",
            name="Solidarity Week",
            description="A student-powered campaign building support for LGBTQ+ students.",
            starts_on=date(2023, 11, 6),
            ends_on=date(2023, 11, 10),
            time_zone="America/New_York",
            status=CampaignStatus.PUBLISHED,
            discreet=discreet,
            reminder_offsets_minutes=offsets,
        ),
        FocusDayAddedV1(
            focus_day_id=uuid.uuid4(),
            campaign_id=campaign_id,
            revision=2,
            date=date(2023, 11, 6),
            title="Black LGBTQ+ Focus Day",
        ),
        ResourcePublishedV1(
            resource_id=uuid.uuid4(),
            campaign_id=campaign_id,
            revision=3,
            kind="guide",
            title="Solidarity Week Student Guide",
            audience=(Role.STUDENT,),
            url="https://example.org/student-guide.pdf",
        ),
        ResourcePublishedV1(
            resource_id=uuid.uuid4(),
            campaign_id=campaign_id,
            revision=4,
            kind="guide",
            title="Solidarity Week Educator Guide",
            audience=(Role.EDUCATOR,),
            url="https://example.org/educator-guide.pdf",
        ),
    ]


def session(
    session_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    starts_at: datetime,
    time_zone: str = "America/New_York",
    audience: tuple[Role, ...] = (),
    kind: SessionKind = SessionKind.WEBINAR,
    title: str = "Building Solidarity in an Era of Silos",
    revision: int = 1,
) -> SessionScheduledV1:
    return SessionScheduledV1(
        session_id=session_id,
        campaign_id=campaign_id,
        revision=revision,
        kind=kind,
        title=title,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        time_zone=time_zone,
        display_time_zones=("America/Los_Angeles", "America/New_York"),
        audience=audience,
        join_url="https://meet.example.org/solidarity",
    )


@dataclass(frozen=True)
class Person:
    recipient_id: uuid.UUID
    email: str
    role: Role = Role.STUDENT
    locale: str = "en"
    time_zone: str | None = "America/Los_Angeles"

    @classmethod
    def new(cls, label: str, **changes: Any) -> Person:
        return cls(uuid.uuid4(), f"{label}-{uuid.uuid4().hex[:6]}@school.example", **changes)

    def recorded(self) -> RegistrantRecordedV1:
        return RegistrantRecordedV1(
            registrant_id=self.recipient_id,
            email=self.email,
            name=None,
            role=self.role,
            locale=self.locale,
            time_zone=self.time_zone,
        )

    def signed_up(self, campaign_id: uuid.UUID, *, invitations: bool = True) -> SignupConfirmedV1:
        return SignupConfirmedV1(
            registrant_id=self.recipient_id,
            campaign_id=campaign_id,
            signup_id=uuid.uuid4(),
            role=self.role,
            consents=Consents(invitations=invitations),
        )

    def confirmed(
        self, campaign_id: uuid.UUID, session_id: uuid.UUID, registration_id: uuid.UUID
    ) -> SessionRegistrationConfirmedV1:
        return SessionRegistrationConfirmedV1(
            registrant_id=self.recipient_id,
            campaign_id=campaign_id,
            registration_id=registration_id,
            session_id=session_id,
        )


def future(days: float) -> datetime:
    """An instant ahead of the real clock, on the hour (tests that use the system clock)."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return base + timedelta(days=days)


# The ledger -------------------------------------------------------------------------------


async def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def deliveries(dsn: str, **where: Any) -> list[asyncpg.Record]:
    clauses = " AND ".join(f"{k} = ${i}" for i, k in enumerate(where, start=1)) or "true"
    return await query(dsn, f"SELECT * FROM deliveries WHERE {clauses}", *where.values())
