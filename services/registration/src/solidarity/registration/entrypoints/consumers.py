"""Batch handlers given to the consumer runners: parse, build the command, call the handler.

The runner has already parsed the envelopes, dead-lettered what could not be parsed, and
claimed the rest in the inbox, inside the transaction it hands over; the handlers run in
that transaction as a savepoint, so one batch is one commit. Metrics are counted with the
kit's `on_commit`, so only a committed attempt counts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from solidarity.registration.adapters.metrics import RegistrationMetrics
from solidarity.registration.adapters.unit_of_work import SqlUnitOfWork
from solidarity.registration.domain.partners import (
    PARTNER_HEADER,
    SIGNATURE_HEADER,
    signature_matches,
    signing_secret,
)
from solidarity.registration.service_layer.catalog import apply_catalog_events
from solidarity.registration.service_layer.commands import (
    ApplyCatalogEvents,
    DecideSubmissions,
    ReceivedCatalogEvent,
    ReceivedSubmission,
)
from solidarity.registration.service_layer.decisions import decide_submissions
from solidarity.registration.service_layer.unit_of_work import ConcurrentDecisionError
from solidarity.shared.contracts.envelope import EventHeaders, headers_to_dict, utc_now
from solidarity.shared.contracts.events.common import RejectionReason
from solidarity.shared.contracts.events.registration import (
    RegistrationSubmittedV1,
    SessionRegistrationRejectedV1,
)
from solidarity.shared.db.pool import Connection
from solidarity.shared.logging import get_logger
from solidarity.shared.messaging.consumer import (
    DlqHeaders,
    InboundMessage,
    TransientError,
    on_commit,
)
from solidarity.shared.messaging.outbox import Outbox, OutboxMessage

log = get_logger(__name__)

_ANSWER_NAMESPACE = uuid.UUID("0b7f3f0e-3c59-4b8e-9a55-3b0d7c1e2f41")


class SubmissionsHandler:
    """Decides each batch of `registration.submissions.v1` in the runner's transaction."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        master_key: bytes | None,
        metrics: RegistrationMetrics,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._outbox = outbox
        self._master_key = master_key
        self._metrics = metrics
        self._clock = clock

    async def __call__(self, conn: Connection, messages: Sequence[InboundMessage]) -> None:
        started = time.perf_counter()
        command = DecideSubmissions(
            tuple(
                ReceivedSubmission(
                    event_id=m.event_id,
                    correlation_id=m.envelope.correlation_id,
                    submission=m.event,
                    raw_envelope=m.raw_value,
                    signature=m.headers.get(SIGNATURE_HEADER),
                    signed_partner=m.headers.get(PARTNER_HEADER),
                )
                for m in messages
                if isinstance(m.event, RegistrationSubmittedV1)
            )
        )
        uow = SqlUnitOfWork(outbox=self._outbox, connection=conn)
        try:
            report = await decide_submissions(
                command, uow, master_key=self._master_key, clock=self._clock
            )
        except ConcurrentDecisionError as exc:
            # Another instance decided some of these at the same moment (a rebalance): the
            # whole batch is retried, and then sees and answers those as repeats.
            raise TransientError(f"concurrent decision on {exc}") from exc
        elapsed = time.perf_counter() - started
        metrics = self._metrics

        def count() -> None:
            for source, value in report.by_source.items():
                metrics.submissions.labels(source).inc(value)
            metrics.count_outcomes(report.outcomes)
            for reason, value in report.rejections.items():
                metrics.rejections.labels(reason).inc(value)
            metrics.batch_seconds.observe(elapsed)

        on_commit(count)
        first = messages[0] if messages else None
        log.info(
            "submissions_decided",
            size=len(messages),
            topic=first.topic if first else None,
            partition=first.partition if first else None,
            offset=first.offset if first else None,
            outcomes=dict(report.outcomes),
            rejections=dict(report.rejections),
            seconds=round(elapsed, 4),
        )


