"""The composition root: `create_app(settings)` builds the service; `wire` connects its parts."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from solidarity.notifications.adapters.clock import Clock, SystemClock
from solidarity.notifications.adapters.mailbox import (
    AssumeDelivered,
    HoldForOperator,
    MailSinkMailbox,
)
from solidarity.notifications.adapters.mailer import SmtpMailer
from solidarity.notifications.adapters.rendering import MessageRenderer, Sender
from solidarity.notifications.adapters.repository import SqlDeliveryLedger
from solidarity.notifications.adapters.tokens import TokenSigner
from solidarity.notifications.adapters.webhooks import HttpWebhookPoster
from solidarity.notifications.domain.schedule import RetryPolicy
from solidarity.notifications.entrypoints import http
from solidarity.notifications.entrypoints.consumers import notifications_consumer
from solidarity.notifications.service import SERVICE
from solidarity.notifications.service_layer.handlers import PlanningRules
from solidarity.notifications.service_layer.ports import InDoubtResolver, Mailer
from solidarity.notifications.service_layer.sender import (
    DeliverySender,
    DeliveryStats,
    InDoubtReconciler,
)
from solidarity.notifications.settings import NotificationsSettings
from solidarity.shared.contracts.topics import (
    CATALOG_CAMPAIGNS,
    CATALOG_SESSIONS,
    REGISTRATION_OUTCOMES,
    REGISTRATION_REGISTRANTS,
)
from solidarity.shared.logging import get_logger
from solidarity.shared.runtime import ServiceRuntime, create_service_app

log = get_logger(__name__)

DESCRIPTION = (
    "Sends sign-up welcomes, webinar invitations, confirmations with calendar invites, "
    "reminders at the right local time and updates, exactly once per (recipient, kind, subject)."
)


class DeliveryCollector(Collector):
    """Sent, failed, retried, in doubt, dropped; and the queue by state, read at scrape time."""

    def __init__(self, stats: DeliveryStats, depth: dict[str, int]) -> None:
        self._stats = stats
        self._depth = depth

    def collect(self) -> Any:
        prefix = "solidarity_notifications"
        sent = CounterMetricFamily(f"{prefix}_sent", "Deliveries sent", labels=["kind", "channel"])
        for (kind, channel), value in sorted(self._stats.sent.items()):
            sent.add_metric([kind, channel], value)
        yield sent
        failed = CounterMetricFamily(
            f"{prefix}_failed",
            "Deliveries failed (permanent: 5xx or refused; exhausted: out of retries)",
            labels=["kind", "channel", "why"],
        )
        for (kind, channel, why), value in sorted(self._stats.failed.items()):
            failed.add_metric([kind, channel, why], value)
        yield failed
        retried = CounterMetricFamily(
            f"{prefix}_retried",
            "Retries scheduled after 4xx or connection trouble",
            labels=["kind", "channel"],
        )
        for (kind, channel), value in sorted(self._stats.retried.items()):
            retried.add_metric([kind, channel], value)
        yield retried
        unknown = CounterMetricFamily(
            f"{prefix}_in_doubt",
            "Sends whose outcome was unknown (lost after data)",
            labels=["kind"],
        )
        for kind, value in sorted(self._stats.unknown.items()):
            unknown.add_metric([kind], value)
        yield unknown
        dropped = CounterMetricFamily(
            f"{prefix}_dropped", "Deliveries no longer wanted when due", labels=["reason"]
        )
        for reason, value in sorted(self._stats.dropped.items()):
            dropped.add_metric([reason], value)
        yield dropped
        reconciled = CounterMetricFamily(
            f"{prefix}_reconciled", "Deliveries in doubt settled", labels=["result"]
        )
        for result, value in sorted(self._stats.reconciled.items()):
            reconciled.add_metric([result], value)
        yield reconciled
        depth = GaugeMetricFamily(
            f"{prefix}_queue_depth",
            "Deliveries by queue state (due: ready now; scheduled: later or awaiting contact)",
            labels=["state"],
        )
        for state in ("due", "scheduled", "sending", "unknown"):
            depth.add_metric([state], float(self._depth.get(state, 0)))
        yield depth


def _resolver(settings: NotificationsSettings, client: httpx.AsyncClient) -> InDoubtResolver:
    if settings.in_doubt_policy == "mailbox" and settings.mailbox_api_url:
        return MailSinkMailbox(client, settings.mailbox_api_url)
    if settings.in_doubt_policy == "hold":
        return HoldForOperator()
    return AssumeDelivered()


def create_app(
    settings: NotificationsSettings,
    *,
    clock: Clock | None = None,
    mailer: Mailer | None = None,
    resolver: InDoubtResolver | None = None,
) -> FastAPI:
    """The notifications service; nothing connects until the lifespan starts."""
    clock = clock or SystemClock()
    signer = TokenSigner(settings.signing_key())
    stats = DeliveryStats()
    depth: dict[str, int] = {}
    renderer = MessageRenderer(
        signer=signer,
        public_base_url=settings.public_base_url,
        sender=Sender(
            address=settings.mail_from_address,
            name=settings.mail_from_name,
            discreet_name=settings.mail_discreet_from_name,
        ),
        domain=settings.message_id_domain,
    )
    rules = PlanningRules(invitation_session_kinds=tuple(settings.invitation_session_kinds))

    async def wire(runtime: ServiceRuntime) -> None:
        prefix = settings.kafka.topic_prefix
        pool, outbox = runtime.pool, runtime.outbox
        runtime.consumer(
            notifications_consumer(
                name=f"{prefix}notifications", pool=pool, outbox=outbox, clock=clock, rules=rules
            ),
            CATALOG_CAMPAIGNS.full_name(prefix),
            CATALOG_SESSIONS.full_name(prefix),
            REGISTRATION_OUTCOMES.full_name(prefix),
            REGISTRATION_REGISTRANTS.full_name(prefix),
            description="Catalog and registration events: read models and planned deliveries.",
        )
        # Closed by the runtime when the service stops (or at once, for the AsyncAPI document).
        client = await runtime.resources.enter_async_context(
            httpx.AsyncClient(timeout=settings.webhook_timeout_s)
        )
        ledger = SqlDeliveryLedger(runtime.pool, runtime.outbox)
        sender = DeliverySender(
            ledger=ledger,
            mailer=mailer
            or SmtpMailer(
                host=settings.smtp_host,
                port=settings.smtp_port,
                pool_size=settings.smtp_pool_size,
                timeout_s=settings.smtp_timeout_s,
                username=settings.smtp_username,
                password=(
                    settings.smtp_password.get_secret_value() if settings.smtp_password else None
                ),
                use_tls=settings.smtp_use_tls,
                start_tls=settings.smtp_start_tls,
            ),
            webhooks=HttpWebhookPoster(client),
            renderer=renderer,
            clock=clock,
            sender_address=settings.mail_from_address,
            retry=RetryPolicy(
                base_s=settings.retry_base_s,
                max_s=settings.retry_max_s,
                max_attempts=settings.retry_max_attempts,
                jitter=settings.retry_jitter,
            ),
            batch_size=settings.sender_batch_size,
            poll_interval_s=settings.sender_poll_interval_s,
            stats=stats,
        )
        reconciler = InDoubtReconciler(
            ledger=ledger,
            resolver=resolver or _resolver(settings, client),
            clock=clock,
            domain=settings.message_id_domain,
            lease=timedelta(seconds=settings.sending_lease_s),
            interval_s=settings.reconcile_interval_s,
            stats=stats,
        )

        async def observe_queue(stop: asyncio.Event) -> None:
            while not stop.is_set():
                try:
                    depth.update(await ledger.queue_depth(now=clock.now()))
                except Exception as exc:  # a metric; the loop outlives whatever a pass meets
                    log.warning("queue_depth_failed", error_type=type(exc).__name__)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=settings.metrics_refresh_s)
                except TimeoutError:
                    continue

        runtime.background.append(sender.run)
        runtime.background.append(reconciler.run)
        runtime.background.append(observe_queue)
        runtime.extras.update(sender=sender, reconciler=reconciler, ledger=ledger)

    app = create_service_app(
        spec=SERVICE,
        settings=settings,
        wire=wire,
        title="Solidarity notifications",
        description=DESCRIPTION,
    )
    app.state.preference_pages = http.PreferencePages(signer=signer, clock=clock)
    app.state.delivery_stats = stats
    app.include_router(http.router)
    app.state.metrics_registry.register(DeliveryCollector(stats, depth))
    return app
