"""The registration service's settings, from the environment (prefix SOLIDARITY_)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from solidarity.shared.settings import ServiceSettings, refuse_placeholder


class RegistrationSettings(ServiceSettings):
    """Settings of the registration service.

    `partner_master_key` (SOLIDARITY_PARTNER_MASTER_KEY) derives every partner's signing
    secret, so that no secret is stored. Without it the service still runs and takes HTTP
    submissions, but answers every Kafka submission `invalid_signature` (nothing can be
    verified) and `solidarity partners create` refuses to run.
    """

    service_name: str = "registration"
    http_port: int = Field(default=8002, ge=0, le=65535)
    partner_master_key: SecretStr | None = None
    # HTTP intake
    http_batch_max: int = Field(default=1000, ge=1, le=10_000)
    http_wait_max_s: float = Field(default=10.0, ge=0, le=60)
    http_wait_poll_s: float = Field(default=0.05, gt=0, le=5)

    @field_validator("partner_master_key")
    @classmethod
    def _real_master_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        return refuse_placeholder(value, name="SOLIDARITY_PARTNER_MASTER_KEY")

    def master_key(self) -> bytes | None:
        """The master key's bytes, or None when signing is not configured."""
        if self.partner_master_key is None:
            return None
        return self.partner_master_key.get_secret_value().encode()
