"""Development secrets of the local stack: generated once per data folder, owner-only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from solidarity.shared.service import DEV_SECRETS_FILE, load_dev_secrets

pytestmark = pytest.mark.unit


def test_dev_secrets_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = load_dev_secrets(tmp_path, ("SOLIDARITY_PARTNER_MASTER_KEY",))
    again = load_dev_secrets(tmp_path, ("SOLIDARITY_PARTNER_MASTER_KEY",))
    assert first == again
    assert len(first["SOLIDARITY_PARTNER_MASTER_KEY"]) >= 32
    mode = stat.S_IMODE((tmp_path / DEV_SECRETS_FILE).stat().st_mode)
    assert mode == 0o600


def test_new_names_are_added_without_changing_existing_ones(tmp_path: Path) -> None:
    first = load_dev_secrets(tmp_path, ("A_KEY",))
    both = load_dev_secrets(tmp_path, ("A_KEY", "B_KEY"))
    assert both["A_KEY"] == first["A_KEY"]
    assert both["B_KEY"] != both["A_KEY"]
    assert load_dev_secrets(tmp_path / "elsewhere") == {}
