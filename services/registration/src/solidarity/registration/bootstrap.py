"""The composition root: `create_app(settings)` builds the service, `wire` connects its parts."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI

from solidarity.registration.adapters.metrics import RegistrationMetrics
from solidarity.registration.entrypoints import http
from solidarity.registration.entrypoints.consumers import (
    CatalogHandler,
    DeadLetterAnswerer,
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
from solidarity.shared.messaging.consumer import ConsumerRunner
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
) -> ConsumerRunner:
    """The consumer that decides submissions (its dead letters still get an answer)."""
    prefix = settings.kafka.topic_prefix
    master_key = settings.master_key()
    return ConsumerRunner(
        name=submissions_group(prefix),
        pool=pool,
        outbox=outbox,
        handler=SubmissionsHandler(outbox=outbox, master_key=master_key, metrics=metrics),
        handles=[RegistrationSubmittedV1],
        on_dead_letter=DeadLetterAnswerer(
            outbox=outbox,
            dlq_topic=REGISTRATION_SUBMISSIONS.full_dlq_name(prefix),
            master_key=master_key,
            metrics=metrics,
        ),
    )


def catalog_runner(
    *,
    pool: asyncpg.Pool,
    outbox: Outbox,
    settings: RegistrationSettings,
    metrics: RegistrationMetrics,
) -> ConsumerRunner:
    """The consumer that keeps the read model of the catalog."""
    return ConsumerRunner(
        name=catalog_group(settings.kafka.topic_prefix),
        pool=pool,
        outbox=outbox,
        handler=CatalogHandler(outbox=outbox, metrics=metrics),
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
    metrics.attach(app)  # one /metrics, the kit's, serves them with its own
    return app
