"""Throughput probe (not a test): one fan-out of N invitations, sent through the mail sink.

    .venv/bin/python -m tests.integration.notifications.bench_throughput [people] [smtp pool]

Starts the infrastructure the test plugin would choose, the mail sink in this process, and the
service in this process; prints how long planning and sending took.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from solidarity.shared.contracts.topics import TOPICS
from solidarity.shared.db.pool import drop_database, ensure_database, with_database
from solidarity.shared.messaging.kafka import create_topics
from solidarity.shared.settings import LoggingSettings
from solidarity.shared.testing.infrastructure import Infrastructure, choose
from tests.integration.notifications import harness
from tests.integration.notifications.harness import Person


async def measure(infra: Infrastructure, people_count: int, pool_size: int) -> None:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    await ensure_database(infra.postgres_admin_dsn, name)
    dsn = with_database(infra.postgres_admin_dsn, name)
    prefix = f"b{uuid.uuid4().hex[:8]}."
    await create_topics(infra.kafka_bootstrap, TOPICS, prefix=prefix)
    campaign_id, session_id = uuid.uuid4(), uuid.uuid4()
    people = [Person.new(f"p{i}") for i in range(people_count)]

    async def count(kind: str, state: str | None = None) -> int:
        where = {"kind": kind} | ({"state": state} if state else {})
        return len(await harness.deliveries(dsn, **where))

    try:
        async with harness.mail_sink(Path(tempfile.mkdtemp()) / "mail") as sink:
            settings = harness.settings_for(
                infra,
                database_dsn=dsn,
                topic_prefix=prefix,
                sink=sink,
                sender_batch_size=100,
                smtp_pool_size=pool_size,
                logging=LoggingSettings(level="WARNING"),
            )
            async with harness.running(settings):
                started = time.monotonic()
                await harness.publish(
                    infra.kafka_bootstrap,
                    prefix,
                    [
                        *harness.campaign(campaign_id),
                        *(p.recorded() for p in people),
                        *(p.signed_up(campaign_id) for p in people),
                    ],
                )

                async def welcomed() -> bool:
                    return await count("signup_welcome", "sent") == people_count

                await harness.wait_until(welcomed, timeout_s=900, what="welcomes")
                print(
                    f"{people_count} sign-ups consumed, welcomed and sent in "
                    f"{time.monotonic() - started:.1f} s"
                )
                started = time.monotonic()
                await harness.publish(
                    infra.kafka_bootstrap,
                    prefix,
                    [harness.session(session_id, campaign_id, starts_at=harness.future(days=7))],
                )

                async def planned() -> bool:
                    return await count("invitation") == people_count

                await harness.wait_until(planned, timeout_s=900, what="planned")
                planning = time.monotonic() - started

                async def sent() -> bool:
                    return await count("invitation", "sent") == people_count

                await harness.wait_until(sent, timeout_s=900, what="sent")
                total = time.monotonic() - started
                print(
                    f"{people_count} invitations planned in {planning:.2f} s, all sent in "
                    f"{total:.1f} s: {people_count / total:.0f} mails/s over {pool_size} "
                    "SMTP connections"
                )
    finally:
        await drop_database(infra.postgres_admin_dsn, name)


def main() -> None:
    people_count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    pool_size = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    infra = choose()
    try:
        asyncio.run(measure(infra, people_count, pool_size))
    finally:
        infra.close()


if __name__ == "__main__":
    main()
