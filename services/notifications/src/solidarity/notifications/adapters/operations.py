"""Operator commands' SQL: partner webhook endpoints and the delivery ledger."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from solidarity.shared.db.pool import Connection


async def add_webhook(conn: Connection, partner_id: uuid.UUID, url: str) -> str:
    """Turn webhooks on for a partner with a new signing secret; returns the secret."""
    secret = secrets.token_urlsafe(32)
    await conn.execute(
        """
        INSERT INTO webhook_endpoints (partner_id, url, signing_secret) VALUES ($1, $2, $3)
        ON CONFLICT (partner_id) DO UPDATE SET url = EXCLUDED.url,
            signing_secret = EXCLUDED.signing_secret, active = true
        """,
        partner_id,
        url,
        secret,
    )
    return secret


async def list_webhooks(conn: Connection) -> list[Any]:
    """The endpoints, never their secrets."""
    return list(
        await conn.fetch(
            "SELECT partner_id, url, active, created_at FROM webhook_endpoints ORDER BY created_at"
        )
    )


async def disable_webhook(conn: Connection, partner_id: uuid.UUID) -> bool:
    result = await conn.execute(
        "UPDATE webhook_endpoints SET active = false WHERE partner_id = $1", partner_id
    )
    return result.endswith(" 1")


async def delivery_stats(conn: Connection) -> list[Any]:
    return list(
        await conn.fetch(
            "SELECT kind, state, count(*) AS n FROM deliveries GROUP BY kind, state "
            "ORDER BY kind, state"
        )
    )


async def in_doubt(conn: Connection) -> list[Any]:
    return list(
        await conn.fetch(
            "SELECT delivery_id, kind, subject_ref, attempts, claimed_at, last_error "
            "FROM deliveries WHERE state = 'unknown' ORDER BY claimed_at"
        )
    )


async def resolve(conn: Connection, delivery_id: uuid.UUID, *, arrived: bool) -> bool:
    """Settle a delivery in doubt by hand: it arrived (sent), or it did not (send it again)."""
    sql = (
        "UPDATE deliveries SET state = 'sent', finished_at = now() "
        "WHERE delivery_id = $1 AND state = 'unknown'"
        if arrived
        else "UPDATE deliveries SET state = 'pending', due_at = now(), claimed_at = NULL "
        "WHERE delivery_id = $1 AND state = 'unknown'"
    )
    return (await conn.execute(sql, delivery_id)).endswith(" 1")
