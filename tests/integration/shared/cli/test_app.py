"""CLI commands against a real broker and PostgreSQL: topics create, outbox replay, migrate."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from solidarity.shared.cli.app import run
from solidarity.shared.contracts.topics import all_topic_names
from solidarity.shared.db.pool import connect
from solidarity.shared.testing.infrastructure import Infrastructure

pytestmark = pytest.mark.integration


def _run_ok(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(args)
    assert exit_info.value.code == 0


async def _topics(bootstrap: str) -> set[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return set(await consumer.topics())
    finally:
        await consumer.stop()


def test_topics_create_makes_every_registry_topic_under_a_prefix(
    infrastructure: Infrastructure, unique: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"cli{unique}."
    args = ["topics", "create", "--prefix", prefix, "--bootstrap", infrastructure.kafka_bootstrap]

    _run_ok([*args, "--data-dir", str(tmp_path)])
    _run_ok([*args, "--data-dir", str(tmp_path)])  # a second run finds them all there

    assert set(all_topic_names(prefix)) <= asyncio.run(_topics(infrastructure.kafka_bootstrap))
    second_run = capsys.readouterr().out.splitlines()[-len(all_topic_names(prefix)) :]
    assert all(line.startswith("exists") for line in second_run)


async def _outbox_rows(dsn: str, *, created_at: list[datetime]) -> None:
    conn = await connect(dsn)
    try:
        for moment in created_at:
            await conn.execute(
                "INSERT INTO outbox"
                " (event_id, event_type, shard, topic, value, created_at, sent_at) VALUES"
                " ($1, 'SessionScheduled', 0, 'catalog.sessions.v1', '\\x7b7d', $2, now())",
                uuid.uuid4(),
                moment,
            )
    finally:
        await conn.close()


async def _unsent(dsn: str) -> int:
    conn = await connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
    finally:
        await conn.close()


def test_outbox_replay_marks_rows_since_a_time_unsent(
    kit_database_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    asyncio.run(_outbox_rows(kit_database_dsn, created_at=[now - timedelta(hours=2), now]))
    since = (now - timedelta(minutes=5)).isoformat()

    _run_ok(
        [
            "outbox",
            "replay",
            "--service",
            "catalog",
            "--since",
            since,
            "--dsn",
            kit_database_dsn,
            "--data-dir",
            str(tmp_path),
        ]
    )

    assert asyncio.run(_unsent(kit_database_dsn)) == 1
    assert "1 outbox row(s) of catalog" in capsys.readouterr().out


def test_migrate_with_no_service_installed_or_an_unknown_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["migrate", "--service", "nope", "--data-dir", str(tmp_path)])

    assert exit_info.value.code == 1
    assert "no installed service is called nope" in capsys.readouterr().err
