"""A registration's mails are claimed one at a time, in the order they were planned, on a real
database: a reminder waits while its confirmation waits for a retry, is `sending` on a dead
instance or is in doubt; a cancellation waits for a confirmation in doubt; invitations and
welcomes are never held; two claimers at once never take two mails of one registration."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from solidarity.notifications.adapters.repository import ConnectionUnitOfWork, SqlDeliveryLedger
from solidarity.notifications.domain.model import Delivery
from solidarity.notifications.service_layer import handlers
from solidarity.shared.contracts.events.catalog import CampaignPublishedV1
from solidarity.shared.contracts.events.common import SessionKind
from solidarity.shared.contracts.events.registration import RegistrationCancelledV1
from solidarity.shared.db.migrations import migrate
from solidarity.shared.db.pool import create_pool
from solidarity.shared.messaging.outbox import Outbox
from solidarity.shared.settings import DatabaseSettings
from tests.integration.notifications import harness
from tests.integration.notifications.harness import Person

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC).replace(microsecond=0)
RULES = handlers.PlanningRules()
Step = Callable[[ConnectionUnitOfWork, datetime], Awaitable[None]]


@pytest.fixture
async def pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(database_dsn, service_package="solidarity.notifications")
    pool = await create_pool(DatabaseSettings(url=database_dsn, pool_min_size=1, pool_max_size=4))
    try:
        yield pool
    finally:
        await pool.close()


class World:
    """One campaign with one-hour reminders; planning goes through the real handlers."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.ledger = SqlDeliveryLedger(pool, Outbox(producer="notifications"))
        self.campaign_id = uuid.uuid4()

    async def _apply(self, now: datetime, step: Step) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await step(ConnectionUnitOfWork(conn), now)

    async def start(self) -> None:
        published = harness.campaign(self.campaign_id, offsets=(60,))[0]
        assert isinstance(published, CampaignPublishedV1)

        async def campaign(uow: ConnectionUnitOfWork, now: datetime) -> None:
            await handlers.campaign_changed(published, uow, now=now)

        await self._apply(T0 - timedelta(days=1), campaign)

    async def session(self, starts_at: datetime, *, now: datetime) -> uuid.UUID:
        event = harness.session(
            uuid.uuid4(), self.campaign_id, starts_at=starts_at, kind=SessionKind.WEBINAR
        )

        async def scheduled(uow: ConnectionUnitOfWork, at: datetime) -> None:
            await handlers.session_scheduled(event, uow, now=at, rules=RULES)

        await self._apply(now, scheduled)
        return event.session_id

    async def person(self, label: str, *, now: datetime) -> Person:
        person = Person.new(label)

        async def recorded(uow: ConnectionUnitOfWork, at: datetime) -> None:
            await handlers.registrant_recorded(person.recorded(), uow)
            await handlers.signup_confirmed(
                person.signed_up(self.campaign_id), uow, now=at, rules=RULES
            )

        await self._apply(now, recorded)
        return person

    async def register(self, person: Person, session_id: uuid.UUID, *, now: datetime) -> uuid.UUID:
        registration_id = uuid.uuid4()
        event = person.confirmed(self.campaign_id, session_id, registration_id)

        async def confirmed(uow: ConnectionUnitOfWork, at: datetime) -> None:
            await handlers.registration_confirmed(event, uow, now=at)

        await self._apply(now, confirmed)
        return registration_id

    async def cancel(
        self, person: Person, session_id: uuid.UUID, registration_id: uuid.UUID, *, now: datetime
    ) -> None:
        event = RegistrationCancelledV1(
            registrant_id=person.recipient_id,
            campaign_id=self.campaign_id,
            registration_id=registration_id,
            session_id=session_id,
            reason="registrant",
        )

        async def cancelled(uow: ConnectionUnitOfWork, at: datetime) -> None:
            await handlers.registration_cancelled(event, uow, now=at)

        await self._apply(now, cancelled)

    async def claim(self, now: datetime) -> list[Delivery]:
        return [w.delivery for w in await self.ledger.claim_due(now=now, limit=100)]

    async def sent(self, deliveries: list[Delivery], *, now: datetime) -> None:
        for delivery in deliveries:
            assert await self.ledger.record_sent(delivery, now=now, event=None)


def kinds(deliveries: list[Delivery], registration_id: uuid.UUID | None = None) -> list[str]:
    return sorted(
        d.kind.value
        for d in deliveries
        if registration_id is None or d.registration_id == registration_id
    )


