"""`solidarity partners` against a real PostgreSQL: credentials shown once, only a hash kept."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from solidarity.registration.domain.partners import signing_secret
from solidarity.shared.service import load_dev_secrets
from tests.integration.registration.support import MASTER_KEY, fetch

pytestmark = pytest.mark.integration

SOLIDARITY = str(Path(sys.executable).with_name("solidarity"))


async def run_cli(
    *args: str, master_key: str | None = MASTER_KEY, data_dir: Path | None = None
) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLIDARITY_")}
    if master_key is not None:
        env["SOLIDARITY_PARTNER_MASTER_KEY"] = master_key
    # The CLI adopts the local stack's generated secrets; by default, a folder with none (so
    # a stack in the working directory cannot lend its key to these tests).
    no_stack = Path(tempfile.gettempdir()) / f"solidarity-no-stack-{uuid.uuid4().hex}"
    env["SOLIDARITY_DATA_DIR"] = str(data_dir or no_stack)
    process = await asyncio.create_subprocess_exec(
        SOLIDARITY,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_partners_create_prints_credentials_once_and_stores_only_a_hash(
    database_dsn: str,
) -> None:
    code, out, err = await run_cli(
        "partners",
        "create",
        "Riverside district",
        "--campaign",
        "week-2026",
        "--campaign",
        "webinars",
        "--dsn",
        database_dsn,
        "--json",
    )
    assert code == 0, err
    created = json.loads(out)
    partner_id = uuid.UUID(created["partner_id"])
    assert created["signing_secret"] == signing_secret(MASTER_KEY.encode(), partner_id)
    rows = await fetch(database_dsn, "SELECT * FROM partners")
    assert len(rows) == 1
    assert bytes(rows[0]["api_key_sha256"]) == hashlib.sha256(created["api_key"].encode()).digest()
    stored = " ".join(str(v) for v in rows[0].values())
    assert created["api_key"] not in stored
    assert created["signing_secret"] not in stored
    campaigns = await fetch(database_dsn, "SELECT campaign_slug FROM partner_campaigns ORDER BY 1")
    assert [r["campaign_slug"] for r in campaigns] == ["webinars", "week-2026"]

    code, listing, _ = await run_cli("partners", "list", "--dsn", database_dsn)
    assert code == 0
    assert "Riverside district" in listing
    assert created["api_key"] not in listing

    code, _, err = await run_cli(
        "partners", "create", "No key", "--campaign", "x", "--dsn", database_dsn, master_key=None
    )
    assert code == 1
    assert "SOLIDARITY_PARTNER_MASTER_KEY" in err
    code, _, err = await run_cli(
        "partners",
        "create",
        "Weak",
        "--campaign",
        "x",
        "--dsn",
        database_dsn,
        master_key="changeme",
    )
    assert code == 1
    assert "real secret" in err


async def test_partners_create_uses_the_master_key_the_local_stack_generated(
    database_dsn: str, tmp_path: Path
) -> None:
    generated = load_dev_secrets(tmp_path, ("SOLIDARITY_PARTNER_MASTER_KEY",))
    key = generated["SOLIDARITY_PARTNER_MASTER_KEY"]
    args = ("partners", "create", "Lakeside", "--campaign", "x", "--dsn", database_dsn, "--json")

    code, out, err = await run_cli(*args, master_key=None, data_dir=tmp_path)
    assert code == 0, err
    created = json.loads(out)
    assert created["signing_secret"] == signing_secret(
        key.encode(), uuid.UUID(created["partner_id"])
    )

    code, out, err = await run_cli(*args, master_key=MASTER_KEY, data_dir=tmp_path)
    assert code == 0, err
    created = json.loads(out)
    assert created["signing_secret"] == signing_secret(
        MASTER_KEY.encode(), uuid.UUID(created["partner_id"])
    ), "a key set in the environment wins over the generated one"
