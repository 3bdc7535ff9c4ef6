"""Scenarios 12 and 13: personal data stays where it belongs.

12. A flow that handles personal data on every path (HTTP and Kafka intake, invalid
    submissions, mail sent, refused and retried, a status read, an erasure), with the services
    logging at DEBUG: no line of their logs holds an email address or a name the test used.
    (conftest.py scans every other reliability test's logs the same way.)
13. After an erasure, a scan of every table of every service's database finds none of the
    person's data: email (as text, as bytes, as the SHA-256 key), name, pronouns, free text.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from solidarity.shared.contracts.events.catalog import RegistrationQuestion
from solidarity.shared.contracts.events.registration import RegistrationSubmittedV1
from solidarity.shared.partners import (
    KafkaPartner,
    PartnerCredentials,
    http_submission,
    raw_envelope,
    raw_headers,
    signed_message,
    signed_value,
)
from solidarity.shared.settings import LoggingSettings
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.reliability import logscan, platform
from tests.reliability.figures import record

pytestmark = pytest.mark.reliability

QUESTION = RegistrationQuestion(key="solidarity_means", label="What does solidarity mean?")


def _person(
    partner: PartnerCredentials, slug: str, session_id: uuid.UUID, label: str
) -> tuple[RegistrationSubmittedV1, dict[str, str]]:
    """A submission that carries every kind of personal data, and those strings."""
    token = uuid.uuid4().hex[:8]
    secrets = {
        "email": platform.person_email(label),
        "name": platform.person_name(),
        "pronouns": f"xe/xem-{token}",
        "answer": f"Showing up for my friend Jordan {token}",
    }
    submission = RegistrationSubmittedV1.model_validate(
        {
            "partner_id": partner.partner_id,
            "submission_id": f"{label}-{token}",
            "campaign": slug,
            "registrant": {
                "email": secrets["email"],
                "name": secrets["name"],
                "pronouns": secrets["pronouns"],
                "role": "student",
                "age_band": "13_17",
                "school": "Riverside High",
                "time_zone": "America/Chicago",
            },
            "consents": {"invitations": True},
            "answers": {QUESTION.key: secrets["answer"]},
            "session_ids": [session_id],
        }
    )
    return submission, secrets


def _invalid(partner: PartnerCredentials, slug: str, email: str, *, keyed: bool) -> Any:
    """A submission without a role, for this person: dead-lettered (and answered)."""
    event_id = uuid.uuid4()
    value = raw_envelope(
        {
            "partner_id": str(partner.partner_id),
            "submission_id": f"invalid-{event_id.hex[:8]}",
            "campaign": slug,
            "registrant": {"email": email},
        },
        producer="partner",
        event_id=event_id,
        occurred_at=datetime.now(UTC),
    )
    message = signed_value(partner, value, email=email, headers=raw_headers(event_id))
    if keyed:
        return message
    return type(message)(
        key=b"partner-batch-7", value=message.value, headers=message.headers, event_id=event_id
    )


async def _table_rows(dsn: str) -> dict[str, list[str]]:
    """Every row of every table of a database, as text (bytea as hex)."""
    tables = await platform.fetch(
        dsn,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', "
        "'information_schema')",
    )
    rows: dict[str, list[str]] = {}
    for table in tables:
        name = f'"{table["table_schema"]}"."{table["table_name"]}"'
        found = await platform.fetch(dsn, f"SELECT t::text AS row FROM {name} t")
        rows[name] = [r["row"] for r in found]
    return rows


def _needles(secrets: dict[str, str]) -> dict[str, str]:
    """What to look for: each string, its UTF-8 as hex (bytea), the email's SHA-256 key."""
    needles: dict[str, str] = {}
    for kind, value in secrets.items():
        needles[kind] = value.lower()
        needles[f"{kind} (bytes)"] = value.encode().hex()
    email_key = hashlib.sha256(secrets["email"].strip().lower().encode()).hexdigest()
    needles["email sha256"] = email_key
    needles["email sha256 (bytes)"] = email_key.encode().hex()
    return needles


