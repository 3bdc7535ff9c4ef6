"""The admin API on the real app, wired to the fake unit of work: auth, bodies, errors, pages."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from solidarity.catalog.bootstrap import create_app
from solidarity.catalog.service_layer.unit_of_work import AbstractUnitOfWork
from solidarity.catalog.settings import CatalogSettings
from tests.unit.catalog.fakes import FakeStore, FakeUnitOfWork

pytestmark = pytest.mark.unit

TOKEN = "unit-test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
async def client(store: FakeStore) -> AsyncIterator[httpx.AsyncClient]:
    settings = CatalogSettings(admin_token=SecretStr(TOKEN), environment="test")
    app = create_app(settings)

    def fake_uow(*, correlation_id: uuid.UUID | None = None) -> AbstractUnitOfWork:
        return FakeUnitOfWork(store)

    app.state.uow_factory = fake_uow  # in place of create_app's, on the running pool
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as http:
        yield http


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"]
    return response.status_code, body["error"]["code"]


async def _series(client: httpx.AsyncClient) -> dict[str, Any]:
    organization = await client.post(
        "/organizations",
        headers=AUTH,
        json={
            "kind": "nonprofit",
            "name": "SolidarityIs at the Building Movement Project",
            "time_zone": "America/Los_Angeles",
        },
    )
    assert organization.status_code == 201, organization.text
    campaign = await client.post(
        "/campaigns",
        headers=AUTH,
        json={
            "slug": "state-of-solidarity-2024",
            "name": "2024 State of Solidarity Series",
            "starts_on": "2024-04-30",
            "ends_on": "2024-11-14",
            "host_organization_id": organization.json()["id"],
        },
    )
    assert campaign.status_code == 201, campaign.text
    body: dict[str, Any] = campaign.json()
    return body


def _gathering(**overrides: Any) -> dict[str, Any]:
    body = {
        "kind": "webinar",
        "title": "Building Solidarity in an Era of Silos",
        "starts_at": "2024-04-30T14:00:00",
        "ends_at": "2024-04-30T15:30:00",
        "time_zone": "America/Los_Angeles",
        "display_time_zones": ["America/Los_Angeles", "America/New_York"],
        "join_url": "https://example.org/join/silos",
    }
    body.update(overrides)
    return body


async def test_every_admin_route_needs_the_token(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
        response = await client.get("/campaigns", headers=headers)
        assert _error(response) == (401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert (await client.get("/campaigns", headers=AUTH)).status_code == 200


async def test_operations_routes_and_openapi_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok", "service": "catalog"}
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["AdminToken"]["scheme"] == "bearer"
    assert "/campaigns/{campaign_id}/publish" in spec["paths"]
    assert "/sessions/{session_id}/cancel" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200


async def test_a_session_round_trip_in_its_own_zone(client: httpx.AsyncClient) -> None:
    campaign = await _series(client)
    assert campaign["time_zone"] == "America/Los_Angeles"  # from its host
    assert campaign["status"] == "draft"

    created = await client.post(
        f"/campaigns/{campaign['id']}/sessions",
        headers={**AUTH, "X-Correlation-ID": "0b5d9f3c-1f6a-4a43-9d7a-5a3f2b1c0d9e"},
        json=_gathering(),
    )

    assert created.status_code == 201, created.text
    assert created.headers["X-Correlation-ID"] == "0b5d9f3c-1f6a-4a43-9d7a-5a3f2b1c0d9e"
    session = created.json()
    assert session["starts_at"] == "2024-04-30T14:00:00-07:00"
    assert session["display_time"] == "2 pm PT / 5 pm ET"
    assert session["capacity"] is None
    fetched = await client.get(f"/sessions/{session['id']}", headers=AUTH)
    assert fetched.json() == session


async def test_publish_reschedule_and_cancel_over_http(
    client: httpx.AsyncClient, store: FakeStore
) -> None:
    campaign = await _series(client)
    session = (
        await client.post(
            f"/campaigns/{campaign['id']}/sessions", headers=AUTH, json=_gathering(capacity=50)
        )
    ).json()
    published = await client.post(f"/campaigns/{campaign['id']}/publish", headers=AUTH)
    assert published.json()["status"] == "published"

    moved = await client.patch(
        f"/sessions/{session['id']}",
        headers=AUTH,
        json={"starts_at": "2024-04-30T15:00:00", "ends_at": "2024-04-30T16:30:00"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "rescheduled"
    assert moved.json()["sequence"] == 1
    assert moved.json()["previous_starts_at"] == "2024-04-30T14:00:00-07:00"

    cancelled = await client.post(
        f"/sessions/{session['id']}/cancel", headers=AUTH, json={"reason": "speaker unavailable"}
    )
    assert cancelled.json()["cancellation"]["reason"] == "speaker unavailable"
    assert [type(e).__name__ for e in store.outbox][-3:] == [
        "SessionScheduledV1",
        "SessionRescheduledV1",
        "SessionCancelledV1",
    ]
    again = await client.patch(f"/sessions/{session['id']}", headers=AUTH, json={"capacity": 5})
    assert _error(again) == (409, "session_cancelled")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"ends_at": "2024-04-30T13:00:00"}, "ends_before_start"),
        ({"time_zone": "Pacific Time"}, "unknown_time_zone"),
        (
            {"starts_at": "2024-12-01T14:00:00", "ends_at": "2024-12-01T15:00:00"},
            "session_outside_campaign",
        ),
        ({"capacity": -3}, "negative_capacity"),
        ({"join_url": "not a link"}, "invalid_url"),
    ],
)
async def test_rule_breaks_are_422_with_a_code(
    client: httpx.AsyncClient, overrides: dict[str, Any], code: str
) -> None:
    campaign = await _series(client)
    response = await client.post(
        f"/campaigns/{campaign['id']}/sessions", headers=AUTH, json=_gathering(**overrides)
    )
    assert _error(response) == (422, code)


async def test_malformed_and_mismatched_requests(client: httpx.AsyncClient) -> None:
    campaign = await _series(client)
    url = f"/campaigns/{campaign['id']}/sessions"
    broken = await client.post(
        url, headers={**AUTH, "Content-Type": "application/json"}, content=b"{not json"
    )
    assert _error(broken) == (400, "malformed_json")
    unknown_field = await client.post(url, headers=AUTH, json=_gathering(colour="pink"))
    assert _error(unknown_field) == (422, "invalid_request")
    assert unknown_field.json()["error"]["details"][0]["location"] == ["body", "colour"]
    null_title = await client.patch(
        f"/campaigns/{campaign['id']}", headers=AUTH, json={"name": None}
    )
    assert _error(null_title) == (422, "invalid_request")
    bad_cursor = await client.get("/campaigns?cursor=nonsense", headers=AUTH)
    assert _error(bad_cursor) == (400, "invalid_cursor")
    too_many = await client.get("/campaigns?limit=10000", headers=AUTH)
    assert _error(too_many) == (422, "invalid_request")


async def test_not_found_and_conflicts(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"/campaigns/{uuid.uuid4()}", headers=AUTH)
    assert _error(missing) == (404, "campaign_not_found")
    assert _error(await client.get("/nowhere", headers=AUTH)) == (404, "not_found")
    campaign = await _series(client)
    assert (await client.post(f"/campaigns/{campaign['id']}/archive", headers=AUTH)).json()[
        "status"
    ] == "archived"
    edit = await client.patch(
        f"/campaigns/{campaign['id']}", headers=AUTH, json={"name": "Another name"}
    )
    assert _error(edit) == (409, "campaign_archived")
    duplicate = await client.post(
        "/campaigns",
        headers=AUTH,
        json={
            "slug": "state-of-solidarity-2024",
            "name": "Again",
            "starts_on": "2024-04-30",
            "ends_on": "2024-11-14",
            "time_zone": "America/New_York",
        },
    )
    assert _error(duplicate) == (409, "slug_taken")


async def test_lists_page_with_cursors(client: httpx.AsyncClient) -> None:
    for name in ("Zeta High", "Alpha Middle", "Gamma Campus", "Beta Elementary", "Delta High"):
        response = await client.post(
            "/organizations",
            headers=AUTH,
            json={"kind": "school", "name": name, "time_zone": "America/Chicago"},
        )
        assert response.status_code == 201
    names: list[str] = []
    url = "/organizations?limit=2&kind=school"
    while True:
        page = (await client.get(url, headers=AUTH)).json()
        assert len(page["items"]) <= 2
        names += [o["name"] for o in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"/organizations?limit=2&kind=school&cursor={page['next_cursor']}"
    assert names == sorted(names)
    assert len(names) == 5
    assert (await client.get("/organizations?kind=campus", headers=AUTH)).json()["items"] == []


async def test_focus_days_and_resources_over_http(
    client: httpx.AsyncClient, store: FakeStore
) -> None:
    campaign = await client.post(
        "/campaigns",
        headers=AUTH,
        json={
            "slug": "glsen-solidarity-week-2023",
            "name": "Solidarity Week",
            "starts_on": "2023-11-06",
            "ends_on": "2023-11-10",
            "time_zone": "America/New_York",
            "questions": [
                {
                    "key": "role",
                    "label": "I am a...",
                    "kind": "choice",
                    "choices": ["student", "educator", "family", "staff"],
                }
            ],
        },
    )
    campaign_id = campaign.json()["id"]
    day = await client.post(
        f"/campaigns/{campaign_id}/focus-days",
        headers=AUTH,
        json={"date": "2023-11-10", "title": "LGBTQ+ Immigrant Youth Focus Day"},
    )
    assert day.status_code == 201, day.text
    outside = await client.post(
        f"/campaigns/{campaign_id}/focus-days",
        headers=AUTH,
        json={"date": "2022-11-10", "title": "The seed's typo"},
    )
    assert _error(outside) == (422, "outside_campaign_dates")
    guide = await client.post(
        f"/campaigns/{campaign_id}/resources",
        headers=AUTH,
        json={
            "title": "Solidarity Week Student Guide",
            "url": "https://example.org/student-guide.pdf",
            "audience": ["student"],
        },
    )
    assert guide.status_code == 201, guide.text
    listed = await client.get(
        f"/resources?campaign_id={campaign_id}&audience=student", headers=AUTH
    )
    assert [r["title"] for r in listed.json()["items"]] == ["Solidarity Week Student Guide"]
    deleted = await client.delete(f"/resources/{guide.json()['id']}", headers=AUTH)
    assert deleted.status_code == 204  # a draft's resource was never announced
    assert store.resources == {}


async def test_time_filters_need_an_offset(client: httpx.AsyncClient) -> None:
    naive = await client.get("/sessions?starts_from=2023-11-06T00:00:00", headers=AUTH)
    assert _error(naive) == (422, "invalid_request")
    aware = await client.get("/sessions?starts_from=2023-11-06T00:00:00Z", headers=AUTH)
    assert aware.status_code == 200


async def test_an_unexpected_failure_still_answers_the_error_body() -> None:
    app = create_app(CatalogSettings(admin_token=SecretStr(TOKEN), environment="test"))

    def broken_uow(*, correlation_id: uuid.UUID | None = None) -> AbstractUnitOfWork:
        raise RuntimeError("database exploded with someone@example.org inside")

    app.state.uow_factory = broken_uow
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as http:
        response = await http.get("/campaigns", headers=AUTH)
    assert _error(response) == (500, "internal_error")
    assert "example.org" not in response.text


async def test_without_a_token_the_admin_api_is_locked_not_open() -> None:
    app = create_app(CatalogSettings(environment="production"))

    def fake_uow(*, correlation_id: uuid.UUID | None = None) -> AbstractUnitOfWork:
        return FakeUnitOfWork()

    app.state.uow_factory = fake_uow
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as http:
        for headers in ({}, AUTH, {"Authorization": "Bearer "}):
            response = await http.get("/campaigns", headers=headers)
            assert _error(response) == (503, "admin_api_disabled")
        assert (await http.get("/health")).status_code == 200
