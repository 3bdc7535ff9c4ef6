"""`solidarity notifications ...` against a real database: webhooks and the ledger."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from typer.testing import CliRunner

from solidarity.notifications.entrypoints.cli import app
from solidarity.shared.db.migrations import migrate
from tests.integration.notifications import harness

pytestmark = pytest.mark.integration


def test_webhooks_and_the_ledger_from_the_command_line(database_dsn: str) -> None:
    # A plain test: the commands run their own event loop, as they do for a person.
    asyncio.run(migrate(database_dsn, service_package="solidarity.notifications"))
    partner, stuck = uuid.uuid4(), uuid.uuid4()
    asyncio.run(
        harness.query(
            database_dsn,
            "INSERT INTO deliveries (delivery_id, recipient_id, kind, subject_ref, purpose, "
            "state, due_at, attempts) "
            "VALUES ($1, $2, 'invitation', 's', 'invitations', 'unknown', now(), 1)",
            stuck,
            uuid.uuid4(),
        )
    )
    runner = CliRunner()
    dsn = ["--dsn", database_dsn]

    added = runner.invoke(
        app, ["webhooks", "add", "--partner", str(partner), "--url", "https://p.example/h", *dsn]
    )
    listed = runner.invoke(app, ["webhooks", "list", *dsn])
    doubt = runner.invoke(app, ["deliveries", "in-doubt", *dsn])
    resolved = runner.invoke(app, ["deliveries", "resolve", str(stuck), "--as", "resend", *dsn])
    again = runner.invoke(app, ["deliveries", "resolve", str(stuck), "--as", "sent", *dsn])
    stats = runner.invoke(app, ["deliveries", "stats", *dsn])

    assert added.exit_code == 0, added.output
    assert "signing secret (shown once)" in added.output
    (row,) = asyncio.run(harness.query(database_dsn, "SELECT * FROM webhook_endpoints"))
    assert row["partner_id"] == partner
    assert row["signing_secret"] in added.output
    assert str(partner) in listed.output
    assert row["signing_secret"] not in listed.output
    assert str(stuck) in doubt.output
    assert "settled" in resolved.output
    assert "no delivery in doubt" in again.output
    assert "pending" in stats.output