async def _erasure_flow(
    infrastructure: Infrastructure,
    prefix: str,
    unique: str,
    tmp_path: Path,
    *,
    unkeyed_dead_letter: bool,
) -> tuple[dict[str, list[str]], dict[str, list[str]], int, int]:
    """Register the person (and a bystander) every way, erase the person, scan both databases.

    Returns (matches of the person's data by table, matches of the bystander's, tables, rows).
    """
    bootstrap = infrastructure.kafka_bootstrap
    slug = f"week-{unique}"
    campaign = platform.campaign_published(slug).model_copy(update={"questions": (QUESTION,)})
    session = platform.session_scheduled(campaign.campaign_id, capacity=10)
    async with platform.registration_and_notifications(
        infrastructure, unique, prefix, tmp_path / "mail", campaign, session
    ) as week:
        dsns, partner, services = week.dsns, week.partner, week.services
        person, secrets = _person(partner, slug, session.session_id, "erased")
        bystander, kept_secrets = _person(partner, slug, session.session_id, "stays")
        client = services["registration"].client
        auth = {"Authorization": f"Bearer {partner.api_key}"}
        # Over HTTP (the person) and Kafka (the bystander, and the person again); and a
        # submission of the person's that is invalid, so dead-lettered.
        answer = await client.post(
            "/v1/registrations?wait=5s",
            json=http_submission(person),
            headers={**auth, "Idempotency-Key": person.submission_id},
        )
        assert answer.status_code == 200, answer.text
        again = person.model_copy(update={"submission_id": f"{person.submission_id}-k"})
        async with KafkaPartner(partner, bootstrap_servers=bootstrap, topic_prefix=prefix) as kafka:
            await kafka.publish(
                [
                    signed_message(partner, bystander, producer="partner"),
                    signed_message(partner, again, producer="partner"),
                    _invalid(partner, slug, secrets["email"], keyed=not unkeyed_dead_letter),
                ]
            )

        async def mailed() -> bool:
            rows = await platform.fetch(
                dsns["notifications"],
                "SELECT count(*) AS n FROM deliveries WHERE state = 'sent'",
            )
            decided = await platform.fetchval(
                dsns["registration"], "SELECT count(*) FROM submissions"
            )
            dead = await platform.fetchval(
                dsns["registration"],
                "SELECT count(*) FROM outbox WHERE event_type = 'DeadLetter'",
            )
            return bool(rows[0]["n"] >= 4 and decided >= 3 and dead >= 1)

        await platform.wait_until(mailed, timeout_s=60, what="both people mailed")
        erased = await client.post("/v1/erasures", json={"email": secrets["email"]}, headers=auth)
        assert erased.status_code == 200, erased.text
        registrant_id = uuid.UUID(erased.json()["registrant_id"])

        async def erased_everywhere() -> bool:
            gone = await platform.fetchval(
                dsns["notifications"],
                "SELECT count(*) FROM erased_recipients WHERE recipient_id = $1",
                registrant_id,
            )
            return bool(gone)

        await platform.wait_until(erased_everywhere, timeout_s=60, what="erasure applied")
        await platform.wait_until(
            lambda: _outbox_sent(dsns["registration"]), timeout_s=30, what="outbox sent"
        )

        person_needles, bystander_needles = _needles(secrets), _needles(kept_secrets)
        found: dict[str, list[str]] = {}
        control: dict[str, list[str]] = {}
        tables = rows = 0
        for service, dsn in dsns.items():
            for table, texts in (await _table_rows(dsn)).items():
                tables += 1
                rows += len(texts)
                for text in texts:
                    low = text.lower()
                    for kind, needle in person_needles.items():
                        if needle in low:
                            found.setdefault(f"{service} {table}", []).append(kind)
                    for kind, needle in bystander_needles.items():
                        if needle in low:
                            control.setdefault(f"{service} {table}", []).append(kind)
    return found, control, tables, rows


