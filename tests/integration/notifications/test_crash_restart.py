"""A service killed (SIGKILL) in the middle of a fan-out and started again sends every mail
exactly once: claims are durable rows, a dead sender's `sending` rows are settled by asking
the mailbox, and nothing lives only in memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from solidarity.shared.devstack.embedded import free_port
from solidarity.shared.devstack.mailsink import MailSink
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.integration.notifications import harness
from tests.integration.notifications.harness import Person

pytestmark = pytest.mark.integration

PEOPLE = 150


def service_env(
    infrastructure: Infrastructure, *, database_dsn: str, topic_prefix: str, sink: MailSink
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SOLIDARITY_DATABASE_URL": database_dsn,
            "SOLIDARITY_KAFKA_BOOTSTRAP_SERVERS": infrastructure.kafka_bootstrap,
            "SOLIDARITY_KAFKA_TOPIC_PREFIX": topic_prefix,
            "SOLIDARITY_HTTP_PORT": str(free_port()),
            "SOLIDARITY_SMTP_HOST": "127.0.0.1",
            "SOLIDARITY_SMTP_PORT": str(sink.smtp_port),
            "SOLIDARITY_SMTP_POOL_SIZE": "4",
            "SOLIDARITY_UNSUBSCRIBE_SIGNING_KEY": harness.SIGNING_KEY,
            "SOLIDARITY_IN_DOUBT_POLICY": "mailbox",
            "SOLIDARITY_MAILBOX_API_URL": f"http://127.0.0.1:{sink.http_port}",
            "SOLIDARITY_SENDING_LEASE_S": "1",
            "SOLIDARITY_RECONCILE_INTERVAL_S": "0.3",
            "SOLIDARITY_SENDER_BATCH_SIZE": "20",
            "SOLIDARITY_SENDER_POLL_INTERVAL_S": "0.05",
            "SOLIDARITY_OUTBOX_POLL_INTERVAL_S": "0.05",
            "SOLIDARITY_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@contextlib.asynccontextmanager
async def service_process(
    env: dict[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "solidarity.notifications", env=env, stdout=out, stderr=out
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def test_a_fan_out_killed_midway_and_restarted_sends_each_mail_once(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, tmp_path: Path
) -> None:
    campaign_id, session_id = uuid.uuid4(), uuid.uuid4()
    people = [Person.new(f"p{i}") for i in range(PEOPLE)]
    expected = 2 * PEOPLE  # a welcome and an invitation each

    async with harness.mail_sink(tmp_path / "mail") as sink:
        env = service_env(
            infrastructure, database_dsn=database_dsn, topic_prefix=registry_topics, sink=sink
        )
        await harness.publish(
            infrastructure.kafka_bootstrap,
            registry_topics,
            [
                *harness.campaign(campaign_id),
                *(p.recorded() for p in people),
                *(p.signed_up(campaign_id) for p in people),
                harness.session(session_id, campaign_id, starts_at=harness.future(days=7)),
            ],
        )

        async with service_process(env, tmp_path / "first.log") as first:

            async def midway() -> bool:
                assert first.returncode is None, (tmp_path / "first.log").read_text()[-3000:]
                return len(sink.store.list()) >= expected // 3

            await harness.wait_until(midway, timeout_s=60, what="the fan-out under way")
            first.kill()  # SIGKILL: no shutdown, no cleanup
            await first.wait()
        at_kill = len(sink.store.list())
        states = Counter(r["state"] for r in await harness.deliveries(database_dsn))
        assert 0 < at_kill < expected, "killed in the middle"

        env["SOLIDARITY_HTTP_PORT"] = str(free_port())
        async with service_process(env, tmp_path / "second.log"):

            async def all_settled() -> bool:
                rows = await harness.deliveries(database_dsn)
                return len(rows) == expected and all(r["state"] == "sent" for r in rows)

            await harness.wait_until(all_settled, timeout_s=60, what="every delivery sent")
            await asyncio.sleep(0.5)  # time for any (wrong) second copy to arrive
        kept = harness.mails(sink)

    print(f"killed with {at_kill} of {expected} mails out; ledger then: {dict(states)}")
    assert len(kept) == expected, f"{len(kept)} mails for {expected} deliveries"
    assert len({m.message_id for m in kept}) == expected, "no Message-ID twice"
    per_person = Counter(m.to for m in kept)
    assert set(per_person.values()) == {2}
    assert set(per_person) == {p.email for p in people}
