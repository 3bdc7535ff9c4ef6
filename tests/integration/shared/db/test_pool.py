"""The services' pool against a real PostgreSQL: releasing skips asyncpg's session reset, but a
connection never comes back with a transaction, or its locks, still open."""

from __future__ import annotations

import pytest

from solidarity.shared.db.pool import create_pool
from solidarity.shared.settings import DatabaseSettings

pytestmark = pytest.mark.integration


async def test_a_released_connection_is_clean_without_the_session_reset(database_dsn: str) -> None:
    pool = await create_pool(DatabaseSettings(url=database_dsn, pool_min_size=1, pool_max_size=1))
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            # Session state asyncpg's default reset (RESET ALL) would have cleared.
            await conn.execute("SET application_name = 'kept-by-the-pool'")
            # Left open on purpose, as a cancelled handler would leave it.
            await conn.execute("BEGIN")
            await conn.execute("SELECT pg_advisory_xact_lock(4242)")
            await conn.execute("CREATE TEMP TABLE left_behind (id int) ON COMMIT DROP")

        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend  # the same session
            assert not conn.is_in_transaction()
            # No reset ran on release: the session's setting is still there.
            assert await conn.fetchval("SHOW application_name") == "kept-by-the-pool"
            held = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            assert held == 0
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_behind')") is None
            # The JSON codecs set when the connection opened are still there.
            assert await conn.fetchval("SELECT '{\"a\": 1}'::jsonb") == {"a": 1}
    finally:
        await pool.close()
