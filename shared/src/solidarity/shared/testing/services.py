"""A service that is none of the platform's, for tests of the kit's runtime."""

from __future__ import annotations

from solidarity.shared.service import ServiceSpec

EXAMPLE_SERVICE = ServiceSpec(
    name="example",
    package="solidarity.shared",
    module="solidarity.example",
    database="example",
    default_http_port=8999,
)
"""Its package is the kit's own: it has the kit's migrations and nothing else."""