class CatalogHandler:
    """Applies catalog events to the read model (and what they do to seats)."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        metrics: RegistrationMetrics,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._outbox = outbox
        self._metrics = metrics
        self._clock = clock

    async def __call__(self, conn: Connection, messages: Sequence[InboundMessage]) -> None:
        command = ApplyCatalogEvents(
            tuple(
                ReceivedCatalogEvent(
                    event_id=m.event_id, correlation_id=m.envelope.correlation_id, event=m.event
                )
                for m in messages
            )
        )
        uow = SqlUnitOfWork(outbox=self._outbox, connection=conn)
        report = await apply_catalog_events(command, uow, clock=self._clock)
        published = [event.event_type for event, _ in uow.committed]
        metrics = self._metrics
        on_commit(lambda: metrics.count_events(published))
        log.info(
            "catalog_events_applied",
            size=len(messages),
            applied=report.applied,
            stale=report.stale,
            published=len(published),
        )


class DeadLetterAnswerer:
    """The submissions consumer's `on_dead_letter` hook: a dead-lettered submission still gets
    an answer.

    The runner dead-letters a submission that is not a valid `RegistrationSubmittedV1`
    (say, without a role) before any handler sees it. When its partner id and submission id
    can still be read from the raw JSON, a `SessionRegistrationRejectedV1` goes out with it
    in the same transaction: `invalid_submission` when the partner's signature checks out,
    `invalid_signature` otherwise.
    """

    def __init__(
        self,
        *,
        outbox: Outbox,
        dlq_topic: str,
        master_key: bytes | None,
        metrics: RegistrationMetrics,
    ) -> None:
        self._outbox = outbox
        self._dlq_topic = dlq_topic
        self._master_key = master_key
        self._metrics = metrics

    async def __call__(self, conn: Connection, letter: OutboxMessage) -> list[OutboxMessage]:
        if letter.event_type != "DeadLetter" or letter.topic != self._dlq_topic:
            return []
        identity = _identity(letter.value)
        if identity is None:
            return []  # nobody to answer: it stays in the DLQ only
        partner_id, submission_id, correlation_id = identity
        headers = headers_to_dict(letter.headers)
        reason = RejectionReason.INVALID_SIGNATURE
        if await self._trusted(conn, letter, partner_id, headers):
            reason = RejectionReason.INVALID_SUBMISSION
        detail = headers.get(DlqHeaders.ERROR_MESSAGE, "")[:500]
        event = SessionRegistrationRejectedV1(
            partner_id=partner_id,
            submission_id=submission_id,
            reason=reason,
            detail=detail,
        )
        envelope = self._outbox.envelope(
            event,
            correlation_id=correlation_id,
            event_id=uuid.uuid5(_ANSWER_NAMESPACE, str(letter.event_id)),
        )
        log.info("dead_letter_answered", reason=reason.value, partner_id=str(partner_id))
        metrics, kind = self._metrics, reason.value
        on_commit(lambda: _count_rejection(metrics, kind))
        return [self._outbox.message(event, envelope)]

    async def _trusted(
        self,
        conn: Connection,
        letter: OutboxMessage,
        partner_id: uuid.UUID,
        headers: Mapping[str, str],
    ) -> bool:
        version = await conn.fetchval(
            "SELECT secret_version FROM partners WHERE partner_id = $1 AND disabled_at IS NULL",
            partner_id,
        )
        if version is None or self._master_key is None:
            return False
        if headers.get(PARTNER_HEADER) != str(partner_id):
            return False
        secret = signing_secret(self._master_key, partner_id, int(version))
        return signature_matches(secret, letter.value, headers.get(SIGNATURE_HEADER))


def _count_rejection(metrics: RegistrationMetrics, reason: str) -> None:
    metrics.outcomes.labels("rejected").inc()
    metrics.rejections.labels(reason).inc()


def _identity(raw: bytes) -> tuple[uuid.UUID, str, uuid.UUID | None] | None:
    """(partner id, submission id, correlation id) read from a raw envelope, if they are there."""
    try:
        data = json.loads(raw)
        payload = data["payload"]
        partner_id = uuid.UUID(str(payload["partner_id"]))
        submission_id = payload["submission_id"]
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None  # unreadable: the dead letter goes out unanswered
    if not isinstance(submission_id, str) or not 1 <= len(submission_id) <= 200:
        return None
    correlation: uuid.UUID | None = None
    try:
        correlation = uuid.UUID(str(data.get(EventHeaders.CORRELATION_ID)))
    except ValueError:
        correlation = None
    return partner_id, submission_id, correlation
