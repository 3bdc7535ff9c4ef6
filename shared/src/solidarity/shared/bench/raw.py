"""The machine's own limits, measured in the same run as the burst, with the same clients.

- the broker pipe: aiokafka producing and consuming submission-shaped messages at once;
- PostgreSQL: asyncpg inserting registration-shaped rows in batches, one transaction each;
- the mail path: aiosmtplib sending ready-made confirmation-shaped mails to the sink over as
  many connections as the notifications service keeps;
- the bare pipeline (`bare.py`): consume, insert one row each, produce one outcome each.

Each gives a rate; the services are compared with these, not with figures from elsewhere.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic

from solidarity.shared.db.pool import connect, ensure_database, with_database
from solidarity.shared.messaging.kafka import create_topics, make_producer
from solidarity.shared.partners import SignedMessage
from solidarity.shared.settings import KafkaSettings

RAW_DATABASE = "bench_raw"
PIPE_TOPIC = "bench.raw.pipe"
TOPIC_PARTITIONS = 12  # as many as registration.submissions.v1
BATCH = 500  # the services' consumer_max_records


@dataclass(frozen=True, slots=True)
class RawLimits:
    pipe_msgs_per_s: float
    pipe_produce_per_s: float
    pipe_messages: int
    pg_rows_per_s: float
    pg_rows: int
    smtp_mails_per_s: float
    smtp_mails: int
    smtp_connections: int
    smtp_mail_bytes: int
    bare_pipeline_per_s: float
    bare_messages: int

    def as_json(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, *, timeout_s: float = 10.0
) -> list[TopicPartition]:
    """A topic's partitions, once the consumer's metadata knows them."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        if time.monotonic() > deadline:
            raise RuntimeError(f"the broker shows no partitions for {topic}")
        await consumer.topics()
        await asyncio.sleep(0.1)


async def create_bench_topics(bootstrap: str, *names: str) -> None:
    await create_topics(
        bootstrap, (), extra=[NewTopic(name, TOPIC_PARTITIONS, 1) for name in names]
    )


def raw_consumer(bootstrap: str, *, group_id: str | None = None) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=BATCH,
        client_id="solidarity-bench",
    )


# The broker pipe -----------------------------------------------------------------------------


async def broker_pipe(
    bootstrap: str, samples: Sequence[SignedMessage], count: int
) -> tuple[float, float]:
    """(end-to-end messages/s, produce-only messages/s) for `count` messages produced and
    consumed at the same time on a 12-partition topic."""
    await create_bench_topics(bootstrap, PIPE_TOPIC)
    consumer = raw_consumer(bootstrap)
    producer = make_producer(KafkaSettings(bootstrap_servers=bootstrap))
    await consumer.start()
    await producer.start()
    try:
        partitions = await topic_partitions(consumer, PIPE_TOPIC)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        started = time.perf_counter()
        acked_at = 0.0

        async def produce() -> None:
            nonlocal acked_at
            futures = []
            for i in range(count):
                sample = samples[i % len(samples)]
                futures.append(
                    await producer.send(
                        PIPE_TOPIC,
                        value=sample.value,
                        key=sample.key,
                        headers=list(sample.headers),
                    )
                )
            await asyncio.gather(*futures)
            acked_at = time.perf_counter()

        async def consume() -> float:
            received = 0
            while received < count:
                batch = await consumer.getmany(timeout_ms=200, max_records=BATCH)
                received += sum(len(records) for records in batch.values())
            return time.perf_counter()

        _, finished = await asyncio.gather(produce(), consume())
        return count / (finished - started), count / (acked_at - started)
    finally:
        await producer.stop()
        await consumer.stop()


# PostgreSQL ----------------------------------------------------------------------------------

_REGISTRATIONS_TABLE = """
DROP TABLE IF EXISTS bench_registrations;
CREATE TABLE bench_registrations (
    registration_id uuid PRIMARY KEY,
    session_id uuid NOT NULL,
    campaign_id uuid NOT NULL,
    focus_day_id uuid,
    registrant_id uuid NOT NULL,
    partner_id uuid NOT NULL,
    submission_id text NOT NULL,
    role text NOT NULL,
    school text,
    status text NOT NULL,
    waitlist_ordinal bigint,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX bench_registrations_one_per_person
    ON bench_registrations (session_id, registrant_id);
CREATE INDEX bench_registrations_by_campaign ON bench_registrations (campaign_id);
"""

