"""The consumer runner: batches in, one database transaction, offsets committed after it.

For each batch it parses every record, sends what cannot be parsed to the topic's `.dlq`
(through the outbox, in the same transaction), claims the rest in the inbox, and hands the
new ones to the service's handler. Only after that transaction commits is the offset
committed. A transient failure (database or broker away) is retried with backoff, forever,
without committing; a handler error that is not transient is isolated to its message, which
goes to the DLQ while the others are applied.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from pydantic import ValidationError

from solidarity.shared.contracts.envelope import Envelope, Event, EventHeaders, headers_to_dict
from solidarity.shared.contracts.registry import EVENT_TYPES, UnknownEventTypeError, parse_event
from solidarity.shared.contracts.topics import DLQ_SUFFIX
from solidarity.shared.db.pool import TRANSIENT_DB_ERRORS, Connection
from solidarity.shared.logging import EMAIL_PATTERN, REDACTED, get_logger
from solidarity.shared.messaging import inbox
from solidarity.shared.messaging.kafka import TRANSIENT_KAFKA_ERRORS
from solidarity.shared.messaging.outbox import Outbox, OutboxMessage

log = get_logger(__name__)


class TransientError(Exception):
    """Raise from a handler when the failure will pass (a dependency is down): retry, never DLQ."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    *TRANSIENT_DB_ERRORS,
    *TRANSIENT_KAFKA_ERRORS,
)


class DlqHeaders:
    ERROR_TYPE = "dlq.error_type"
    ERROR_MESSAGE = "dlq.error_message"
    SOURCE_TOPIC = "dlq.source_topic"
    SOURCE_PARTITION = "dlq.source_partition"
    SOURCE_OFFSET = "dlq.source_offset"
    CONSUMER_GROUP = "dlq.consumer_group"
    FAILED_AT = "dlq.failed_at"


class RecordLike(Protocol):
    """What the runner needs of a Kafka record (aiokafka's ConsumerRecord fits)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A parsed, typed event with where it came from."""

    envelope: Envelope
    event: Event
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: Mapping[str, str]
    raw_value: bytes = b""
    raw_headers: tuple[tuple[str, bytes | None], ...] = ()

    @property
    def event_id(self) -> uuid.UUID:
        return self.envelope.event_id


BatchHandler = Callable[[Connection, Sequence[InboundMessage]], Awaitable[None]]

DeadLetterHook = Callable[[Connection, OutboxMessage], Awaitable[Sequence[OutboxMessage]]]
"""Called in the batch's transaction for each dead letter; returns messages to add with it
(the registration service answers a dead-lettered submission with a rejection)."""

_after_commit: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "solidarity_after_commit", default=None
)


