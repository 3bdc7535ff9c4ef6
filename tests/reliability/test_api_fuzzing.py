"""Scenario 10: schemathesis against each service's OpenAPI document. Generated requests,
valid and invalid, with and without credentials: no answer is a 5xx, and every answer matches
the schema the document gives for it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from solidarity.catalog.bootstrap import create_app as catalog_app
from solidarity.catalog.settings import CatalogSettings
from solidarity.shared.settings import DatabaseSettings, KafkaSettings
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.reliability import platform
from tests.reliability.figures import record, size

pytestmark = pytest.mark.reliability

ADMIN_TOKEN = "reliability-admin-token-0123456789"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


async def _schemathesis(
    url: str, headers: dict[str, str], report: Path, *, exclude: tuple[str, ...] = ()
) -> tuple[int, str]:
    args = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(size(ci=10, full=200)),
        "--seed",
        "20231106",
        "--workers",
        "1",  # two workers crashed schemathesis' coverage phase (ast in threads, Python 3.11)
        "--phases",
        "examples,coverage,fuzzing",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    for path in exclude:
        args += ["--exclude-path", path]
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=280)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


@pytest.mark.parametrize("service", ["catalog", "registration", "notifications"])
async def test_every_generated_request_gets_a_documented_non_5xx_answer(
    service: str,
    infrastructure: Infrastructure,
    registry_topics: str,
    unique: str,
    tmp_path: Path,
) -> None:
    prefix = registry_topics
    async with (
        platform.service_databases(infrastructure, unique, (service,)) as dsns,
        platform.mail_sink(tmp_path / "mail") as sink,
    ):
        dsn = dsns[service]
        headers: dict[str, str] = {}
        app: FastAPI
        if service == "catalog":
            app = catalog_app(
                CatalogSettings(
                    environment="test",
                    admin_token=SecretStr(ADMIN_TOKEN),
                    kafka=KafkaSettings(
                        bootstrap_servers=infrastructure.kafka_bootstrap, topic_prefix=prefix
                    ),
                    database=DatabaseSettings(url=dsn, pool_max_size=6),
                )
            )
            headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        elif service == "registration":
            await platform.migrated(dsn, "registration")
            partner = await platform.partner_account(dsn, f"week-{unique}")
            # `?wait=` holds a request up to this long: keep generated waits short.
            app = platform.registration(
                platform.registration_settings(infrastructure, dsn, prefix, http_wait_max_s=1.0)
            )
            headers["Authorization"] = f"Bearer {partner.api_key}"
        else:
            app = platform.notifications(
                platform.notifications_settings(infrastructure, dsn, prefix, sink)
            )
        async with platform.running(**{service: app}), platform.listening(app) as url:
            code, output = await _schemathesis(url, headers, tmp_path / "report.json")

    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    tried, server_errors, mismatches, operations = _tally(report)
    record(
        "10",
        f"schemathesis on {service}",
        inputs=tried,
        operations=operations,
        crashes=server_errors,
        schema_mismatches=mismatches,
        errors=len(report.get("errors", [])),
        exit_code=code,
    )
    assert code == 0, output[-6000:]
    assert (server_errors, mismatches) == (0, 0)
    assert tried > 0
    assert operations > 0


def _tally(report: dict[str, Any]) -> tuple[int, int, int, int]:
    """(test cases, 5xx failures, schema mismatches, operations tested) from the JSON report."""
    cases = int(report.get("test_cases", {}).get("generated", 0))
    server_errors = mismatches = 0
    for group in report.get("failures", []):
        kind = f"{group.get('type', '')} {group.get('title', '')}".lower()
        if "server error" in kind or "not_a_server_error" in kind:
            server_errors += int(group.get("count", 1))
        else:
            mismatches += int(group.get("count", 1))
    tested = int(report.get("operations", {}).get("tested", 0))
    return cases, server_errors, mismatches, tested


async def test_reading_the_asyncapi_document_leaves_the_catalog_admin_api_working(
    infrastructure: Infrastructure, registry_topics: str, unique: str
) -> None:
    async with platform.service_databases(infrastructure, unique, ("catalog",)) as dsns:
        app = catalog_app(
            CatalogSettings(
                environment="test",
                admin_token=SecretStr(ADMIN_TOKEN),
                kafka=KafkaSettings(
                    bootstrap_servers=infrastructure.kafka_bootstrap, topic_prefix=registry_topics
                ),
                database=DatabaseSettings(url=dsns["catalog"], pool_max_size=2),
            )
        )
        async with platform.running(catalog=app), platform.listening(app) as url:
            auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                before = (await client.get("/organizations", headers=auth)).status_code
                document = (await client.get("/asyncapi.json")).status_code
                after = (await client.get("/organizations", headers=auth)).status_code
    record(
        "10",
        "catalog admin API after GET /asyncapi.json",
        inputs=3,
        crashes=int(after >= 500),
        before=before,
        document=document,
        after=after,
    )
    assert (before, document, after) == (200, 200, 200)
