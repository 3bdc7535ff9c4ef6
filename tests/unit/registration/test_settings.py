"""Settings: the partner master key refuses placeholders; the service listens on 8002."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from solidarity.registration.service import SERVICE
from solidarity.registration.settings import RegistrationSettings

pytestmark = pytest.mark.unit


def test_the_master_key_must_be_a_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOLIDARITY_PARTNER_MASTER_KEY", raising=False)
    assert RegistrationSettings().master_key() is None
    for weak in ("changeme", "short", "secret"):
        with pytest.raises(ValidationError):
            RegistrationSettings(partner_master_key=SecretStr(weak))
    monkeypatch.setenv("SOLIDARITY_PARTNER_MASTER_KEY", "a-real-master-key-1234")
    assert RegistrationSettings().master_key() == b"a-real-master-key-1234"


def test_the_service_spec_matches_the_layout() -> None:
    assert (SERVICE.name, SERVICE.database, SERVICE.default_http_port) == (
        "registration",
        "registration",
        8002,
    )
    assert RegistrationSettings().http_port == 8002
