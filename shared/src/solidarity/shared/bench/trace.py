"""Where an unanswered submission stopped: the lookups the bench runs when something is lost.

A lost submission is a bug somewhere between the partner and the outcome reader; the bench is
the only witness that knows which one, and its stack is deleted when it ends. So before that,
each of a few unanswered submissions is followed through the pipeline:

1. on `registration.submissions.v1`: its partition and offset, and the submissions group's
   committed offset there (past it: the consumer says it was applied);
2. in the registration database: its decision, and its outbox rows (pending or sent);
3. on `registration.outcomes.v1`: whether its answers are there when read again from the start
   (there: the bench's reader missed them; not there but sent: the broker lost them).

Only bench-made identifiers and states are reported: no addresses, no names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from solidarity.shared.contracts.topics import REGISTRATION_OUTCOMES, REGISTRATION_SUBMISSIONS

SUBMISSIONS_GROUP = "registration.submissions"  # solidarity.registration.bootstrap, no prefix
TRACED = 5  # submissions followed at most (each lookup scans a topic or the outbox)


async def _positions(
    bootstrap: str, topic: str, needles: Sequence[bytes], *, idle_s: float = 2.0
) -> dict[bytes, list[tuple[int, int]]]:
    """(partition, offset) of every record of `topic` whose value holds each needle, read
    from the start until nothing more arrives for `idle_s` (the embedded broker's end offsets
    cannot be trusted: see `tests/reliability/platform.read_all`)."""
    found: dict[bytes, list[tuple[int, int]]] = {n: [] for n in needles}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=5_000,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return found
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while loop.time() - quiet_since < idle_s:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    quiet_since = loop.time()
                    value = record.value or b""
                    for needle in needles:
                        if needle in value:
                            found[needle].append((record.partition, record.offset))
        return found
    finally:
        await consumer.stop()


async def _committed(
    bootstrap: str, group: str, topic: str, partitions: set[int]
) -> dict[int, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {p: (await consumer.committed(TopicPartition(topic, p))) or 0 for p in partitions}
    finally:
        await consumer.stop()


async def _in_database(
    dsn: str, submissions: Sequence[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """Each submission's decision status and its outbox rows, by submission id."""
    conn = await asyncpg.connect(dsn)
    try:
        states: dict[str, dict[str, Any]] = {}
        for partner_id, submission_id in submissions:
            status = await conn.fetchval(
                "SELECT status FROM submissions WHERE partner_id = $1::uuid AND submission_id = $2",
                partner_id,
                submission_id,
            )
            rows = await conn.fetch(
                "SELECT id, event_type, shard, sent_at IS NOT NULL AS sent, attempts FROM outbox "
                "WHERE position(convert_to($1, 'UTF8') in value) > 0 ORDER BY id",
                submission_id,
            )
            states[submission_id] = {
                "status": status or "not decided",
                "outbox": [
                    {
                        "id": r["id"],
                        "event_type": r["event_type"],
                        "shard": r["shard"],
                        "sent": r["sent"],
                        "attempts": r["attempts"],
                    }
                    for r in rows
                ],
            }
        return states
    finally:
        await conn.close()


async def trace_unanswered(
    *,
    bootstrap: str,
    registration_dsn: str,
    submissions: Sequence[tuple[str, str]],
    topic_prefix: str = "",
) -> list[dict[str, Any]]:
    """Follow each (partner id, submission id) through the pipeline; one dict each."""
    submissions = list(submissions)[:TRACED]
    if not submissions:
        return []
    needles = [s.encode() for _, s in submissions]
    submitted_topic = REGISTRATION_SUBMISSIONS.full_name(topic_prefix)
    sent_on, answered_on, in_db = await asyncio.gather(
        _positions(bootstrap, submitted_topic, needles),
        _positions(bootstrap, REGISTRATION_OUTCOMES.full_name(topic_prefix), needles),
        _in_database(registration_dsn, submissions),
    )
    partitions = {p for places in sent_on.values() for p, _ in places}
    committed = await _committed(
        bootstrap, f"{topic_prefix}{SUBMISSIONS_GROUP}", submitted_topic, partitions
    )
    traced = []
    for (_, submission_id), needle in zip(submissions, needles, strict=True):
        places = sent_on[needle]
        traced.append(
            {
                "submission_id": submission_id,
                "on_submissions_topic": [
                    {"partition": p, "offset": o, "committed": committed.get(p, 0)}
                    for p, o in places
                ],
                **in_db[submission_id],
                "answers_on_outcomes_topic": len(answered_on[needle]),
            }
        )
    return traced


def describe(traced: dict[str, Any]) -> str:
    """One line for the console."""
    places = ", ".join(
        f"partition {p['partition']} offset {p['offset']} (group committed {p['committed']})"
        for p in traced["on_submissions_topic"]
    )
    outbox = ", ".join(
        f"{r['event_type']} shard {r['shard']} {'sent' if r['sent'] else 'PENDING'}"
        for r in traced["outbox"]
    )
    return (
        f"{traced['submission_id']}: submitted at {places or 'NOT ON THE TOPIC'}; "
        f"{traced['status']}; outbox: {outbox or 'nothing'}; "
        f"{traced['answers_on_outcomes_topic']} answers on the outcomes topic on a second read"
    )
