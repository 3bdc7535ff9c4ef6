"""Scenario 9: property-based fuzzing of what can arrive on every consumed topic.

The services' own consumer runners (parse, DLQ, inbox, the service's handler, one transaction
on a real PostgreSQL) take each generated record. The property, checked per record so that
hypothesis can shrink a failure: every consumer returns, promptly, having accounted for the
record (applied, a duplicate, ignored or dead-lettered); none raises, none retries in a loop;
and a submission whose partner and submission id can be read is answered.

Runs derandomized (the same inputs every run); `SOLIDARITY_RELIABILITY_SCALE` sets how many.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from solidarity.shared.contracts.envelope import Event
from solidarity.shared.contracts.topics import REGISTRATION_OUTCOMES, REGISTRATION_SUBMISSIONS
from solidarity.shared.messaging.consumer import BatchReport
from solidarity.shared.partners import signed_value
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.reliability import fuzz, platform, runners
from tests.reliability.figures import record, size

pytestmark = pytest.mark.reliability

FEED_TIMEOUT_S = 5.0


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        print_blob=True,
        report_multiple_bugs=False,
    )


@dataclass
class Tally:
    inputs: int = 0
    crashes: int = 0
    lost: int = 0
    unanswered: int = 0
    dead_lettered: int = 0
    applied: int = 0
    failures: list[str] = field(default_factory=list)
    last_input: str = ""

    def check(self, results: list[tuple[str, BatchReport | BaseException]]) -> list[str]:
        """Count what each consumer made of one record; the problems, if any."""
        problems: list[str] = []
        for name, result in results:
            self.inputs += 1
            if isinstance(result, BaseException):
                self.crashes += 1
                kind = "stuck retrying" if isinstance(result, TimeoutError) else "raised"
                problems.append(f"{name} {kind}: {type(result).__name__}: {result}"[:500])
                continue
            accounted = result.applied + result.duplicates + result.ignored + result.dead_lettered
            self.dead_lettered += result.dead_lettered
            self.applied += result.applied
            if accounted != 1 or result.retries:
                self.lost += 1
                problems.append(f"{name} accounted {accounted} of 1, {result.retries} retries")
        if problems and len(self.failures) < 5:
            self.failures.extend(problems)
        return problems


async def test_raw_bytes_on_every_consumed_topic_never_stop_a_consumer(
    infrastructure: Infrastructure, unique: str
) -> None:
    tally = Tally()
    async with runners.consumers(infrastructure, unique, f"t{unique}.") as consumers:
        loop = asyncio.get_running_loop()

        @_settings(size(ci=120, full=3_000))
        @given(
            spec=st.sampled_from(runners.CONSUMED),
            value=fuzz.raw_values(),
            headers=fuzz.headers(),
            key=st.one_of(st.none(), st.binary(max_size=40)),
        )
        def never_stops(spec: Any, value: bytes | None, headers: Any, key: bytes | None) -> None:
            polled = consumers.record(spec, value, key=key, headers=headers)
            results = asyncio.run_coroutine_threadsafe(
                consumers.feed(spec, [polled], timeout_s=FEED_TIMEOUT_S), loop
            ).result(120)
            problems = tally.check(results)
            if problems:
                tally.last_input = f"{spec.name} value={value!r:.120} headers={headers!r:.200}"
            assert not problems, problems

        try:
            await asyncio.to_thread(never_stops)
        finally:
            if tally.last_input:
                print(f"smallest failing input: {tally.last_input}")
            record(
                "9",
                "fuzzed raw bytes on every consumed topic",
                inputs=tally.inputs,
                crashes=tally.crashes,
                lost=tally.lost,
                dead_lettered=tally.dead_lettered,
                applied=tally.applied,
            )


async def test_mutated_events_and_submissions_never_stop_a_consumer_and_are_answered(
    infrastructure: Infrastructure, unique: str
) -> None:
    tally = Tally()
    prefix = f"t{unique}."
    campaign_id, session_id = uuid.uuid4(), uuid.uuid4()
    async with runners.consumers(infrastructure, unique, prefix) as consumers:
        dsn = consumers.dsns["registration"]
        partner = await platform.partner_account(dsn, "fuzz-campaign")
        valid = fuzz.examples(campaign_id, session_id, partner.partner_id)
        # The registration read model knows the campaign and its session, so that valid
        # submissions go all the way to a seat.
        for spec_name in ("catalog.campaigns.v1", "catalog.sessions.v1"):
            event = valid[spec_name][0]
            spec = next(s for s in runners.CONSUMED if s.name == spec_name)
            body, headers = fuzz.envelope_bytes(event, event.model_dump(mode="json"))
            await consumers.feed(spec, [consumers.record(spec, body, headers=headers)])
        loop = asyncio.get_running_loop()
        outcomes_topic = REGISTRATION_OUTCOMES.full_name(prefix)

        async def answers(submission_id: str) -> int:
            rows = await platform.fetch(
                dsn, "SELECT value FROM outbox WHERE topic = $1", outcomes_topic
            )
            return sum(
                1
                for r in rows
                if json.loads(r["value"])["payload"].get("submission_id") == submission_id
            )

        async def feed_one(spec: Any, event: Event, payload: dict[str, Any], signed: bool) -> Any:
            body, headers = fuzz.envelope_bytes(event, payload)
            key: bytes | None = b"fuzz-key"
            if spec.name == REGISTRATION_SUBMISSIONS.name and signed:
                message = signed_value(partner, body, email="fuzz@example.org", headers=headers)
                headers, key = list(message.headers), message.key
            results = await consumers.feed(
                spec, [consumers.record(spec, body, key=key, headers=headers)], timeout_s=5
            )
            readable = (
                spec.name == REGISTRATION_SUBMISSIONS.name
                and isinstance(payload.get("submission_id"), str)
                and 1 <= len(payload["submission_id"]) <= 200
                and payload.get("partner_id") == str(partner.partner_id)
            )
            answered = await answers(payload["submission_id"]) if readable else None
            return results, answered

        @_settings(size(ci=150, full=3_000))
        @given(data=st.data())
        def never_stops(data: st.DataObject) -> None:
            spec = data.draw(st.sampled_from(runners.CONSUMED), label="topic")
            event = data.draw(st.sampled_from(valid[spec.name]), label="event")
            payload = event.model_dump(mode="json")
            if spec.name == REGISTRATION_SUBMISSIONS.name:
                payload["submission_id"] = f"fz-{uuid.uuid4().hex[:12]}"
                payload["registrant"]["email"] = platform.person_email("fz")
            if data.draw(st.integers(0, 9), label="mutate") > 0:
                payload = data.draw(fuzz.mutated_payload(payload), label="payload")
            signed = data.draw(st.integers(0, 9), label="signed") > 0
            results, answered = asyncio.run_coroutine_threadsafe(
                feed_one(spec, event, payload, signed), loop
            ).result(120)
            problems = tally.check(results)
            if answered == 0:
                tally.unanswered += 1
                problems.append(f"submission {payload.get('submission_id')!r} got no answer")
            assert not problems, problems

        try:
            await asyncio.to_thread(never_stops)
        finally:
            record(
                "9",
                "fuzzed events and submissions (mutated payloads) on every consumed topic",
                inputs=tally.inputs,
                crashes=tally.crashes,
                lost=tally.lost,
                unanswered=tally.unanswered,
                dead_lettered=tally.dead_lettered,
                applied=tally.applied,
            )
