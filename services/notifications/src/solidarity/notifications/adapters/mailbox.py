"""Resolving mail in doubt: ask the development mail sink, or apply a documented policy."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from solidarity.shared.logging import get_logger

log = get_logger(__name__)


class MailSinkMailbox:
    """Asks the development mail sink (`GET /api/messages`) which Message-IDs it holds."""

    name = "mailbox"

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")

    async def delivered(self, message_ids: Sequence[str]) -> dict[str, bool] | None:
        try:
            response = await self._client.get(f"{self._base_url}/api/messages")
            response.raise_for_status()
            held = {str(m.get("message_id") or "").strip() for m in response.json()}
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.warning("mailbox_unreachable", error_type=type(exc).__name__)
            return None
        return {mid: mid in held for mid in message_ids}


class AssumeDelivered:
    """Production policy: a connection lost after the whole message was written almost always
    means the server took it (RFC 1047). Count it as sent; never send it again."""

    name = "assume_delivered"

    async def delivered(self, message_ids: Sequence[str]) -> dict[str, bool] | None:
        return dict.fromkeys(message_ids, True)


class HoldForOperator:
    """Keep deliveries in doubt as `unknown` for a person to decide (`notifications deliveries`)."""

    name = "hold"

    async def delivered(self, message_ids: Sequence[str]) -> dict[str, bool] | None:
        return None
