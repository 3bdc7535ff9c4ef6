"""SMTP trouble against the mail sink's fault injection, and signed partner webhooks:
4xx is retried and delivered once; 5xx is final and published; a connection lost after the
data is settled by asking the mailbox, never by sending again."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from solidarity.notifications.adapters import operations
from solidarity.notifications.adapters.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    webhook_signature,
)
from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.contracts.topics import NOTIFICATIONS_DELIVERIES
from solidarity.shared.db.pool import connect
from solidarity.shared.devstack.embedded import free_port
from solidarity.shared.messaging.kafka import read_topic
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.integration.notifications import harness
from tests.integration.notifications.harness import Person

pytestmark = pytest.mark.integration


class PartnerEndpoint:
    """A partner's webhook receiver: busy (503) the first time, then fine."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes, int]] = []
        self.app = FastAPI()

        @self.app.post("/hooks/solidarity")
        async def receive(request: Request) -> Response:
            status = 503 if not self.calls else 204
            self.calls.append((dict(request.headers), await request.body(), status))
            return Response(status_code=status)


@contextlib.asynccontextmanager
async def serving(endpoint: PartnerEndpoint) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(endpoint.app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/hooks/solidarity"
    finally:
        server.should_exit = True
        await task


async def test_smtp_faults_and_partner_webhooks(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, tmp_path: Path
) -> None:
    campaign_id, partner_id = uuid.uuid4(), uuid.uuid4()
    flaky, busy, gone, lost = (Person.new(n) for n in ("flaky", "busy", "gone", "lost"))
    endpoint = PartnerEndpoint()

    async with harness.mail_sink(tmp_path / "mail") as sink, serving(endpoint) as hook_url:
        await harness.add_fault(sink, recipient=flaky.email, code=451, times=2)
        await harness.add_fault(sink, recipient=busy.email, code=421, times=1)
        await harness.add_fault(sink, recipient=gone.email, code=550, times=None)
        await harness.add_fault(sink, recipient=lost.email, drop_after_data=True, times=1)
        settings = harness.settings_for(
            infrastructure,
            database_dsn=database_dsn,
            topic_prefix=registry_topics,
            sink=sink,
            smtp_timeout_s=5.0,
        )
        async with harness.running(settings) as app:
            conn = await connect(database_dsn)
            try:
                secret = await operations.add_webhook(conn, partner_id, hook_url)
            finally:
                await conn.close()
            partner_signup = flaky.signed_up(campaign_id).model_copy(
                update={"partner_id": partner_id}
            )
            envelopes = await harness.publish(
                infrastructure.kafka_bootstrap,
                registry_topics,
                [
                    *harness.campaign(campaign_id),
                    *(p.recorded() for p in (flaky, busy, gone, lost)),
                    partner_signup,
                    *(p.signed_up(campaign_id) for p in (busy, gone, lost)),
                ],
            )
            outcome_id = next(e.event_id for e in envelopes if e.event_type == "SignupConfirmed")

            async def settled() -> bool:
                rows = await harness.deliveries(database_dsn)
                return len(rows) == 5 and all(r["state"] in ("sent", "failed") for r in rows)

            await harness.wait_until(settled, timeout_s=30, what="every delivery settled")
            await asyncio.sleep(0.5)  # time for any (wrong) extra attempt to show

            async with harness.client_for(app) as client:
                metrics = (await client.get("/metrics")).text

            async def drained() -> bool:
                rows = await harness.query(
                    database_dsn, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL"
                )
                return bool(rows[0]["n"] == 0)

            await harness.wait_until(drained, what="the outbox drained")
        kept = harness.mails(sink)
        fault_log = await harness.faults(sink)

    copies = {p.email: sum(1 for m in kept if m.to == p.email) for p in (flaky, busy, gone, lost)}
    assert copies == {flaky.email: 1, busy.email: 1, gone.email: 0, lost.email: 1}

    rows = {r["recipient_id"]: r for r in await harness.deliveries(database_dsn, channel="email")}
    assert (rows[flaky.recipient_id]["state"], rows[flaky.recipient_id]["attempts"]) == ("sent", 3)
    assert (rows[busy.recipient_id]["state"], rows[busy.recipient_id]["attempts"]) == ("sent", 2)
    assert rows[gone.recipient_id]["state"] == "failed"
    assert rows[gone.recipient_id]["attempts"] == 1, "a 5xx is never retried"
    assert rows[gone.recipient_id]["last_error"] == "smtp_550"
    assert (rows[lost.recipient_id]["state"], rows[lost.recipient_id]["attempts"]) == ("sent", 1)
    fired = {f["recipient"]: f["fired"] for f in fault_log}
    assert fired == {flaky.email: 2, busy.email: 1, gone.email: 1, lost.email: 1}

    on_wire = [
        Envelope.from_bytes(r.value)
        for r in await read_topic(
            infrastructure.kafka_bootstrap, NOTIFICATIONS_DELIVERIES.full_name(registry_topics)
        )
        if r.value
    ]
    failed = [e for e in on_wire if e.event_type == "NotificationFailed"]
    assert len(failed) == 1
    assert failed[0].payload["recipient_id"] == str(gone.recipient_id)
    assert failed[0].payload["permanent"] is True
    assert failed[0].payload["reason"] == "smtp_550"
    sent = [e.payload for e in on_wire if e.event_type == "NotificationSent"]
    assert sorted((p["kind"], p["attempts"]) for p in sent) == [
        ("signup_welcome", 1),
        ("signup_welcome", 2),
        ("signup_welcome", 3),
        ("webhook", 2),
    ]
    assert all("@" not in json.dumps(e.payload) for e in on_wire)

    # The partner: busy once, then answered; both tries signed, one stable event id.
    assert [status for _, _, status in endpoint.calls] == [503, 204]
    for headers, body, _ in endpoint.calls:
        assert headers[EVENT_ID_HEADER] == str(outcome_id)
        expected = webhook_signature(secret, timestamp=int(headers[TIMESTAMP_HEADER]), body=body)
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
        delivered: dict[str, Any] = json.loads(body)
        assert delivered["event_id"] == str(outcome_id)
        assert delivered["payload"]["partner_id"] == str(partner_id)

    email = 'channel="email",kind="signup_welcome"'
    assert f"solidarity_notifications_retried_total{{{email}}} 3.0" in metrics
    assert f'solidarity_notifications_failed_total{{{email},why="permanent"}} 1.0' in metrics
    assert 'solidarity_notifications_reconciled_total{result="confirmed"} 1.0' in metrics
