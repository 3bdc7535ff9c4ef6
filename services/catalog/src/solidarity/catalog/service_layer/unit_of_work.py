"""The unit of work: one database transaction whose events leave through the outbox.

Handlers open it with `async with uow:`, change aggregates through the repositories,
`announce` the events the domain returned, and `commit`. The events are written to the
outbox in the same transaction as the change; leaving the block without committing rolls
everything back, events included.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Self

import asyncpg

from solidarity.catalog.adapters.repository import (
    CampaignRepository,
    FocusDayRepository,
    OrganizationRepository,
    PostgresCampaignRepository,
    PostgresFocusDayRepository,
    PostgresOrganizationRepository,
    PostgresResourceRepository,
    PostgresSessionRepository,
    ResourceRepository,
    SessionRepository,
)
from solidarity.shared.contracts.envelope import Event
from solidarity.shared.messaging.outbox import Outbox


class AbstractUnitOfWork(abc.ABC):
    """The transaction a handler works in, and the repositories bound to it."""

    organizations: OrganizationRepository
    campaigns: CampaignRepository
    focus_days: FocusDayRepository
    sessions: SessionRepository
    resources: ResourceRepository

    def __init__(self) -> None:
        self._announced: list[Event] = []

    @property
    def announced(self) -> tuple[Event, ...]:
        """The events announced in this transaction so far (not yet committed)."""
        return tuple(self._announced)

    def announce(self, events: Iterable[Event]) -> None:
        """Queue events to be written to the outbox at commit, in this order."""
        self._announced.extend(events)

    async def __aenter__(self) -> Self:
        self._announced = []
        await self._begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._end()

    async def commit(self) -> None:
        events, self._announced = self._announced, []
        await self._commit(events)

    @abc.abstractmethod
    async def _begin(self) -> None: ...

    @abc.abstractmethod
    async def _commit(self, events: list[Event]) -> None: ...

    @abc.abstractmethod
    async def _end(self) -> None:
        """Roll back whatever was not committed, and release what was held."""


UnitOfWorkFactory = Callable[[], AbstractUnitOfWork]


class PostgresUnitOfWork(AbstractUnitOfWork):
    """A transaction on a pooled asyncpg connection; events go to the outbox table."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        outbox: Outbox,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> None:
        super().__init__()
        self._pool = pool
        self._outbox = outbox
        # One conversation per command: every event it causes shares this correlation id.
        self._correlation_id = correlation_id or uuid.uuid4()
        self._causation_id = causation_id
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None
        self._transaction: asyncpg.transaction.Transaction | None = None
        self.committed = False

    async def _begin(self) -> None:
        self.committed = False
        self._conn = await self._pool.acquire()
        try:
            self._transaction = self._conn.transaction()
            await self._transaction.start()
        except BaseException:
            await self._pool.release(self._conn)
            self._conn = None
            raise
        self.organizations = PostgresOrganizationRepository(self._conn)
        self.campaigns = PostgresCampaignRepository(self._conn)
        self.focus_days = PostgresFocusDayRepository(self._conn)
        self.sessions = PostgresSessionRepository(self._conn)
        self.resources = PostgresResourceRepository(self._conn)

    async def _commit(self, events: list[Event]) -> None:
        assert self._conn is not None
        assert self._transaction is not None
        if events:
            await self._outbox.add(
                self._conn,
                events,
                correlation_id=self._correlation_id,
                causation_id=self._causation_id,
            )
        await self._transaction.commit()
        self._transaction = None
        self.committed = True

    async def _end(self) -> None:
        conn, transaction = self._conn, self._transaction
        self._conn = self._transaction = None
        if conn is None:
            return
        try:
            if transaction is not None:
                await transaction.rollback()
        finally:
            await self._pool.release(conn)
