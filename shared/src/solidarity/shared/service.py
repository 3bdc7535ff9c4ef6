"""How a service describes itself to the local stack and the CLI (`solidarity.services`)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service: how to run it, where its database is, and what it answers on."""

    name: str  # "catalog", "registration", "notifications"
    package: str  # "solidarity.catalog": migrations are found from it
    module: str  # run with `python -m <module>`; reads SOLIDARITY_* settings
    database: str  # the database name the local stack creates for it
    default_http_port: int
    health_path: str = "/health"
    ready_path: str = "/ready"
    # `solidarity` arguments the local stack runs once every service answers, to load demo
    # data (for example the catalog's default campaign); `solidarity up --no-demo` skips it.
    demo_command: tuple[str, ...] = ()


def discover_services() -> list[ServiceSpec]:
    """The services installed in this environment, in a stable order."""
    order = {"catalog": 0, "registration": 1, "notifications": 2}
    found: list[ServiceSpec] = []
    for entry in entry_points(group="solidarity.services"):
        spec = entry.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {entry.name} does not give a ServiceSpec")
        found.append(spec)
    return sorted(found, key=lambda s: (order.get(s.name, 99), s.name))
