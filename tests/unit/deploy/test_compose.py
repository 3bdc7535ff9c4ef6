"""The operators' docker-compose.yml and Dockerfiles, checked for structure (no Docker here)."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from solidarity.shared.contracts.topics import TOPICS
from solidarity.shared.service import ServiceSpec, discover_services

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SPECS = {spec.name: spec for spec in discover_services()}
ONE_SHOT_JOBS = {"topics"}  # runs to completion; others wait on service_completed_successfully
# Secrets a service may run without in this compose file, and why.
OPTIONAL_SECRETS = {"SOLIDARITY_SMTP_PASSWORD": "the mail catcher takes no login"}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<rest>[^}]*)\}")


def _resolve(value: str, values: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: values[m["name"]], value)


@pytest.fixture(scope="module")
def env_values() -> dict[str, str]:
    """One value for every ${VAR} the compose file reads, as .env would give it."""
    names = set(VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))
    values = {name: secrets.token_urlsafe(24) for name, _ in names}
    values["PUBLIC_BASE_URL"] = "https://notifications.example.org"
    return values


def test_every_service_is_known_and_every_app_service_is_in_compose() -> None:
    assert set(APP_SPECS) <= set(SERVICES)
    assert {"kafka", "postgres", "topics", "mail"} <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_long_running_service_has_a_health_check(name: str) -> None:
    service = SERVICES[name]
    if name in ONE_SHOT_JOBS:
        assert service.get("restart") == "no"
        return
    test = service.get("healthcheck", {}).get("test")
    assert test, f"{name} has no health check"
    assert test[0] in {"CMD", "CMD-SHELL"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned(name: str) -> None:
    image = SERVICES[name].get("image")
    assert image, f"{name} names no image (a build needs a tagged image name too)"
    repository, _, tag = image.rpartition(":")
    assert repository, f"{name}: {image} has no tag"
    assert tag, f"{name}: {image} has no tag"
    assert tag != "latest"
    assert re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"


@pytest.mark.parametrize("name", sorted(APP_SPECS))
def test_app_services_wait_for_their_dependencies_to_be_healthy(name: str) -> None:
    depends = SERVICES[name]["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["topics"]["condition"] == "service_completed_successfully"
    assert SERVICES[name]["build"]["dockerfile"] == f"services/{name}/Dockerfile"


def test_the_topic_job_creates_every_registry_topic_on_the_compose_broker() -> None:
    command = SERVICES["topics"]["command"]
    assert command[:3] == ["solidarity", "topics", "create"]
    assert "--prefix" not in command  # the registry's names, as they are
    assert command[command.index("--bootstrap") + 1] == "kafka:9092"
    assert SERVICES["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    # `topics create` creates exactly the registry (tested against a real broker in
    # tests/integration/shared/cli); here, the registry is what it reads.
    assert len(TOPICS) >= 7


def test_no_secret_is_written_in_the_compose_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "TOKEN", "KEY", "SECRET")):
                assert isinstance(value, str)
                assert VARIABLE.fullmatch(value.strip()) or VARIABLE.search(value), (
                    f"{name}.{key} must come from the environment"
                )
    for _, rest in VARIABLE.findall(text):
        assert not rest.startswith(":-"), "no default secrets"
        assert not rest.startswith("-"), "no default secrets"


def test_every_variable_the_file_reads_is_documented_in_env_example() -> None:
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    used = {name for name, _ in VARIABLE.findall((ROOT / "docker-compose.yml").read_text())}
    assert used <= documented


@pytest.mark.parametrize("name", sorted(APP_SPECS))
def test_every_setting_a_service_needs_in_production_is_set(
    name: str, env_values: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec: ServiceSpec = APP_SPECS[name]
    environment = {
        key: _resolve(str(value), env_values)
        for key, value in SERVICES[name]["environment"].items()
    }
    for key in list(os.environ):
        if key.startswith("SOLIDARITY_"):
            monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    assert environment["SOLIDARITY_ENVIRONMENT"] == "production"
    settings = spec.settings_class()()  # production refuses missing or default secrets
    assert settings.database.url.endswith(f"@postgres:5432/{spec.database}")
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.kafka.enable_idempotence is True
    assert settings.http_port == 8000
    assert settings.logging.format == "json"
    # Every secret the service declares is given (a missing one could silently disable a
    # feature, as the catalog's admin API does without its token).
    for field_name, field in spec.settings_class().model_fields.items():
        env_name = f"SOLIDARITY_{field_name.upper()}"
        if "SecretStr" in str(field.annotation) and env_name not in OPTIONAL_SECRETS:
            assert env_name in environment, f"{name} reads {env_name}; compose does not set it"


@pytest.mark.parametrize("name", sorted(APP_SPECS))
def test_each_dockerfile_is_multi_stage_non_root_pinned_and_healthchecked(name: str) -> None:
    text = (ROOT / "services" / name / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert len(stages) >= 3, "a uv stage, a build stage and a runtime stage"
    python_version = re.search(r"^ARG PYTHON_VERSION=(\S+)$", text, flags=re.MULTILINE)
    assert python_version
    assert re.fullmatch(r"\d+\.\d+\.\d+", python_version[1])
    assert re.search(r"^FROM ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+ AS uv$", text, flags=re.M)
    assert re.search(r"^USER (?!root)\S+", text, flags=re.MULTILINE)
    assert "HEALTHCHECK" in text
    assert f'CMD ["python", "-m", "solidarity.{name}"]' in text
    assert "--locked" in text
