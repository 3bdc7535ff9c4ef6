"""Scenario 8: bad messages among good ones on every consumed topic reach the DLQ, with their
error headers, and nothing else stops: every valid message is applied, the lag returns to 0,
no batch is retried in a loop, and the DLQ command line lists, shows and re-drives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from solidarity.registration.bootstrap import catalog_group, submissions_group
from solidarity.shared.contracts.envelope import Envelope, Event
from solidarity.shared.contracts.events.common import Consents, Role
from solidarity.shared.contracts.events.registration import (
    RegistrantRecordedV1,
    SignupConfirmedV1,
)
from solidarity.shared.contracts.topics import (
    CATALOG_CAMPAIGNS,
    CATALOG_SESSIONS,
    REGISTRATION_OUTCOMES,
    REGISTRATION_REGISTRANTS,
    REGISTRATION_SUBMISSIONS,
)
from solidarity.shared.dlq import DeadLetter, DlqError, read_dead_letter
from solidarity.shared.messaging.consumer import DlqHeaders
from solidarity.shared.messaging.outbox import HEADER_COLUMNS, row_headers
from solidarity.shared.partners import signed_message
from solidarity.shared.testing.infrastructure import Infrastructure
from solidarity.shared.testing.raw_records import RawRecord, send_batch
from tests.reliability import platform, runners
from tests.reliability.badinput import (
    BadInput,
    answerable,
    bad_inputs,
    bad_submissions,
    cli,
    interleave,
)
from tests.reliability.figures import record, size
from tests.reliability.platform import Record

pytestmark = pytest.mark.reliability

DLQ_HEADERS = (
    DlqHeaders.ERROR_TYPE,
    DlqHeaders.ERROR_MESSAGE,
    DlqHeaders.SOURCE_TOPIC,
    DlqHeaders.SOURCE_PARTITION,
    DlqHeaders.SOURCE_OFFSET,
    DlqHeaders.CONSUMER_GROUP,
    DlqHeaders.FAILED_AT,
)


def _signups(count: int) -> list[SignupConfirmedV1]:
    return [
        SignupConfirmedV1(
            registrant_id=uuid.uuid4(),
            campaign_id=uuid.uuid4(),
            signup_id=uuid.uuid4(),
            role=Role.STUDENT,
            consents=Consents(),
        )
        for _ in range(count)
    ]


def _valid_records(events: list[Event]) -> tuple[list[Record], list[uuid.UUID]]:
    records, ids = [], []
    for event in events:
        envelope, one = platform.event_record(event)
        records.append(one)
        ids.append(envelope.event_id)
    return records, ids


async def test_bad_messages_on_every_consumed_topic_reach_the_dlq_and_nothing_stops(
    infrastructure: Infrastructure, registry_topics: str, unique: str, tmp_path: Path
) -> None:
    valid_count = size(ci=400, full=10_000)
    bad_count = size(ci=40, full=100, least=13)
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    slug = f"week-{unique}"
    campaign = platform.campaign_published(slug)
    session = platform.session_scheduled(campaign.campaign_id, capacity=100)

    async with platform.registration_and_notifications(
        infrastructure, unique, prefix, tmp_path / "mail", campaign, session
    ) as week:
        dsns, partner, services = week.dsns, week.partner, week.services

        # What each topic gets: valid events (and who must apply them) and bad records.
        plan: dict[str, dict[str, Any]] = {}
        campaigns = [platform.campaign_published(f"c-{i}-{unique}") for i in range(valid_count)]
        sessions = [
            platform.session_scheduled(uuid.uuid4(), capacity=50) for _ in range(valid_count)
        ]
        outcomes = _signups(valid_count)
        registrants = [
            RegistrantRecordedV1(
                registrant_id=uuid.uuid4(), email=platform.person_email("r"), role=Role.STUDENT
            )
            for _ in range(valid_count)
        ]
        submissions = [
            platform.submission(partner.partner_id, slug, session_ids=[session.session_id])
            for _ in range(valid_count)
        ]
        for spec, events, consumers in (
            (
                CATALOG_CAMPAIGNS,
                campaigns,
                [catalog_group(prefix), f"{prefix}notifications"],
            ),
            (CATALOG_SESSIONS, sessions, [catalog_group(prefix), f"{prefix}notifications"]),
            (REGISTRATION_OUTCOMES, outcomes, [f"{prefix}notifications"]),
            (REGISTRATION_REGISTRANTS, registrants, [f"{prefix}notifications"]),
        ):
            records, ids = _valid_records(list(events))
            plan[spec.name] = {
                "spec": spec,
                "records": records,
                "ids": ids,
                "consumers": consumers,
                "bad": bad_inputs(events[0], bad_count),
            }
        signed = [signed_message(partner, s, producer="reliability") for s in submissions]
        plan[REGISTRATION_SUBMISSIONS.name] = {
            "spec": REGISTRATION_SUBMISSIONS,
            "records": [(m.key, m.value, list(m.headers)) for m in signed],
            "ids": [m.event_id for m in signed],
            "consumers": [submissions_group(prefix)],
            "bad": bad_submissions(partner, slug, bad_count),
        }

        bad_offsets: dict[str, dict[tuple[int, int], BadInput]] = {}

        async def send(name: str, seed: int) -> None:
            item = plan[name]
            mixed = interleave(item["records"], item["bad"], seed=seed)
            sent = await platform.produce(
                bootstrap, item["spec"].full_name(prefix), [r for r, _ in mixed]
            )
            bad_offsets[name] = {at: bad for at, (_, bad) in zip(sent, mixed, strict=True) if bad}

        await asyncio.gather(*(send(name, seed) for seed, name in enumerate(plan)))

        groups: dict[str, list[str]] = {}
        for item in plan.values():
            for consumer in item["consumers"]:
                groups.setdefault(consumer, []).append(item["spec"].full_name(prefix))

        def owner(consumer: str) -> str:
            return "registration" if "registration." in consumer else "notifications"

        async def unapplied() -> int:
            missing = 0
            for item in plan.values():
                for consumer in item["consumers"]:
                    done = await platform.applied_ids(dsns[owner(consumer)], consumer, item["ids"])
                    missing += len(item["ids"]) - len(done)
            return missing

        async def lag() -> int:
            return sum(
                [
                    await platform.committed_lag(bootstrap, group, topics)
                    for group, topics in groups.items()
                ]
            )

        async def dead_letters() -> dict[str, list[DeadLetter]]:
            return {
                name: await platform.dead_letters_on(bootstrap, item["spec"].full_dlq_name(prefix))
                for name, item in plan.items()
            }

        expected_letters = sum(len(i["bad"]) * len(i["consumers"]) for i in plan.values())

        async def everything_settled() -> bool:
            if await unapplied():
                return False
            found = sum(len(v) for v in (await dead_letters()).values())
            return found >= expected_letters and await lag() == 0

        settled_s = await platform.settles(everything_settled, timeout_s=240)
        lost = await unapplied()
        final_lag = await lag()
        retries = {name: s.retries() for name, s in services.items()}
        received = {name: s.received() for name, s in services.items()}
        letters = await dead_letters()

        # The DLQ as an operator works it: list, show, then re-drive a fixed message twice.
        sessions_dlq = CATALOG_SESSIONS.full_dlq_name(prefix)
        common = ["--bootstrap", bootstrap, "--data-dir", str(tmp_path / "cli")]
        listed = await cli("dlq", "list", sessions_dlq, "--json", *common)
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        fixable = next(
            r
            for r in rows
            if r["consumer_group"] == catalog_group(prefix)
            and (
                bad_offsets[CATALOG_SESSIONS.name][(r["source_partition"], r["source_offset"])].kind
                == "missing_field"
            )
        )
        shown = await cli("dlq", "show", sessions_dlq, str(fixable["offset"]), *common)
        assert shown.returncode == 0, shown.stderr
        assert "dlq.error_message" in shown.stdout
        broken = next(d for d in letters[CATALOG_SESSIONS.name] if d.offset == fixable["offset"])
        broken_id = uuid.UUID(json.loads(broken.value)["event_id"])
        repaired = platform.session_scheduled(uuid.uuid4(), capacity=10)
        fixed = Envelope.wrap(repaired, producer="catalog", event_id=broken_id).to_bytes()
        (tmp_path / "fixed.json").write_bytes(fixed)
        catalog_runners = [
            r
            for s in services.values()
            for r in s.runners
            if "catalog" in r.name or r.name.endswith("notifications")
        ]
        duplicates_before = sum(r.stats.duplicates for r in catalog_runners)
        for _ in range(2):  # the second re-drive must change nothing
            redriven = await cli(
                "dlq",
                "redrive",
                sessions_dlq,
                "--offset",
                str(fixable["offset"]),
                "--from-file",
                str(tmp_path / "fixed.json"),
                *common,
            )
            assert redriven.returncode == 0, redriven.stderr
            assert "re-drove 1 message(s)" in redriven.stdout

        def repeats() -> int:
            return int(sum(r.stats.duplicates for r in catalog_runners) - duplicates_before)

        async def fixed_applied_and_repeat_skipped() -> bool:
            applied = [
                await platform.applied_ids(
                    dsns["registration"], catalog_group(prefix), [broken_id]
                ),
                await platform.applied_ids(
                    dsns["notifications"], f"{prefix}notifications", [broken_id]
                ),
            ]
            return all(applied) and repeats() >= 2

        await platform.settles(fixed_applied_and_repeat_skipped, timeout_s=60)
        stored = await platform.fetchval(
            dsns["registration"],
            "SELECT count(*) FROM sessions WHERE session_id = $1",
            repaired.session_id,
        )
        skipped = repeats()

        # Every bad record is in its topic's DLQ once per consumer group, with error headers.
        missing_letters = extra_letters = missing_headers = 0
        for name, item in plan.items():
            found: Counter[tuple[str | None, tuple[int | None, int | None]]] = Counter()
            for letter in letters[name]:
                if any(letter.header(h) is None for h in DLQ_HEADERS):
                    missing_headers += 1
                found[(letter.consumer_group, (letter.source_partition, letter.source_offset))] += 1
            expected: Counter[tuple[str | None, tuple[int | None, int | None]]] = Counter(
                {(c, where): 1 for c in item["consumers"] for where in bad_offsets[name]}
            )
            missing_letters += sum((expected - found).values())
            extra_letters += sum((found - expected).values())
        # Partners are answered for the bad submissions whose ids can be read.
        answers = await platform.fetch(
            dsns["registration"],
            "SELECT value FROM outbox WHERE topic = $1 AND event_type = $2",
            REGISTRATION_OUTCOMES.full_name(prefix),
            "SessionRegistrationRejected",
        )
        answered = Counter(json.loads(r["value"])["payload"]["submission_id"] for r in answers)
        readable = [a for a in map(answerable, plan[REGISTRATION_SUBMISSIONS.name]["bad"]) if a]
        unanswered = sum(1 for a in readable if answered[a] != 1)
        decided = await platform.fetchval(dsns["registration"], "SELECT count(*) FROM submissions")

    inputs = sum(len(i["records"]) + len(i["bad"]) for i in plan.values())
    record(
        "8",
        "bad input on every consumed topic",
        inputs=inputs,
        bad=sum(len(i["bad"]) for i in plan.values()),
        crashes=0 if settled_s is not None else 1,
        lost=lost,
        dead_lettered=sum(len(v) for v in letters.values()),
        expected_dead_letters=expected_letters,
        missing_dead_letters=missing_letters,
        extra_dead_letters=extra_letters,
        lag=final_lag,
        retries=sum(retries.values()),
        received=sum(received.values()),
        settled_s=round(settled_s or -1, 1),
        redrive_applied=stored,
        redrive_repeats_skipped=skipped,
    )
    assert settled_s is not None, "the consumers did not get through every message"
    assert lost == 0
    assert final_lag == 0
    assert (missing_letters, extra_letters, missing_headers) == (0, 0, 0)
    assert sum(retries.values()) == 0, f"batches retried: {retries}"
    assert decided == valid_count, "every valid submission decided"
    assert unanswered == 0, "each bad submission with readable ids answered once"
    assert stored == 1, "the fixed, re-driven message applied"
    assert skipped >= 2, "its second copy skipped by both consumers"


async def test_deeply_nested_json_is_dead_lettered_on_every_consumed_topic(
    infrastructure: Infrastructure, unique: str
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000  # valid JSON, 100,000 levels deep
    outcomes: dict[str, str] = {}
    async with runners.consumers(infrastructure, unique, f"t{unique}.") as consumers:
        for spec in runners.CONSUMED:
            for name, result in await consumers.feed(spec, [consumers.record(spec, deep)]):
                outcomes[f"{spec.name}:{name}"] = (
                    "dead_lettered"
                    if not isinstance(result, BaseException) and result.dead_lettered == 1
                    else type(result).__name__
                )
    stuck = sum(1 for v in outcomes.values() if v != "dead_lettered")
    record(
        "8",
        "deeply nested JSON on every consumed topic",
        inputs=len(outcomes),
        crashes=stuck,
        lost=0,
        dead_lettered=len(outcomes) - stuck,
    )
    assert stuck == 0, outcomes


async def test_the_dlq_commands_list_show_and_redrive_every_dead_letter(
    infrastructure: Infrastructure, registry_topics: str, tmp_path: Path
) -> None:
    dlq = CATALOG_SESSIONS.full_dlq_name(registry_topics)
    source = CATALOG_SESSIONS.full_name(registry_topics)
    letters = [
        (
            uuid.uuid4().hex.encode(),
            f"broken {i}".encode(),
            [
                (DlqHeaders.ERROR_TYPE, b"JSONDecodeError"),
                (DlqHeaders.ERROR_MESSAGE, b"Expecting value"),
                (DlqHeaders.SOURCE_TOPIC, source.encode()),
                (DlqHeaders.SOURCE_PARTITION, b"0"),
                (DlqHeaders.SOURCE_OFFSET, str(i).encode()),
                (DlqHeaders.CONSUMER_GROUP, b"registration.catalog"),
                (DlqHeaders.FAILED_AT, b"2026-11-22T10:00:00+00:00"),
            ],
        )
        for i in range(20)
    ]
    # One produce batch, as the outbox relay publishes a batch of dead letters.
    await platform.produce(infrastructure.kafka_bootstrap, dlq, letters)
    on_topic = await platform.dead_letters_on(infrastructure.kafka_bootstrap, dlq)
    common = ["--bootstrap", infrastructure.kafka_bootstrap, "--data-dir", str(tmp_path)]
    listed = await cli("dlq", "list", dlq, "--json", *common)
    assert listed.returncode == 0, listed.stderr
    shown = 0
    for letter in on_topic:  # what `dlq show N` and `dlq redrive --offset N` read
        with contextlib.suppress(DlqError):
            await read_dead_letter(infrastructure.kafka_bootstrap, dlq, letter.offset)
            shown += 1
    last = await cli("dlq", "show", dlq, str(on_topic[-1].offset), *common)
    record(
        "8",
        "dlq list/show on a batch of dead letters",
        inputs=len(letters),
        on_topic=len(on_topic),
        listed=len(json.loads(listed.stdout)),
        shown=shown,
        last_shown_by_cli=int(last.returncode == 0),
        lost=len(on_topic) - shown,
    )
    assert len(on_topic) == len(letters)
    assert len(json.loads(listed.stdout)) == len(letters), "every dead letter listed"
    assert shown == len(letters), "every dead letter can be shown and re-driven by offset"
    assert last.returncode == 0, last.stderr


async def test_a_nul_byte_in_a_header_of_a_bad_message_does_not_stop_a_consumer(
    infrastructure: Infrastructure, unique: str
) -> None:
    outcomes: dict[str, str] = {}
    async with runners.consumers(infrastructure, unique, f"t{unique}.") as consumers:
        for spec in runners.CONSUMED:
            for headers in ([("x-trace", b"a\x00b")], [("a\x00b", b"value")]):
                polled = consumers.record(spec, b"not json", headers=headers)
                for name, result in await consumers.feed(spec, [polled], timeout_s=5):
                    outcomes[f"{spec.name}:{name}:{headers[0][0]!r}"] = (
                        "dead_lettered"
                        if not isinstance(result, BaseException) and result.dead_lettered == 1
                        else type(result).__name__
                    )
    stuck = sum(1 for v in outcomes.values() if v != "dead_lettered")
    record(
        "8",
        "NUL byte in a header of a bad message",
        inputs=len(outcomes),
        crashes=stuck,
        lost=0,
        dead_lettered=len(outcomes) - stuck,
    )
    assert stuck == 0, outcomes


async def test_dead_letters_keep_the_original_header_bytes(
    infrastructure: Infrastructure, unique: str
) -> None:
    original = [("x-trace", b"\xff\xfe\x01"), ("x-note", b"caf\xc3\xa9")]
    async with runners.consumers(infrastructure, unique, f"t{unique}.") as consumers:
        polled = consumers.record(CATALOG_SESSIONS, b"not json", headers=original)
        await consumers.feed(CATALOG_SESSIONS, [polled])
        rows = await platform.fetch(
            consumers.dsns["registration"],
            f"SELECT {HEADER_COLUMNS} FROM outbox WHERE event_type = 'DeadLetter'",
        )
    kept = [h for h in row_headers(rows[0]) if not h[0].startswith("dlq.")]
    altered = sum(1 for a, b in zip(kept, original, strict=True) if a != b)
    record("8", "DLQ keeps header bytes", inputs=len(original), lost=0, altered=altered)
    assert kept == original


async def test_a_header_name_that_is_not_utf8_on_the_wire_stops_no_consumer(
    infrastructure: Infrastructure, registry_topics: str, unique: str, tmp_path: Path
) -> None:
    """aiokafka refuses a fetched batch that holds a header name which is not UTF-8 (any other
    Kafka client can send one), for ever: every consumer of that partition stopped. Now the
    batch is read (`messaging.records`): a valid event with such a name is applied, a bad one
    is dead-lettered, and the valid events sent with them in the same batch are applied."""
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    slug = f"week-{unique}"
    campaign = platform.campaign_published(slug)
    session = platform.session_scheduled(campaign.campaign_id, capacity=100)
    odd = (b"\xff\xfex-trace", b"1")
    async with platform.registration_and_notifications(
        infrastructure, unique, prefix, tmp_path / "mail", campaign, session
    ) as week:
        dsns, partner = week.dsns, week.partner
        sessions = [platform.session_scheduled(uuid.uuid4(), capacity=5) for _ in range(3)]
        outcomes = _signups(3)
        submissions = [
            signed_message(
                partner,
                platform.submission(partner.partner_id, slug, session_ids=[session.session_id]),
                producer="reliability",
            )
            for _ in range(3)
        ]
        plan: list[tuple[str, list[Record], list[uuid.UUID], list[str]]] = [
            (
                CATALOG_SESSIONS.full_name(prefix),
                *_valid_records(list(sessions)),
                [catalog_group(prefix), f"{prefix}notifications"],
            ),
            (
                REGISTRATION_OUTCOMES.full_name(prefix),
                *_valid_records(list(outcomes)),
                [f"{prefix}notifications"],
            ),
            (
                REGISTRATION_SUBMISSIONS.full_name(prefix),
                [(m.key, m.value, list(m.headers)) for m in submissions],
                [m.event_id for m in submissions if m.event_id],
                [submissions_group(prefix)],
            ),
        ]
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for topic, records, _, _ in plan:
                # One batch: a valid event, the same with an odd name, a bad message with one,
                # and a valid event after them.
                first, middle, last = records
                batch: list[RawRecord] = [
                    _raw(first),
                    _raw(middle, extra=[odd]),
                    (b"k", b"not json", [odd]),
                    _raw(last),
                ]
                await send_batch(producer, topic, 0, batch)
        finally:
            await producer.stop()

        def owner(consumer: str) -> str:
            return "registration" if "registration." in consumer else "notifications"

        async def unapplied() -> int:
            missing = 0
            for _, _, ids, consumers in plan:
                for consumer in consumers:
                    done = await platform.applied_ids(dsns[owner(consumer)], consumer, ids)
                    missing += len(ids) - len(done)
            return missing

        async def letters() -> list[DeadLetter]:
            found: list[DeadLetter] = []
            for topic, _, _, _ in plan:
                found += await platform.dead_letters_on(bootstrap, f"{topic}.dlq")
            return found

        expected_letters = sum(len(consumers) for _, _, _, consumers in plan)

        async def settled() -> bool:
            return not await unapplied() and len(await letters()) >= expected_letters

        settled_s = await platform.settles(settled, timeout_s=60)
        lost = await unapplied()
        dead = await letters()
        lag = sum(
            [
                await platform.committed_lag(bootstrap, consumer, [topic])
                for topic, _, _, consumers in plan
                for consumer in consumers
            ]
        )
    kept_name = sum(1 for d in dead if d.header("\\xff\\xfex-trace") == "1")
    record(
        "8",
        "header name not UTF-8 on the wire",
        inputs=sum(len(r) + 1 for _, r, _, _ in plan),
        crashes=0 if settled_s is not None else 1,
        lost=lost,
        dead_lettered=len(dead),
        expected_dead_letters=expected_letters,
        lag=lag,
    )
    assert settled_s is not None, f"consumers stopped: {lost} valid events not applied"
    assert (lost, lag) == (0, 0)
    assert len(dead) == expected_letters, "the bad message once per consumer group"
    assert kept_name == expected_letters, "its header name, escaped, in each dead letter"


def _raw(record: Record, *, extra: list[tuple[bytes, bytes]] | None = None) -> RawRecord:
    key, value, headers = record
    return key, value, [(name.encode(), v) for name, v in headers] + (extra or [])