def on_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the current batch's transaction has committed (never if it rolls
    back or is retried). For effects outside the database, such as metrics. Outside a
    consumer batch it runs at once."""
    pending = _after_commit.get()
    if pending is None:
        callback()
    else:
        pending.append(callback)


@dataclass
class BatchReport:
    received: int = 0
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    dead_lettered: int = 0
    retries: int = 0
    dead_letter_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass
class ConsumerStats:
    """Running totals, read by metrics and tests."""

    batches: int = 0
    received: int = 0
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    dead_lettered: int = 0
    retries: int = 0

    def add(self, report: BatchReport) -> None:
        self.batches += 1
        self.received += report.received
        self.applied += report.applied
        self.duplicates += report.duplicates
        self.ignored += report.ignored
        self.dead_lettered += report.dead_lettered
        self.retries += report.retries


def describe_error(exc: BaseException) -> str:
    """An error message safe to store and log: no input values, nothing shaped like an email."""
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        ]
        text = "; ".join(parts)
    else:
        text = str(exc)
    return EMAIL_PATTERN.sub(REDACTED, text)[:1000]


class ConsumerRunner:
    """Applies batches of one consumer group's records exactly once in effect."""

    def __init__(
        self,
        *,
        name: str,
        pool: asyncpg.Pool,
        outbox: Outbox,
        handler: BatchHandler,
        handles: Collection[type[Event]],
        max_backoff_s: float = 10.0,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        self.name = name
        self._pool = pool
        self._outbox = outbox
        self.handler = handler
        self._on_dead_letter = on_dead_letter
        self._handles = {(cls.event_type, cls.schema_version) for cls in handles}
        self._max_backoff_s = max_backoff_s
        self.stats = ConsumerStats()

    # Parsing ---------------------------------------------------------------------------------

    def _parse(
        self, record: RecordLike
    ) -> tuple[InboundMessage | None, OutboxMessage | None, bool]:
        """(message, dead letter, ignored) for one record.

        Never raises: the record is untrusted, and whatever reading it raises (not JSON,
        JSON nested too deep for the parser's recursion, bytes that are not UTF-8, a payload
        that fails its model, an odd header) dead-letters that record alone. A record that
        raised here would come back in the same batch forever and stop the consumer.
        """
        try:
            return self._parse_or_raise(record)
        except Exception as exc:  # RecursionError is one, like ValueError and TypeError
            return None, self.dead_letter(record, exc), False

    def _parse_or_raise(
        self, record: RecordLike
    ) -> tuple[InboundMessage | None, OutboxMessage | None, bool]:
        headers = headers_to_dict(record.headers)
        type_header = headers.get(EventHeaders.EVENT_TYPE)
        version_header = headers.get(EventHeaders.SCHEMA_VERSION, "")
        if (
            type_header is not None
            and version_header.isascii()  # int() refuses some digits, such as '²'
            and version_header.isdigit()
            and len(version_header) < 10
            and (type_header, int(version_header)) in EVENT_TYPES
            and (type_header, int(version_header)) not in self._handles
        ):
            return None, None, True  # a known event this consumer does not need: drop unparsed
        if record.value is None:
            raise ValueError("empty message body")
        envelope = Envelope.from_bytes(record.value)
        if (envelope.event_type, envelope.schema_version) not in self._handles:
            if (envelope.event_type, envelope.schema_version) in EVENT_TYPES:
                return None, None, True
            raise UnknownEventTypeError(
                f"unknown event type {envelope.event_type} v{envelope.schema_version}"
            )
        event = parse_event(envelope)
        message = InboundMessage(
            envelope=envelope,
            event=event,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            headers=headers,
            raw_value=record.value,
            raw_headers=tuple(record.headers or ()),
        )
        return message, None, False

    def dead_letter(self, record: RecordLike, exc: BaseException) -> OutboxMessage:
        """The original bytes and headers, plus why and where it failed, bound for `.dlq`."""
        extra = {
            DlqHeaders.ERROR_TYPE: type(exc).__name__,
            DlqHeaders.ERROR_MESSAGE: describe_error(exc),
            DlqHeaders.SOURCE_TOPIC: record.topic,
            DlqHeaders.SOURCE_PARTITION: str(record.partition),
            DlqHeaders.SOURCE_OFFSET: str(record.offset),
            DlqHeaders.CONSUMER_GROUP: self.name,
            DlqHeaders.FAILED_AT: datetime.now(UTC).isoformat(),
        }
        original = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq.")]
        return OutboxMessage(
            event_id=uuid.uuid4(),
            event_type="DeadLetter",
            topic=f"{record.topic}{DLQ_SUFFIX}",
            key=record.key,
            value=record.value or b"",
            headers=tuple(original) + tuple((k, v.encode()) for k, v in extra.items()),
        )

    # Applying ---------------------------------------------------------------------------------

    async def process_batch(self, records: Sequence[RecordLike]) -> BatchReport:
        """Apply a batch; returns only once its transaction has committed."""
        report = BatchReport(received=len(records))
        messages: list[InboundMessage] = []
        dead: list[OutboxMessage] = []
        for record in records:
            message, letter, ignored = self._parse(record)
            if message is not None:
                messages.append(message)
            elif letter is not None:
                dead.append(letter)
            elif ignored:
                report.ignored += 1
        backoff = 0.1
        while True:
            pending: list[Callable[[], None]] = []
            token = _after_commit.set(pending)
            try:
                await self._apply(messages, list(dead), report)
                break
            except Exception as exc:
                # What the handler raises for a message is settled inside `_apply` (that
                # message is dead-lettered); what escapes it is the batch's infrastructure (the
                # inbox, the outbox, the commit), never a message's fault: wait and try again.
                # A transient error is expected; anything else (asyncpg's `InternalClientError`
                # on a connection dropped mid-batch) is logged as an error, and retried too.
                report.retries += 1
                (log.warning if isinstance(exc, TRANSIENT_ERRORS) else log.error)(
                    "consumer_batch_retry",
                    consumer=self.name,
                    error_type=type(exc).__name__,
                    retry_in_s=backoff,
                    attempt=report.retries,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
            finally:
                _after_commit.reset(token)
        for callback in pending:
            try:
                callback()
            except Exception as exc:  # an after-commit effect must not undo a committed batch
                log.warning(
                    "after_commit_failed", consumer=self.name, error_type=type(exc).__name__
                )
        self.stats.add(report)
        if report.dead_lettered:
            log.warning("consumer_dead_lettered", consumer=self.name, count=report.dead_lettered)
        return report

    async def _apply(
        self,
        messages: list[InboundMessage],
        dead: list[OutboxMessage],
        report: BatchReport,
    ) -> None:
        # Attempt-local counts, so a retried attempt does not count twice.
        report.applied = report.duplicates = 0
        report.dead_lettered = len(dead)
        report.dead_letter_ids = [d.event_id for d in dead]
        async with self._pool.acquire() as conn, conn.transaction():
            fresh_ids = await inbox.claim(
                conn, consumer=self.name, event_ids=[m.event_id for m in messages]
            )
            seen: set[uuid.UUID] = set()
            todo: list[InboundMessage] = []
            for m in messages:
                if m.event_id in fresh_ids and m.event_id not in seen:
                    todo.append(m)
                    seen.add(m.event_id)
            report.duplicates = len(messages) - len(todo)
            if todo:
                try:
                    async with conn.transaction():  # a savepoint: the fast path for the batch
                        await self.handler(conn, todo)
                    report.applied = len(todo)
                except TRANSIENT_ERRORS:
                    raise
                except Exception:
                    # Some message breaks the handler: isolate it, apply the others.
                    log.warning("consumer_batch_isolating", consumer=self.name, size=len(todo))
                    await self._apply_one_by_one(conn, todo, dead, report)
            answers: list[OutboxMessage] = []
            for letter in dead:
                answers.extend(await self._answer(conn, letter))
            await self._outbox.add_messages(conn, [*dead, *answers])
            report.dead_lettered = len(dead)
            report.dead_letter_ids = [d.event_id for d in dead]

    async def _answer(self, conn: Connection, letter: OutboxMessage) -> Sequence[OutboxMessage]:
        """The service's answers to a dead letter. The hook reads the same untrusted bytes
        that failed: if it raises (anything but a transient error), the letter goes to the
        DLQ unanswered rather than the batch failing, and coming back, forever."""
        if self._on_dead_letter is None:
            return ()
        pending = _after_commit.get()
        mark = len(pending) if pending is not None else 0
        try:
            async with conn.transaction():  # a savepoint: a failing hook undoes only its own
                return await self._on_dead_letter(conn, letter)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # RecursionError included
            if pending is not None:
                del pending[mark:]  # its after-commit effects go with it
            log.warning(
                "dead_letter_hook_failed",
                consumer=self.name,
                event_id=str(letter.event_id),
                topic=letter.topic,
                error_type=type(exc).__name__,
            )
            return ()

    async def _apply_one_by_one(
        self,
        conn: Connection,
        todo: list[InboundMessage],
        dead: list[OutboxMessage],
        report: BatchReport,
    ) -> None:
        for message in todo:
            try:
                async with conn.transaction():
                    await self.handler(conn, [message])
                report.applied += 1
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                log.warning(
                    "consumer_message_failed",
                    consumer=self.name,
                    event_id=str(message.event_id),
                    event_type=message.envelope.event_type,
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    error_type=type(exc).__name__,
                )
                # Release its inbox claim so that a fixed, re-driven copy applies once.
                await conn.execute(
                    "DELETE FROM inbox WHERE consumer = $1 AND event_id = $2",
                    self.name,
                    message.event_id,
                )
                dead.append(self.dead_letter(_AsRecord(message), exc))

    # FastStream wiring -------------------------------------------------------------------------

    def subscribe(
        self,
        broker: KafkaBroker,
        *topics: str,
        max_records: int = 500,
        batch_timeout_ms: int = 100,
        description: str = "",
    ) -> Any:
        """Register this runner on a FastStream broker as a batch subscriber.

        The ack policy is MANUAL: the offset is committed only after `process_batch`
        returned, which is after its transaction committed. One handler runs at a time per
        consumer, so a commit never covers a batch still in flight.
        """
        subscriber = broker.subscriber(
            *topics,
            group_id=self.name,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=batch_timeout_ms,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_records,
            title=f"{self.name}:{'+'.join(topics)}",
            description=description or self.__doc__ or "",
        )
        runner = self

        async def handle(records: list[Any]) -> None:
            message: KafkaMessage = broker.context.get("message")
            try:
                await runner.process_batch(records)
            except BaseException:
                await message.nack()  # rewind: nothing after this batch counts as done
                raise
            await message.ack()

        # The AsyncAPI document shows the events this consumer reads, not raw records.
        handled = tuple(EVENT_TYPES[key] for key in sorted(self._handles) if key in EVENT_TYPES)
        payload: Any = handled[0] if len(handled) == 1 else _union(handled)
        handle.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(
                    "records", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=list[payload]
                )
            ],
            return_annotation=None,
        )
        handle.__name__ = f"consume_{self.name.replace('-', '_').replace('.', '_')}"
        return subscriber(handle)


@dataclass(frozen=True, slots=True)
class _AsRecord:
    """An inbound message seen as the record it came from (for dead-lettering it)."""

    message: InboundMessage

    @property
    def topic(self) -> str:
        return self.message.topic

    @property
    def partition(self) -> int:
        return self.message.partition

    @property
    def offset(self) -> int:
        return self.message.offset

    @property
    def key(self) -> bytes | None:
        return self.message.key

    @property
    def value(self) -> bytes | None:
        return self.message.raw_value

    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]:
        return self.message.raw_headers


async def _raw_records(message: KafkaMessage, original: Any = None) -> Any:
    # Must never raise: FastStream would log the error and move past the batch unacked.
    raw = message.raw_message
    return list(raw) if isinstance(raw, tuple) else [raw]


def _union(types: tuple[type[Event], ...]) -> Any:
    from functools import reduce
    from operator import or_

    return reduce(or_, types) if types else Any
