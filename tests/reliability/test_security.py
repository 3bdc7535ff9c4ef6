"""Scenario 11: intruders. No API key is 401; partner A cannot submit for a campaign it does
not work on, read, cancel or erase partner B's registrations, read B's statistics, reuse B's
Idempotency-Key to get B's answer, or publish on Kafka as B or with a bad signature. Each
attempt is refused (401/403/404, or a rejection outcome) and stores no personal data."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.contracts.events.registration import registrant_key
from solidarity.shared.contracts.topics import REGISTRATION_OUTCOMES
from solidarity.shared.partners import (
    HttpPartner,
    KafkaPartner,
    PartnerCredentials,
    SignedMessage,
    http_submission,
    raw_headers,
    signed_message,
    signed_value,
    submission_envelope,
)
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.reliability import platform
from tests.reliability.figures import record

pytestmark = pytest.mark.reliability


@dataclass
class Attempt:
    """One thing an intruder tried, and whether the platform held."""

    what: str
    held: bool
    detail: str = ""


async def test_intruders_are_refused_and_nothing_of_theirs_is_stored(
    infrastructure: Infrastructure, registry_topics: str, unique: str, tmp_path: Path
) -> None:
    prefix, bootstrap = registry_topics, infrastructure.kafka_bootstrap
    slug_a, slug_b = f"a-week-{unique}", f"b-week-{unique}"
    campaign_a = platform.campaign_published(slug_a)
    campaign_b = platform.campaign_published(slug_b)
    session_b = platform.session_scheduled(campaign_b.campaign_id, capacity=10)
    attempts: list[Attempt] = []
    intruder_emails: list[str] = []

    def intruder_email() -> str:
        email = platform.person_email("intruder")
        intruder_emails.append(email)
        return email

    async with platform.service_databases(infrastructure, unique, ("registration",)) as dsns:
        dsn = dsns["registration"]
        await platform.migrated(dsn, "registration")
        a = await platform.partner_account(dsn, slug_a, name="Partner A")
        b = await platform.partner_account(dsn, slug_b, name="Partner B")
        await platform.publish_events(bootstrap, prefix, [campaign_a, campaign_b, session_b])
        app = platform.registration(platform.registration_settings(infrastructure, dsn, prefix))
        async with platform.running(registration=app) as services:
            transport = httpx.ASGITransport(app=services["registration"].app)
            raw = services["registration"].client

            async def known() -> bool:
                found = await platform.fetchval(
                    dsn, "SELECT count(*) FROM sessions WHERE session_id = $1", session_b.session_id
                )
                return bool(found)

            await platform.wait_until(known, what="B's session in the read model")

            # B registers someone, legitimately: what A will go after.
            victim_email = platform.person_email("victim")
            victim = platform.submission(
                b.partner_id, slug_b, email=victim_email, session_ids=[session_b.session_id]
            )
            async with HttpPartner(b, base_url="http://registration", transport=transport) as hb:
                answer = await hb.submit(
                    http_submission(victim), idempotency_key="b-key-1", wait="5s"
                )
            assert answer.status_code == 200, answer.body
            victim_registrant = answer.body["registrant_id"]
            assert answer.body["sessions"][0]["status"] == "confirmed"

            # 1. No key, an unknown key, a malformed header: 401 on every partner route.
            routes: list[tuple[str, str, Any]] = [
                ("POST", "/v1/registrations", http_submission(victim)),
                ("POST", "/v1/registrations/batch", {"submissions": [http_submission(victim)]}),
                ("GET", f"/v1/registrations/{victim.submission_id}", None),
                ("DELETE", f"/v1/registrations/{victim.submission_id}", None),
                ("POST", "/v1/erasures", {"email": victim_email}),
                ("GET", f"/v1/stats/campaigns/{slug_b}", None),
            ]
            for auth in (
                {},
                {"Authorization": "Bearer swk_not-a-real-key"},
                {"X-API-Key": "swk_guessing"},
                {"Authorization": "Bearer "},
                {"Authorization": f"Basic {b.api_key}"},
            ):
                for method, path, body in routes:
                    response = await raw.request(method, path, json=body, headers=auth)
                    attempts.append(
                        Attempt(
                            f"{method} {path.split('/')[2]} with {list(auth) or 'no key'}",
                            response.status_code == 401,
                            str(response.status_code),
                        )
                    )

            async with HttpPartner(a, base_url="http://registration", transport=transport) as ha:
                # 2. A submits for B's campaign: refused with a reason, nothing stored.
                email = intruder_email()
                sub = platform.submission(
                    a.partner_id, slug_b, email=email, session_ids=[session_b.session_id]
                )
                answer = await ha.submit(http_submission(sub), wait="5s")
                reasons = [r["reason"] for r in answer.body.get("rejections", [])]
                attempts.append(
                    Attempt(
                        "A submits for B's campaign over HTTP",
                        answer.body.get("state") == "rejected"
                        and reasons == ["partner_not_allowed_for_campaign"],
                        json.dumps(answer.body)[:200],
                    )
                )
                batch = [
                    http_submission(platform.submission(a.partner_id, slug_b, email=e))
                    for e in (intruder_email(), intruder_email())
                ]
                batch_answer = await ha.submit_batch(batch)
                attempts.append(
                    Attempt(
                        "A submits a batch for B's campaign",
                        batch_answer.status_code == 202,  # decided below: rejected
                        str(batch_answer.status_code),
                    )
                )

                # 3. A reads, cancels and erases B's registrations; reads B's statistics.
                nobody = await raw.get(
                    "/v1/registrations/no-such-submission",
                    headers={"Authorization": f"Bearer {a.api_key}"},
                )
                for what, call in (
                    (
                        "A reads B's submission",
                        raw.get(
                            f"/v1/registrations/{victim.submission_id}",
                            headers={"Authorization": f"Bearer {a.api_key}"},
                        ),
                    ),
                    (
                        "A cancels B's submission",
                        raw.delete(
                            f"/v1/registrations/{victim.submission_id}",
                            headers={"Authorization": f"Bearer {a.api_key}"},
                        ),
                    ),
                    (
                        "A erases B's registrant by email",
                        raw.post(
                            "/v1/erasures",
                            json={"email": victim_email},
                            headers={"Authorization": f"Bearer {a.api_key}"},
                        ),
                    ),
                    (
                        "A erases B's registrant by id",
                        raw.post(
                            "/v1/erasures",
                            json={"registrant_id": victim_registrant},
                            headers={"Authorization": f"Bearer {a.api_key}"},
                        ),
                    ),
                ):
                    response = await call
                    attempts.append(
                        Attempt(what, response.status_code == 404, str(response.status_code))
                    )
                    if what == "A reads B's submission":
                        attempts.append(
                            Attempt(
                                "B's submission and no submission answer alike (no oracle)",
                                response.json() == nobody.json(),
                                response.text[:200],
                            )
                        )
                stats = await raw.get(
                    f"/v1/stats/campaigns/{slug_b}",
                    headers={"Authorization": f"Bearer {a.api_key}"},
                )
                attempts.append(
                    Attempt("A reads B's statistics", stats.status_code == 403, stats.text[:100])
                )

                # 4. A replays B's Idempotency-Key with B's very body: not B's stored answer.
                replay = await raw.post(
                    "/v1/registrations",
                    json=http_submission(victim),
                    headers={"Authorization": f"Bearer {a.api_key}", "Idempotency-Key": "b-key-1"},
                )
                attempts.append(
                    Attempt(
                        "A reuses B's Idempotency-Key",
                        replay.headers.get("Idempotent-Replayed") != "true"
                        and victim_registrant not in replay.text,
                        replay.text[:200],
                    )
                )

            # 5. On Kafka: as B, with B's id in the payload only, a bad or no signature, a
            #    signature over other bytes, an unknown partner, an unsigned "pre-approved"
            #    envelope; and A, properly signed, for B's campaign.
            forged_as_b = PartnerCredentials(
                partner_id=b.partner_id, name="A as B", api_key="", signing_secret=a.signing_secret
            )
            stranger = PartnerCredentials(
                partner_id=uuid.uuid4(), name="stranger", api_key="", signing_secret="sws_guess"
            )
            kafka_attacks: list[tuple[str, SignedMessage, str]] = []

            def on_b(label: str) -> Any:
                return platform.submission(
                    b.partner_id,
                    slug_b,
                    email=intruder_email(),
                    session_ids=[session_b.session_id],
                    submission_id=f"{label}-{uuid.uuid4().hex[:8]}",
                )

            sub = on_b("as-b")
            kafka_attacks.append(
                (
                    "A signs with its secret as B",
                    signed_message(forged_as_b, sub, producer="a"),
                    sub.submission_id,
                )
            )
            sub = on_b("payload-b")
            env = submission_envelope(sub, producer="a")
            kafka_attacks.append(
                (
                    "B's id in the payload, A's in the header, A's signature",
                    signed_value(
                        a, env.to_bytes(), email=sub.registrant.email, headers=env.headers()
                    ),
                    sub.submission_id,
                )
            )
            sub = on_b("bad-sig")
            env = submission_envelope(sub, producer="a")
            kafka_attacks.append(
                (
                    "B's id with a made-up signature",
                    signed_value(
                        b,
                        env.to_bytes(),
                        email=sub.registrant.email,
                        headers=env.headers(),
                        signature="0" * 64,
                    ),
                    sub.submission_id,
                )
            )
            sub = on_b("unsigned")
            env = submission_envelope(sub, producer="a")
            kafka_attacks.append(
                (
                    "B's id, no signature (as if accepted over HTTP)",
                    SignedMessage(
                        key=registrant_key(sub.registrant.email).encode(),
                        value=env.to_bytes(),
                        headers=tuple(env.headers()),
                        event_id=env.event_id,
                    ),
                    sub.submission_id,
                )
            )
            sub = on_b("other-bytes")
            env = submission_envelope(sub, producer="a")
            legit_elsewhere = signed_message(
                a, platform.submission(a.partner_id, slug_a), producer="a"
            )
            signature = dict(legit_elsewhere.headers)["x-solidarity-signature"].decode()
            kafka_attacks.append(
                (
                    "a real signature of other bytes",
                    signed_value(
                        b,
                        env.to_bytes(),
                        email=sub.registrant.email,
                        headers=env.headers(),
                        signature=signature,
                    ),
                    sub.submission_id,
                )
            )
            sub = platform.submission(
                stranger.partner_id, slug_b, email=intruder_email(), submission_id="stranger-1"
            )
            kafka_attacks.append(
                (
                    "an unknown partner",
                    signed_message(stranger, sub, producer="x"),
                    sub.submission_id,
                )
            )
            sub = platform.submission(
                a.partner_id, slug_b, email=intruder_email(), submission_id="a-for-b-kafka"
            )
            kafka_attacks.append(
                (
                    "A, signed, for B's campaign",
                    signed_message(a, sub, producer="a"),
                    sub.submission_id,
                )
            )
            event_id = uuid.uuid4()
            garbage_payload = {
                "partner_id": str(b.partner_id),
                "submission_id": "no-role-as-b",
                "campaign": slug_b,
                "registrant": {"email": intruder_email()},
            }
            body = json.dumps(
                {
                    "event_id": str(event_id),
                    "event_type": "RegistrationSubmitted",
                    "schema_version": 1,
                    "occurred_at": "2026-11-22T10:00:00+00:00",
                    "producer": "a",
                    "correlation_id": str(event_id),
                    "payload": garbage_payload,
                }
            ).encode()
            kafka_attacks.append(
                (
                    "an invalid submission as B, signed by A",
                    signed_value(
                        forged_as_b,
                        body,
                        email=garbage_payload["registrant"]["email"],  # type: ignore[index]
                        headers=raw_headers(event_id),
                    ),
                    "no-role-as-b",
                )
            )
            async with KafkaPartner(a, bootstrap_servers=bootstrap, topic_prefix=prefix) as ka:
                await ka.publish(m for _, m, _ in kafka_attacks)

            wanted = {sid for _, _, sid in kafka_attacks} | {s["submission_id"] for s in batch}

            async def answered() -> dict[str, list[dict[str, Any]]]:
                rows = await platform.fetch(
                    dsn,
                    "SELECT value FROM outbox WHERE topic = $1",
                    REGISTRATION_OUTCOMES.full_name(prefix),
                )
                found: dict[str, list[dict[str, Any]]] = {}
                for row in rows:
                    envelope = Envelope.from_bytes(row["value"])
                    sid = envelope.payload.get("submission_id")
                    if sid in wanted:
                        found.setdefault(sid, []).append(
                            {"type": envelope.event_type, **envelope.payload}
                        )
                return found

            async def all_answered() -> bool:
                return set(await answered()) == wanted

            await platform.settles(all_answered, timeout_s=60)
            answers = await answered()
            await asyncio.sleep(0.5)

        expected_reason = {
            "A, signed, for B's campaign": "partner_not_allowed_for_campaign",
            "an unknown partner": None,  # unknown_partner or invalid_signature: both refuse
            "an invalid submission as B, signed by A": "invalid_signature",
        }
        for what, _, sid in kafka_attacks:
            got = answers.get(sid, [])
            reasons = [g.get("reason") for g in got]
            refused = bool(got) and all(g["type"] == "SessionRegistrationRejected" for g in got)
            want = expected_reason.get(what, "invalid_signature")
            attempts.append(
                Attempt(
                    f"Kafka: {what}",
                    refused and (want is None or reasons == [want]),
                    str(reasons),
                )
            )
        for item in batch:
            got = answers.get(item["submission_id"], [])
            attempts.append(
                Attempt(
                    "batch item for B's campaign refused",
                    [g.get("reason") for g in got] == ["partner_not_allowed_for_campaign"],
                    str(got)[:200],
                )
            )

        # Nothing of the intruders' people was stored; B's person is untouched.
        stored = await platform.fetch(
            dsn,
            "SELECT registrant_id FROM registrants WHERE email_sha256 = ANY($1::text[])",
            [registrant_key(e) for e in intruder_emails],
        )
        held_rows = await platform.fetch(
            dsn,
            "SELECT count(*) AS n FROM signups s JOIN registrants r USING (registrant_id) "
            "WHERE r.email_sha256 = ANY($1::text[])",
            [registrant_key(e) for e in intruder_emails],
        )
        victim_row = await platform.fetch(
            dsn,
            "SELECT r.email, g.status FROM registrants r JOIN registrations g "
            "USING (registrant_id) WHERE r.registrant_id = $1",
            uuid.UUID(victim_registrant),
        )
        attempts.append(Attempt("no intruder's person stored", not stored, str(len(stored))))
        attempts.append(Attempt("no intruder's sign-up stored", held_rows[0]["n"] == 0, ""))
        attempts.append(
            Attempt(
                "B's person untouched",
                [(r["email"], r["status"]) for r in victim_row] == [(victim_email, "confirmed")],
                str(len(victim_row)),
            )
        )

    breaches = [x for x in attempts if not x.held]
    record("11", "intruders", attempts=len(attempts), breaches=len(breaches))
    for breach in breaches:
        print(f"BREACH: {breach.what}: {breach.detail}")
    assert not breaches, [f"{x.what}: {x.detail}" for x in breaches]
