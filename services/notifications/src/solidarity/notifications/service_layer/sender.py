"""The sender: claims due deliveries, renders and sends them concurrently, records the outcomes.

A claimed delivery is `sending` in a committed transaction before any byte goes to the SMTP
server; once every send of the batch has an outcome, the outcomes and their events
(`NotificationSentV1` or `NotificationFailedV1`) are written in one transaction. A crash in
between leaves `sending`, which the reconciler turns into `unknown` and resolves without
sending blindly again.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email

from solidarity.notifications.domain.model import Delivery, message_id, why_not_send
from solidarity.notifications.domain.outcomes import SendOutcome
from solidarity.notifications.domain.schedule import RetryPolicy
from solidarity.notifications.service_layer.ports import (
    ClaimedWork,
    Clock,
    DeliveryLedger,
    InDoubtResolver,
    Mailer,
    Renderer,
    Settlement,
    WebhookPoster,
)
from solidarity.shared.contracts.events.notifications import (
    NotificationFailedV1,
    NotificationSentV1,
)
from solidarity.shared.logging import get_logger

log = get_logger(__name__)


@dataclass
class DeliveryStats:
    """Running totals for metrics (kind, channel[, reason]) and tests."""

    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    retried: Counter[tuple[str, str]] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    reconciled: Counter[str] = field(default_factory=Counter)


def sent_event(delivery: Delivery, *, at: datetime) -> NotificationSentV1:
    return NotificationSentV1(
        delivery_id=delivery.delivery_id,
        recipient_id=delivery.recipient_id,
        kind=cast(Any, delivery.kind.value),
        channel=cast(Any, delivery.channel),
        subject_ref=delivery.subject_ref,
        sent_at=at,
        attempts=max(1, delivery.attempts),
    )


def failed_event(
    delivery: Delivery, *, at: datetime, reason: str, permanent: bool
) -> NotificationFailedV1:
    return NotificationFailedV1(
        delivery_id=delivery.delivery_id,
        recipient_id=delivery.recipient_id,
        kind=cast(Any, delivery.kind.value),
        channel=cast(Any, delivery.channel),
        subject_ref=delivery.subject_ref,
        failed_at=at,
        attempts=max(1, delivery.attempts),
        permanent=permanent,
        reason=reason[:200],
    )


class DeliverySender:
    """Any number of instances can run this: claims are `FOR UPDATE SKIP LOCKED`."""

    def __init__(
        self,
        *,
        ledger: DeliveryLedger,
        mailer: Mailer,
        webhooks: WebhookPoster | None,
        renderer: Renderer,
        clock: Clock,
        sender_address: str,
        retry: RetryPolicy | None = None,
        batch_size: int = 50,
        poll_interval_s: float = 0.5,
        stats: DeliveryStats | None = None,
    ) -> None:
        self._ledger = ledger
        self._mailer = mailer
        self._webhooks = webhooks
        self._renderer = renderer
        self._clock = clock
        self._sender_address = sender_address
        self._retry = retry or RetryPolicy()
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self.stats = stats or DeliveryStats()

    async def send_once(self) -> int:
        """Claim one batch of due deliveries, send them, and settle the batch at once."""
        work = await self._ledger.claim_due(now=self._clock.now(), limit=self._batch_size)
        if not work:
            return 0
        outcomes = await asyncio.gather(*(self._attempt_or_none(item) for item in work))
        now = self._clock.now()
        settlements = [
            self._settlement(item.delivery, outcome, now=now)
            for item, outcome in zip(work, outcomes, strict=True)
            if outcome is not None
        ]
        try:
            settled = await self._ledger.settle(settlements, now=now)
        except Exception as exc:
            # Every row of the batch stays `sending`: after its lease the reconciler decides
            # whether it went, never a blind resend.
            log.error(
                "delivery_batch_settle_failed",
                count=len(settlements),
                error_type=type(exc).__name__,
            )
            return len(work)
        for settlement in settlements:
            if settlement.delivery.delivery_id in settled:
                self._count_and_log(settlement, now=now)
        return len(work)

    async def _attempt_or_none(self, work: ClaimedWork) -> SendOutcome | None:
        try:
            return await self._attempt(work)
        except Exception as exc:
            # The row stays `sending`: after its lease the reconciler decides whether it went,
            # never a blind resend. One bad delivery must not stop the others.
            log.error(
                "delivery_settle_failed",
                delivery_id=str(work.delivery.delivery_id),
                kind=work.delivery.kind.value,
                error_type=type(exc).__name__,
            )
            return None

    async def _attempt(self, work: ClaimedWork) -> SendOutcome:
        delivery = work.delivery
        now = self._clock.now()
        if delivery.channel == "webhook":
            if work.webhook is None or self._webhooks is None:
                return SendOutcome.dropped("no_webhook_endpoint")
            body = json.dumps(delivery.payload or {}, separators=(",", ":")).encode()
            return await self._webhooks.post(
                work.webhook, event_id=delivery.subject_ref, body=body, now=now
            )
        context = work.context
        if context is None:
            return SendOutcome.dropped("recipient_gone")
        reason = why_not_send(context, now=now)
        if reason is not None:
            return SendOutcome.dropped(reason)
        try:
            address = validate_email(context.recipient.email, check_deliverability=False).normalized
        except EmailNotValidError:
            return SendOutcome.permanent("invalid_address")
        if not context.recipient.email.rpartition("@")[0].isascii():
            # SMTPUTF8 is not offered; a domain outside ASCII goes as punycode (the mailer).
            return SendOutcome.permanent("unencodable_message")
        try:
            rendered = self._renderer.render(context, now=now)
        except Exception as exc:  # a template bug must not stop the queue
            log.error(
                "delivery_render_failed",
                delivery_id=str(delivery.delivery_id),
                kind=delivery.kind.value,
                error_type=type(exc).__name__,
            )
            return SendOutcome.permanent("render_error")
        return await self._mailer.send(
            rendered.data, sender=self._sender_address, recipient=address
        )

    def _settlement(self, delivery: Delivery, outcome: SendOutcome, *, now: datetime) -> Settlement:
        if outcome.kind == "dropped":
            return Settlement(delivery, "dropped", reason=outcome.reason)
        if outcome.kind == "sent":
            return Settlement(delivery, "sent", event=sent_event(delivery, at=now))
        if outcome.kind == "retry" and not self._retry.exhausted(delivery.attempts):
            due_at = now + self._retry.delay(delivery.attempts)
            return Settlement(delivery, "pending", reason=outcome.reason, due_at=due_at)
        if outcome.kind == "unknown":
            return Settlement(delivery, "unknown", reason=outcome.reason)
        permanent = outcome.kind == "permanent"
        reason = outcome.reason if permanent else f"{outcome.reason}_retries_exhausted"
        return Settlement(
            delivery,
            "failed",
            reason=reason,
            event=failed_event(delivery, at=now, reason=reason, permanent=permanent),
        )

    def _count_and_log(self, settlement: Settlement, *, now: datetime) -> None:
        delivery = settlement.delivery
        kind, channel, reason = delivery.kind.value, delivery.channel, settlement.reason or ""
        fields = {"delivery_id": str(delivery.delivery_id), "kind": kind, "channel": channel}
        if settlement.state == "dropped":
            self.stats.dropped[reason] += 1
            log.info("delivery_dropped", reason=reason, **fields)
        elif settlement.state == "sent":
            self.stats.sent[(kind, channel)] += 1
            log.info("delivery_sent", attempts=delivery.attempts, **fields)
        elif settlement.state == "pending":
            assert settlement.due_at is not None
            self.stats.retried[(kind, channel)] += 1
            log.info(
                "delivery_retry_scheduled",
                reason=reason,
                attempts=delivery.attempts,
                retry_in_s=round((settlement.due_at - now).total_seconds(), 3),
                **fields,
            )
        elif settlement.state == "unknown":
            self.stats.unknown[kind] += 1
            log.warning("delivery_in_doubt", reason=reason, **fields)
        else:
            event = settlement.event
            permanent = isinstance(event, NotificationFailedV1) and event.permanent
            self.stats.failed[(kind, channel, "permanent" if permanent else "exhausted")] += 1
            log.warning("delivery_failed", reason=reason, attempts=delivery.attempts, **fields)

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop`; database trouble is retried with backoff."""
        backoff = 0.1
        try:
            while not stop.is_set():
                try:
                    count = await self.send_once()
                    backoff = 0.1
                except Exception as exc:  # the loop outlives anything one pass meets
                    log.warning("sender_pass_failed", error_type=type(exc).__name__)
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                if count < self._batch_size:
                    await _sleep_or_stop(stop, self._poll_interval_s)
        finally:
            await self._mailer.close()


