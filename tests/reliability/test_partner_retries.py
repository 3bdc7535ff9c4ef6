"""Scenario 2: partners retry. A share of the submissions is sent again, some at the same
moment as the first copy, some after the answer: over HTTP with the same Idempotency-Key,
over Kafka as the very same message or as a new message with the same submission id. Nobody
is registered twice, and every copy gets the same answer."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.contracts.topics import REGISTRATION_OUTCOMES
from solidarity.shared.partners import KafkaPartner, SignedMessage, http_submission, signed_message
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.reliability import platform
from tests.reliability.figures import record, size

pytestmark = pytest.mark.reliability

ANSWER_TYPES = ("SignupConfirmed", "SessionRegistrationConfirmed", "SessionRegistrationWaitlisted")


def _answer_key(payload: dict[str, Any], event_type: str) -> tuple[Any, ...]:
    """What must be the same in every answer to one submission (not the duplicate flag)."""
    return (
        event_type,
        payload.get("signup_id"),
        payload.get("registration_id"),
        payload.get("session_id"),
        payload.get("position"),
    )


async def test_retried_submissions_register_once_and_get_the_same_answer(
    infrastructure: Infrastructure, registry_topics: str, unique: str, tmp_path: Path
) -> None:
    total = size(ci=600, full=20_000)
    over_http = total // 2
    retry_share = 0.10
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    slug = f"week-{unique}"
    campaign = platform.campaign_published(slug)
    session = platform.session_scheduled(campaign.campaign_id, capacity=max(10, total // 3))
    rng = random.Random(8)

    async with platform.service_databases(infrastructure, unique, ("registration",)) as dsns:
        dsn = dsns["registration"]
        await platform.migrated(dsn, "registration")
        partner = await platform.partner_account(dsn, slug)
        await platform.publish_events(bootstrap, prefix, [campaign, session])
        app = platform.registration(platform.registration_settings(infrastructure, dsn, prefix))
        async with platform.running(registration=app) as services:
            client = services["registration"].client
            auth = {"Authorization": f"Bearer {partner.api_key}"}

            async def known() -> bool:
                return bool(
                    await platform.fetchval(
                        dsn,
                        "SELECT count(*) FROM sessions WHERE session_id = $1",
                        session.session_id,
                    )
                )

            await platform.wait_until(known, what="the session in the read model")
            people = [
                platform.submission(partner.partner_id, slug, session_ids=[session.session_id])
                for _ in range(total)
            ]
            http_people, kafka_people = people[:over_http], people[over_http:]
            http_retried = rng.sample(
                range(len(http_people)), round(len(http_people) * retry_share)
            )
            kafka_retried = rng.sample(
                range(len(kafka_people)), round(len(kafka_people) * retry_share)
            )
            at_once_http = set(http_retried[: len(http_retried) // 2])
            later_http = http_retried[len(http_retried) // 2 :]

            # HTTP: each submission once; half the retried ones twice at the same moment.
            responses: dict[str, list[httpx.Response]] = defaultdict(list)
            gate = asyncio.Semaphore(16)

            async def post(index: int) -> None:
                body = http_submission(http_people[index])
                key = f"idem-{body['submission_id']}"
                async with gate:
                    copies = 2 if index in at_once_http else 1
                    sent = await asyncio.gather(
                        *(
                            client.post(
                                "/v1/registrations",
                                json=body,
                                headers={**auth, "Idempotency-Key": key},
                            )
                            for _ in range(copies)
                        )
                    )
                responses[key].extend(sent)

            # Kafka: every submission once; the retried ones again right behind the first
            # copy (half as the very same message, half as a new message, same submission id).
            messages: list[SignedMessage] = []
            copies_of: dict[str, int] = defaultdict(int)
            new_messages = 0  # copies with their own event id: each is answered (duplicate)
            for index, person in enumerate(kafka_people):
                first = signed_message(partner, person, producer="partner")
                messages.append(first)
                copies_of[person.submission_id] += 1
                if index in kafka_retried[: len(kafka_retried) // 2]:
                    again = (
                        first if index % 2 else signed_message(partner, person, producer="partner")
                    )
                    messages.append(again)
                    copies_of[person.submission_id] += 1
                    new_messages += again is not first

            started = time.perf_counter()
            async with KafkaPartner(
                partner, bootstrap_servers=bootstrap, topic_prefix=prefix
            ) as kafka:
                await asyncio.gather(
                    kafka.publish(messages),
                    *(post(i) for i in range(len(http_people))),
                )

                async def all_decided() -> bool:
                    count = await platform.fetchval(dsn, "SELECT count(*) FROM submissions")
                    return bool(count == total)

                await platform.wait_until(all_decided, timeout_s=180, what="every submission")
                decided_s = time.perf_counter() - started

                # After the answers: the rest of the retries (a partner that timed out).
                for index in later_http:
                    body = http_submission(http_people[index])
                    key = f"idem-{body['submission_id']}"
                    responses[key].append(
                        await client.post(
                            "/v1/registrations",
                            json=body,
                            headers={**auth, "Idempotency-Key": key},
                        )
                    )
                late: list[SignedMessage] = []
                for index in kafka_retried[len(kafka_retried) // 2 :]:
                    person = kafka_people[index]
                    late.append(signed_message(partner, person, producer="partner"))
                    copies_of[person.submission_id] += 1
                    new_messages += 1
                await kafka.publish(late)

            async def signup_answers() -> int:
                count = await platform.fetchval(
                    dsn,
                    "SELECT count(*) FROM outbox WHERE topic = $1 AND event_type = $2",
                    REGISTRATION_OUTCOMES.full_name(prefix),
                    "SignupConfirmed",
                )
                return int(count)

            async def kafka_copies_answered() -> bool:
                return await signup_answers() >= total + new_messages

            await platform.settles(kafka_copies_answered, timeout_s=60)
            await asyncio.sleep(1.0)  # time for any (wrong) extra answer to be written

        # Nobody twice: one sign-up per person, one registration per person and session.
        signups = await platform.fetchval(dsn, "SELECT count(*) FROM signups")
        registrations = await platform.fetchval(dsn, "SELECT count(*) FROM registrations")
        people_stored = await platform.fetchval(dsn, "SELECT count(*) FROM registrants")
        rows = await platform.fetch(
            dsn,
            "SELECT value FROM outbox WHERE topic = $1",
            REGISTRATION_OUTCOMES.full_name(prefix),
        )

    # Every copy's answers are the same answers.
    answers: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        envelope = Envelope.from_bytes(row["value"])
        if envelope.event_type in ANSWER_TYPES:
            answers[envelope.payload["submission_id"]].append(
                _answer_key(envelope.payload, envelope.event_type)
            )
    by_kind: dict[tuple[str, str], set[tuple[Any, ...]]] = defaultdict(set)
    for sid, found in answers.items():
        for answer in found:
            by_kind[(sid, answer[0])].add(answer)
    differing = sum(1 for keys in by_kind.values() if len(keys) != 1)
    answer_count = sum(1 for found in answers.values() for k in found if k[0] == ANSWER_TYPES[0])
    registration_ids: dict[str, set[Any]] = defaultdict(set)
    for sid, found in answers.items():
        registration_ids[sid] |= {k[2] for k in found if k[2] is not None}
    split = sum(1 for ids in registration_ids.values() if len(ids) != 1)
    http_mismatch = sum(
        1
        for sent in responses.values()
        if len({(r.status_code, r.content) for r in sent}) != 1
        or sum(r.headers.get("Idempotent-Replayed") == "true" for r in sent) != len(sent) - 1
    )
    kafka_retries = sum(c - 1 for c in copies_of.values())
    http_retries = sum(len(v) - 1 for v in responses.values())
    duplicates = (signups - total) + (registrations - total) + (people_stored - total) + split
    record(
        "2",
        "partner retries (HTTP Idempotency-Key, Kafka submission id)",
        submissions=total,
        retried=kafka_retries + http_retries,
        http_retries=http_retries,
        kafka_retries=kafka_retries,
        duplicates=duplicates,
        differing_answers=differing + http_mismatch,
        answers=answer_count,
        expected_answers=total + new_messages,
        decided_s=round(decided_s, 1),
    )
    assert (signups, registrations, people_stored) == (total, total, total)
    assert split == 0, "one registration id per submission, whatever the copies"
    assert differing == 0, "every copy answered alike"
    assert http_mismatch == 0, "the same key gives the same response, replayed"
    assert answer_count == total + new_messages, "each message answered once, exact copies not"
