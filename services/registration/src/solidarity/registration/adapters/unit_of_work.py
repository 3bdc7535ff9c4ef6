"""The unit of work on PostgreSQL: a transaction of its own, or a savepoint in a consumer's."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from solidarity.registration.adapters.repository import SqlRepository
from solidarity.registration.service_layer.unit_of_work import UnitOfWork
from solidarity.shared.contracts.envelope import Envelope, Event
from solidarity.shared.db.pool import Connection
from solidarity.shared.messaging.outbox import Outbox


class SqlUnitOfWork(UnitOfWork):
    """A transaction on the service's database; events go to its outbox on commit.

    With `pool`, it borrows a connection and owns the transaction (HTTP, CLI). With
    `connection`, it runs inside a transaction someone else owns (the consumer runner's,
    which commits the offsets after it) as a savepoint.
    """

    def __init__(
        self,
        *,
        outbox: Outbox,
        pool: asyncpg.Pool | None = None,
        connection: Connection | None = None,
    ) -> None:
        super().__init__(producer=outbox.producer)
        if (pool is None) == (connection is None):
            raise ValueError("give a pool or a connection")
        self._outbox = outbox
        self._pool = pool
        self._given = connection
        self._conn: Connection | None = None
        self._acquired: PoolConnectionProxy | None = None
        self._transaction: Transaction | None = None

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not open")
        return self._conn

    async def _begin(self) -> None:
        if self._given is not None:
            self._conn = self._given
        else:
            assert self._pool is not None
            self._acquired = await self._pool.acquire()
            self._conn = self._acquired
        self.repository = SqlRepository(self._conn)
        self._transaction = self._conn.transaction()
        await self._transaction.start()

    async def _write_events(self, events: Sequence[tuple[Event, Envelope]]) -> None:
        await self._outbox.add_messages(
            self.connection, [self._outbox.message(event, envelope) for event, envelope in events]
        )

    async def _commit(self) -> None:
        assert self._transaction is not None
        try:
            await self._transaction.commit()
        finally:
            await self._release()

    async def _rollback(self) -> None:
        try:
            conn, transaction = self._conn, self._transaction
            if transaction is not None and conn is not None and not conn.is_closed():
                await transaction.rollback()
        finally:
            await self._release()

    async def _release(self) -> None:
        self._transaction = None
        if self._acquired is not None and self._pool is not None:
            conn, self._acquired, self._conn = self._acquired, None, None
            await self._pool.release(conn)
