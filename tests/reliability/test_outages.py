"""Scenarios 4 and 5: the platform's dependencies go away in the middle of a burst.

4. PostgreSQL stops for ten seconds: the services wait and reconnect, no Kafka offset is
   committed past work that was not saved, and nothing is lost.
5. The embedded broker restarts (it keeps nothing): after the documented recovery (topics
   created again, `solidarity outbox replay` for each service) nothing is lost and the
   consumers skip what they had already applied.

Both need the embedded stack (the fixtures stop and start its processes).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from solidarity.registration.bootstrap import submissions_group
from solidarity.shared.contracts.events.registration import RegistrationSubmittedV1
from solidarity.shared.contracts.topics import (
    REGISTRATION_OUTCOMES,
    REGISTRATION_REGISTRANTS,
    REGISTRATION_SUBMISSIONS,
)
from solidarity.shared.partners import (
    KafkaPartner,
    OutcomeReader,
    http_submission,
    signed_message,
)
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.reliability import platform
from tests.reliability.badinput import cli
from tests.reliability.figures import record, size
from tests.reliability.mail import copies_by_recipient, kept

pytestmark = pytest.mark.reliability


async def _submissions_committed(bootstrap: str, prefix: str) -> int:
    """The sum of the submissions group's committed offsets."""
    return await platform.committed_total(
        bootstrap, submissions_group(prefix), [REGISTRATION_SUBMISSIONS.full_name(prefix)]
    )


