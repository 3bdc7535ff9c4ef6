"""Configuration every service shares, read from the environment under one prefix (SOLIDARITY_)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SOLIDARITY_"

_PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "password", "xxx", "todo"})


class KafkaSettings(BaseSettings):
    """How to reach the Kafka-protocol broker."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:19092"
    # Real Kafka: on. The embedded broker fails InitProducerId, so the local stack turns it off.
    enable_idempotence: bool = False
    topic_prefix: str = ""
    client_id: str = "solidarity"
    # Whether a stopping instance tells the group coordinator it leaves (LeaveGroup), so that
    # its partitions move at once; otherwise they move when its session times out (10 s).
    # Real Kafka: on. The embedded broker (Tansu 0.6) keeps a departed leader as the leader
    # of a group that was rebalancing, and no member can join it again: off there.
    leave_group_on_stop: bool = False


class DatabaseSettings(BaseSettings):
    """How to reach this service's own PostgreSQL database."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}DATABASE_", extra="ignore")

    url: str = "postgresql://postgres@127.0.0.1:54329/postgres"
    pool_min_size: int = Field(default=1, ge=1)
    pool_max_size: int = Field(default=10, ge=1)


class LoggingSettings(BaseSettings):
    """Log format and level."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}LOG_", extra="ignore")

    format: Literal["json", "console"] = "json"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # aiokafka's and FastStream's own loggers (group joins, rebalances, connections): quiet by
    # default; INFO or DEBUG when a consumer's group membership needs looking into.
    libraries_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"


class ServiceSettings(BaseSettings):
    """Settings common to the three services; each service subclasses it."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    service_name: str = "solidarity"
    environment: Literal["development", "test", "production"] = Field(
        default="production",
        description="SOLIDARITY_ENVIRONMENT. Only `development` (what `solidarity up` sets) "
        "accepts the documented development defaults of secrets; production refuses them.",
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_poll_interval_s: float = Field(default=0.05, gt=0)
    outbox_retention_hours: float = Field(
        default=168, gt=0, description="How long sent outbox rows stay for a replay"
    )
    consumer_max_records: int = Field(default=500, ge=1, le=10_000)


def refuse_placeholder(value: SecretStr, *, name: str) -> SecretStr:
    """Reject empty or well-known placeholder secrets, so a deployment cannot run with one."""
    raw = value.get_secret_value().strip()
    if len(raw) < 12 or raw.lower() in _PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} must be a real secret of at least 12 characters")
    return value
