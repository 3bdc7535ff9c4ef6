"""How the local stack and the CLI find and run the registration service."""

from __future__ import annotations

from solidarity.shared.service import ServiceSpec

SERVICE = ServiceSpec(
    name="registration",
    package="solidarity.registration",
    module="solidarity.registration",
    database="registration",
    default_http_port=8002,
    # Derives every partner's signing secret; the local stack generates one per data folder.
    dev_secrets=("SOLIDARITY_PARTNER_MASTER_KEY",),
)
