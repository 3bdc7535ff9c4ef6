"""Signed webhooks to partners: HMAC-SHA256 over timestamp and body, a stable event id header."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

import httpx

from solidarity.notifications.domain.outcomes import SendOutcome, http_outcome
from solidarity.notifications.service_layer.ports import WebhookTarget

EVENT_ID_HEADER = "x-solidarity-event-id"
TIMESTAMP_HEADER = "x-solidarity-timestamp"
SIGNATURE_HEADER = "x-solidarity-signature"


def webhook_signature(secret: str, *, timestamp: int, body: bytes) -> str:
    """`v1=` + hex HMAC-SHA256 of `<timestamp>.<body>`; receivers reject stale timestamps."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


class HttpWebhookPoster:
    """Posts one signed webhook; the event id stays the same on every retry, so the partner
    can drop a repeat."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def post(
        self, target: WebhookTarget, *, event_id: str, body: bytes, now: datetime
    ) -> SendOutcome:
        timestamp = int(now.timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": "solidarity-notifications/1",
            EVENT_ID_HEADER: event_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: webhook_signature(target.secret, timestamp=timestamp, body=body),
        }
        try:
            response = await self._client.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return SendOutcome.retry(f"http_{type(exc).__name__}")
        return http_outcome(response.status_code)
