"""The bench's partners: what the broker did not acknowledge is sent again, a publish that
keeps failing stops the bench instead of leaving its submissions to be counted as lost, and a
few submissions left without an answer are traced, then sent again as a partner does."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka.errors import KafkaTimeoutError

from solidarity.shared.bench import phases
from solidarity.shared.bench.ledger import ASK_SIGNUP, BurstLedger
from solidarity.shared.bench.options import BenchOptions
from solidarity.shared.bench.phases import (
    PUBLISH_TRIES,
    BenchError,
    Setup,
    Watching,
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
    def partner_of(self, index: int) -> int:
        return 0

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


class AnsweringPartner(FlakyPartner):
    """Stands in for partner and platform: what it is sent is answered at once."""

    def __init__(self, ledger: BurstLedger) -> None:
        super().__init__(failures=0)
        self.ledger = ledger

    async def publish(self, messages: Iterable[Any]) -> int:
        sent = await super().publish(messages)
        for message in self.delivered[-sent:]:
            self.ledger.add_outcome(outcome("SignupConfirmed", f"p-r-{message[1:]}"), at=1.0)
        return sent


async def test_a_few_unanswered_are_traced_then_sent_again_and_many_are_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    traced_for: list[range] = []

    async def trace_lost(setup: Any, watch: Any, numbers: range, *, say: Any) -> list[Any]:
        traced_for.append(numbers)
        return [{"submission_id": "p-r-3"}]

    monkeypatch.setattr(phases, "trace_lost", trace_lost)
    options = BenchOptions(resend_after_s=0.1, stall_s=0.6, resend_limit=2)
    ledger = BurstLedger(5, origin=0.0)
    for number in range(5):
        ledger.submitted(number, ASK_SIGNUP, at=0.5)
    for number in (0, 1, 2, 4):
        ledger.add_outcome(outcome("SignupConfirmed", f"p-r-{number}"), at=1.0)
    partner = AnsweringPartner(ledger)
    watch = SimpleNamespace(ledger=ledger, partners=[partner], traced_before_resend=[])
    setup = SimpleNamespace(workload=_Workload())

    answered = await phases.resend_unanswered(
        cast(Setup, setup), cast(Watching, watch), range(5), options, 5, say=lambda _: None
    )

    assert answered
    assert (partner.delivered, ledger.resent_unanswered) == (["m3"], 1)
    assert watch.traced_before_resend == [{"submission_id": "p-r-3"}]
    assert traced_for == [range(5)]

    many = BurstLedger(5, origin=0.0)
    for number in range(5):
        many.submitted(number, ASK_SIGNUP, at=0.5)
    quiet = AnsweringPartner(many)
    watch = SimpleNamespace(ledger=many, partners=[quiet], traced_before_resend=[])
    answered = await phases.resend_unanswered(
        cast(Setup, setup), cast(Watching, watch), range(5), options, 5, say=lambda _: None
    )
    assert not answered  # five unanswered is more than the limit: nothing sent again
    assert (quiet.calls, many.resent_unanswered) == (0, 0)
