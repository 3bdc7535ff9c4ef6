"""Scaling in while another instance joins hands the group over (bug J).

On the embedded broker (Tansu 0.6), a group's leader that sends LeaveGroup while the group is
rebalancing stays the group's leader: no member is elected again, every JoinGroup names the
departed leader, and every member waits for an assignment that never comes. Scenario 3 of the
reliability suite met it at full size (an instance killed and restarted while the other was
scaled in), and the restarted instance never became ready.

The services therefore close their consumers without LeaveGroup by default
(`SOLIDARITY_KAFKA_LEAVE_GROUP_ON_STOP`): a stopped instance leaves its groups when its
session times out, as a killed one does, and the broker elects a leader again then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from faststream import AckPolicy

from solidarity.shared.contracts.topics import CATALOG_SESSIONS
from solidarity.shared.runtime import ServiceRuntime
from solidarity.shared.settings import DatabaseSettings, KafkaSettings, ServiceSettings
from solidarity.shared.testing.infrastructure import Infrastructure
from solidarity.shared.testing.services import example_app

pytestmark = pytest.mark.integration

# A join takes about 5 s on the embedded broker, and a departed member's session 10 s more.
HANDOVER_S = 60.0
# Long enough to see that a join is not going to end (each attempt takes about 13 s).
STUCK_S = 40.0


def instance(settings: ServiceSettings, group: str, topic: str) -> FastAPI:
    """A service instance with one consumer in `group`."""

    async def wire(runtime: ServiceRuntime) -> None:
        async def handle(records: list[object]) -> None:
            return None

        runtime.broker.subscriber(
            topic,
            group_id=group,
            batch=True,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
        )(handle)

    return example_app(settings, wire)


class Running:
    """An instance's lifespan run in a task, stopped on demand (or by the test's exit stack)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._live())

    async def _live(self) -> None:
        async with self.app.router.lifespan_context(self.app):
            self.started.set()
            await self._stop.wait()

    async def wait_started(self, timeout_s: float) -> float:
        """Seconds until the instance started (its consumer joined); fails after `timeout_s`."""
        began = time.monotonic()
        waiting = asyncio.ensure_future(self.started.wait())
        await asyncio.wait({waiting, self._task}, timeout=timeout_s, return_when="FIRST_COMPLETED")
        waiting.cancel()
        if self._task.done():
            self._task.result()  # its failure, if it failed
        assert self.started.is_set(), f"the instance did not start in {timeout_s:.0f} s"
        return time.monotonic() - began

    def assignment(self) -> set[int]:
        (subscriber,) = self.app.state.runtime.broker.subscribers
        return {tp.partition for tp in subscriber.consumer.assignment()}

    async def stop(self) -> None:
        self._stop.set()
        if not self.started.is_set():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self._task, 30)


async def members(bootstrap: str, group: str) -> int:
    """How many members the coordinator lists in the group (a join it received counts)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    return sum(len(g[5]) for g in described.groups if g[1] == group)


async def until_members(bootstrap: str, group: str, count: int) -> None:
    for _ in range(300):
        if await members(bootstrap, group) == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the group never had {count} members")


async def test_an_instance_scaled_in_during_a_join_hands_its_group_over(
    infrastructure: Infrastructure, kit_database_dsn: str, registry_topics: str, unique: str
) -> None:
    bootstrap = infrastructure.kafka_bootstrap
    topic = CATALOG_SESSIONS.full_name(registry_topics)
    group = f"handover-{unique}"
    settings = ServiceSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=registry_topics),
        database=DatabaseSettings(url=kit_database_dsn, pool_max_size=2),
    )
    assert settings.kafka.leave_group_on_stop is False  # the default

    async with contextlib.AsyncExitStack() as stack:

        def run() -> Running:
            one = Running(instance(settings, group, topic))
            stack.push_async_callback(one.stop)
            return one

        leader = run()
        await leader.wait_started(HANDOVER_S)  # alone in the group: its leader
        follower = run()
        await follower.wait_started(HANDOVER_S)
        newcomer = run()
        await until_members(bootstrap, group, 3)  # its join arrived: the group rebalances
        await leader.stop()  # scaled in mid-rebalance, as in scenario 3
        assert await members(bootstrap, group) == 3  # it did not send LeaveGroup
        joined_s = await newcomer.wait_started(HANDOVER_S)
        assert await members(bootstrap, group) == 2  # the leader's session timed out
        for _ in range(200):  # the follower takes its share in the same generation
            if newcomer.assignment() | follower.assignment() == set(
                range(CATALOG_SESSIONS.partitions)
            ):
                break
            await asyncio.sleep(0.1)
        shares = (newcomer.assignment(), follower.assignment())
    assert shares[0] | shares[1] == set(range(CATALOG_SESSIONS.partitions))
    assert shares[0]
    assert shares[1]
    assert not shares[0] & shares[1]
    print(f"the newcomer joined {joined_s:.1f} s after the leader stopped")


async def test_the_embedded_broker_strands_a_group_whose_leader_leaves_mid_rebalance(
    infrastructure: Infrastructure, registry_topics: str, unique: str
) -> None:
    """Why the services stay in their groups when they stop: the broker's own behaviour.

    The same sequence with aiokafka's LeaveGroup on stop: the newcomer never gets an
    assignment. If this test fails, the embedded broker was fixed, and the setting can be on
    by default (docs/reliability.md, bug J).
    """
    bootstrap = infrastructure.kafka_bootstrap
    topic = CATALOG_SESSIONS.full_name(registry_topics)
    group = f"stranded-{unique}"

    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )

    async with contextlib.AsyncExitStack() as stack:
        leader, follower, newcomer = consumer(), consumer(), consumer()
        for one in (leader, follower, newcomer):
            stack.push_async_callback(one.stop)
        await asyncio.wait_for(leader.start(), HANDOVER_S)
        await asyncio.wait_for(follower.start(), HANDOVER_S)
        joining = asyncio.ensure_future(newcomer.start())
        await until_members(bootstrap, group, 3)
        await leader.stop()  # LeaveGroup mid-rebalance
        done, _ = await asyncio.wait({joining}, timeout=STUCK_S)
        joining.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await joining
    assert not done, "the newcomer joined: the broker re-elects a leader now (see docstring)"
    assert not newcomer.assignment()
