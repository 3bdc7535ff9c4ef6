"""The MIME writer: 7-bit, CRLF, short lines, and what a mail client parses back is what was
written (subjects in any language, bodies byte for byte, the calendar parts)."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from solidarity.notifications.adapters import mime

pytestmark = pytest.mark.unit

SUBJECTS = [
    "Your webinar is confirmed",
    "Inscripción confirmada: Construir solidaridad",
    "Zoë Ñúñez — 日本語のタイトル, a long one " * 5,
    "=?utf-8?q?looks_encoded?= but was typed like this",
    "x" * 1200,
    "🏳️‍🌈 Solidarity",
]


def parse(data: bytes) -> EmailMessage:
    parsed = message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def sample(subject: str, text: str, calendar: bytes | None = None) -> bytes:
    parts = [mime.text_part("plain", text), mime.text_part("html", f"<p>{text}</p>")]
    body = mime.Multipart("alternative", mime.boundary("t", 1), parts)
    if calendar is not None:
        parts.append(
            mime.base64_part((("Content-Type", 'text/calendar; method="CANCEL"'),), calendar)
        )
        attachment = mime.base64_part(
            (
                ("Content-Type", "application/ics"),
                ("Content-Disposition", 'attachment; filename="invite.ics"'),
            ),
            calendar,
        )
        body = mime.Multipart("mixed", mime.boundary("t", 0), (body, attachment))
    return mime.message(
        (("To", "ada@school.example"), ("Subject", mime.unstructured(subject))),
        body,
        trailing=(("Content-Language", "es"),),
    )


@pytest.mark.parametrize("subject", SUBJECTS)
def test_a_subject_in_any_language_reads_back_the_same(subject: str) -> None:
    data = sample(subject, "hola")

    assert str(parse(data)["Subject"]) == subject
    assert data.isascii()
    lines = data.split(b"\r\n")
    assert all(len(line) <= 78 for line in lines if b"=?utf-8?b?" in line)
    assert all(len(line) <= 998 for line in lines)


def test_plain_ascii_subjects_are_written_as_they_are() -> None:
    assert mime.unstructured("Your webinar is confirmed") == "Your webinar is confirmed"
    assert mime.unstructured("Café").startswith("=?utf-8?b?")


def test_bodies_read_back_byte_for_byte_and_every_line_is_short() -> None:
    text = (
        "Hola, Zoë:\n\nline with trailing spaces   \n"
        + "a long line " * 40
        + "\n.\nFrom here on = signs and\ttabs\r\nend without a break"
    )
    data = sample("s", text)
    message = parse(data)

    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None
    assert plain.get_content().replace("\r\n", "\n") == text.replace("\r\n", "\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    body_lines = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert all(len(line) <= 76 for line in body_lines)
    assert message["Content-Language"] == "es"
    assert not [d for part in message.walk() for d in part.defects]


def test_the_calendar_is_an_alternative_and_an_attachment() -> None:
    ics = b"BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nSUMMARY:Caf\xc3\xa9\r\nEND:VCALENDAR\r\n" * 20
    message = parse(sample("s", "t", calendar=ics))

    assert message.get_content_type() == "multipart/mixed"
    calendar = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert calendar[0].get_param("method") == "CANCEL"
    assert calendar[0].get_payload(decode=True) == ics
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content() == ics


def test_an_address_that_is_not_ascii_cannot_be_written() -> None:
    with pytest.raises(mime.UnencodableHeaderError):
        mime.ascii_value("zoë@school.example")
    with pytest.raises(mime.UnencodableHeaderError):
        mime.ascii_value("ada@school.example\r\nBcc: eve@example.org")


def test_a_domain_outside_ascii_is_written_as_punycode() -> None:
    assert mime.ascii_address("ada@bücher.example") == "ada@xn--bcher-kva.example"
    assert mime.ascii_address("ada@school.example") == "ada@school.example"
    with pytest.raises(mime.UnencodableHeaderError):
        mime.ascii_address("zoë@bücher.example")
