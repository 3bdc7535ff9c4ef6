"""The batch handler given to ConsumerRunner: parse (done by the runner), bind the log, apply.

One consumer group reads the four topics. Order still holds where it matters (per partition:
a session's events, a registrant's outcomes), and one group joins once: on the embedded
broker each group join takes about five seconds and FastStream starts subscribers in turn.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import structlog

from solidarity.notifications.adapters.clock import Clock
from solidarity.notifications.adapters.repository import ConnectionUnitOfWork
from solidarity.notifications.service_layer import handlers
from solidarity.notifications.service_layer.handlers import PlanningRules
from solidarity.shared.db.pool import Connection
from solidarity.shared.messaging.consumer import ConsumerRunner, InboundMessage
from solidarity.shared.messaging.outbox import Outbox

_CATALOG = frozenset(handlers.CATALOG_EVENTS)
_OUTCOMES = frozenset(handlers.OUTCOME_EVENTS)
_REGISTRANTS = frozenset(handlers.REGISTRANT_EVENTS)


def notifications_consumer(
    *, name: str, pool: asyncpg.Pool, outbox: Outbox, clock: Clock, rules: PlanningRules
) -> ConsumerRunner:
    """Catalog and registration events: read models kept, deliveries planned, nothing sent."""

    async def handle(conn: Connection, messages: Sequence[InboundMessage]) -> None:
        uow = ConnectionUnitOfWork(conn)
        await uow.hold(handlers.planning_locks([m.event for m in messages]))
        now = clock.now()
        for message in messages:
            event = message.event
            with structlog.contextvars.bound_contextvars(
                event_id=str(message.event_id),
                correlation_id=str(message.envelope.correlation_id),
                event_type=message.envelope.event_type,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            ):
                if type(event) in _CATALOG:
                    await handlers.apply_catalog_event(event, uow, now=now, rules=rules)
                elif type(event) in _OUTCOMES:
                    await handlers.apply_outcome(message.envelope, event, uow, now=now, rules=rules)
                elif type(event) in _REGISTRANTS:
                    await handlers.apply_registrant_event(event, uow)

    return ConsumerRunner(
        name=name,
        pool=pool,
        outbox=outbox,
        handler=handle,
        handles=(*_CATALOG, *_OUTCOMES, *_REGISTRANTS),
    )
