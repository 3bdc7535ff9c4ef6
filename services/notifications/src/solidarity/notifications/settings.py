"""Settings of the notifications service, from SOLIDARITY_* environment variables."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from solidarity.shared.settings import ServiceSettings, refuse_placeholder

# Only ever accepted in development with links that point at this machine.
DEVELOPMENT_UNSUBSCRIBE_KEY = "development-only-unsubscribe-key"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class NotificationsSettings(ServiceSettings):
    """SMTP, links, signing key, sender pacing and retry policy."""

    service_name: str = "notifications"
    http_port: int = Field(default=8003, ge=0, le=65535)

    # SMTP (SOLIDARITY_SMTP_*)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_use_tls: bool = False
    smtp_start_tls: bool | None = Field(
        default=None, description="None: upgrade when the server offers STARTTLS"
    )
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    smtp_pool_size: int = Field(default=4, ge=1, le=64)

    mail_from_address: str = "notifications@solidarity.local"
    mail_from_name: str = "Solidarity Week"
    mail_discreet_from_name: str = "Notifications"
    message_id_domain: str = "solidarity.local"

    # Links in mail: unsubscribe and preferences pages (RFC 8058 wants https in production).
    public_base_url: str = "http://127.0.0.1:8003"
    unsubscribe_signing_key: SecretStr | None = None

    # The sender loop.
    sender_batch_size: int = Field(default=50, ge=1, le=5_000)
    sender_poll_interval_s: float = Field(default=0.5, gt=0)
    sending_lease_s: float = Field(
        default=300.0, gt=0, description="After this, a `sending` row's sender is presumed dead"
    )
    reconcile_interval_s: float = Field(default=30.0, gt=0)
    in_doubt_policy: Literal["mailbox", "assume_delivered", "hold"] = Field(
        default="assume_delivered",
        description="How mail in doubt is settled: ask the mailbox API, count it sent, or hold",
    )
    mailbox_api_url: str | None = Field(
        default=None,
        description="The development mail sink's HTTP API, for in_doubt_policy=mailbox",
    )

    # Retries after 4xx and connection failures: bounded exponential backoff.
    retry_base_s: float = Field(default=30.0, ge=0)
    retry_max_s: float = Field(default=3600.0, ge=0)
    retry_max_attempts: int = Field(default=8, ge=1, le=100)
    retry_jitter: float = Field(default=0.1, ge=0, le=1)

    webhook_timeout_s: float = Field(default=10.0, gt=0)
    invitation_session_kinds: tuple[str, ...] = ("webinar", "speaking_engagement")
    metrics_refresh_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _real_secrets_outside_development(self) -> NotificationsSettings:
        if self.in_doubt_policy == "mailbox" and not self.mailbox_api_url:
            raise ValueError("in_doubt_policy=mailbox needs SOLIDARITY_MAILBOX_API_URL")
        key = self.unsubscribe_signing_key
        local_links = _is_loopback(self.public_base_url)
        if key is None:
            if self.environment != "development" or not local_links:
                raise ValueError(
                    "SOLIDARITY_UNSUBSCRIBE_SIGNING_KEY is required outside development "
                    "(and whenever public_base_url is not a loopback address)"
                )
            return self
        if key.get_secret_value() == DEVELOPMENT_UNSUBSCRIBE_KEY and not (
            self.environment == "development" and local_links
        ):
            raise ValueError("the development unsubscribe key is refused here")
        if key.get_secret_value() != DEVELOPMENT_UNSUBSCRIBE_KEY:
            refuse_placeholder(key, name="SOLIDARITY_UNSUBSCRIBE_SIGNING_KEY")
        return self

    def signing_key(self) -> bytes:
        key = self.unsubscribe_signing_key
        return (key.get_secret_value() if key else DEVELOPMENT_UNSUBSCRIBE_KEY).encode()
