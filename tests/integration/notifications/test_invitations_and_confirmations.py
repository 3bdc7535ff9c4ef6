"""Invitations reach exactly the consenting audience; confirmations, updates and cancellations
carry calendar invites that parse back to the right instant and zone; events name no one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest

from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.contracts.events.catalog import SessionCancelledV1, SessionRescheduledV1
from solidarity.shared.contracts.events.common import Role
from solidarity.shared.contracts.events.registration import (
    SessionRegistrationWaitlistedV1,
    WaitlistPromotedV1,
)
from solidarity.shared.contracts.topics import NOTIFICATIONS_DELIVERIES
from solidarity.shared.messaging.kafka import read_topic
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.integration.notifications import harness
from tests.integration.notifications.harness import Person

pytestmark = pytest.mark.integration


def calendar_event(ics: bytes | None) -> tuple[icalendar.Calendar, icalendar.Event]:
    assert ics is not None, "the mail carries an invite.ics"
    calendar = icalendar.Calendar.from_ical(ics)
    (event,) = calendar.events
    return calendar, event


def start_of(event: icalendar.Event) -> datetime:
    start = event.start
    assert isinstance(start, datetime)
    return start


async def test_invitations_confirmations_updates_and_cancellation(
    infrastructure: Infrastructure,
    database_dsn: str,
    registry_topics: str,
    tmp_path: Path,
) -> None:
    campaign_id, session_id, registration_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    waiting_id = uuid.uuid4()
    student = Person.new("student")
    educator = Person.new(
        "educator", role=Role.EDUCATOR, locale="es", time_zone="America/Mexico_City"
    )
    no_consent = Person.new("no-consent")
    family = Person.new("family", role=Role.FAMILY)  # consented, but not in the audience
    late_contact = Person.new("late-contact")  # contact details arrive after the fan-out
    late_signup = Person.new("late-signup")  # signs up after the session is scheduled
    starts_at = harness.future(days=10)
    bootstrap = infrastructure.kafka_bootstrap

    async with harness.mail_sink(tmp_path / "mail") as sink:
        settings = harness.settings_for(
            infrastructure, database_dsn=database_dsn, topic_prefix=registry_topics, sink=sink
        )
        async with harness.running(settings) as app:
            await harness.publish(
                bootstrap,
                registry_topics,
                [
                    *harness.campaign(campaign_id),
                    *(p.recorded() for p in (student, educator, no_consent, family)),
                    student.signed_up(campaign_id),
                    educator.signed_up(campaign_id),
                    no_consent.signed_up(campaign_id, invitations=False),
                    family.signed_up(campaign_id),
                    late_contact.signed_up(campaign_id),
                    harness.session(
                        session_id,
                        campaign_id,
                        starts_at=starts_at,
                        audience=(Role.STUDENT, Role.EDUCATOR),
                    ),
                ],
            )

            async def invited(count: int) -> bool:
                rows = await harness.deliveries(database_dsn, kind="invitation")
                return len(rows) >= count

            await harness.wait_until(lambda: invited(3), what="the invitation fan-out")
            await harness.publish(
                bootstrap,
                registry_topics,
                [
                    late_contact.recorded(),
                    late_signup.recorded(),
                    late_signup.signed_up(campaign_id),
                ],
            )
            await harness.wait_until(lambda: invited(4), what="the late sign-up's invitation")

            async def sent(kind: str, count: int) -> bool:
                rows = await harness.deliveries(database_dsn, kind=kind, state="sent")
                return len(rows) >= count

            await harness.wait_until(lambda: sent("invitation", 4), what="invitations sent")
            await harness.wait_until(lambda: sent("signup_welcome", 6), what="welcomes sent")

            # A seat: the confirmation carries the calendar invite and the join link.
            await harness.publish(
                bootstrap,
                registry_topics,
                [student.confirmed(campaign_id, session_id, registration_id)],
            )
            await harness.wait_until(lambda: sent("confirmation", 1), what="the confirmation")

            # The educator waits for a seat, then gets one.
            await harness.publish(
                bootstrap,
                registry_topics,
                [
                    SessionRegistrationWaitlistedV1(
                        registrant_id=educator.recipient_id,
                        campaign_id=campaign_id,
                        registration_id=waiting_id,
                        session_id=session_id,
                        position=1,
                    ),
                    WaitlistPromotedV1(
                        registrant_id=educator.recipient_id,
                        campaign_id=campaign_id,
                        registration_id=waiting_id,
                        session_id=session_id,
                        previous_position=1,
                    ),
                ],
            )
            await harness.wait_until(lambda: sent("promoted", 1), what="the promotion")

            # The session moves a day later, then is cancelled.
            moved_to = starts_at + timedelta(days=1)
            original = harness.session(session_id, campaign_id, starts_at=starts_at)
            await harness.publish(
                bootstrap,
                registry_topics,
                [
                    SessionRescheduledV1(
                        **original.model_dump(exclude={"revision", "starts_at", "ends_at"}),
                        revision=2,
                        starts_at=moved_to,
                        ends_at=moved_to + timedelta(hours=1),
                        previous_starts_at=starts_at,
                        previous_ends_at=starts_at + timedelta(hours=1),
                    )
                ],
            )
            await harness.wait_until(lambda: sent("rescheduled", 1), what="the update")
            await harness.publish(
                bootstrap,
                registry_topics,
                [
                    SessionCancelledV1(
                        session_id=session_id,
                        campaign_id=campaign_id,
                        revision=3,
                        reason="speaker unavailable",
                        cancelled_at=datetime.now(UTC),
                    )
                ],
            )
            await harness.wait_until(lambda: sent("cancelled", 2), what="the cancellations")

            async with harness.client_for(app) as client:
                assert (await client.get("/health")).status_code == 200
                assert (await client.get("/ready")).json()["status"] == "ready"
                metrics = (await client.get("/metrics")).text
                asyncapi = (await client.get("/asyncapi.json")).json()

            async def events_published() -> bool:
                rows = await harness.query(
                    database_dsn,
                    "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL "
                    "AND event_type LIKE 'Notification%'",
                )
                return bool(rows[0]["n"] == 0)

            await harness.wait_until(events_published, what="the outbox drained")

        kept = harness.mails(sink)

    by_person: dict[str, list[str]] = {}
    for mail in kept:
        by_person.setdefault(mail.to, []).append(mail.subject)
    invitations = {m.to for m in kept if "invit" in m.subject.lower()}  # "invited"/"invitamos"
    assert invitations == {
        student.email,
        educator.email,
        late_contact.email,
        late_signup.email,
    }, "exactly the consenting audience, including late contact and late sign-up"
    assert len([m for m in kept if "invit" in m.subject.lower()]) == 4, "each invited once"
    assert len({m.message_id for m in kept}) == len(kept), "no Message-ID twice"
    assert sorted(by_person) == sorted(
        p.email for p in (student, educator, no_consent, family, late_contact, late_signup)
    ), "everyone signed up got a welcome"

    # The educator reads Spanish and gets the educator guide.
    (educator_welcome,) = [m for m in kept if m.to == educator.email and "bienvenida" in m.subject]
    assert "Educator Guide" in educator_welcome.text
    assert "Student Guide" not in educator_welcome.text
    (educator_invite,) = [
        m for m in kept if m.to == educator.email and "invit" in m.subject.lower()
    ]
    assert "meet.example.org" not in educator_invite.text, "no join link before a seat"

    # The educator's waitlist notice came (or was overtaken by the promotion, which then
    # dropped it), and the promotion carries a REQUEST for the educator's own registration.
    educator_subjects = sorted(m.subject for m in kept if m.to == educator.email)
    (promotion,) = [m for m in kept if m.to == educator.email and "liberó" in m.subject]
    calendar, event = calendar_event(promotion.ics)
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == f"{waiting_id}@solidarity.local"
    assert "Enlace para unirte: https://meet.example.org/solidarity" in promotion.text
    assert any(s.startswith("Cancelado") for s in educator_subjects)

    # Confirmation: METHOD:REQUEST, the registration's UID, the right instant in the right zone.
    (confirmation,) = [m for m in kept if m.to == student.email and "registered" in m.subject]
    calendar, event = calendar_event(confirmation.ics)
    uid = f"{registration_id}@solidarity.local"
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == uid
    assert start_of(event).astimezone(UTC) == starts_at
    assert str(event["DTSTART"].params["TZID"]) == "America/New_York"
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["America/New_York"]
    assert "https://meet.example.org/solidarity" in confirmation.text
    first_sequence = int(str(event["SEQUENCE"]))

    # The update: same UID, a higher SEQUENCE, the new instant.
    (update,) = [m for m in kept if m.to == student.email and m.subject.startswith("New time")]
    calendar, event = calendar_event(update.ics)
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == uid
    update_sequence = int(str(event["SEQUENCE"]))
    assert update_sequence > first_sequence
    assert start_of(event).astimezone(UTC) == moved_to

    # The cancellation: METHOD:CANCEL, same UID, higher again.
    (cancel,) = [m for m in kept if m.to == student.email and m.subject.startswith("Cancelled")]
    calendar, event = calendar_event(cancel.ics)
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["UID"]) == uid
    assert int(str(event["SEQUENCE"])) > update_sequence

    # Its reminders went with the session.
    reminders = await harness.deliveries(database_dsn, kind="reminder")
    assert reminders, "reminders were planned for the seat"
    assert {r["state"] for r in reminders} == {"dropped"}

    # Every mail sent is a NotificationSentV1 on the wire, with ids and never an address.
    on_wire = await read_topic(bootstrap, NOTIFICATIONS_DELIVERIES.full_name(registry_topics))
    sent_events = [Envelope.from_bytes(r.value) for r in on_wire if r.value]
    assert len(sent_events) == len(kept)
    assert {e.event_type for e in sent_events} == {"NotificationSent"}
    for record in on_wire:
        assert b"@school.example" not in (record.value or b"")
    assert {str(e.payload["delivery_id"]) for e in sent_events} == {
        m.message_id.strip("<>").split("@")[0] for m in kept
    }

    assert 'solidarity_notifications_sent_total{channel="email",kind="invitation"} 4.0' in metrics
    assert "solidarity_notifications_queue_depth" in metrics
    assert "solidarity_consumer_lag" in metrics
    assert any("notifications" in name for name in asyncapi["channels"])
