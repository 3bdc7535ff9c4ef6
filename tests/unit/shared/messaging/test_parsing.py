"""What the consumer runner makes of one untrusted record: parsed, ignored or dead-lettered,
never an exception (one would stop the consumer: the batch comes back forever)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import asyncpg
import pytest

from solidarity.shared.contracts.envelope import Envelope, EventHeaders
from solidarity.shared.contracts.events.catalog import SessionScheduledV1
from solidarity.shared.db.pool import Connection
from solidarity.shared.messaging.consumer import ConsumerRunner, DlqHeaders, InboundMessage
from solidarity.shared.messaging.outbox import Outbox
from solidarity.shared.testing.events import session_scheduled

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Polled:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()


async def _never_called(conn: Connection, messages: Sequence[InboundMessage]) -> None:
    raise AssertionError("parsing alone never reaches the handler")


RUNNER = ConsumerRunner(
    name="parse-test",
    pool=cast("asyncpg.Pool", None),  # parsing touches no database
    outbox=Outbox(producer="test"),
    handler=_never_called,
    handles=[SessionScheduledV1],
)


def _valid() -> tuple[bytes, list[tuple[str, bytes]]]:
    envelope = Envelope.wrap(session_scheduled(), producer="catalog")
    return envelope.to_bytes(), envelope.headers()


@pytest.mark.parametrize(
    "value",
    [
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError in json.loads
        b'{"payload": ' * 5_000 + b"1" + b"}" * 5_000,
        b"\xff\xfe not UTF-8",
        b'"\\ud800"',
        b"",
        None,
        b"1e999999",
        b'{"event_id": "' + b"9" * 10_000 + b'"}',
    ],
)
def test_an_unreadable_body_is_dead_lettered_with_its_bytes_and_headers(
    value: bytes | None,
) -> None:
    headers = [("a\x00b", b"\xff\x00"), ("x-null", None)]
    record = Polled("catalog.sessions.v1", 2, 41, b"k", value, headers)

    message, letter, ignored = RUNNER._parse(record)

    assert message is None
    assert not ignored
    assert letter is not None
    assert letter.topic == "catalog.sessions.v1.dlq"
    assert letter.value == (value or b"")
    assert letter.headers[:2] == tuple(headers)
    assert dict(letter.headers)[DlqHeaders.SOURCE_OFFSET] == b"41"


@pytest.mark.parametrize("version", ["²", "\u0661", "9" * 5_000, "-1", " 1", ""])
def test_an_odd_version_header_never_stops_parsing_the_body(version: str) -> None:
    value, headers = _valid()
    odd = [(k, version.encode() if k == EventHeaders.SCHEMA_VERSION else v) for k, v in headers]

    message, letter, ignored = RUNNER._parse(Polled("catalog.sessions.v1", 0, 0, b"k", value, odd))

    assert letter is None
    assert not ignored
    assert message is not None
    assert isinstance(message.event, SessionScheduledV1)
