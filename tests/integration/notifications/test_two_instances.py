"""Two instances share one queue: each claims different rows (FOR UPDATE SKIP LOCKED) and
every mail goes once, whichever instance sends it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from pathlib import Path

import pytest

from solidarity.notifications.service_layer.sender import DeliveryStats
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.integration.notifications import harness
from tests.integration.notifications.harness import Person

pytestmark = pytest.mark.integration

PEOPLE = 120


async def test_two_instances_send_each_mail_once(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, tmp_path: Path
) -> None:
    campaign_id, session_id = uuid.uuid4(), uuid.uuid4()
    people = [Person.new(f"p{i}") for i in range(PEOPLE)]
    expected = 2 * PEOPLE

    async with harness.mail_sink(tmp_path / "mail") as sink:
        settings = harness.settings_for(
            infrastructure,
            database_dsn=database_dsn,
            topic_prefix=registry_topics,
            sink=sink,
            sender_batch_size=10,
            smtp_pool_size=2,
        )
        async with contextlib.AsyncExitStack() as stack:
            apps = await asyncio.gather(
                stack.enter_async_context(harness.running(settings)),
                stack.enter_async_context(harness.running(settings)),
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

            async def all_sent() -> bool:
                rows = await harness.deliveries(database_dsn, state="sent")
                return len(rows) == expected

            try:
                await harness.wait_until(all_sent, timeout_s=60, what="every mail sent")
            except AssertionError:
                rows = await harness.deliveries(database_dsn)
                kinds = Counter((r["kind"], r["state"]) for r in rows)
                raise AssertionError(
                    f"ledger {dict(kinds)}, {len(harness.mails(sink))} mails"
                ) from None
            await asyncio.sleep(0.5)  # time for any (wrong) second copy to arrive
            stats: list[DeliveryStats] = [app.state.delivery_stats for app in apps]
        kept = harness.mails(sink)

    assert len(kept) == expected
    assert len({m.message_id for m in kept}) == expected, "no Message-ID twice"
    assert set(Counter(m.to for m in kept).values()) == {2}
    by_instance = [sum(s.sent.values()) for s in stats]
    assert sum(by_instance) == expected
    assert all(count > 0 for count in by_instance), f"both instances sent: {by_instance}"
