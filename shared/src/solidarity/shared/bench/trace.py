"""Where an unanswered submission stopped: the lookups the bench runs when something is lost.

A lost submission is a bug somewhere between the partner and the outcome reader; the bench is
the only witness that knows which one, and its stack is deleted when it ends. So before that,
each of a few unanswered submissions is followed through the pipeline:

1. on `registration.submissions.v1`: its partition and offset, and the submissions group's
   committed offset there (past it: the consumer says it was applied);
2. in the registration database: its decision, and its outbox rows (pending or sent);
3. on `registration.outcomes.v1`: whether its answers are there when read again from the start
   (there: the bench's reader missed them; not there but sent: the broker lost them);
4. on the submissions DLQ: its dead letters, and every dead letter's source and error type (a
   record whose bytes were damaged no longer holds the id it was sent with).

Only bench-made identifiers and states are reported: no addresses, no names.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from solidarity.shared.contracts.topics import REGISTRATION_OUTCOMES, REGISTRATION_SUBMISSIONS
from solidarity.shared.messaging.consumer import DlqHeaders
from solidarity.shared.messaging.kafka import read_topic

SUBMISSIONS_GROUP = "registration.submissions"  # solidarity.registration.bootstrap, no prefix
TRACED = 5  # submissions followed at most (each lookup scans a topic or the outbox)
READ_TIMEOUT_S = 300.0  # a topic read from its start (a million records take a while)


def _needle(submission_id: str) -> bytes:
    """The id as it stands in a message's JSON: quoted, so `b-54` does not find `b-540`."""
    return json.dumps(submission_id).encode()


def _positions(
    records: Sequence[ConsumerRecord],
    needles: Sequence[bytes],
) -> dict[bytes, list[tuple[int, int]]]:
    """(partition, offset) of every record whose value holds each needle."""
    found: dict[bytes, list[tuple[int, int]]] = {n: [] for n in needles}
    for record in records:
        value = record.value or b""
        for needle in needles:
            if needle in value:
                found[needle].append((record.partition, record.offset))
    return found


def _dead_letters(records: Sequence[ConsumerRecord]) -> list[dict[str, Any]]:
    """Where each dead letter came from and the error's type (never its message, which may
    quote the payload)."""
    letters = []
    for record in records:
        headers = {k: (v or b"").decode(errors="replace") for k, v in record.headers or ()}
        letters.append(
            {
                "source_partition": headers.get(DlqHeaders.SOURCE_PARTITION),
                "source_offset": headers.get(DlqHeaders.SOURCE_OFFSET),
                "error_type": headers.get(DlqHeaders.ERROR_TYPE),
            }
        )
    return letters


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
    needles = [_needle(s) for _, s in submissions]
    submitted_topic = REGISTRATION_SUBMISSIONS.full_name(topic_prefix)
    submitted, dead, answered, in_db = await asyncio.gather(
        read_topic(bootstrap, submitted_topic, timeout_s=READ_TIMEOUT_S),
        read_topic(bootstrap, f"{submitted_topic}.dlq", timeout_s=READ_TIMEOUT_S),
        read_topic(
            bootstrap, REGISTRATION_OUTCOMES.full_name(topic_prefix), timeout_s=READ_TIMEOUT_S
        ),
        _in_database(registration_dsn, submissions),
    )
    sent_on, answered_on, dead_on = (
        _positions(submitted, needles),
        _positions(answered, needles),
        _positions(dead, needles),
    )
    letters = _dead_letters(dead)
    # The same bytes twice: a partner's resend, or a broker that stored one batch twice.
    copies = Counter(hashlib.sha256(r.value or b"").digest() for r in submitted)
    repeated = sum(n - 1 for n in copies.values())
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
                "dead_letters": len(dead_on[needle]),
                # Every dead letter of the submissions topic (a bench sends none that should
                # be): one whose bytes were damaged no longer holds the id it was sent with.
                "dead_letters_on_submissions_dlq": letters,
                "records_on_submissions_topic": len(submitted),
                "repeated_records_on_submissions_topic": repeated,
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
    letters = traced["dead_letters_on_submissions_dlq"]
    kinds = ", ".join(
        f"{d['error_type']} from {d['source_partition']}:{d['source_offset']}" for d in letters
    )
    kinds = f": {kinds}" if kinds else ""
    return (
        f"{traced['submission_id']}: submitted at {places or 'NOT FOUND ON THE TOPIC'}; "
        f"{traced['status']}; outbox: {outbox or 'nothing'}; "
        f"{traced['answers_on_outcomes_topic']} answers on the outcomes topic on a second read; "
        f"{traced['dead_letters']} of its dead letters; "
        f"{len(letters)} dead letters in all on the submissions DLQ{kinds}; "
        f"{traced['records_on_submissions_topic']:,} records on the submissions topic, "
        f"{traced['repeated_records_on_submissions_topic']:,} of them repeats"
    )
