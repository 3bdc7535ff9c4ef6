"""The submissions consumer's dead letters still get an answer when their sender can be read."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from solidarity.registration.adapters.metrics import RegistrationMetrics
from solidarity.registration.domain.partners import (
    PARTNER_HEADER,
    SIGNATURE_HEADER,
    sign,
    signing_secret,
)
from solidarity.registration.entrypoints.consumers import DeadLetterAnswerer, _identity
from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.messaging.consumer import DlqHeaders
from solidarity.shared.messaging.outbox import Outbox, OutboxMessage
from tests.unit.registration.builders import MASTER_KEY, submitted

pytestmark = pytest.mark.unit

DLQ = "registration.submissions.v1.dlq"


class FakeConnection:
    """Just enough of a connection: a partner's secret version."""

    def __init__(self, partners: dict[uuid.UUID, int]) -> None:
        self.partners = partners

    async def fetchval(self, query: str, partner_id: uuid.UUID) -> int | None:
        return self.partners.get(partner_id)


def letter(value: bytes, headers: list[tuple[str, bytes]]) -> OutboxMessage:
    return OutboxMessage(
        event_id=uuid.uuid4(),
        event_type="DeadLetter",
        topic=DLQ,
        key=None,
        value=value,
        headers=(
            *headers,
            (DlqHeaders.ERROR_MESSAGE, b"registrant.role: Field required"),
        ),
    )


def test_the_sender_is_read_from_raw_json_or_not_at_all() -> None:
    event = submitted(uuid.uuid4(), submission_id="s-9")
    raw = Envelope.wrap(event, producer="p").to_bytes()
    found = _identity(raw)
    assert found is not None
    assert found[:2] == (event.partner_id, "s-9")
    assert _identity(b"\xff") is None
    assert _identity(b'{"payload": {"partner_id": "nope", "submission_id": "x"}}') is None
    assert _identity(b'{"payload": {"partner_id": "%s"}}' % str(uuid.uuid4()).encode()) is None
    assert _identity(b"[" * 100_000 + b"]" * 100_000) is None  # deeper than the parser goes


@pytest.mark.parametrize(
    ("signed", "expected"), [(True, "invalid_submission"), (False, "invalid_signature")]
)
async def test_a_dead_letter_with_a_readable_sender_is_answered(
    signed: bool, expected: str
) -> None:
    partner_id = uuid.uuid4()
    raw = Envelope.wrap(submitted(partner_id, submission_id="s-1"), producer="p").to_bytes()
    secret = signing_secret(MASTER_KEY, partner_id)
    headers = [
        (SIGNATURE_HEADER, sign(secret if signed else "sws_x", raw).encode()),
        (PARTNER_HEADER, str(partner_id).encode()),
    ]
    metrics = RegistrationMetrics()
    answer_letter = DeadLetterAnswerer(
        outbox=Outbox(producer="registration"),
        dlq_topic=DLQ,
        master_key=MASTER_KEY,
        metrics=metrics,
    )
    conn: Any = FakeConnection({partner_id: 1})
    answers = await answer_letter(conn, letter(raw, headers))
    assert await answer_letter(conn, letter(b"junk", [])) == []  # nobody to answer
    assert [m.event_type for m in answers] == ["SessionRegistrationRejected"]
    assert answers[0].topic == "registration.outcomes.v1"
    answer = Envelope.from_bytes(answers[0].value)
    assert answer.payload["reason"] == expected
    assert answer.payload["submission_id"] == "s-1"
    assert answer.payload["detail"] == "registrant.role: Field required"
    # Outside a consumer batch `on_commit` runs at once: counted once.
    assert (
        metrics.registry.get_sample_value(
            "solidarity_registration_rejections_total", {"reason": expected}
        )
        == 1.0
    )
