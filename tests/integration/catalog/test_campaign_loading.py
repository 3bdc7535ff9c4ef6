"""Loading campaign files into a real PostgreSQL: twice is a no-op, an edit announces only
its changes, republish re-emits the current revisions, and the events reach Kafka."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from solidarity.catalog.bootstrap import load_campaign_file, republish_catalog
from solidarity.catalog.demos import demo_file, demo_files
from solidarity.catalog.domain.errors import ConflictError
from solidarity.catalog.entrypoints.cli import app as catalog_cli
from solidarity.shared.contracts.events.catalog import SessionScheduledV1
from solidarity.shared.contracts.topics import CATALOG_CAMPAIGNS, CATALOG_SESSIONS
from solidarity.shared.db.pool import connect
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.integration.catalog.support import (
    AUTH,
    by_key,
    catalog_settings,
    outbox_counts,
    read_events,
    running_catalog,
    wait_until_published,
)

pytestmark = pytest.mark.integration

GLSEN = demo_file("glsen-solidarity-week-2023")


async def _outbox_types(dsn: str, after: int = 0) -> Counter[str]:
    conn = await connect(dsn)
    try:
        rows = await conn.fetch("SELECT event_type FROM outbox WHERE id > $1 ORDER BY id", after)
    finally:
        await conn.close()
    return Counter(r["event_type"] for r in rows)


async def _last_outbox_id(dsn: str) -> int:
    conn = await connect(dsn)
    try:
        return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox"))
    finally:
        await conn.close()


async def test_twice_is_a_no_op_and_an_edit_announces_only_its_changes(
    database_dsn: str, tmp_path: Path
) -> None:
    first = await load_campaign_file(GLSEN, database_dsn)
    assert first.events == 13
    assert await _outbox_types(database_dsn) == {
        "OrganizationRegistered": 1,
        "CampaignPublished": 1,
        "FocusDayAdded": 5,
        "ResourcePublished": 2,
        "SessionScheduled": 4,
    }

    again = await load_campaign_file(GLSEN, database_dsn)
    assert (again.events, again.changes) == (0, [])
    assert (await outbox_counts(database_dsn))[0] == 13

    edited = tmp_path / "glsen.yaml"
    edited.write_text(
        GLSEN.read_text()
        .replace(
            "starts_at: 2023-11-07 19:00\n    ends_at: 2023-11-07 20:00",
            "starts_at: 2023-11-07 18:30\n    ends_at: 2023-11-07 19:30",
        )
        .replace("capacity: 300", "capacity: 150")
        .replace("title: Intersex Youth Focus Day\n", "title: Intersex Youth Focus Day!\n")
    )
    mark = await _last_outbox_id(database_dsn)
    changed = await load_campaign_file(edited, database_dsn)
    assert changed.events == 3
    assert await _outbox_types(database_dsn, after=mark) == {
        "SessionRescheduled": 1,
        "SessionCapacityChanged": 1,
        "FocusDayAdded": 1,
    }
    assert (await load_campaign_file(edited, database_dsn)).events == 0

    # Re-emits every announced thing once, at its current revision.
    mark = await _last_outbox_id(database_dsn)
    assert await republish_catalog(database_dsn) == 13
    assert sum((await _outbox_types(database_dsn, after=mark)).values()) == 13


async def test_all_demo_campaigns_load_side_by_side(database_dsn: str) -> None:
    totals = {
        name: (await load_campaign_file(path, database_dsn)).events
        for name, path in demo_files().items()
    }
    assert totals == {
        "glsen-solidarity-week-2023": 13,
        "nyu-solidarity-week-2020": 1 + 1 + 2,
        "state-of-solidarity-2024": 1 + 1 + 3,
    }
    conn = await connect(database_dsn)
    try:
        names = await conn.fetch("SELECT slug, status FROM campaigns ORDER BY starts_on")
    finally:
        await conn.close()
    assert [(r["slug"], r["status"]) for r in names] == [
        ("nyu-solidarity-week-2020", "published"),
        ("glsen-solidarity-week-2023", "published"),
        ("state-of-solidarity-2024", "published"),
    ]


async def test_a_refused_load_changes_nothing(database_dsn: str, tmp_path: Path) -> None:
    await load_campaign_file(GLSEN, database_dsn)
    text = GLSEN.read_text()
    start = text.index("  - key: intersex-youth-webinar")
    end = text.index("  - key: immigrant-youth-speaking-engagement")
    broken = tmp_path / "without-a-session.yaml"
    broken.write_text(text[:start] + text[end:].replace("capacity: 300", "capacity: 1"))
    with pytest.raises(ConflictError):
        await load_campaign_file(broken, database_dsn)
    assert (await outbox_counts(database_dsn))[0] == 13
    conn = await connect(database_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM sessions WHERE capacity = 1") == 0
    finally:
        await conn.close()


async def test_the_cli_loads_a_file_and_reports_what_changed(database_dsn: str) -> None:
    runner = CliRunner()
    args = ["load", str(demo_file("state-of-solidarity-2024")), "--dsn", database_dsn]
    first = await asyncio.to_thread(runner.invoke, catalog_cli, args)
    assert first.exit_code == 0, first.output
    assert "Building Solidarity" not in first.output  # keys, not free text
    assert "building-solidarity-in-an-era-of-silos" in first.output
    assert "5 event(s)" in first.output
    second = await asyncio.to_thread(runner.invoke, catalog_cli, args)
    assert second.exit_code == 0, second.output
    assert "nothing changed" in second.output
    again = await asyncio.to_thread(
        runner.invoke, catalog_cli, ["republish", "--dsn", database_dsn, "--campaign", "nope"]
    )
    assert again.exit_code != 0


async def test_a_loaded_campaign_reaches_kafka_and_the_api(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str
) -> None:
    bootstrap = infrastructure.kafka_bootstrap
    settings = catalog_settings(bootstrap, database_dsn, registry_topics)
    async with running_catalog(settings) as client:
        report = await load_campaign_file(demo_file("state-of-solidarity-2024"), settings)
        assert report.events == 5
        await wait_until_published(database_dsn, expected=5)
        assert (
            await load_campaign_file(demo_file("state-of-solidarity-2024"), settings)
        ).events == 0
        listed = await client.get(f"/sessions?campaign_id={report.campaign_id}", headers=AUTH)
        assert [s["display_time"] for s in listed.json()["items"]] == [
            "2 pm PT / 5 pm ET",
            "12 pm PT / 3 pm ET",
            "9 am PT / 12 pm ET",
        ]
        # An emptied broker or a new consumer: republish re-emits the same revisions.
        assert await republish_catalog(settings) == 5
        await wait_until_published(database_dsn, expected=10)

    campaigns = await read_events(bootstrap, CATALOG_CAMPAIGNS, registry_topics)
    assert len(campaigns) == 2
    sessions = by_key(await read_events(bootstrap, CATALOG_SESSIONS, registry_topics))
    assert len(sessions) == 3
    for received in sessions.values():
        events = [r.event for r in received]
        assert all(isinstance(e, SessionScheduledV1) for e in events)
        # The republished copy is the same state at the same revision: a no-op for a consumer.
        assert len(events) == 2
        assert events[0] == events[1]
