"""The partner API against a real PostgreSQL and broker: intake, idempotency, status, changes."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from solidarity.registration.domain.partners import signing_secret
from solidarity.shared.contracts.events.registration import (
    RegistrantErasedV1,
    RegistrantRecordedV1,
    RegistrationCancelledV1,
    SessionRegistrationRejectedV1,
    WaitlistPromotedV1,
)
from solidarity.shared.contracts.topics import REGISTRATION_SUBMISSIONS
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.integration.registration.support import (
    MASTER_KEY,
    campaign_published,
    fetch,
    fetchval,
    http_body,
    new_partner,
    outcomes,
    partner_api,
    produce,
    publish_events,
    registrant_events,
    session_scheduled,
    signed_record,
    submission,
)

pytestmark = pytest.mark.integration


async def test_concurrent_retries_with_one_idempotency_key_submit_once(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    slug = f"c-{unique}"
    async with partner_api(infrastructure, database_dsn, registry_topics) as api:
        partner = await new_partner(database_dsn, slug)
        auth = {"Authorization": f"Bearer {partner.api_key}"}
        event = submission(partner.partner_id, slug, submission_id="retry-me")
        body = http_body(event)

        async def post() -> tuple[int, dict[str, object], str | None]:
            response = await api.client.post(
                "/v1/registrations", json=body, headers={**auth, "Idempotency-Key": "k-1"}
            )
            return (
                response.status_code,
                response.json(),
                response.headers.get("Idempotent-Replayed"),
            )

        answers = await asyncio.gather(*(post() for _ in range(12)))
        assert {code for code, _, _ in answers} == {202}
        assert len({str(body) for _, body, _ in answers}) == 1, "every retry sees the same response"
        assert sum(replayed == "true" for _, _, replayed in answers) == 11
        other = dict(body, campaign="another")
        conflict = await api.client.post(
            "/v1/registrations", json=other, headers={**auth, "Idempotency-Key": "k-1"}
        )
        assert conflict.status_code == 409
        # The batch endpoint keeps its own keys the same way.
        batch = {"submissions": [http_body(submission(partner.partner_id, slug)) for _ in range(3)]}
        first, again = await asyncio.gather(
            *(
                api.client.post(
                    "/v1/registrations/batch",
                    json=batch,
                    headers={**auth, "Idempotency-Key": "b-1"},
                )
                for _ in range(2)
            )
        )
        assert first.status_code == again.status_code == 202
        assert first.json() == again.json()
        assert first.json()["accepted"] == 3
        intake = await fetchval(database_dsn, "SELECT count(*) FROM intake")
        written = await fetchval(
            database_dsn,
            "SELECT count(*) FROM outbox WHERE topic = $1",
            REGISTRATION_SUBMISSIONS.full_name(registry_topics),
        )
        assert intake == written == 4, "one submission per key, whatever the retries"
        pending = await api.client.get("/v1/registrations/retry-me", headers=auth)
        assert pending.json()["state"] == "pending"


async def test_http_submissions_are_decided_by_the_consumer_and_can_be_cancelled(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    slug = f"c-{unique}"
    async with partner_api(infrastructure, database_dsn, registry_topics) as api:
        partner = await new_partner(database_dsn, slug)
        stranger = await new_partner(database_dsn, slug, name="Elsewhere")
        auth = {"Authorization": f"Bearer {partner.api_key}"}
        campaign = campaign_published(slug)
        session = session_scheduled(campaign.campaign_id, capacity=1)
        await publish_events(infrastructure.kafka_bootstrap, registry_topics, [campaign, session])
        await api.apply_catalog()

        assert (await api.client.post("/v1/registrations", json={})).status_code == 401
        wrong = {"Authorization": "Bearer swk_nope"}
        assert (await api.client.get("/v1/registrations/x", headers=wrong)).status_code == 401
        invalid = http_body(submission(partner.partner_id, slug, email="quinn.x@example.org"))
        invalid["registrant"].pop("role")
        refused = await api.client.post("/v1/registrations", json=invalid, headers=auth)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "registrant", "role"]
        assert "quinn.x" not in refused.text, "a 422 never echoes what was sent"
        asks_nothing = dict(http_body(submission(partner.partner_id, slug)), signup=False)
        nothing = await api.client.post("/v1/registrations", json=asks_nothing, headers=auth)
        assert nothing.status_code == 422
        assert "sign-up, one or more sessions" in nothing.json()["detail"][0]["msg"]

        first = submission(
            partner.partner_id, slug, submission_id="a/1", session_ids=[session.session_id]
        )
        second = submission(
            partner.partner_id, slug, submission_id="b 2", session_ids=[session.session_id]
        )
        accepted = await api.client.post("/v1/registrations", json=http_body(first), headers=auth)
        assert accepted.status_code == 202
        assert accepted.json()["status_url"] == "/v1/registrations/a%2F1"
        await api.decide()
        batch = await api.client.post(
            "/v1/registrations/batch",
            json={"submissions": [http_body(second), {"submission_id": "broken"}]},
            headers=auth,
        )
        assert batch.status_code == 202
        assert [i["state"] for i in batch.json()["items"]] == ["pending", "invalid"]
        await api.decide()

        a = (await api.client.get("/v1/registrations/a%2F1", headers=auth)).json()
        b = (await api.client.get("/v1/registrations/b%202", headers=auth)).json()
        assert a["state"] == b["state"] == "decided"
        assert a["sessions"][0]["status"] == "confirmed"
        assert (b["sessions"][0]["status"], b["sessions"][0]["position"]) == ("waitlisted", 1)
        assert a["signup"]["status"] == "confirmed"
        other_auth = {"Authorization": f"Bearer {stranger.api_key}"}
        assert (
            await api.client.get("/v1/registrations/a%2F1", headers=other_auth)
        ).status_code == 404

        cancelled = await api.client.delete("/v1/registrations/a%2F1", headers=auth)
        assert cancelled.status_code == 200
        assert len(cancelled.json()["cancelled"]) == 1
        a = (await api.client.get("/v1/registrations/a%2F1", headers=auth)).json()
        b = (await api.client.get("/v1/registrations/b%202", headers=auth)).json()
        assert a["sessions"][0]["status"] == "cancelled"
        assert b["sessions"][0]["status"] == "confirmed"
        again = await api.client.delete("/v1/registrations/a%2F1", headers=auth)
        assert again.json()["cancelled"] == []
        await api.decide()

    answers = await outcomes(infrastructure, registry_topics)
    assert [e.submission_id for e in answers if isinstance(e, RegistrationCancelledV1)] == ["a/1"]
    promoted = [e for e in answers if isinstance(e, WaitlistPromotedV1)]
    assert [(e.submission_id, e.previous_position) for e in promoted] == [("b 2", 1)]
    sources = await fetch(database_dsn, "SELECT DISTINCT source FROM submissions")
    assert [r["source"] for r in sources] == ["http"]


async def test_erasure_removes_personal_data_keeps_counts_and_tells_the_others(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    slug = f"c-{unique}"
    prefix = registry_topics
    async with partner_api(infrastructure, database_dsn, prefix) as api:
        partner = await new_partner(database_dsn, slug)
        secret = signing_secret(MASTER_KEY.encode(), partner.partner_id)
        auth = {"Authorization": f"Bearer {partner.api_key}"}
        campaign = campaign_published(slug)
        session = session_scheduled(campaign.campaign_id, capacity=1)
        await publish_events(infrastructure.kafka_bootstrap, prefix, [campaign, session])
        await api.apply_catalog()
        email = f"jordan-{unique}@example.org"
        leaving = submission(
            partner.partner_id,
            slug,
            email=email,
            submission_id="leaving",
            session_ids=[session.session_id],
            school="Hillcrest High",
            answers={"note": "free text"},
        )
        waiting = submission(
            partner.partner_id, slug, submission_id="waiting", session_ids=[session.session_id]
        )
        await api.client.post("/v1/registrations", json=http_body(leaving), headers=auth)
        await api.decide()
        await produce(
            infrastructure.kafka_bootstrap,
            REGISTRATION_SUBMISSIONS.full_name(prefix),
            [signed_record(waiting, secret)],
        )
        await api.decide()
        before = (await api.client.get(f"/v1/stats/campaigns/{slug}", headers=auth)).json()

        erased = await api.client.post("/v1/erasures", json={"email": email.upper()}, headers=auth)
        assert erased.status_code == 200, erased.text
        registrant_id = uuid.UUID(erased.json()["registrant_id"])
        twice = await api.client.post(
            "/v1/erasures", json={"registrant_id": str(registrant_id)}, headers=auth
        )
        assert twice.json()["already_erased"] is True
        unknown = await api.client.post(
            "/v1/erasures", json={"registrant_id": str(uuid.uuid4())}, headers=auth
        )
        assert unknown.status_code == 404
        # The same submission again (a partner's retry) does not bring the person back.
        await produce(
            infrastructure.kafka_bootstrap,
            REGISTRATION_SUBMISSIONS.full_name(prefix),
            [signed_record(leaving, secret)],
        )
        await api.decide()
        after = (await api.client.get(f"/v1/stats/campaigns/{slug}", headers=auth)).json()
        waiting_now = (await api.client.get("/v1/registrations/waiting", headers=auth)).json()

    row = (
        await fetch(
            database_dsn, "SELECT * FROM registrants WHERE registrant_id = $1", registrant_id
        )
    )[0]
    assert row["erased_at"] is not None
    for column in ("email", "email_sha256", "name", "school", "locale", "details_sha256"):
        assert row[column] is None, column
    answers_kept = await fetchval(
        database_dsn,
        "SELECT count(*) FROM signups WHERE answers IS NOT NULL AND registrant_id = $1",
        registrant_id,
    )
    assert answers_kept == 0
    traces = await fetchval(
        database_dsn,
        "SELECT count(*) FROM outbox WHERE position($1::bytea in value) > 0",
        email.encode(),
    )
    assert traces == 0, "no published copy of the address is kept"
    assert waiting_now["sessions"][0]["status"] == "confirmed", "the freed seat was passed on"
    # Counts stay: the erased person's registration is counted as cancelled, by role and school.
    assert before["signups"]["total"] == after["signups"]["total"] == 2
    assert after["registrations"]["by_status"] == {"cancelled": 1, "confirmed": 1}
    assert after["registrations"]["by_school"]["Hillcrest High"] == 1
    session_counts = after["registrations"]["by_session"][str(session.session_id)]
    assert session_counts == {"capacity": 1, "confirmed": 1, "waitlisted": 0, "cancelled": 1}
    events = await registrant_events(infrastructure, prefix)
    assert [e.registrant_id for e in events if isinstance(e, RegistrantErasedV1)] == [registrant_id]
    assert any(isinstance(e, RegistrantRecordedV1) for e in events)
    answers = await outcomes(infrastructure, prefix)
    cancelled = [e for e in answers if isinstance(e, RegistrationCancelledV1)]
    assert [(e.submission_id, e.reason) for e in cancelled] == [("leaving", "erased")]
    replay = [
        e.reason.value
        for e in answers
        if isinstance(e, SessionRegistrationRejectedV1) and e.submission_id == "leaving"
    ]
    assert replay == ["registrant_erased"]


async def test_erasure_removes_the_persons_dead_letters_whatever_their_key(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    slug = f"c-{unique}"
    prefix = registry_topics
    email = f"robin-{unique}@example.org"
    async with partner_api(infrastructure, database_dsn, prefix) as api:
        partner = await new_partner(database_dsn, slug)
        auth = {"Authorization": f"Bearer {partner.api_key}"}
        await publish_events(infrastructure.kafka_bootstrap, prefix, [campaign_published(slug)])
        await api.apply_catalog()
        person = submission(partner.partner_id, slug, email=email, submission_id="robin")
        await api.client.post("/v1/registrations", json=http_body(person), headers=auth)
        # Bad messages, none keyed by the email's hash: the person's (the address in another
        # case; in bytes that are not UTF-8, without a key) and two of other people whose
        # addresses contain the person's.
        mine = [
            (b"partner-batch-7", json.dumps({"email": email.upper()}).encode()),
            (None, b"\xff\xfe\x00 " + email.title().encode() + b" \x00"),
        ]
        theirs = [
            (b"partner-batch-7", json.dumps({"email": f"jo{email}"}).encode()),
            (b"partner-batch-8", json.dumps({"email": f"{email}.uk"}).encode()),
        ]
        await produce(
            infrastructure.kafka_bootstrap,
            REGISTRATION_SUBMISSIONS.full_name(prefix),
            [(key, value, []) for key, value in mine + theirs],
        )
        await api.decide()
        dead = "SELECT value FROM outbox WHERE event_type = 'DeadLetter'"
        assert sorted(r["value"] for r in await fetch(database_dsn, dead)) == sorted(
            v for _, v in mine + theirs
        )

        erased = await api.client.post("/v1/erasures", json={"email": email}, headers=auth)
        assert erased.status_code == 200, erased.text

    kept = sorted(r["value"] for r in await fetch(database_dsn, dead))
    assert kept == sorted(v for _, v in theirs), "the person's gone, the others' kept"
