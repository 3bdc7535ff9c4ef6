"""I/O helpers for the end-to-end test: databases, topics, the mail sink, waiting."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from solidarity.shared.demo import AnswerBook, Mail, MailSink, metric_values
from solidarity.shared.partners import OutcomeReader
from tests.e2e.checks import ExpectedMail


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout_s:.0f} s")
        await asyncio.sleep(0.5)


async def read_until(
    reader: OutcomeReader, book: AnswerBook, done: Callable[[], bool], timeout_s: float = 30
) -> None:
    """Read answers until `done`, then a little longer (to see anything extra)."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        book.add(await reader.poll(0.5))
    book.add(await reader.poll(1.0))


async def every_record(bootstrap: str, topic: str) -> list[bytes]:
    """Every record of a topic, read from the start until the broker has had nothing more to
    give for a second: no end offset is trusted (the embedded broker's can be short)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # fresh metadata
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert partitions, f"no topic {topic}"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        values: list[bytes] = []
        while batch := await consumer.getmany(timeout_ms=1000):
            values += [r.value or b"" for records in batch.values() for r in records]
        return values
    finally:
        await consumer.stop()


async def outbox_rows_with(dsn: str, needle: str) -> list[tuple[str, str]]:
    """(event type, topic) of the outbox rows whose body holds the needle."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT event_type, topic FROM outbox WHERE position($1::bytea IN value) > 0",
            needle.encode(),
        )
    finally:
        await conn.close()
    return [(r["event_type"], r["topic"]) for r in rows]


_TEXTUAL = {"text", "character varying", "character", "json", "jsonb", "ARRAY", "USER-DEFINED"}


async def personal_data(dsn: str, needles: Sequence[str]) -> list[str]:
    """Where any of the needles (an email, a name) still is: `table.column (rows)`, over every
    text, json, array and bytea column of every table in the database."""
    found: list[str] = []
    conn = await asyncpg.connect(dsn)
    try:
        columns = await conn.fetch(
            """
            SELECT c.table_name, c.column_name, c.data_type
            FROM information_schema.columns c
            JOIN information_schema.tables t
              ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
            ORDER BY c.table_name, c.ordinal_position
            """
        )
        for row in columns:
            table, column, kind = row["table_name"], row["column_name"], row["data_type"]
            if kind not in _TEXTUAL and kind != "bytea":
                continue
            for needle in needles:
                value: str | bytes
                if kind == "bytea":
                    where, value = f'position($1::bytea IN "{column}") > 0', needle.encode()
                else:
                    where, value = f'strpos(lower("{column}"::text), lower($1)) > 0', needle
                count = await conn.fetchval(f'SELECT count(*) FROM "{table}" WHERE {where}', value)
                if count:
                    found.append(f"{table}.{column} ({count} row(s) with {needle!r})")
    finally:
        await conn.close()
    return found


class MailWatch:
    """Waits until the mail has settled: the expected mail arrived, the notifications service
    has read every event (its consumer lag) and has nothing due or being sent."""

    def __init__(self, sink: MailSink, *, dsn: str, url: str) -> None:
        self.sink = sink
        self.dsn = dsn
        self.url = url

    async def _idle(self) -> bool:
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"{self.url}/metrics")).text
        if any(metric_values(text, "solidarity_consumer_lag").values()):
            return False
        busy = await fetchval(
            self.dsn,
            """
            SELECT count(*) FROM deliveries WHERE channel = 'email'
              AND (state IN ('sending', 'unknown') OR (state = 'pending' AND due_at <= now()))
            """,
        )
        return bool(busy == 0)

    async def settled(self, expected: set[str], *, timeout_s: float) -> list[Mail]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            have = {m.message_id for m in await self.sink.mails()}
            if expected <= have and await self._idle():
                await asyncio.sleep(6)  # the lag metric refreshes every 5 s: see a fresh one
                if await self._idle():
                    break
            await asyncio.sleep(1)
        return await self.sink.mails()

    async def raw(self, mails: list[Mail]) -> dict[str, bytes]:
        """The .eml of each mail, by Message-ID."""
        gate = asyncio.Semaphore(16)

        async def one(mail: Mail) -> tuple[str, bytes]:
            async with gate:
                return str(mail.message_id), await self.sink.raw(mail.id)

        return dict(await asyncio.gather(*(one(m) for m in mails)))


def assert_exactly(mails: list[Mail], expected: dict[str, ExpectedMail]) -> None:
    """Each expected mail once, to its person, and nothing else."""
    seen = Counter(m.message_id for m in mails)
    twice = sorted(str(k) for k, n in seen.items() if n > 1)
    missing = sorted(set(expected) - set(seen))
    extra = sorted(str(k) for k in set(seen) - set(expected))
    assert not twice, f"{len(twice)} mail(s) sent more than once, e.g. {twice[:3]}"
    assert not missing, (
        f"{len(missing)} mail(s) missing: {Counter(expected[m].kind for m in missing)}"
    )
    assert not extra, f"{len(extra)} unexpected mail(s), e.g. {extra[:3]}"
    wrong = [m.message_id for m in mails if m.to != (expected[str(m.message_id)].to,)]
    assert not wrong, f"{len(wrong)} mail(s) to the wrong address"
