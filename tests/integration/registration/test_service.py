"""The whole service running: operations endpoints, and a submission answered while waiting."""

from __future__ import annotations

import pytest

from solidarity.registration.domain.partners import signing_secret
from solidarity.shared.contracts.events.registration import SessionRegistrationConfirmedV1
from solidarity.shared.contracts.topics import REGISTRATION_SUBMISSIONS
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.integration.registration.support import (
    MASTER_KEY,
    campaign_published,
    fetchval,
    http_body,
    migrated,
    new_partner,
    outcomes,
    produce,
    publish_events,
    running,
    session_scheduled,
    settings_for,
    signed_record,
    submission,
    wait_until,
)

pytestmark = pytest.mark.integration


async def test_the_running_service_answers_health_ready_metrics_and_waits_for_outcomes(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    prefix = registry_topics
    dsn = await migrated(database_dsn)
    slug = f"c-{unique}"
    partner = await new_partner(dsn, slug)
    secret = signing_secret(MASTER_KEY.encode(), partner.partner_id)
    campaign = campaign_published(slug)
    session = session_scheduled(campaign.campaign_id, capacity=10)
    await publish_events(infrastructure.kafka_bootstrap, prefix, [campaign, session])
    auth = {"Authorization": f"Bearer {partner.api_key}"}

    async with running(settings_for(infrastructure, dsn, prefix)) as (_, client):
        assert (await client.get("/health")).json() == {"status": "ok", "service": "registration"}
        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text

        async def session_known() -> bool:
            return bool(await fetchval(dsn, "SELECT count(*) FROM sessions"))

        await wait_until(session_known, what="the session in the read model")
        waited = await client.post(
            "/v1/registrations?wait=10s",
            json=http_body(
                submission(
                    partner.partner_id, slug, submission_id="w-1", session_ids=[session.session_id]
                )
            ),
            headers=auth,
        )
        assert waited.status_code == 200, waited.text
        assert waited.json()["sessions"][0]["status"] == "confirmed"
        await produce(
            infrastructure.kafka_bootstrap,
            REGISTRATION_SUBMISSIONS.full_name(prefix),
            [
                signed_record(
                    submission(
                        partner.partner_id,
                        slug,
                        submission_id="k-1",
                        session_ids=[session.session_id],
                    ),
                    secret,
                )
            ],
        )

        async def kafka_one_decided() -> bool:
            return bool(
                await fetchval(dsn, "SELECT count(*) FROM submissions WHERE submission_id = 'k-1'")
            )

        await wait_until(kafka_one_decided, what="the Kafka submission decided")

        async def outbox_drained() -> bool:
            return not await fetchval(dsn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")

        await wait_until(outbox_drained, what="the outbox relayed")
        metrics = (await client.get("/metrics")).text
        asyncapi = await client.get("/asyncapi.json")

    for name in (
        'solidarity_registration_submissions_total{source="http"} 1.0',
        'solidarity_registration_submissions_total{source="kafka"} 1.0',
        'solidarity_registration_outcomes_total{kind="confirmed"} 2.0',
        "solidarity_registration_http_accepted_total 1.0",
        "solidarity_consumer_lag",
        "solidarity_outbox_backlog",
    ):
        assert name in metrics, name
    assert asyncapi.status_code == 200
    answers = await outcomes(infrastructure, prefix)
    confirmed = sorted(
        e.submission_id or "" for e in answers if isinstance(e, SessionRegistrationConfirmedV1)
    )
    assert confirmed == ["k-1", "w-1"]