class InDoubtReconciler:
    """Settles deliveries whose outcome nobody knows: a sender that died mid-send (its lease
    ran out) or a connection lost after the message data. Asks the resolver, then records
    `sent` (and its event) or puts the delivery back in the queue. Never resends blindly."""

    def __init__(
        self,
        *,
        ledger: DeliveryLedger,
        resolver: InDoubtResolver,
        clock: Clock,
        domain: str,
        lease: timedelta = timedelta(minutes=5),
        interval_s: float = 30.0,
        batch_size: int = 500,
        stats: DeliveryStats | None = None,
    ) -> None:
        self._ledger = ledger
        self._resolver = resolver
        self._clock = clock
        self._domain = domain
        self._lease = lease
        self._interval_s = interval_s
        self._batch_size = batch_size
        self.stats = stats or DeliveryStats()

    async def reconcile_once(self) -> dict[str, int]:
        now = self._clock.now()
        expired = await self._ledger.mark_stuck_unknown(claimed_before=now - self._lease)
        if expired:
            log.warning("deliveries_lease_expired", count=expired)
        result = {"expired": expired, "confirmed": 0, "requeued": 0, "undecided": 0}
        rows = await self._ledger.in_doubt(limit=self._batch_size)
        if not rows:
            return result
        # A webhook is safe to repeat: the partner drops a repeated event id.
        for row in [r for r in rows if r.channel == "webhook"]:
            if await self._ledger.requeue(row, now=now):
                result["requeued"] += 1
        mail = {
            message_id(r.delivery_id, domain=self._domain): r for r in rows if r.channel == "email"
        }
        answer = await self._resolver.delivered(list(mail)) if mail else {}
        if answer is None:
            result["undecided"] = len(mail)
            return result
        for mid, row in mail.items():
            if answer.get(mid):
                if await self._ledger.record_sent(row, now=now, event=sent_event(row, at=now)):
                    result["confirmed"] += 1
                    self.stats.sent[(row.kind.value, row.channel)] += 1
            elif await self._ledger.requeue(row, now=now):
                result["requeued"] += 1
        self.stats.reconciled["confirmed"] += result["confirmed"]
        self.stats.reconciled["requeued"] += result["requeued"]
        log.info("deliveries_reconciled", resolver=self._resolver.name, **result)
        return result

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.reconcile_once()
            except Exception as exc:  # the loop outlives anything one pass meets
                log.warning("reconcile_failed", error_type=type(exc).__name__)
            await _sleep_or_stop(stop, self._interval_s)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