async def test_postgres_away_for_ten_seconds_mid_burst_loses_nothing(
    infrastructure: Infrastructure, registry_topics: str, unique: str, tmp_path: Path
) -> None:
    if infrastructure.postgres_stop is None or infrastructure.postgres_start is None:
        pytest.skip("needs the embedded stack, whose PostgreSQL the test can stop")
    stop_pg, start_pg = infrastructure.postgres_stop, infrastructure.postgres_start
    total = size(ci=600, full=20_000)
    outage_s = 10.0
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    slug = f"week-{unique}"
    campaign = platform.campaign_published(slug)
    session = platform.session_scheduled(campaign.campaign_id, capacity=total // 4)

    async with platform.registration_and_notifications(
        infrastructure,
        unique,
        prefix,
        tmp_path / "mail",
        campaign,
        session,
        retry_max_attempts=20,
        # Rows claimed for sending when the database went away are settled once their lease
        # runs out (default 300 s): short here, see docs/reliability.md.
        sending_lease_s=2.0,
    ) as week:
        dsns, sink, partner, services = week.dsns, week.sink, week.partner, week.services
        people = [
            platform.submission(
                partner.partner_id, slug, session_ids=[session.session_id], invitations=True
            )
            for _ in range(total)
        ]
        outage: dict[str, float] = {}
        statuses_during: Counter[int | str] = Counter()
        committed: list[int] = []
        ready_during: list[int] = []
        published, published_at_stop = [0], []

        async def burst() -> None:
            """Submissions over Kafka at a steady pace across the outage."""
            chunk = max(1, total // 40)
            async with KafkaPartner(
                partner, bootstrap_servers=bootstrap, topic_prefix=prefix
            ) as kafka:
                for start in range(0, total, chunk):
                    published[0] += await kafka.publish(
                        signed_message(partner, p, producer="partner")
                        for p in people[start : start + chunk]
                    )
                    await asyncio.sleep(0.4)

        async def take_postgres_away() -> None:
            await asyncio.sleep(3.0)
            committed.append(await _submissions_committed(bootstrap, prefix))
            outage["stopped"] = time.monotonic()
            published_at_stop.append(published[0])
            await platform.in_infra_thread(stop_pg)
            await asyncio.sleep(1.0)
            committed.append(await _submissions_committed(bootstrap, prefix))
            # Readiness says so; and a partner calling the API meanwhile (its answer is
            # test_the_partner_api_answers_503_while_postgres_is_away's business).
            client = services["registration"].client
            ready_during.append((await client.get("/ready")).status_code)
            for _ in range(3):
                try:
                    response = await client.post(
                        "/v1/registrations",
                        json=http_submission(platform.submission(partner.partner_id, slug)),
                        headers={"Authorization": f"Bearer {partner.api_key}"},
                    )
                    statuses_during[response.status_code] += 1
                except Exception as exc:  # an unhandled error escaping the app
                    statuses_during[type(exc).__name__] += 1
                await asyncio.sleep(0.5)
            remaining = outage_s - (time.monotonic() - outage["stopped"])
            await asyncio.sleep(max(0.0, remaining - 1.0))
            committed.append(await _submissions_committed(bootstrap, prefix))
            await platform.in_infra_thread(start_pg)
            outage["started"] = time.monotonic()

        await asyncio.gather(burst(), take_postgres_away())

        async def all_decided() -> bool:
            count = await platform.fetchval(
                dsns["registration"], "SELECT count(*) FROM submissions"
            )
            return bool(count == total)

        decided_s = await platform.settles(all_decided, timeout_s=180)
        recovered_s = time.monotonic() - outage["started"]

        async def all_mailed() -> bool:
            rows = await platform.fetch(
                dsns["notifications"],
                "SELECT count(*) AS n FROM deliveries WHERE kind = 'signup_welcome' "
                "AND state = 'sent'",
            )
            return bool(rows[0]["n"] == total)

        mailed_s = await platform.settles(all_mailed, timeout_s=120)
        await asyncio.sleep(1.0)
        retries = {name: s.retries() for name, s in services.items()}
        ready = (await services["registration"].client.get("/ready")).status_code
        decisions = await platform.fetch(
            dsns["registration"],
            "SELECT submission_id FROM submissions WHERE partner_id = $1",
            partner.partner_id,
        )
        registrations = await platform.fetchval(
            dsns["registration"], "SELECT count(*) FROM registrations"
        )
        answers = await platform.fetch(
            dsns["registration"],
            "SELECT value FROM outbox WHERE topic = $1 AND event_type = 'SignupConfirmed'",
            REGISTRATION_OUTCOMES.full_name(prefix),
        )
        mails = kept(sink)

    wanted = {p.submission_id for p in people}
    decided = {r["submission_id"] for r in decisions} & wanted
    answered = Counter(json.loads(r["value"])["payload"]["submission_id"] for r in answers)
    copies = copies_by_recipient(mails)
    emails = {p.registrant.email.lower() for p in people}
    lost = len(wanted - decided) + sum(1 for e in emails if copies[e] == 0)
    duplicated = sum(1 for s in wanted if answered[s] > 1) + (
        len(mails) - len({m.message_id for m in mails})
    )
    moved_while_down = committed[-1] - committed[1] if len(committed) == 3 else -1
    record(
        "4",
        f"PostgreSQL stopped for {outage_s:.0f} s mid-burst",
        submissions=total,
        lost=lost,
        duplicated=duplicated,
        published_before_stop=published_at_stop[0],
        offsets_committed_while_down=moved_while_down,
        registrations=registrations,
        consumer_retries=sum(retries.values()),
        http_during_outage=dict(statuses_during),
        recovery_s=round(recovered_s, 1),
        decided_s=round(decided_s if decided_s is not None else -1, 1),
        mailed_s=round(mailed_s if mailed_s is not None else -1, 1),
        ready_during=ready_during[0] if ready_during else -1,
        ready_after=ready,
    )
    assert decided_s is not None, "every submission decided after the outage"
    assert mailed_s is not None, "every welcome sent after the outage"
    assert (lost, duplicated) == (0, 0)
    assert 0 < published_at_stop[0] < total, "PostgreSQL went away in the middle of the burst"
    assert moved_while_down == 0, "no offset committed while nothing could be saved"
    assert registrations == total
    assert sum(retries.values()) > 0, "the consumers waited (retried) rather than gave up"
    assert (ready_during, ready) == ([503], 200), "readiness tells the truth"


async def test_a_broker_restart_is_recovered_by_the_documented_replay_without_loss(
    infrastructure: Infrastructure, registry_topics: str, unique: str, tmp_path: Path
) -> None:
    if infrastructure.broker_restart is None:
        pytest.skip("needs the embedded broker, which the test can restart")
    restart = infrastructure.broker_restart
    total = size(ci=200, full=10_000)
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    slug = f"week-{unique}"
    campaign = platform.campaign_published(slug)
    session = platform.session_scheduled(campaign.campaign_id, capacity=total // 4)
    before = datetime.now(UTC) - timedelta(seconds=5)

    async with (
        platform.service_databases(
            infrastructure, unique, ("registration", "notifications")
        ) as dsns,
        platform.mail_sink(tmp_path / "mail") as sink,
    ):
        await platform.migrated(dsns["registration"], "registration")
        partner = await platform.partner_account(dsns["registration"], slug)
        catalog_events = [campaign, session]
        await platform.publish_events(bootstrap, prefix, catalog_events)
        reg_settings = platform.registration_settings(infrastructure, dsns["registration"], prefix)
        notif_settings = platform.notifications_settings(
            infrastructure, dsns["notifications"], prefix, sink
        )
        people = [
            platform.submission(partner.partner_id, slug, session_ids=[session.session_id])
            for _ in range(total)
        ]
        first, second = people[: total // 2], people[total // 2 :]

        async def publish(batch: list[RegistrationSubmittedV1]) -> None:
            async with KafkaPartner(
                partner, bootstrap_servers=bootstrap, topic_prefix=prefix
            ) as kafka:
                await kafka.publish(signed_message(partner, p, producer="partner") for p in batch)

        def decided(count: int) -> Any:
            async def check() -> bool:
                found = await platform.fetchval(
                    dsns["registration"], "SELECT count(*) FROM submissions"
                )
                return bool(found == count)

            return check

        async def registration_events() -> set[uuid.UUID]:
            rows = await platform.fetch(
                dsns["registration"],
                "SELECT event_id FROM outbox WHERE topic = ANY($1::text[])",
                [
                    REGISTRATION_OUTCOMES.full_name(prefix),
                    REGISTRATION_REGISTRANTS.full_name(prefix),
                ],
            )
            return {r["event_id"] for r in rows}

        async with platform.running(registration=platform.registration(reg_settings)):

            async def known() -> bool:
                query = "SELECT count(*) FROM sessions WHERE session_id = $1"
                found = await platform.fetchval(dsns["registration"], query, session.session_id)
                return bool(found)

            await platform.wait_until(known, what="the session in the read model")
            # 1. The first half goes all the way through (notifications running).
            async with platform.running(notifications=platform.notifications(notif_settings)):
                await publish(first)
                await platform.wait_until(decided(len(first)), timeout_s=120, what="first half")
                planned = await registration_events()

                async def first_applied() -> bool:
                    done = await platform.applied_ids(
                        dsns["notifications"], f"{prefix}notifications", list(planned)
                    )
                    return len(done) == len(planned)

                await platform.wait_until(first_applied, timeout_s=120, what="first half planned")
                mails_before = len(kept(sink))
            # 2. Notifications is down while the second half is decided: its events wait on
            #    the broker ...
            await publish(second)
            await platform.wait_until(decided(total), timeout_s=120, what="second half")
            await platform.wait_until(
                lambda: _relayed(dsns["registration"]), timeout_s=60, what="outbox relayed"
            )

            # 3. ... which restarts: every topic, record and committed offset is gone.
            restarted = time.monotonic()
            await platform.in_infra_thread(restart)

            # The documented recovery (docs/operations.md): topics, then each outbox.
            common = ["--bootstrap", bootstrap, "--data-dir", str(tmp_path / "cli")]
            made = await cli("topics", "create", "--prefix", prefix, *common)
            applied_before = {
                r["event_id"]
                for r in await platform.fetch(dsns["notifications"], "SELECT event_id FROM inbox")
            }
            since = before.isoformat()
            replays = [
                await cli(
                    "outbox",
                    "replay",
                    "--service",
                    service,
                    "--since",
                    since,
                    "--dsn",
                    dsns[service],
                    "--data-dir",
                    str(tmp_path / "cli"),
                )
                for service in ("registration", "notifications")
            ]
            # The catalog's own replay (this scenario plays the catalog).
            await platform.publish_events(bootstrap, prefix, catalog_events)
            replayed = await registration_events()

            # 4. Notifications comes back and reads the replayed topics from the start.
            async with platform.running(
                notifications=platform.notifications(notif_settings)
            ) as second_run:
                planner = second_run["notifications"].runners[0]

                async def replay_read() -> bool:
                    return bool(planner.stats.received >= len(replayed))

                async def everyone_mailed() -> bool:
                    rows = await platform.fetch(
                        dsns["notifications"],
                        "SELECT count(*) AS n FROM deliveries WHERE state = 'sent' "
                        "AND kind = 'signup_welcome'",
                    )
                    return bool(rows[0]["n"] == total)

                read_s = await platform.settles(replay_read, timeout_s=120)
                mailed_s = await platform.settles(everyone_mailed, timeout_s=120)
                recovery_s = time.monotonic() - restarted
                await asyncio.sleep(1.0)
                skipped, applied = planner.stats.duplicates, planner.stats.applied

            # A partner reading its answers from the new topic finds one for everybody.
            answers: Counter[str] = Counter()
            async with OutcomeReader(
                bootstrap_servers=bootstrap, partner_ids=[partner.partner_id], topic_prefix=prefix
            ) as reader:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and len(answers) < total:
                    for outcome in await reader.poll(1.0):
                        if outcome.event_type == "SignupConfirmed" and outcome.submission_id:
                            answers[outcome.submission_id] += 1
        registrations = await platform.fetchval(
            dsns["registration"], "SELECT count(*) FROM registrations"
        )
        mails = kept(sink)

    emails = {p.registrant.email.lower() for p in people}
    copies = copies_by_recipient(mails)
    lost = sum(1 for e in emails if copies[e] == 0) + sum(
        1 for p in people if answers[p.submission_id] == 0
    )
    duplicated_mails = len(mails) - len({m.message_id for m in mails})
    expected_skips = len(replayed & applied_before)
    record(
        "5",
        "embedded broker restarted, recovered by topics create + outbox replay",
        submissions=total,
        lost=lost,
        duplicated=registrations - total + duplicated_mails,
        mails_before_restart=mails_before,
        mails=len(mails),
        answers_on_new_topic=sum(1 for p in people if answers[p.submission_id]),
        replayed=len(replayed),
        already_applied=expected_skips,
        consumers_skipped=skipped,
        applied_after=applied,
        recovery_s=round(recovery_s, 1),
        topics_exit=made.returncode,
        replay_exit=max(r.returncode for r in replays),
    )
    assert made.returncode == 0, made.stderr
    assert all(r.returncode == 0 for r in replays), [r.stderr for r in replays]
    assert read_s is not None, "notifications read the replayed topics"
    assert mailed_s is not None, "every welcome sent after the recovery"
    assert lost == 0
    assert registrations == total
    assert duplicated_mails == 0
    assert skipped == expected_skips > 0, "replayed events already applied were skipped"
    assert applied >= len(replayed) - expected_skips > 0, "the rest applied once"


async def _relayed(dsn: str) -> bool:
    pending = await platform.fetchval(dsn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    return bool(pending == 0)


async def test_the_partner_api_answers_503_while_postgres_is_away(
    infrastructure: Infrastructure, registry_topics: str, unique: str
) -> None:
    if infrastructure.postgres_stop is None or infrastructure.postgres_start is None:
        pytest.skip("needs the embedded stack, whose PostgreSQL the test can stop")
    stop_pg, start_pg = infrastructure.postgres_stop, infrastructure.postgres_start
    slug = f"week-{unique}"
    async with platform.service_databases(infrastructure, unique, ("registration",)) as dsns:
        dsn = dsns["registration"]
        await platform.migrated(dsn, "registration")
        partner = await platform.partner_account(dsn, slug)
        statuses: dict[str, int] = {}
        retry_after: str | None = None
        # The service's own partner routes on its pool and outbox, served by a real HTTP
        # server (no consumers: nothing here needs them, and they take seconds to join).
        async with (
            platform.partner_routes(infrastructure, dsn, registry_topics) as app,
            platform.listening(app) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            auth = {"Authorization": f"Bearer {partner.api_key}"}
            body = http_submission(platform.submission(partner.partner_id, slug))
            await platform.in_infra_thread(stop_pg)
            try:
                down = await client.post("/v1/registrations", json=body, headers=auth)
                statuses["submit"] = down.status_code
                retry_after = down.headers.get("Retry-After")
                statuses["status"] = (
                    await client.get("/v1/registrations/x", headers=auth)
                ).status_code
            finally:
                await platform.in_infra_thread(start_pg)

            async def accepted_again() -> bool:
                again = await client.post("/v1/registrations", json=body, headers=auth)
                statuses["after"] = again.status_code
                return bool(again.status_code == 202)

            await platform.settles(accepted_again, timeout_s=30)
    record(
        "4",
        "partner API while PostgreSQL is away",
        attempts=2,
        breaches=sum(1 for k in ("submit", "status") if statuses.get(k) != 503),
        submit=statuses.get("submit"),
        status=statuses.get("status"),
        after=statuses.get("after"),
    )
    assert statuses["after"] == 202, "the API works again once PostgreSQL is back"
    assert (statuses["submit"], statuses["status"]) == (503, 503)
    assert retry_after is not None
