"""A service that is none of the platform's, for tests of the kit's runtime."""

from __future__ import annotations

from fastapi import FastAPI

from solidarity.shared.runtime import Wiring, create_service_app
from solidarity.shared.service import ServiceSpec
from solidarity.shared.settings import ServiceSettings

EXAMPLE_SERVICE = ServiceSpec(
    name="example",
    package="solidarity.shared",
    module="solidarity.example",
    database="example",
    default_http_port=8999,
)
"""Its package is the kit's own: it has the kit's migrations and nothing else."""


def example_app(
    settings: ServiceSettings, wire: Wiring, *, run_migrations: bool = False
) -> FastAPI:
    """The example service's app on the kit's runtime, wired by the test."""
    return create_service_app(
        spec=EXAMPLE_SERVICE,
        settings=settings,
        wire=wire,
        title="Example",
        description="An example",
        run_migrations=run_migrations,
    )
