"""The composition root: the catalog's HTTP app, its wiring, and the campaign-file loader."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi import FastAPI

from solidarity.catalog.entrypoints import http
from solidarity.catalog.service import SERVICE
from solidarity.catalog.service_layer import commands
from solidarity.catalog.service_layer.loading import LoadReport, load_campaign
from solidarity.catalog.service_layer.republishing import republish
from solidarity.catalog.service_layer.unit_of_work import AbstractUnitOfWork, PostgresUnitOfWork
from solidarity.catalog.settings import CatalogSettings
from solidarity.shared.db.migrations import migrate
from solidarity.shared.db.pool import create_pool
from solidarity.shared.logging import get_logger
from solidarity.shared.messaging.outbox import Outbox
from solidarity.shared.runtime import ServiceRuntime, create_service_app
from solidarity.shared.settings import DatabaseSettings, ServiceSettings

log = get_logger(__name__)

TITLE = "Solidarity catalog"
DESCRIPTION = (
    "Organizations, campaigns, focus days, sessions and resources: what people can register "
    "for. Every change is published as catalog events (topics catalog.organizations.v1, "
    "catalog.campaigns.v1, catalog.sessions.v1) through the transactional outbox. The admin "
    "API needs `Authorization: Bearer <SOLIDARITY_ADMIN_TOKEN>`."
)


def create_app(settings: CatalogSettings) -> FastAPI:
    """The catalog's app; nothing connects until its lifespan starts."""

    async def wire(runtime: ServiceRuntime) -> None:
        # The catalog consumes nothing: the runtime's relay publishes its outbox. Like every
        # service's wiring, this touches only the runtime it is given (see the kit's runtime).
        if settings.admin_token is None:
            log.warning("admin_api_disabled", reason="SOLIDARITY_ADMIN_TOKEN is not set")

    app = create_service_app(
        spec=SERVICE,
        settings=settings,
        wire=wire,
        title=TITLE,
        description=DESCRIPTION,
        error_body=http.error_body,
    )

    def uow_factory(*, correlation_id: uuid.UUID | None = None) -> AbstractUnitOfWork:
        # The running service's pool and outbox, looked up per request, as the other
        # services' routes do: nothing here is bound before the lifespan starts.
        runtime: ServiceRuntime | None = getattr(app.state, "runtime", None)
        if runtime is None:
            raise http.ServiceUnavailableError(
                "starting", "the service is starting; try again shortly"
            )
        return PostgresUnitOfWork(
            pool=runtime.pool, outbox=runtime.outbox, correlation_id=correlation_id
        )

    http.install(app, admin_token=settings.admin_token, uow_factory=uow_factory)
    return app


def _database_url(target: str | ServiceSettings) -> str:
    return target if isinstance(target, str) else target.database.url


def _topic_prefix(target: str | ServiceSettings, override: str | None) -> str:
    if override is not None:
        return override
    return "" if isinstance(target, str) else target.kafka.topic_prefix


async def load_campaign_file(
    path: Path | str, target: str | ServiceSettings, *, topic_prefix: str | None = None
) -> LoadReport:
    """Load one campaign file into the catalog database (a DSN, or a service's settings).

    Runs the catalog's migrations first. Loading the same file twice changes nothing;
    loading an edited file announces only what changed. The events wait in the outbox
    until the catalog service's relay publishes them.
    """
    from solidarity.catalog.entrypoints.campaign_file import read_campaign_file

    command = read_campaign_file(Path(path))
    url = _database_url(target)
    await migrate(url, service_package=SERVICE.package)
    pool = await create_pool(DatabaseSettings(url=url, pool_min_size=1, pool_max_size=2))
    try:
        outbox = Outbox(producer=SERVICE.name, topic_prefix=_topic_prefix(target, topic_prefix))
        return await load_campaign(command, PostgresUnitOfWork(pool=pool, outbox=outbox))
    finally:
        await pool.close()


async def republish_catalog(
    target: str | ServiceSettings,
    *,
    campaign_slugs: tuple[str, ...] = (),
    topic_prefix: str | None = None,
) -> int:
    """Put the current state of everything (or of these campaigns) in the outbox again."""
    url = _database_url(target)
    await migrate(url, service_package=SERVICE.package)
    pool = await create_pool(DatabaseSettings(url=url, pool_min_size=1, pool_max_size=2))
    try:
        outbox = Outbox(producer=SERVICE.name, topic_prefix=_topic_prefix(target, topic_prefix))
        return await republish(
            commands.Republish(campaign_slugs=campaign_slugs),
            PostgresUnitOfWork(pool=pool, outbox=outbox),
        )
    finally:
        await pool.close()
