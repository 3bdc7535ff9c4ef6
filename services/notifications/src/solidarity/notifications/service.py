"""How the local stack and the CLI run the notifications service."""

from __future__ import annotations

from solidarity.shared.service import ServiceSpec

SERVICE = ServiceSpec(
    name="notifications",
    package="solidarity.notifications",
    module="solidarity.notifications",
    database="notifications",
    default_http_port=8003,
)
