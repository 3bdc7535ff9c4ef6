"""A service whose background task ends while it runs says so: an error in the log and a
failing /health, so that whatever runs it restarts it. (Its relay once ended on an error it did
not expect, and the service went on answering while its events stopped.)"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from solidarity.shared.runtime import ServiceRuntime
from solidarity.shared.settings import DatabaseSettings, KafkaSettings, ServiceSettings
from solidarity.shared.testing.infrastructure import Infrastructure
from solidarity.shared.testing.services import example_app

pytestmark = pytest.mark.integration


async def test_a_background_task_that_ends_fails_health(
    infrastructure: Infrastructure,
    kit_database_dsn: str,
    registry_topics: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    go_wrong = asyncio.Event()

    async def sweeper(stop: asyncio.Event) -> None:
        await go_wrong.wait()
        raise RuntimeError("a bug in one pass")

    async def steady(stop: asyncio.Event) -> None:
        await stop.wait()

    async def wire(runtime: ServiceRuntime) -> None:
        runtime.background += [sweeper, steady]

    settings = ServiceSettings(
        kafka=KafkaSettings(
            bootstrap_servers=infrastructure.kafka_bootstrap, topic_prefix=registry_topics
        ),
        database=DatabaseSettings(url=kit_database_dsn, pool_max_size=2),
    )
    app = example_app(settings, wire)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
            before = await client.get("/health")
            go_wrong.set()
            for _ in range(500):  # up to about 10 s
                after = await client.get("/health")
                if after.status_code != 200:
                    break
                await asyncio.sleep(0.02)
    # The service logs JSON lines to stderr (its lifespan configures logging).
    logs = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    assert (before.status_code, before.json()["status"]) == (200, "ok")
    assert after.status_code == 503
    ended_name = sweeper.__qualname__
    assert after.json() == {"status": "failing", "service": "example", "ended": [ended_name]}
    ended = [e for e in logs if e["event"] == "background_task_ended"]
    assert [(e["task"], e["error_type"]) for e in ended] == [(ended_name, "RuntimeError")]
    # Stopping the service is not an ending: the other tasks returned without a word.
    assert len(ended) == 1
