"""The composition root: `create_app(settings)` builds the service, `wire` connects its parts."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI

from solidarity.registration.adapters.metrics import (
    CountingConsumerRunner,
    RegistrationMetrics,
    StagedCounts,
)
from solidarity.registration.entrypoints import http
from solidarity.registration.entrypoints.consumers import (
    CatalogHandler,
    DeadLetterAnswers,
    SubmissionsHandler,
)
from solidarity.registration.service import SERVICE
from solidarity.registration.service_layer.catalog import HANDLED_EVENTS
from solidarity.registration.settings import RegistrationSettings
from solidarity.shared.contracts.events.registration import RegistrationSubmittedV1
from solidarity.shared.contracts.topics import (
    CATALOG_CAMPAIGNS,
    CATALOG_SESSIONS,
    REGISTRATION_SUBMISSIONS,
)
from solidarity.shared.logging import get_logger
from solidarity.shared.messaging.outbox import Outbox
from solidarity.shared.runtime import ServiceRuntime, create_service_app

log = get_logger(__name__)

DESCRIPTION = (
    "Partner intake over Kafka and HTTP, seats and waitlists, and an answer for every "
    "submission on registration.outcomes.v1."
)


def submissions_group(prefix: str) -> str:
    """The consumer group (and inbox name) of the submissions consumer."""
    return f"{prefix}registration.submissions"


def catalog_group(prefix: str) -> str:
    return f"{prefix}registration.catalog"


def submissions_runner(
    *,
    pool: asyncpg.Pool,
    outbox: Outbox,
    settings: RegistrationSettings,
    metrics: RegistrationMetrics,
) -> CountingConsumerRunner:
    """The consumer that decides submissions (its dead letters still get an answer)."""
    prefix = settings.kafka.topic_prefix
    master_key = settings.master_key()
    staged = StagedCounts()
    return CountingConsumerRunner(
        staged=staged,
        name=submissions_group(prefix),
        pool=pool,
        outbox=DeadLetterAnswers(
            producer=outbox.producer,
            topic_prefix=prefix,
            dlq_topic=REGISTRATION_SUBMISSIONS.full_dlq_name(prefix),
            master_key=master_key,
            metrics=metrics,
            staged=staged,
        ),
        handler=SubmissionsHandler(
            outbox=outbox, master_key=master_key, metrics=metrics, staged=staged
        ),
        handles=[RegistrationSubmittedV1],
    )


def catalog_runner(
    *,
    pool: asyncpg.Pool,
    outbox: Outbox,
    settings: RegistrationSettings,
    metrics: RegistrationMetrics,
) -> CountingConsumerRunner:
    """The consumer that keeps the read model of the catalog."""
    staged = StagedCounts()
    return CountingConsumerRunner(
        staged=staged,
        name=catalog_group(settings.kafka.topic_prefix),
        pool=pool,
        outbox=outbox,
        handler=CatalogHandler(outbox=outbox, metrics=metrics, staged=staged),
        handles=HANDLED_EVENTS,
    )


def create_app(settings: RegistrationSettings | None = None) -> FastAPI:
    """The registration service's app; nothing connects until its lifespan starts."""
    settings = settings or RegistrationSettings()
    metrics = RegistrationMetrics()

    async def wire(runtime: ServiceRuntime) -> None:
        prefix = settings.kafka.topic_prefix
        if settings.master_key() is None:
            log.warning(
                "partner_master_key_missing",
                effect="Kafka submissions are answered invalid_signature; HTTP works",
            )
        runtime.consumer(
            submissions_runner(
                pool=runtime.pool, outbox=runtime.outbox, settings=settings, metrics=metrics
            ),
            REGISTRATION_SUBMISSIONS.full_name(prefix),
            description="Decides partner submissions (Kafka and HTTP), a batch per transaction.",
        )
        runtime.consumer(
            catalog_runner(
                pool=runtime.pool, outbox=runtime.outbox, settings=settings, metrics=metrics
            ),
            CATALOG_CAMPAIGNS.full_name(prefix),
            CATALOG_SESSIONS.full_name(prefix),
            description="Keeps the read model of campaigns and sessions, and applies "
            "cancellations and capacity changes to seats.",
        )

    app = create_service_app(
        spec=SERVICE,
        settings=settings,
        wire=wire,
        title="Solidarity Week registration",
        description=DESCRIPTION,
    )
    app.state.registration = http.RegistrationContext(settings=settings, metrics=metrics)
    app.include_router(http.router)
    if not metrics.attach(app):
        from fastapi import Response
        from prometheus_client import generate_latest

        @app.get("/metrics/registration", include_in_schema=False)
        async def registration_metrics() -> Response:
            return Response(generate_latest(metrics.registry), media_type="text/plain")

    return app