async def test_a_reminder_waits_for_its_confirmations_retry_and_invitations_never_wait(
    pool: asyncpg.Pool,
) -> None:
    world = World(pool)
    await world.start()
    ada = await world.person("ada", now=T0)
    starts = T0 + timedelta(hours=2)  # the one-hour reminder is due at T0 + 1 h
    session_id = await world.session(starts, now=T0)
    registration = await world.register(ada, session_id, now=T0)

    first = await world.claim(T0)
    assert kinds(first) == ["confirmation", "invitation", "signup_welcome"]
    confirmation = next(d for d in first if d.kind.value == "confirmation")
    await world.sent([d for d in first if d is not confirmation], now=T0)
    retry_at = T0 + timedelta(hours=1, minutes=5)
    assert await world.ledger.record_retry(confirmation, now=T0, due_at=retry_at, reason="smtp_451")

    # The reminder is due, its confirmation is not yet: nothing of the registration goes.
    assert await world.claim(T0 + timedelta(hours=1, minutes=1)) == []
    # A newcomer's welcome and invitation are not held by anyone's registration.
    bea = await world.person("bea", now=T0 + timedelta(hours=1, minutes=2))
    others = await world.claim(T0 + timedelta(hours=1, minutes=2))
    assert kinds(others) == ["invitation", "signup_welcome"]
    assert {d.recipient_id for d in others} == {bea.recipient_id}

    # The retry falls due: the confirmation goes first, alone, then the reminder.
    again = await world.claim(retry_at)
    assert kinds(again) == ["confirmation"]
    assert again[0].attempts == 2
    assert await world.claim(retry_at) == []
    await world.sent(again, now=retry_at)
    assert kinds(await world.claim(retry_at), registration) == ["reminder"]


async def test_a_confirmation_sending_on_a_dead_instance_or_in_doubt_holds_what_follows(
    pool: asyncpg.Pool,
) -> None:
    world = World(pool)
    await world.start()
    ada = await world.person("ada", now=T0)
    session_id = await world.session(T0 + timedelta(hours=2), now=T0)
    registration = await world.register(ada, session_id, now=T0)
    claimed = await world.claim(T0)
    confirmation = next(d for d in claimed if d.kind.value == "confirmation")
    await world.sent([d for d in claimed if d is not confirmation], now=T0)
    later = T0 + timedelta(hours=1, minutes=1)

    # Its sender died: the row stays `sending`, the reminder waits.
    assert await world.claim(later) == []
    assert await world.ledger.mark_stuck_unknown(claimed_before=later) == 1
    assert await world.claim(later) == []  # in doubt: still waits

    # The registration is cancelled meanwhile: the reminder is dropped, the cancellation
    # waits for the confirmation in doubt to be settled.
    await world.cancel(ada, session_id, registration, now=later)
    assert await world.claim(later) == []
    (in_doubt,) = await world.ledger.in_doubt(limit=10)
    assert await world.ledger.requeue(in_doubt, now=later)  # the mailbox did not have it
    resent = await world.claim(later)
    assert kinds(resent) == ["confirmation"]
    assert await world.claim(later) == []
    await world.sent(resent, now=later)
    assert kinds(await world.claim(later), registration) == ["cancelled"]


async def test_two_claimers_at_once_never_take_two_mails_of_one_registration(
    pool: asyncpg.Pool,
) -> None:
    world = World(pool)
    await world.start()
    planned_at = T0 - timedelta(hours=2)
    session_id = await world.session(T0 + timedelta(minutes=30), now=planned_at)
    people = [await world.person(f"p{i}", now=planned_at) for i in range(40)]
    for person in people:
        await world.register(person, session_id, now=planned_at)
    # At T0 each registration has its confirmation (due 2 h ago) and its one-hour reminder
    # (due 30 min ago) due, and each person a welcome and an invitation.
    taken: list[Delivery] = []
    for _ in range(4):
        batches = await asyncio.gather(*(world.claim(T0) for _ in range(2)))
        step = [d for batch in batches for d in batch]
        per_registration: dict[uuid.UUID, list[str]] = {}
        for d in step:
            if d.registration_id is not None:
                per_registration.setdefault(d.registration_id, []).append(d.kind.value)
        assert all(len(v) == 1 for v in per_registration.values()), per_registration
        taken += step
        await world.sent(step, now=T0)
    order: dict[uuid.UUID, list[str]] = {}
    for d in taken:
        if d.registration_id is not None:
            order.setdefault(d.registration_id, []).append(d.kind.value)
    assert len(order) == len(people)
    assert all(v == ["confirmation", "reminder"] for v in order.values()), order
    assert kinds([d for d in taken if d.registration_id is None]) == sorted(
        ["invitation", "signup_welcome"] * len(people)
    )
