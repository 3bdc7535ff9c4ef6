"""The migration runner against a real PostgreSQL: ordered, recorded, safe twice and at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from solidarity.shared.db.migrations import (
    MigrationError,
    apply_migrations,
    load_migrations,
    migrate,
)

pytestmark = pytest.mark.integration


def write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


async def test_migrations_apply_in_order_once_even_when_run_concurrently(
    database_dsn: str, tmp_path: Path
) -> None:
    write(tmp_path, "0001_people.sql", "CREATE TABLE people (id int PRIMARY KEY);")
    write(tmp_path, "0002_rows.sql", "INSERT INTO people VALUES (1), (2);")
    migrations = load_migrations("demo", tmp_path)
    assert [m.version for m in migrations] == [1, 2]

    async def run() -> list[str]:
        conn = await asyncpg.connect(database_dsn)
        try:
            return await apply_migrations(conn, migrations)
        finally:
            await conn.close()

    results = await asyncio.gather(run(), run(), run())
    assert sorted(len(r) for r in results) == [0, 0, 2]  # one runner applied, two waited
    assert await run() == []  # a second run changes nothing
    conn = await asyncpg.connect(database_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM people") == 2
        recorded = await conn.fetch(
            "SELECT version, name FROM schema_migrations WHERE namespace = 'demo' ORDER BY 1"
        )
    finally:
        await conn.close()
    assert [(r["version"], r["name"]) for r in recorded] == [(1, "people"), (2, "rows")]


async def test_an_edited_applied_migration_is_refused(database_dsn: str, tmp_path: Path) -> None:
    write(tmp_path, "0001_people.sql", "CREATE TABLE people (id int);")
    conn = await asyncpg.connect(database_dsn)
    try:
        await apply_migrations(conn, load_migrations("demo", tmp_path))
        write(tmp_path, "0001_people.sql", "CREATE TABLE people (id bigint);")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await apply_migrations(conn, load_migrations("demo", tmp_path))
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_applied(
    database_dsn: str, tmp_path: Path
) -> None:
    write(tmp_path, "0001_ok.sql", "CREATE TABLE ok (id int);")
    write(tmp_path, "0002_broken.sql", "CREATE TABLE half (id int); SELECT no_such_function();")
    conn = await asyncpg.connect(database_dsn)
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await apply_migrations(conn, load_migrations("demo", tmp_path))
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT to_regclass('ok')") == "ok"
        versions = await conn.fetch("SELECT version FROM schema_migrations")
        assert [r["version"] for r in versions] == [1]
    finally:
        await conn.close()


def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "people.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations("demo", tmp_path)


async def test_the_kit_tables_are_created_by_migrate(database_dsn: str) -> None:
    applied = await migrate(database_dsn, service_package=None)
    assert applied == ["kit:0001_outbox_inbox", "kit:0002_outbox_header_bytes"]
    assert await migrate(database_dsn, service_package=None) == []
