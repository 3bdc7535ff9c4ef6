"""The DLQ tools against a real broker: list, show and re-drive, from Python and the CLI."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from solidarity.shared.contracts.topics import REGISTRATION_SUBMISSIONS
from solidarity.shared.dlq import DlqError, read_dead_letter, read_dead_letters, redrive
from solidarity.shared.messaging.consumer import DlqHeaders
from solidarity.shared.testing.infrastructure import Infrastructure

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "solidarity.shared.cli.app"]
ORIGINAL_HEADERS = [("event_type", b"RegistrationSubmitted"), ("correlation_id", b"corr-1")]


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def _cli(*args: str) -> CliResult:
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return CliResult(process.returncode, out.decode(), err.decode())


def _dead_letter_headers(source: str, offset: int, error: str) -> list[tuple[str, bytes]]:
    return [
        *ORIGINAL_HEADERS,
        (DlqHeaders.ERROR_TYPE, b"ValidationError"),
        (DlqHeaders.ERROR_MESSAGE, error.encode()),
        (DlqHeaders.SOURCE_TOPIC, source.encode()),
        (DlqHeaders.SOURCE_PARTITION, b"4"),
        (DlqHeaders.SOURCE_OFFSET, str(offset).encode()),
        (DlqHeaders.CONSUMER_GROUP, b"registration-intake"),
        (DlqHeaders.FAILED_AT, b"2026-03-02T10:00:00+00:00"),
    ]


async def _produce_dead_letters(bootstrap: str, prefix: str) -> tuple[str, str]:
    source = REGISTRATION_SUBMISSIONS.full_name(prefix)
    dlq = REGISTRATION_SUBMISSIONS.full_dlq_name(prefix)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(
            dlq,
            value=b'{"not": "an envelope"}',
            key=b"registrant-1",
            headers=_dead_letter_headers(source, 17, "missing field event_id"),
        )
        await producer.send_and_wait(
            dlq,
            value=b"\xff\xfe\x00binary",
            key=b"registrant-2",
            headers=_dead_letter_headers(source, 18, "not JSON"),
        )
    finally:
        await producer.stop()
    return source, dlq


async def test_list_show_and_redrive_one(
    infrastructure: Infrastructure, registry_topics: str
) -> None:
    bootstrap = infrastructure.kafka_bootstrap
    source, dlq = await _produce_dead_letters(bootstrap, registry_topics)

    letters = await read_dead_letters(bootstrap, dlq)

    assert [(d.partition, d.offset) for d in letters] == [(0, 0), (0, 1)]
    first = letters[0]
    assert first.source_topic == source
    assert (first.source_partition, first.source_offset) == (4, 17)
    assert first.consumer_group == "registration-intake"
    assert first.error_type == "ValidationError"
    assert first.error_message == "missing field event_id"
    assert first.failed_at == "2026-03-02T10:00:00+00:00"
    assert first.size == len(b'{"not": "an envelope"}')
    second = await read_dead_letter(bootstrap, dlq, 1)
    assert second.value == b"\xff\xfe\x00binary"
    assert second.key == b"registrant-2"

    done = await redrive(bootstrap, [second])

    assert [(r.topic, r.dlq_offset) for r in done] == [(source, 1)]
    back = await read_dead_letters(bootstrap, source)  # any topic reads the same way
    assert len(back) == 1
    assert back[0].value == b"\xff\xfe\x00binary"
    assert back[0].key == b"registrant-2"
    assert list(back[0].headers) == ORIGINAL_HEADERS
    assert (back[0].partition, back[0].offset) == (done[0].partition, done[0].offset)
    assert len(await read_dead_letters(bootstrap, dlq)) == 2  # reading commits nothing


async def test_unknown_topic_and_offset_are_one_line_errors(
    infrastructure: Infrastructure, registry_topics: str
) -> None:
    bootstrap = infrastructure.kafka_bootstrap
    _, dlq = await _produce_dead_letters(bootstrap, registry_topics)

    with pytest.raises(DlqError, match="no topic"):
        await read_dead_letters(bootstrap, f"{registry_topics}nothing.here.dlq")
    with pytest.raises(DlqError, match="no offset 9"):
        await read_dead_letter(bootstrap, dlq, 9)
    source = REGISTRATION_SUBMISSIONS.full_name(registry_topics)
    assert await read_dead_letters(bootstrap, source) == []


async def test_the_command_line_lists_shows_and_redrives(
    infrastructure: Infrastructure, registry_topics: str, tmp_path: Path
) -> None:
    bootstrap = infrastructure.kafka_bootstrap
    source, dlq = await _produce_dead_letters(bootstrap, registry_topics)
    common = ["--bootstrap", bootstrap, "--data-dir", str(tmp_path)]

    listed = await _cli("dlq", "list", dlq, "--json", *common)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["offset"], r["source_offset"], r["error_message"]) for r in rows] == [
        (0, 17, "missing field event_id"),
        (1, 18, "not JSON"),
    ]

    # The .dlq suffix may be left out; a binary body is shown as hex.
    shown = await _cli("dlq", "show", source, "1", *common)
    assert shown.returncode == 0, shown.stderr
    assert "ff fe 00 62" in shown.stdout
    assert "dlq.source_topic" in shown.stdout

    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(b'{"fixed": true}')
    redriven = await _cli(
        "dlq", "redrive", dlq, "--offset", "0", "--from-file", str(fixed), *common
    )
    assert redriven.returncode == 0, redriven.stderr
    assert "re-drove 1 message(s)" in redriven.stdout
    everything = await _cli("dlq", "redrive", dlq, "--all", *common)
    assert everything.returncode == 0, everything.stderr

    back = await read_dead_letters(bootstrap, source)
    assert sorted(d.value for d in back) == sorted(
        [b'{"fixed": true}', b'{"not": "an envelope"}', b"\xff\xfe\x00binary"]
    )
    assert all(not k.startswith("dlq.") for d in back for k, _ in d.headers)

    missing = await _cli("dlq", "show", dlq, "7", *common)
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0
    assert "no offset 7" in missing.stderr
