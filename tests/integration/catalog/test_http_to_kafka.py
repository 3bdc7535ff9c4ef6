"""From an HTTP request to PostgreSQL, the outbox and a real Kafka topic, read back and
validated against the contract; plus health, readiness and metrics of the running service."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    FocusDayAddedV1,
    OrganizationRegisteredV1,
    ResourcePublishedV1,
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionRescheduledV1,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.common import SessionStatus
from solidarity.shared.contracts.topics import (
    CATALOG_CAMPAIGNS,
    CATALOG_ORGANIZATIONS,
    CATALOG_SESSIONS,
)
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


def _webinar(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "webinar",
        "title": "Black LGBTQ+ Focus Day webinar",
        "starts_at": "2023-11-06T19:00:00",
        "ends_at": "2023-11-06T20:00:00",
        "time_zone": "America/New_York",
        "display_time_zones": ["America/Los_Angeles", "America/New_York"],
        "capacity": 100,
        "audience": ["student", "educator"],
        "join_url": "https://example.org/join/black-lgbtq",
    }
    body.update(overrides)
    return body


async def test_admin_changes_reach_the_topics_in_order_and_valid(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str
) -> None:
    bootstrap = infrastructure.kafka_bootstrap
    settings = catalog_settings(bootstrap, database_dsn, registry_topics)
    publish_correlation = uuid.uuid4()
    async with running_catalog(settings) as client:

        async def call(method: str, url: str, **kwargs: Any) -> dict[str, Any]:
            headers = {**AUTH, **kwargs.pop("headers", {})}
            response = await client.request(method, url, headers=headers, **kwargs)
            assert response.status_code in (200, 201), response.text
            body: dict[str, Any] = response.json()
            return body

        organization = await call(
            "POST",
            "/organizations",
            json={"kind": "nonprofit", "name": "GLSEN", "time_zone": "America/New_York"},
        )
        campaign = await call(
            "POST",
            "/campaigns",
            json={
                "slug": "glsen-solidarity-week-2023",
                "name": "Solidarity Week",
                "starts_on": "2023-11-06",
                "ends_on": "2023-11-10",
                "host_organization_id": organization["id"],
            },
        )
        campaign_url = f"/campaigns/{campaign['id']}"
        day = await call(
            "POST",
            f"{campaign_url}/focus-days",
            json={"date": "2023-11-06", "title": "Black LGBTQ+ Focus Day"},
        )
        first = await call(
            "POST", f"{campaign_url}/sessions", json=_webinar(focus_day_id=day["id"])
        )
        await call(
            "POST",
            f"{campaign_url}/resources",
            json={
                "title": "Solidarity Week Student Guide",
                "url": "https://example.org/student-guide.pdf",
                "audience": ["student"],
            },
        )
        # A draft is private: only the organization has been announced so far.
        assert (await outbox_counts(database_dsn))[0] == 1

        await call(
            "POST",
            f"{campaign_url}/publish",
            headers={"X-Correlation-ID": str(publish_correlation)},
        )
        moved = await call(
            "PATCH",
            f"/sessions/{first['id']}",
            json={
                "starts_at": "2023-11-06T18:00:00",
                "ends_at": "2023-11-06T19:00:00",
                "capacity": 10,
            },
        )
        assert moved["status"] == SessionStatus.RESCHEDULED
        second = await call(
            "POST",
            f"{campaign_url}/sessions",
            json=_webinar(
                title="Intersex Youth Focus Day webinar",
                starts_at="2023-11-08T19:00:00",
                ends_at="2023-11-08T20:00:00",
            ),
        )
        await call(
            "POST", f"/sessions/{second['id']}/cancel", json={"reason": "speaker unavailable"}
        )

        await wait_until_published(database_dsn, expected=9)

        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": True, "broker": True}
        assert (await client.get("/health")).json()["status"] == "ok"
        metrics = (await client.get("/metrics")).text
        assert (
            'solidarity_http_requests_total{method="POST",route="/campaigns",status="201"} 1.0'
            in metrics
        )
        assert "solidarity_outbox_backlog " in metrics
        assert "solidarity_outbox_published_total 9.0" in metrics

    organizations = await read_events(bootstrap, CATALOG_ORGANIZATIONS, registry_topics)
    assert [type(r.event) for r in organizations] == [OrganizationRegisteredV1]

    campaigns = await read_events(bootstrap, CATALOG_CAMPAIGNS, registry_topics)
    # One key, one partition: the campaign is announced before what it holds.
    assert [type(r.event) for r in campaigns] == [
        CampaignPublishedV1,
        FocusDayAddedV1,
        ResourcePublishedV1,
    ]
    assert {r.key for r in campaigns} == {campaign["id"].encode()}
    assert {r.envelope.correlation_id for r in campaigns} == {publish_correlation}

    sessions = by_key(await read_events(bootstrap, CATALOG_SESSIONS, registry_topics))
    first_events = [r.event for r in sessions[first["id"].encode()]]
    assert [type(e) for e in first_events] == [
        SessionScheduledV1,
        SessionCapacityChangedV1,
        SessionRescheduledV1,
    ]
    assert [e.revision for e in first_events] == [1, 2, 3]  # type: ignore[attr-defined]
    scheduled, capacity, rescheduled = first_events
    assert isinstance(scheduled, SessionScheduledV1)
    assert scheduled.join_url is not None
    assert scheduled.focus_day_id == uuid.UUID(day["id"])
    assert isinstance(capacity, SessionCapacityChangedV1)
    assert (capacity.previous_capacity, capacity.capacity) == (100, 10)
    assert isinstance(rescheduled, SessionRescheduledV1)
    assert rescheduled.previous_starts_at == scheduled.starts_at
    assert rescheduled.starts_at.hour == 23  # 18:00 in New York is 23:00 UTC
    assert rescheduled.sequence == 1

    second_events = [r.event for r in sessions[second["id"].encode()]]
    assert [type(e) for e in second_events] == [SessionScheduledV1, SessionCancelledV1]
    cancelled = second_events[1]
    assert isinstance(cancelled, SessionCancelledV1)
    assert (cancelled.reason, cancelled.revision) == ("speaker unavailable", 2)


async def test_a_refused_request_leaves_no_trace(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str
) -> None:
    settings = catalog_settings(infrastructure.kafka_bootstrap, database_dsn, registry_topics)
    async with running_catalog(settings) as client:
        campaign = await client.post(
            "/campaigns",
            headers=AUTH,
            json={
                "slug": "state-of-solidarity-2024",
                "name": "2024 State of Solidarity Series",
                "starts_on": "2024-04-30",
                "ends_on": "2024-11-14",
                "time_zone": "America/Los_Angeles",
            },
        )
        campaign_id = campaign.json()["id"]
        await client.post(f"/campaigns/{campaign_id}/publish", headers=AUTH)
        outside = await client.post(
            f"/campaigns/{campaign_id}/sessions",
            headers=AUTH,
            json=_webinar(
                starts_at="2024-12-01T10:00:00",
                ends_at="2024-12-01T11:00:00",
                time_zone="America/Los_Angeles",
            ),
        )
        assert outside.status_code == 422
        assert outside.json()["error"]["code"] == "session_outside_campaign"
        listed = await client.get(f"/sessions?campaign_id={campaign_id}", headers=AUTH)
        assert listed.json() == {"items": [], "next_cursor": None}
        await wait_until_published(database_dsn, expected=1)  # the publication only