_INSERT_REGISTRATIONS = """
INSERT INTO bench_registrations (registration_id, session_id, campaign_id, focus_day_id,
    registrant_id, partner_id, submission_id, role, school, status, waitlist_ordinal)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[])
"""


async def postgres_rows(admin_dsn: str, count: int) -> float:
    """Registration-shaped rows per second, inserted in batches of 500, a transaction each."""
    await ensure_database(admin_dsn, RAW_DATABASE)
    conn = await connect(with_database(admin_dsn, RAW_DATABASE))
    try:
        await conn.execute(_REGISTRATIONS_TABLE)
        sessions = [uuid.uuid4() for _ in range(4)]
        campaign, partner = uuid.uuid4(), uuid.uuid4()
        batches = []
        for start in range(0, count, BATCH):
            size = min(BATCH, count - start)
            numbers = range(start, start + size)
            batches.append(
                (
                    [uuid.uuid4() for _ in numbers],
                    [sessions[i % 4] for i in numbers],
                    [campaign] * size,
                    [sessions[(i + 1) % 4] for i in numbers],
                    [uuid.uuid4() for _ in numbers],
                    [partner] * size,
                    [f"raw-{i}" for i in numbers],
                    ["student"] * size,
                    [f"School {i % 2000}" for i in numbers],
                    ["waitlisted"] * size,
                    list(numbers),
                )
            )
        started = time.perf_counter()
        for columns in batches:
            async with conn.transaction():
                await conn.execute(_INSERT_REGISTRATIONS, *columns)
        return count / (time.perf_counter() - started)
    finally:
        await conn.execute("DROP TABLE IF EXISTS bench_registrations")
        await conn.close()


# The mail path -------------------------------------------------------------------------------


def confirmation_shaped_mail(number: int) -> tuple[str, bytes]:
    """(recipient, bytes) of a mail built like the service's confirmations: plain text and
    HTML alternatives, a calendar alternative and an .ics attachment, unsubscribe headers."""
    recipient = f"raw{number}@raw.bench.example.org"
    message = EmailMessage()
    message["From"] = "Solidarity Week <notifications@solidarity.local>"
    message["To"] = recipient
    message["Subject"] = "You're registered: Black LGBTQ+ Focus Day: solidarity in your school"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = f"<{uuid.uuid4()}@raw.bench.solidarity.local>"
    message["List-Unsubscribe"] = f"<http://127.0.0.1:8003/unsubscribe?token={'t' * 60}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    paragraph = (
        "You have a seat at this webinar of Solidarity Week. It starts at 4:00 PM PT / "
        "7:00 PM ET on Monday, November 6. Join with the link below; the calendar invite "
        "attached keeps the time right in your own zone.\n"
    )
    message.set_content(paragraph * 8, cte="quoted-printable")
    message.add_alternative(
        "<html><body>" + ("<p>" + paragraph + "</p>") * 10 + "</body></html>",
        subtype="html",
        cte="quoted-printable",
    )
    calendar = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
        f"UID:{uuid.uuid4()}@solidarity.local\r\nSEQUENCE:0\r\n"
        "DTSTART;TZID=America/New_York:20271108T190000\r\n"
        "DTEND;TZID=America/New_York:20271108T200000\r\n"
        "SUMMARY:Black LGBTQ+ Focus Day: solidarity in your school\r\n"
        + "DESCRIPTION:"
        + "A webinar for students and educators. " * 12
        + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    message.add_alternative(calendar, subtype="calendar", params={"method": "REQUEST"})
    message.add_attachment(
        calendar.encode(), maintype="application", subtype="ics", filename="invite.ics"
    )
    return recipient, message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


async def smtp_mails(host: str, port: int, count: int, connections: int) -> tuple[float, int]:
    """(mails/s, bytes per mail) for ready-made mails sent over `connections` connections."""
    mails = [confirmation_shaped_mail(i) for i in range(count)]
    clients = [aiosmtplib.SMTP(hostname=host, port=port, timeout=30) for _ in range(connections)]
    for client in clients:
        await client.connect()
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for mail in mails:
        queue.put_nowait(mail)

    async def work(client: aiosmtplib.SMTP) -> None:
        while not queue.empty():
            recipient, data = queue.get_nowait()
            await client.sendmail("notifications@solidarity.local", [recipient], data)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(work(c) for c in clients))
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()
    return count / elapsed, sum(len(data) for _, data in mails) // max(1, count)
