"""Counts made inside a consumer batch count only once that batch's transaction committed.

The submissions runner, as the bootstrap builds it, on a fake pool whose first outbox write
fails transiently: the dead-letter answer is made twice (once per attempt), counted once.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from solidarity.registration.adapters.metrics import RegistrationMetrics
from solidarity.registration.bootstrap import submissions_runner
from solidarity.registration.domain.partners import (
    PARTNER_HEADER,
    SIGNATURE_HEADER,
    sign,
    signing_secret,
)
from solidarity.registration.settings import RegistrationSettings
from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.messaging.consumer import TransientError
from solidarity.shared.messaging.outbox import Outbox
from tests.unit.registration.builders import MASTER_KEY, submitted

pytestmark = pytest.mark.unit

TOPIC = "registration.submissions.v1"


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class FakeConnection:
    """A partner's secret version; outbox writes, the first of which fails transiently."""

    def __init__(self, partners: dict[uuid.UUID, int]) -> None:
        self.partners = partners
        self.outbox_writes: list[list[str]] = []
        self.failures_left = 1

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield

    def is_in_transaction(self) -> bool:
        return True

    async def fetchval(self, query: str, partner_id: uuid.UUID) -> int | None:
        return self.partners.get(partner_id)

    async def execute(self, query: str, *args: Any) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise TransientError("database briefly away")
        self.outbox_writes.append(list(args[1]))  # the event types written


class FakePool:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConnection]:
        yield self.conn


async def test_a_retried_batch_counts_only_its_committed_attempt() -> None:
    partner_id = uuid.uuid4()
    envelope = Envelope.wrap(submitted(partner_id, submission_id="s-1"), producer="p")
    payload = dict(envelope.payload)
    payload["registrant"] = {k: v for k, v in payload["registrant"].items() if k != "role"}
    broken = envelope.model_copy(update={"payload": payload}).to_bytes()
    secret = signing_secret(MASTER_KEY, partner_id)
    record = Record(
        topic=TOPIC,
        partition=0,
        offset=7,
        key=b"k",
        value=broken,
        headers=[
            *envelope.headers(),
            (SIGNATURE_HEADER, sign(secret, broken).encode()),
            (PARTNER_HEADER, str(partner_id).encode()),
        ],
    )
    conn = FakeConnection({partner_id: 1})
    metrics = RegistrationMetrics()
    pool: Any = FakePool(conn)
    runner = submissions_runner(
        pool=pool,
        outbox=Outbox(producer="registration"),
        settings=RegistrationSettings(partner_master_key=SecretStr(MASTER_KEY.decode())),
        metrics=metrics,
    )

    report = await runner.process_batch([record])

    assert report.retries == 1
    assert report.dead_lettered == 1
    # The dead letter and its answer go out together, in the committed attempt's write.
    assert conn.outbox_writes == [["DeadLetter", "SessionRegistrationRejected"]]
    assert (
        metrics.registry.get_sample_value(
            "solidarity_registration_rejections_total", {"reason": "invalid_submission"}
        )
        == 1.0
    ), "the rolled-back attempt's count is dropped"
    assert (
        metrics.registry.get_sample_value(
            "solidarity_registration_outcomes_total", {"kind": "rejected"}
        )
        == 1.0
    )
