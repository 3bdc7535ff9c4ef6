"""The inbox: a consumer claims event ids in the same transaction as their effect."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from solidarity.shared.db.pool import Connection


async def claim(
    conn: Connection, *, consumer: str, event_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Claim event ids for this consumer; returns those not applied before.

    Must run inside the transaction that applies their effects: if that rolls back, the
    claims roll back with it, and a redelivery is applied as if for the first time.
    """
    if not event_ids:
        return set()
    if not conn.is_in_transaction():
        raise RuntimeError("inbox claims belong in the transaction of the effect")
    rows = await conn.fetch(
        """
        INSERT INTO inbox (consumer, event_id)
        SELECT $1, id FROM unnest($2::uuid[]) AS id
        ON CONFLICT DO NOTHING
        RETURNING event_id
        """,
        consumer,
        list(dict.fromkeys(event_ids)),
    )
    return {r["event_id"] for r in rows}


async def already_applied(conn: Connection, *, consumer: str, event_id: uuid.UUID) -> bool:
    value = await conn.fetchval(
        "SELECT 1 FROM inbox WHERE consumer = $1 AND event_id = $2", consumer, event_id
    )
    return value is not None
