"""Ordered SQL migrations per service: recorded, checksummed, safe to run twice or at once."""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from solidarity.shared.logging import get_logger

log = get_logger(__name__)

_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_LOCK_KEY = 7_311_001  # one advisory lock for every migration run in a database

KIT_MIGRATIONS = "solidarity.shared.messaging"  # outbox, inbox and their friends


class MigrationError(RuntimeError):
    """A migration file is malformed, or an applied one was edited afterwards."""


@dataclass(frozen=True, slots=True)
class Migration:
    namespace: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(namespace: str, directory: Path) -> list[Migration]:
    """Read `NNNN_name.sql` files in order; anything else in the folder is an error."""
    migrations: list[Migration] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.name == "__init__.py" or path.is_dir():
            continue
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        migrations.append(
            Migration(namespace, int(match["version"]), match["name"], path.read_text())
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a version number")
    return migrations


def package_migrations_dir(package: str) -> Path:
    """Find a package's `migrations/` folder: inside the installed package (wheel, image),
    or beside the distribution's pyproject.toml (a source checkout)."""
    root = importlib.resources.files(package)
    inside = Path(str(root)) / "migrations"
    if inside.is_dir():
        return inside
    for parent in Path(str(root)).parents:
        candidate = parent / "migrations"
        if (parent / "pyproject.toml").exists() and candidate.is_dir():
            return candidate
    raise MigrationError(f"no migrations folder found for {package}")


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    namespace text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, version)
)
"""


async def apply_migrations(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    """Apply what is not applied yet, each in its own transaction; returns what was applied."""
    applied_now: list[str] = []
    # A session-level advisory lock makes concurrent runners (several instances) take turns.
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_BOOKKEEPING)
        rows = await conn.fetch("SELECT namespace, version, checksum FROM schema_migrations")
        done = {(r["namespace"], r["version"]): r["checksum"] for r in rows}
        for migration in migrations:
            key = (migration.namespace, migration.version)
            if key in done:
                if done[key] != migration.checksum:
                    raise MigrationError(
                        f"{migration.namespace} {migration.version:04d}_{migration.name} was "
                        "edited after it was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (namespace, version, name, checksum) "
                    "VALUES ($1, $2, $3, $4)",
                    migration.namespace,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(f"{migration.namespace}:{migration.version:04d}_{migration.name}")
            log.info("migration_applied", namespace=migration.namespace, version=migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def migrate(dsn: str, *, service_package: str | None) -> list[str]:
    """Apply the messaging kit's migrations, then the service's own."""
    migrations = load_migrations("kit", package_migrations_dir(KIT_MIGRATIONS))
    if service_package is not None:
        migrations += load_migrations(service_package, package_migrations_dir(service_package))
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn, migrations)
    finally:
        await conn.close()
