"""Settings refuse development secrets where they could do harm."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from solidarity.notifications.settings import DEVELOPMENT_UNSUBSCRIBE_KEY, NotificationsSettings

pytestmark = pytest.mark.unit


def test_development_on_loopback_runs_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOLIDARITY_UNSUBSCRIBE_SIGNING_KEY", raising=False)

    settings = NotificationsSettings(environment="development")

    assert settings.signing_key() == DEVELOPMENT_UNSUBSCRIBE_KEY.encode()
    assert settings.http_port == 8003


def test_production_is_the_default_and_needs_a_real_key() -> None:
    with pytest.raises(ValidationError, match="required"):
        NotificationsSettings()
    with pytest.raises(ValidationError, match="required"):
        NotificationsSettings(environment="production")
    with pytest.raises(ValidationError, match="12 characters"):
        NotificationsSettings(
            environment="production", unsubscribe_signing_key=SecretStr("changeme")
        )
    with pytest.raises(ValidationError, match="refused"):
        NotificationsSettings(
            environment="production",
            unsubscribe_signing_key=SecretStr(DEVELOPMENT_UNSUBSCRIBE_KEY),
        )
    ok = NotificationsSettings(
        environment="production", unsubscribe_signing_key=SecretStr("k" * 40)
    )
    assert ok.signing_key() == b"k" * 40


def test_public_links_need_a_real_key_even_in_development() -> None:
    with pytest.raises(ValidationError, match="loopback"):
        NotificationsSettings(
            environment="development", public_base_url="https://notify.example.org"
        )


def test_smtp_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLIDARITY_SMTP_HOST", "mail.internal")
    monkeypatch.setenv("SOLIDARITY_SMTP_PORT", "2525")

    settings = NotificationsSettings(environment="development")

    assert (settings.smtp_host, settings.smtp_port) == ("mail.internal", 2525)


def test_the_mailbox_policy_needs_the_mailbox_address() -> None:
    with pytest.raises(ValidationError, match="MAILBOX_API_URL"):
        NotificationsSettings(in_doubt_policy="mailbox")
