"""The bench's partners: what the broker did not acknowledge is sent again, and a publish that
keeps failing stops the bench instead of leaving its submissions to be counted as lost."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import pytest
from aiokafka.errors import KafkaTimeoutError

from solidarity.shared.bench.ledger import ASK_SIGNUP, BurstLedger
from solidarity.shared.bench.phases import (
    PUBLISH_TRIES,
    BenchError,
    publish_paced,
    publish_resending,
)
from solidarity.shared.bench.workload import Workload
from solidarity.shared.partners import KafkaPartner
from tests.bench.support import outcome

pytestmark = pytest.mark.unit


class FlakyPartner:
    """Fails its first `failures` publishes the way aiokafka does when a batch expires."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.delivered: list[Any] = []

    async def publish(self, messages: Iterable[Any]) -> int:
        batch = list(messages)
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise KafkaTimeoutError()
        self.delivered += batch
        return len(batch)


@dataclass
class _Submission:
    index: int
    partner: int
    message: str
    asks: int = ASK_SIGNUP


class _Workload:
    def build(self, index: int) -> _Submission:
        return _Submission(index=index, partner=0, message=f"m{index}")


def _partner(partner: FlakyPartner) -> KafkaPartner:
    return cast(KafkaPartner, partner)


async def test_what_the_broker_did_not_acknowledge_is_sent_again() -> None:
    ledger = BurstLedger(3, origin=0.0)
    partner = FlakyPartner(failures=2)
    sent = await publish_resending(_partner(partner), ["a", "b", "c"], ledger)  # type: ignore[list-item]
    assert (sent, partner.calls, partner.delivered) == (3, 3, ["a", "b", "c"])
    assert ledger.resent == 6


async def test_a_publish_that_keeps_failing_stops_the_bench() -> None:
    ledger = BurstLedger(1, origin=0.0)
    partner = FlakyPartner(failures=PUBLISH_TRIES)
    with pytest.raises(BenchError, match="could not publish 1 submissions"):
        await publish_resending(_partner(partner), ["a"], ledger)  # type: ignore[list-item]
    assert partner.calls == PUBLISH_TRIES


async def test_a_paced_publish_that_fails_is_never_dropped_unseen() -> None:
    """The steady stage publishes in tasks; one that failed was dropped from its set without
    a look, and its submissions, already in the ledger, counted as lost."""
    ledger = BurstLedger(50, origin=0.0)
    partner = FlakyPartner(failures=10 * PUBLISH_TRIES)
    with pytest.raises(BenchError):
        await publish_paced(
            cast(Workload, _Workload()), [_partner(partner)], ledger, range(50), rate=1000.0
        )


def test_an_answer_to_a_resend_is_not_a_second_answer() -> None:
    ledger = BurstLedger(1, origin=1000.0)
    ledger.submitted(0, ASK_SIGNUP, at=1000.0)
    ledger.add_outcome(outcome("SignupConfirmed", "p-r-0"), at=1001.0)
    ledger.add_outcome(outcome("SignupConfirmed", "p-r-0", duplicate=True), at=1002.0)
    assert (ledger.duplicated, ledger.resend_answers, ledger.unanswered(0, 1)) == (0, 1, 0)
