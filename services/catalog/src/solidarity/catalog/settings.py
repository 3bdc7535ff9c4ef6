"""The catalog's settings: the shared ones plus the admin API's bearer token."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from solidarity.shared.settings import ENV_PREFIX, ServiceSettings, refuse_placeholder

DEVELOPMENT_ADMIN_TOKEN = "solidarity-dev-catalog-admin"  # noqa: S105 - documented, dev only
"""The admin token when SOLIDARITY_ENVIRONMENT=development and SOLIDARITY_ADMIN_TOKEN is unset."""


class CatalogSettings(ServiceSettings):
    """`SOLIDARITY_*` settings of the catalog service.

    The admin token is never defaulted outside development: without one, the service runs
    (health, readiness, metrics, the outbox relay) but its admin API refuses every request
    (503 `admin_api_disabled`). A placeholder or too short token refuses to start.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    service_name: str = "catalog"
    http_port: int = Field(default=8001, ge=0, le=65535)
    admin_token: SecretStr | None = Field(
        default=None,
        description="SOLIDARITY_ADMIN_TOKEN: the bearer token organizers use on the admin API.",
    )

    @model_validator(mode="after")
    def _admin_token_is_real(self) -> CatalogSettings:
        if self.admin_token is None or not self.admin_token.get_secret_value():
            self.admin_token = (
                SecretStr(DEVELOPMENT_ADMIN_TOKEN) if self.environment == "development" else None
            )
            return self
        if (
            self.admin_token.get_secret_value() == DEVELOPMENT_ADMIN_TOKEN
            and self.environment != "development"
        ):
            raise ValueError("the development admin token may not be used outside development")
        refuse_placeholder(self.admin_token, name="SOLIDARITY_ADMIN_TOKEN")
        return self
