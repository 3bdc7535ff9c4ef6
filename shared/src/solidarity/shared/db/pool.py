"""One asyncpg pool per service, with JSON codecs set on every connection."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from solidarity.shared.settings import DatabaseSettings

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection, whether opened alone or borrowed from a pool."""

# Errors that mean "the database is not there right now": retry, never dead-letter.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.InterfaceError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's session reset.

    By default a released connection runs `SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL;`: a round trip on every release (2-3 s of a benchmark's profile).
    The services keep no session state on pooled connections: their advisory locks are
    transaction-scoped (`pg_advisory_xact_lock`), cursors live inside transactions, nothing
    LISTENs or SETs. asyncpg still rolls back an open transaction before calling this.
    Anything that needs session state (the migration runner's session lock) opens its own
    connection.
    """


async def create_pool(settings: DatabaseSettings, **overrides: Any) -> asyncpg.Pool:
    """Open the service's pool; callers close it on shutdown."""
    options: dict[str, Any] = {
        "min_size": settings.pool_min_size,
        "max_size": settings.pool_max_size,
        "init": _init_connection,
        "reset": _keep_session,
        "command_timeout": 60,
    }
    options.update(overrides)
    pool = await asyncpg.create_pool(settings.url, **options)
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """A single connection with the same codecs as the pool (CLI commands, tests)."""
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


async def ensure_database(admin_dsn: str, name: str) -> None:
    """Create a database if it does not exist (names are checked, not interpolated blindly)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"refusing an unusual database name: {name!r}")
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"refusing an unusual database name: {name!r}")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def with_database(dsn: str, database: str) -> str:
    """The same server address with another database name."""
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"
