"""The catalog's settings: a real admin token, or the documented one in development only."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from solidarity.catalog.settings import DEVELOPMENT_ADMIN_TOKEN, CatalogSettings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SOLIDARITY_ENVIRONMENT",
        "SOLIDARITY_ENVIRONMENT",
        "SOLIDARITY_ADMIN_TOKEN",
        "SOLIDARITY_HTTP_PORT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_without_a_token_outside_development_there_is_no_default() -> None:
    # The service runs (health, relay) but its admin API is locked: see test_http.
    assert CatalogSettings().admin_token is None
    assert CatalogSettings(environment="test").admin_token is None


@pytest.mark.parametrize("token", ["changeme", "secret", "short"])
def test_placeholder_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValidationError, match="real secret"):
        CatalogSettings(admin_token=SecretStr(token))


def test_the_development_default_only_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLIDARITY_ENVIRONMENT", "development")
    settings = CatalogSettings()
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == DEVELOPMENT_ADMIN_TOKEN
    monkeypatch.setenv("SOLIDARITY_ENVIRONMENT", "production")
    monkeypatch.setenv("SOLIDARITY_ADMIN_TOKEN", DEVELOPMENT_ADMIN_TOKEN)
    with pytest.raises(ValidationError, match="outside development"):
        CatalogSettings()
    monkeypatch.delenv("SOLIDARITY_ENVIRONMENT")
    monkeypatch.setenv("SOLIDARITY_ENVIRONMENT", "development")  # the compose file's name
    assert CatalogSettings().environment == "development"
    monkeypatch.setenv("SOLIDARITY_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="outside development"):
        CatalogSettings()


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLIDARITY_ADMIN_TOKEN", "a-real-token-from-the-vault")
    settings = CatalogSettings()
    assert settings.http_port == 8001
    assert settings.service_name == "catalog"
    assert "a-real-token" not in repr(settings)
