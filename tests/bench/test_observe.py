"""Reading the sink's folder a little at a time, and partitions from an instance's log."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from aiokafka.errors import KafkaConnectionError

from solidarity.shared.bench.ledger import ASK_SIGNUP, BurstLedger
from solidarity.shared.bench.observe import (
    MailFolder,
    Observers,
    RssSampler,
    assigned_partitions,
    shares_cover,
)
from solidarity.shared.bench.phases import consumer_counts
from solidarity.shared.partners import Outcome, OutcomeReader
from tests.bench.support import outcome

pytestmark = pytest.mark.unit


def _store(directory: Path, mail_id: str, *, subject: str, to: str) -> None:
    (directory / f"{mail_id}.eml").write_bytes(b"...")
    (directory / f"{mail_id}.json").write_text(
        json.dumps(
            {
                "id": mail_id,
                "from": "notifications@solidarity.local",
                "to": [to],
                "subject": subject,
                "message_id": f"<{mail_id}@solidarity.local>",
                "received_at": "2026-11-22T06:00:00.500000+00:00",
                "size": 3,
            }
        )
    )


def test_the_folder_is_read_incrementally(tmp_path: Path) -> None:
    folder = MailFolder(tmp_path, settle_s=0.0)
    _store(tmp_path, "20200101T060000000001Z-aaaaaa", subject="Welcome to X", to="b1.r@x")
    (tmp_path / "20200101T060000000002Z-bbbbbb.json.tmp").write_text("{")  # being written

    first = folder.read_new()
    assert [m.kind for m in first] == ["welcome"]
    assert first[0].received_at == pytest.approx(1795327200.5)
    assert folder.read_new() == []

    _store(tmp_path, "20200101T060000000003Z-cccccc", subject="You're invited: Y", to="b2.r@x")
    assert [m.kind for m in folder.read_new()] == ["invitation"]


def test_mail_named_within_the_settling_time_waits_for_the_next_pass(tmp_path: Path) -> None:
    folder = MailFolder(tmp_path, settle_s=3600.0)
    name = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-dddddd"
    _store(tmp_path, name, subject="Welcome to X", to="b1.r@x")
    assert folder.read_new() == []
    folder.settle_s = 0.0
    assert len(folder.read_new()) == 1


_LOG = """\
2026-11-22T05:58:56Z [info ] Consumer solidarity-registration-1 assigned to partitions: \
(TopicPartition(topic='catalog.sessions.v1', partition=1),)
2026-11-22T05:59:01Z [info ] Consumer solidarity-registration-2 assigned to partitions: \
(TopicPartition(topic='registration.submissions.v1', partition=4), \
TopicPartition(topic='registration.submissions.v1', partition=0))
2026-11-22T06:00:01Z [info ] submissions_decided size=500
2026-11-22T06:01:01Z [info ] Consumer solidarity-registration-2 assigned to partitions: \
(TopicPartition(topic='registration.submissions.v1', partition=2),)
"""


def test_the_last_assignment_of_a_topic_is_read_from_the_log(tmp_path: Path) -> None:
    log = tmp_path / "registration.log"
    log.write_text(_LOG)
    assert assigned_partitions(log, "registration.submissions.v1") == [2]
    assert assigned_partitions(log, "catalog.sessions.v1") == [1]
    assert assigned_partitions(tmp_path / "missing.log", "x") == []


def test_shares_cover_every_partition_once() -> None:
    assert shares_cover([[0, 1], [2, 3]], 4)
    assert not shares_cover([[0, 1], [1, 2, 3]], 4)
    assert not shares_cover([[0, 1, 2, 3], []], 4)


class _StumblingReader:
    """Fails its first read, then has one answer, then nothing."""

    def __init__(self) -> None:
        self.calls = 0

    async def poll(self, timeout_s: float = 0.5) -> list[Outcome]:
        self.calls += 1
        if self.calls == 1:
            raise KafkaConnectionError()
        if self.calls == 2:
            return [outcome("SignupConfirmed", "p-r-0")]
        await asyncio.sleep(0.01)
        return []


async def test_the_answer_watcher_reads_again_after_a_failed_read(tmp_path: Path) -> None:
    ledger = BurstLedger(1, origin=0.0)
    ledger.submitted(0, ASK_SIGNUP, at=1.0)
    observers = Observers(
        ledger=ledger,
        reader=cast(OutcomeReader, _StumblingReader()),
        folder=MailFolder(tmp_path),
        sampler=RssSampler(),
    )
    observers.start()
    try:
        for _ in range(300):
            if ledger.answered:
                break
            await asyncio.sleep(0.01)
    finally:
        await observers.stop()
    assert ledger.unanswered(0, 1) == 0
    assert observers.errors == {"answers:KafkaConnectionError": 1}


def test_what_each_consumer_did_is_read_from_the_metrics() -> None:
    text = "\n".join(
        [
            "# TYPE solidarity_consumer_messages counter",
            'solidarity_consumer_messages_total{consumer="registration.submissions",'
            'result="applied"} 9997.0',
            'solidarity_consumer_messages_total{consumer="registration.submissions",'
            'result="dead_lettered"} 3.0',
            "solidarity_outbox_published_total 12.0",
        ]
    )
    assert consumer_counts(text) == {
        "registration.submissions applied": 9997.0,
        "registration.submissions dead_lettered": 3.0,
    }
