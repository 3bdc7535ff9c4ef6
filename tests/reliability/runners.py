"""The services' own consumer runners on real databases, fed records directly (no broker).

For fuzzing: each generated input goes through exactly the code a consumer runs on a record it
polled (parse, DLQ, inbox, the service's handler, one transaction), thousands of times a
minute, and the property is checked per input, so hypothesis can shrink a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from itertools import count

from solidarity.notifications.adapters.clock import SystemClock
from solidarity.notifications.entrypoints.consumers import notifications_consumer
from solidarity.notifications.service_layer.handlers import PlanningRules
from solidarity.registration.adapters.metrics import RegistrationMetrics
from solidarity.registration.bootstrap import catalog_runner, submissions_runner
from solidarity.shared.contracts.topics import (
    CATALOG_CAMPAIGNS,
    CATALOG_SESSIONS,
    REGISTRATION_OUTCOMES,
    REGISTRATION_REGISTRANTS,
    REGISTRATION_SUBMISSIONS,
    TopicSpec,
)
from solidarity.shared.db.pool import create_pool
from solidarity.shared.messaging.consumer import BatchReport, ConsumerRunner
from solidarity.shared.messaging.outbox import Outbox
from solidarity.shared.settings import DatabaseSettings
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.reliability import platform

CONSUMED: tuple[TopicSpec, ...] = (
    CATALOG_CAMPAIGNS,
    CATALOG_SESSIONS,
    REGISTRATION_SUBMISSIONS,
    REGISTRATION_OUTCOMES,
    REGISTRATION_REGISTRANTS,
)


@dataclass(frozen=True, slots=True)
class Polled:
    """A record as a consumer polls it (the shape of aiokafka's ConsumerRecord)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass
class Consumers:
    """Every consumer of every consumed topic, by topic name (without the prefix)."""

    prefix: str
    by_topic: dict[str, list[ConsumerRunner]]
    dsns: dict[str, str]
    _offsets: count[int] = field(default_factory=count)

    def record(
        self,
        spec: TopicSpec,
        value: bytes | None,
        *,
        key: bytes | None = b"key",
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Polled:
        return Polled(spec.full_name(self.prefix), 0, next(self._offsets), key, value, headers)

    async def feed(
        self, spec: TopicSpec, records: Sequence[Polled], *, timeout_s: float = 15.0
    ) -> list[tuple[str, BatchReport | BaseException]]:
        """Each of the topic's consumers takes the batch; what each made of it, or what it
        raised (a timeout means it was still retrying: the partition would be stuck)."""
        results: list[tuple[str, BatchReport | BaseException]] = []
        for runner in self.by_topic[spec.name]:
            try:
                report = await asyncio.wait_for(runner.process_batch(records), timeout_s)
            except (Exception, RecursionError) as exc:
                results.append((runner.name, exc))
            else:
                results.append((runner.name, report))
        return results


@contextlib.asynccontextmanager
async def consumers(
    infrastructure: Infrastructure, unique: str, prefix: str
) -> AsyncIterator[Consumers]:
    """The registration and notifications consumers on fresh, migrated databases."""
    async with platform.service_databases(
        infrastructure, unique, ("registration", "notifications")
    ) as dsns:
        await platform.migrated(dsns["registration"], "registration")
        await platform.migrated(dsns["notifications"], "notifications")
        pools = {
            name: await create_pool(DatabaseSettings(url=dsn, pool_max_size=3))
            for name, dsn in dsns.items()
        }
        try:
            settings = platform.registration_settings(infrastructure, dsns["registration"], prefix)
            reg_outbox = Outbox(producer="registration", topic_prefix=prefix)
            metrics = RegistrationMetrics()
            decide = submissions_runner(
                pool=pools["registration"], outbox=reg_outbox, settings=settings, metrics=metrics
            )
            catalog = catalog_runner(
                pool=pools["registration"], outbox=reg_outbox, settings=settings, metrics=metrics
            )
            plan = notifications_consumer(
                name=f"{prefix}notifications",
                pool=pools["notifications"],
                outbox=Outbox(producer="notifications", topic_prefix=prefix),
                clock=SystemClock(),
                rules=PlanningRules(invitation_session_kinds=("webinar", "speaking_engagement")),
            )
            yield Consumers(
                prefix=prefix,
                dsns=dsns,
                by_topic={
                    CATALOG_CAMPAIGNS.name: [catalog, plan],
                    CATALOG_SESSIONS.name: [catalog, plan],
                    REGISTRATION_SUBMISSIONS.name: [decide],
                    REGISTRATION_OUTCOMES.name: [plan],
                    REGISTRATION_REGISTRANTS.name: [plan],
                },
            )
        finally:
            for pool in pools.values():
                await pool.close()
