"""An opt-out (one click, RFC 8058) stops further mail of that purpose and only that purpose;
the preferences page turns it back on; erasure removes the person's data here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from solidarity.shared.contracts.events.registration import RegistrantErasedV1
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.integration.notifications import harness
from tests.integration.notifications.harness import Person

pytestmark = pytest.mark.integration


async def test_opt_out_preferences_and_erasure(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, tmp_path: Path
) -> None:
    campaign_id = uuid.uuid4()
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    reader, witness, erased = Person.new("reader"), Person.new("witness"), Person.new("erased")
    bootstrap = infrastructure.kafka_bootstrap

    async with harness.mail_sink(tmp_path / "mail") as sink:
        settings = harness.settings_for(
            infrastructure, database_dsn=database_dsn, topic_prefix=registry_topics, sink=sink
        )
        async with harness.running(settings) as app, harness.client_for(app) as client:

            def invites_to(person: Person) -> int:
                return sum(
                    1
                    for m in harness.mails(sink)
                    if m.to == person.email and "invited" in m.subject
                )

            async def witness_invited(count: int) -> bool:
                return invites_to(witness) >= count

            async def reader_invited(count: int) -> bool:
                return invites_to(reader) == count

            await harness.publish(
                bootstrap,
                registry_topics,
                [
                    *harness.campaign(campaign_id),
                    *(p.recorded() for p in (reader, witness, erased)),
                    *(p.signed_up(campaign_id) for p in (reader, witness, erased)),
                    harness.session(first, campaign_id, starts_at=harness.future(days=5)),
                ],
            )
            await harness.wait_until(lambda: witness_invited(1), what="the first invitations")
            await harness.wait_until(lambda: reader_invited(1), what="the reader invited")
            (invite,) = [
                m for m in harness.mails(sink) if m.to == reader.email and "invited" in m.subject
            ]
            link = str(invite.message["List-Unsubscribe"]).strip("<>")
            assert invite.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            path = urlsplit(link)
            token = parse_qs(path.query)["token"][0]

            # A GET (a link scanner, a preview) changes nothing.
            page = await client.get(f"{path.path}?{path.query}")
            assert page.status_code == 200
            assert "Unsubscribe" in page.text
            assert reader.email not in page.text
            assert await harness.query(database_dsn, "SELECT * FROM opt_outs") == []
            # A forged token is refused.
            assert (await client.post("/unsubscribe?token=forged.token")).status_code == 400

            # RFC 8058 one-click: a POST to the header's URI with this exact body.
            one_click = await client.post(
                f"{path.path}?{path.query}",
                content=b"List-Unsubscribe=One-Click",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert one_click.status_code == 200
            opt_outs = await harness.query(
                database_dsn, "SELECT recipient_id, purpose FROM opt_outs"
            )
            assert [(r["recipient_id"], r["purpose"]) for r in opt_outs] == [
                (reader.recipient_id, "invitations")
            ]

            # The next session: the witness is invited, the reader is not; a seat still
            # brings the reader a confirmation (another purpose).
            registration = uuid.uuid4()
            await harness.publish(
                bootstrap,
                registry_topics,
                [
                    harness.session(second, campaign_id, starts_at=harness.future(days=6)),
                    reader.confirmed(campaign_id, first, registration),
                ],
            )
            await harness.wait_until(lambda: witness_invited(2), what="the second invitations")

            async def confirmed() -> bool:
                return bool(
                    await harness.deliveries(database_dsn, kind="confirmation", state="sent")
                )

            await harness.wait_until(confirmed, what="the reader's confirmation")
            assert invites_to(reader) == 1

            # The preferences page shows the choice and turns invitations back on.
            prefs = await client.get("/preferences", params={"token": token})
            assert prefs.status_code == 200
            assert "value='invitations'>" in prefs.text, "unticked"
            assert "value='reminders' checked" in prefs.text
            saved = await client.post(
                "/preferences",
                content=f"token={token}&receive=invitations&receive=reminders&receive=welcome"
                "&receive=registration_updates".encode(),
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert saved.status_code == 200
            assert "value='invitations' checked" in saved.text

            # Erasure: the person's data goes, and later events about them change nothing.
            await harness.publish(
                bootstrap,
                registry_topics,
                [
                    RegistrantErasedV1(
                        registrant_id=erased.recipient_id, erased_at=datetime.now(UTC)
                    )
                ],
            )

            async def gone() -> bool:
                rows = await harness.query(
                    database_dsn,
                    "SELECT 1 FROM erased_recipients WHERE recipient_id = $1",
                    erased.recipient_id,
                )
                return bool(rows)

            await harness.wait_until(gone, what="the erasure")
            await harness.publish(
                bootstrap,
                registry_topics,
                [
                    erased.recorded(),  # a late copy of the contact details
                    harness.session(third, campaign_id, starts_at=harness.future(days=7)),
                ],
            )
            await harness.wait_until(lambda: witness_invited(3), what="the third invitations")
            await harness.wait_until(lambda: reader_invited(2), what="the reader invited again")

        for table in ("recipients", "signups", "registrations", "opt_outs", "deliveries"):
            rows = await harness.query(
                database_dsn, f"SELECT 1 FROM {table} WHERE recipient_id = $1", erased.recipient_id
            )
            assert rows == [], f"{table} still holds the erased person"
        assert invites_to(erased) == 2, "invited twice before erasure, never after"
