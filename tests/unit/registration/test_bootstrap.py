"""The composition root builds the app without connecting to anything."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from solidarity.registration.bootstrap import create_app
from solidarity.registration.settings import RegistrationSettings

pytestmark = pytest.mark.unit


def test_create_app_wires_the_partner_api_and_serves_its_metrics_from_metrics() -> None:
    app = create_app(RegistrationSettings())
    paths = set(app.openapi()["paths"])
    assert {
        "/v1/registrations",
        "/v1/registrations/batch",
        "/v1/registrations/{submission_id}",
        "/v1/erasures",
        "/v1/stats/campaigns/{slug}",
        "/health",
        "/ready",
        "/metrics",
    } <= paths
    registry = app.state.metrics_registry
    assert isinstance(registry, CollectorRegistry), "the kit's registry: one /metrics serves all"
    app.state.registration.metrics.outcomes.labels("confirmed").inc()
    assert b'solidarity_registration_outcomes_total{kind="confirmed"} 1.0' in generate_latest(
        registry
    )
