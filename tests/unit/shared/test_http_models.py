"""Every answer of every service's HTTP API is in its OpenAPI document, with a real schema."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from solidarity.shared.http_models import InvalidRequest
from solidarity.shared.runtime import ServiceRuntime, create_service_app
from solidarity.shared.service import ServiceSpec, discover_services
from solidarity.shared.settings import ServiceSettings
from solidarity.shared.testing.services import EXAMPLE_SERVICE

pytestmark = pytest.mark.unit

# Answers whose schema says only "an object": the AsyncAPI document is another spec's.
FREE_FORM = {("/asyncapi.json", "get", "200")}


@pytest.fixture
def neutral_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("SOLIDARITY_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SOLIDARITY_ENVIRONMENT", "development")


def _vague(schema: dict[str, Any]) -> bool:
    """A schema that any body matches: nothing checked against it."""
    if not schema:
        return True
    return schema.get("type") == "object" and "properties" not in schema and "$ref" not in schema


@pytest.mark.parametrize("spec", discover_services(), ids=lambda s: s.name)
def test_every_answer_is_documented_with_a_schema_that_checks_something(
    spec: ServiceSpec, neutral_environment: None
) -> None:
    document = spec.app_factory()(spec.settings_class()()).openapi()
    vague: list[tuple[str, str, str, str]] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert "503" in answers or path in {"/metrics", "/asyncapi.json"}, (path, method)
            for code, answer in answers.items():
                if code == "204":
                    continue
                assert answer.get("content"), f"{method} {path} {code} has no body documented"
                for media_type, body in answer["content"].items():
                    if (path, method, code) not in FREE_FORM and _vague(body.get("schema", {})):
                        vague.append((method, path, code, media_type))
    assert vague == [], "answers documented as 'anything'"


class _Person(BaseModel):
    email: str
    age: int


async def test_a_request_that_does_not_validate_is_answered_without_what_was_sent() -> None:
    async def wire(runtime: ServiceRuntime) -> None:
        pass

    app = create_service_app(
        spec=EXAMPLE_SERVICE, settings=ServiceSettings(), wire=wire, title="T", description="D"
    )

    @app.post("/people")
    async def people(person: _Person) -> None:
        pass

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        # A missing field: FastAPI's own answer would give the whole body back as its input.
        response = await client.post("/people", json={"email": "robin.q@example.org"})
        malformed = await client.post("/people", content=b'{"email": "robin.q@ex')
    assert response.status_code == 422
    assert InvalidRequest.model_validate(response.json()).detail[0].loc == ["body", "age"]
    assert "robin.q" not in response.text
    assert malformed.status_code == 422
    assert "robin.q" not in malformed.text
