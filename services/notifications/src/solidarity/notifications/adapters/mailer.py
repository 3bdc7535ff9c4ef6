"""Email over SMTP with aiosmtplib: a small pool of open connections, outcomes not exceptions."""

from __future__ import annotations

import asyncio
import contextlib

import aiosmtplib

from solidarity.notifications.adapters.mime import UnencodableHeaderError, ascii_address
from solidarity.notifications.domain.outcomes import SendOutcome, smtp_outcome
from solidarity.shared.logging import get_logger

log = get_logger(__name__)


class SmtpMailer:
    """Sends one message per call over at most `pool_size` connections kept open between calls.

    Outcomes: a 4xx reply or a connection that fails before the message data is a retry; a
    5xx reply is permanent; a connection lost or timed out while the message data was being
    sent or acknowledged is `unknown` (the server may have it), never retried blindly.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        pool_size: int = 4,
        timeout_s: float = 30.0,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        start_tls: bool | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self._options = {
            "hostname": host,
            "port": port,
            "timeout": timeout_s,
            "username": username,
            "password": password,
            "use_tls": use_tls,
            "start_tls": start_tls,
            "local_hostname": local_hostname,
        }
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[aiosmtplib.SMTP] = []
        self.connections_opened = 0

    async def _connection(self) -> tuple[aiosmtplib.SMTP, bool]:
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client, True
        client = aiosmtplib.SMTP(**self._options)  # type: ignore[arg-type]
        await client.connect()
        self.connections_opened += 1
        return client, False

    @staticmethod
    def _discard(client: aiosmtplib.SMTP) -> None:
        with contextlib.suppress(Exception):
            client.close()

    async def send(self, data: bytes, *, sender: str, recipient: str) -> SendOutcome:
        """Send `data` (the whole message, CRLF line ends) to one recipient."""
        try:
            recipient = ascii_address(recipient)  # no SMTPUTF8: an IDN domain goes as punycode
        except UnencodableHeaderError:
            return SendOutcome.permanent("unencodable_message")
        async with self._slots:
            for attempt in (1, 2):
                try:
                    client, reused = await self._connection()
                except aiosmtplib.SMTPResponseException as exc:
                    return smtp_outcome(exc.code)
                except (aiosmtplib.SMTPException, OSError):
                    return SendOutcome.retry("smtp_connect")
                in_data = False
                try:
                    await client.mail(sender)
                    await client.rcpt(recipient)
                    in_data = True
                    await client.data(data)
                except aiosmtplib.SMTPResponseException as exc:
                    # A refused command leaves the transaction half-open: start clean next time.
                    self._discard(client)
                    return smtp_outcome(exc.code)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    self._discard(client)
                    if in_data:
                        return SendOutcome.unknown(f"smtp_lost_in_data_{type(exc).__name__}")
                    if reused and attempt == 1:
                        continue  # the server closed an idle pooled connection: one fresh try
                    return SendOutcome.retry("smtp_connection_lost")
                self._idle.append(client)
                return SendOutcome.sent()
        return SendOutcome.retry("smtp_connection_lost")

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.quit(), timeout=2)
            self._discard(client)
