"""Messages: every kind in English and Spanish, headers, discreet mode, calendar invites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import icalendar
import pytest

from solidarity.notifications.adapters.rendering import MessageRenderer, RenderedEmail, Sender
from solidarity.notifications.adapters.tokens import TokenSigner
from solidarity.notifications.domain.model import DeliveryKind
from tests.unit.notifications import examples

pytestmark = pytest.mark.unit

NOW = examples.SESSION_START - timedelta(days=2)
EMAIL_KINDS = [k for k in DeliveryKind if k != DeliveryKind.WEBHOOK]


def render(kind: DeliveryKind, **changes: object) -> RenderedEmail:
    return examples.renderer().render(examples.context(kind, **changes), now=NOW)  # type: ignore[arg-type]


def wire_copy(rendered: RenderedEmail) -> EmailMessage:
    """The message as it goes over SMTP, parsed back as a mail client would."""
    parsed = message_from_bytes(rendered.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def sequence_of(event: icalendar.Event) -> int:
    return int(str(event["SEQUENCE"]))


def start_of(event: icalendar.Event) -> datetime:
    start = event.start
    assert isinstance(start, datetime)
    return start


def ics_of(message: EmailMessage) -> icalendar.Calendar:
    attachments = [p for p in message.iter_attachments() if p.get_filename() == "invite.ics"]
    assert len(attachments) == 1
    content = attachments[0].get_content()
    return icalendar.Calendar.from_ical(content)


@pytest.mark.parametrize("kind", EMAIL_KINDS)
@pytest.mark.parametrize("locale", ["en", "es"])
def test_every_kind_renders_in_both_languages(kind: DeliveryKind, locale: str) -> None:
    rendered = render(kind, recipient=examples.person(locale=locale))

    assert rendered.subject
    assert "\n" not in rendered.subject
    assert rendered.text.strip()
    assert rendered.html.lstrip().startswith("<!doctype html>")
    assert f'lang="{locale}"' in rendered.html
    assert "/unsubscribe?token=" in rendered.text
    assert "/preferences?token=" in rendered.html


def test_spanish_readers_get_spanish_text() -> None:
    rendered = render(DeliveryKind.CONFIRMATION, recipient=examples.person(locale="es-MX"))

    assert rendered.subject.startswith("Inscripción confirmada")
    assert "14:00 PT / 17:00 ET" in rendered.text
    assert "martes, 7 de noviembre de 2023" in rendered.text
    assert wire_copy(rendered)["Content-Language"] == "es"


def test_headers_carry_the_ledger_key_and_one_click_unsubscribe() -> None:
    rendered = render(DeliveryKind.INVITATION)
    message = wire_copy(rendered)
    delivery = examples.delivery(DeliveryKind.INVITATION)

    assert message["Message-ID"] == f"<{delivery.delivery_id}@solidarity.local>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(message["List-Unsubscribe"])
    assert link.startswith("<https://notify.example.org/unsubscribe?token=")
    assert link.endswith(">")
    token = parse_qs(urlsplit(link[1:-1]).query)["token"][0]
    parsed = TokenSigner(examples.KEY).verify(token)
    assert parsed.recipient_id == examples.PERSON_ID
    assert parsed.purpose == "invitations"
    assert "ada@" not in link


def test_an_invitation_never_shows_the_join_link() -> None:
    rendered = render(DeliveryKind.INVITATION)

    assert "meet.example.org" not in rendered.text
    assert "meet.example.org" not in rendered.html
    assert rendered.calendar is None


def test_a_confirmation_has_the_join_link_times_and_a_request_invite() -> None:
    rendered = render(DeliveryKind.CONFIRMATION)
    message = wire_copy(rendered)
    calendar = ics_of(message)
    event = calendar.events[0]

    assert "https://meet.example.org/solidarity" in rendered.text
    assert "2:00 PM PT / 5:00 PM ET" in rendered.text
    assert "11:00 PM CET" in rendered.text  # the reader is in Madrid
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == f"{examples.REGISTRATION_ID}@solidarity.local"
    assert sequence_of(event) == 0
    assert start_of(event) == examples.SESSION_START
    assert start_of(event).tzinfo is not None
    assert str(event["DTSTART"].params["TZID"]) == "America/Los_Angeles"
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["America/Los_Angeles"]
    assert str(event["ORGANIZER"]) == "mailto:notifications@solidarity.example"
    calendar_parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert calendar_parts[0].get_param("method") == "REQUEST"


def test_a_cancellation_is_a_cancel_with_a_higher_sequence() -> None:
    rendered = render(
        DeliveryKind.CANCELLED, session_view=examples.session(status="cancelled", sequence=2)
    )
    calendar = ics_of(wire_copy(rendered))
    event = calendar.events[0]

    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
    assert sequence_of(event) == 3
    assert str(event["UID"]) == f"{examples.REGISTRATION_ID}@solidarity.local"
    assert "meet.example.org" not in rendered.text


def test_a_reschedule_carries_the_new_time_and_its_sequence() -> None:
    moved = examples.SESSION_START + timedelta(days=1)
    rendered = render(
        DeliveryKind.RESCHEDULED,
        session_view=examples.session(starts_at=moved, ends_at=moved + timedelta(hours=1)),
        sequence=4,
    )
    event = ics_of(wire_copy(rendered)).events[0]

    assert sequence_of(event) == 4
    assert start_of(event).astimezone(UTC) == moved
    assert "Wednesday, November 8, 2023" in rendered.text


def test_discreet_mode_keeps_subject_sender_and_calendar_title_neutral() -> None:
    for kind in EMAIL_KINDS:
        for locale in ("en", "es"):
            rendered = render(kind, discreet=True, recipient=examples.person(locale=locale))
            message = wire_copy(rendered)
            subject = rendered.subject.lower()
            for telling in ("solidarity", "lgbtq", "silos"):
                assert telling not in subject, (kind, locale, subject)
            assert "Solidarity" not in str(message["From"])
            if rendered.calendar is not None:
                summary = str(ics_of(message).events[0]["SUMMARY"])
                assert summary in ("Scheduled event", "Evento programado")
                assert "Building" not in rendered.calendar.decode()


def test_html_escapes_what_organizers_typed() -> None:
    rendered = render(
        DeliveryKind.INVITATION, session_view=examples.session(title="<script>x</script> & co")
    )

    assert "<script>x</script>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert "<script>x</script> & co" in rendered.text


def test_the_welcome_lists_focus_days_and_the_guide_for_the_role() -> None:
    student = render(DeliveryKind.SIGNUP_WELCOME)
    educator = render(DeliveryKind.SIGNUP_WELCOME, recipient=examples.person(role="educator"))

    assert "Black LGBTQ+ Focus Day" in student.text
    assert "Student Guide" in student.text
    assert "Educator Guide" not in student.text
    assert "Educator Guide" in educator.text
    assert "Student Guide" not in educator.html
    assert student.calendar is None


def test_non_ascii_subjects_and_sender_names_are_encoded_and_read_back() -> None:
    title = "Construir solidaridad: ¿qué sigue? — 日本語"
    renderer = MessageRenderer(
        signer=TokenSigner(examples.KEY),
        public_base_url="https://notify.example.org",
        sender=Sender(address="notifications@solidarity.example", name="Semana de Solidaridad ✊"),
        domain="solidarity.local",
    )
    context = examples.context(
        DeliveryKind.CONFIRMATION,
        recipient=examples.person(locale="es", name="Zoë Ñúñez"),
        session_view=examples.session(title=title),
    )
    rendered = renderer.render(context, now=NOW)
    message = wire_copy(rendered)

    assert rendered.data.isascii()
    assert b"\n" not in rendered.data.replace(b"\r\n", b"")
    assert str(message["Subject"]) == rendered.subject
    assert title in rendered.subject
    assert message["From"].addresses[0].display_name == "Semana de Solidaridad ✊"
    assert message["From"].addresses[0].addr_spec == "notifications@solidarity.example"
    assert message["To"] == "ada@school.example"
    assert message["Content-Language"] == "es"
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None
    assert "Zoë Ñúñez" in plain.get_content()
    assert not [d for part in message.walk() for d in part.defects]


def test_the_wire_copy_keeps_every_part_a_client_reads() -> None:
    rendered = render(DeliveryKind.CONFIRMATION)
    message = wire_copy(rendered)

    assert message.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/calendar",
        "application/ics",
    ]
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().replace("\r\n", "\n") == rendered.text
    assert html.get_content().replace("\r\n", "\n") == rendered.html
    assert rendered.calendar is not None
    calendar = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    assert calendar.get_payload(decode=True) == rendered.calendar
    assert ics_of(message).to_ical() == icalendar.Calendar.from_ical(rendered.calendar).to_ical()
    assert str(message["Message-ID"]).endswith("@solidarity.local>")
    assert message["Auto-Submitted"] == "auto-generated"
