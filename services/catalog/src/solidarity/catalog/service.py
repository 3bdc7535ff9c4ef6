"""How the local stack and the CLI run the catalog service."""

from __future__ import annotations

from solidarity.shared.service import ServiceSpec

SERVICE = ServiceSpec(
    name="catalog",
    package="solidarity.catalog",
    module="solidarity.catalog",
    database="catalog",
    default_http_port=8001,
    demo_command=("catalog", "load", "--demo", "glsen-solidarity-week-2023"),
)