async def _outbox_sent(dsn: str) -> bool:
    pending = await platform.fetchval(dsn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    return bool(pending == 0)


async def test_after_an_erasure_no_service_database_holds_the_persons_data(
    infrastructure: Infrastructure, registry_topics: str, unique: str, tmp_path: Path
) -> None:
    found, control, tables, rows = await _erasure_flow(
        infrastructure, registry_topics, unique, tmp_path, unkeyed_dead_letter=False
    )
    record(
        "13",
        "erasure: every table of every service database scanned",
        tables=tables,
        rows=rows,
        attempts=len(_needles({"email": "", "name": "", "pronouns": "", "answer": ""})),
        breaches=sum(len(v) for v in found.values()),
        where=json.dumps(found) if found else "-",
        bystander_found=sum(len(v) for v in control.values()),
    )
    assert control, "the scan finds the bystander's data (it can see what it looks for)"
    assert found == {}, found


async def test_after_an_erasure_no_dead_letter_of_the_person_remains_whatever_its_key(
    infrastructure: Infrastructure, registry_topics: str, unique: str, tmp_path: Path
) -> None:
    found, _, tables, rows = await _erasure_flow(
        infrastructure, registry_topics, unique, tmp_path, unkeyed_dead_letter=True
    )
    record(
        "13",
        "erasure with a dead letter keyed otherwise",
        tables=tables,
        rows=rows,
        breaches=sum(len(v) for v in found.values()),
        where=json.dumps(found) if found else "-",
    )
    assert found == {}, found


async def test_no_log_line_holds_the_personal_data_of_a_busy_day(
    infrastructure: Infrastructure,
    registry_topics: str,
    unique: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    slug = f"week-{unique}"
    campaign = platform.campaign_published(slug).model_copy(update={"questions": (QUESTION,)})
    session = platform.session_scheduled(campaign.campaign_id, capacity=2)
    debug = LoggingSettings(format="json", level="DEBUG")
    used: set[str] = set()
    async with platform.registration_and_notifications(
        infrastructure,
        unique,
        prefix,
        tmp_path / "mail",
        campaign,
        session,
        registration_overrides={"logging": debug},
        logging=debug,
    ) as week:
        sink, partner, services = week.sink, week.partner, week.services
        dsns = week.dsns
        people = [_person(partner, slug, session.session_id, f"day{i}") for i in range(8)]
        for _, secrets in people:
            used.update(secrets.values())
        await platform.add_fault(sink, recipient=people[0][1]["email"], code=550, times=None)
        await platform.add_fault(sink, recipient=people[1][1]["email"], code=451, times=2)
        client = services["registration"].client
        auth = {"Authorization": f"Bearer {partner.api_key}"}
        for submission, _ in people[:3]:
            await client.post("/v1/registrations", json=http_submission(submission), headers=auth)
        batch = [http_submission(s) for s, _ in people[3:5]]
        broken = http_submission(people[5][0])
        broken["registrant"]["email"] = "not an address " + people[5][1]["email"]
        batch.append(broken)
        await client.post("/v1/registrations/batch", json={"submissions": batch}, headers=auth)
        async with KafkaPartner(partner, bootstrap_servers=bootstrap, topic_prefix=prefix) as kafka:
            await kafka.publish(
                [
                    *(signed_message(partner, s, producer="partner") for s, _ in people[5:]),
                    _invalid(partner, slug, people[6][1]["email"], keyed=True),
                ]
            )

        async def settled() -> bool:
            decided = await platform.fetchval(
                dsns["registration"], "SELECT count(*) FROM submissions"
            )
            rows = await platform.fetch(
                dsns["notifications"],
                "SELECT count(*) AS n FROM deliveries WHERE state IN ('sent', 'failed')",
            )
            return bool(decided >= 8 and rows[0]["n"] >= 10)

        await platform.wait_until(settled, timeout_s=90, what="the day's work done")
        await client.get(f"/v1/registrations/{people[2][0].submission_id}", headers=auth)
        await client.post("/v1/erasures", json={"email": people[3][1]["email"]}, headers=auth)
        await client.post("/v1/erasures", json={"email": "nobody@school.example"}, headers=auth)
        await platform.wait_until(
            lambda: _outbox_sent(dsns["registration"]), timeout_s=30, what="outbox sent"
        )
    out, err = capfd.readouterr()
    found = logscan.scan([err], used | platform.PERSONAL_DATA)
    plain = [v for v in used if v.lower() in err.lower()]  # free text too, not only patterns
    print(out, end="")
    record(
        "12",
        "DEBUG logs of a day with every personal-data path",
        attempts=len(used),
        lines=found.lines,
        breaches=len(found.leaks) + len(plain),
    )
    assert found.lines > 20, "the services logged"
    assert found.leaks == [], found.leaks[:5]
    assert plain == [], plain
