"""The mail sink over real sockets: mail sent with aiosmtplib is kept, and faults fire as asked."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import pytest

from solidarity.shared.devstack.embedded import free_port
from solidarity.shared.devstack.mailsink import MailSink, quiet_smtp_library_logs

pytestmark = pytest.mark.integration

SENDER = "invites@solidarity.example"


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[MailSink]:
    running = MailSink(directory=tmp_path / "mail", smtp_port=free_port(), http_port=free_port())
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def api(sink: MailSink) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sink.http_port}") as client:
        yield client


def _mail(to: str, *, subject: str = "Your webinar", message_id: str | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or f"<{to.split('@')[0]}.1@solidarity.example>"
    message.set_content("See you on Tuesday.")
    return message


async def _send(sink: MailSink, message: EmailMessage) -> None:
    await aiosmtplib.send(message, hostname="127.0.0.1", port=sink.smtp_port, timeout=10)


async def test_a_sent_mail_is_listed_and_readable(sink: MailSink, api: httpx.AsyncClient) -> None:
    await _send(sink, _mail("ada@school.example", subject="Solidarity Week: you are in"))

    listed = (await api.get("/api/messages")).json()

    assert len(listed) == 1
    entry = listed[0]
    assert entry["from"] == SENDER
    assert entry["to"] == ["ada@school.example"]
    assert entry["subject"] == "Solidarity Week: you are in"
    assert entry["message_id"] == "<ada.1@solidarity.example>"
    assert entry["received_at"]
    raw = await api.get(f"/api/messages/{entry['id']}")
    assert raw.status_code == 200
    assert b"See you on Tuesday." in raw.content
    assert (sink.store.directory / f"{entry['id']}.eml").read_bytes() == raw.content
    page = await api.get("/")
    assert "Solidarity Week: you are in" in page.text
    assert (await api.get(f"/messages/{entry['id']}")).status_code == 200

    assert (await api.delete("/api/messages")).json() == {"deleted": 1}
    assert (await api.get("/api/messages")).json() == []
    assert (await api.get(f"/api/messages/{entry['id']}")).status_code == 404


async def test_451_twice_then_accepted(sink: MailSink, api: httpx.AsyncClient) -> None:
    fault = {"recipient": "Bea@School.example", "code": 451, "times": 2}
    assert (await api.post("/api/faults", json=fault)).status_code == 201

    refusals = []
    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await _send(sink, _mail("bea@school.example"))
        refusals.append(refused.value.recipients[0].code)
    await _send(sink, _mail("bea@school.example"))
    await _send(sink, _mail("cy@school.example"))  # never affected

    assert refusals == [451, 451]
    assert sorted(m["to"][0] for m in (await api.get("/api/messages")).json()) == [
        "bea@school.example",
        "cy@school.example",
    ]


async def test_550_is_permanent_until_cleared(sink: MailSink, api: httpx.AsyncClient) -> None:
    fault = {"recipient": "gone@school.example", "code": 550, "times": None}
    await api.post("/api/faults", json=fault)

    for _ in range(3):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await _send(sink, _mail("gone@school.example"))
        assert refused.value.recipients[0].code == 550
    assert (await api.get("/api/messages")).json() == []

    assert (await api.delete("/api/faults")).json() == {"deleted": 1}
    await _send(sink, _mail("gone@school.example"))
    assert len((await api.get("/api/messages")).json()) == 1


async def test_a_fault_at_data_refuses_the_message(sink: MailSink, api: httpx.AsyncClient) -> None:
    await api.post("/api/faults", json={"code": 451, "stage": "data", "times": 1})

    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await _send(sink, _mail("dee@school.example"))
    await _send(sink, _mail("dee@school.example"))

    assert refused.value.code == 451
    assert len((await api.get("/api/messages")).json()) == 1


async def test_drop_after_data_keeps_the_message_but_the_sender_sees_a_disconnect(
    sink: MailSink, api: httpx.AsyncClient
) -> None:
    await api.post("/api/faults", json={"drop_after_data": True, "times": 1})

    message_id = "<delivery-42@solidarity.example>"
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await _send(sink, _mail("eve@school.example", message_id=message_id))
    await _send(sink, _mail("eve@school.example", message_id=message_id))

    listed = (await api.get("/api/messages")).json()
    assert [m["message_id"] for m in listed] == ["<delivery-42@solidarity.example>"] * 2
    faults = (await api.get("/api/faults")).json()
    assert faults[0]["fired"] == 1


async def test_a_fault_needs_a_code_or_a_drop(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/faults", json={"recipient": "x@y.example"})).status_code == 422
    assert (await api.post("/api/faults", json={"code": 250})).status_code == 422


async def test_no_address_or_subject_reaches_a_log_line(
    sink: MailSink,
    api: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    quiet_smtp_library_logs()
    caplog.set_level(logging.DEBUG, logger="solidarity")
    caplog.set_level(logging.INFO)
    await api.post("/api/faults", json={"recipient": "fay@school.example", "code": 451})

    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await _send(sink, _mail("fay@school.example", subject="Private subject line"))
    await _send(sink, _mail("fay@school.example", subject="Private subject line"))

    captured = capsys.readouterr()  # structlog writes to stdout or stderr, as configured
    logged = caplog.text + captured.out + captured.err
    assert "mailsink_received" in logged
    assert "school.example" not in logged
    assert "solidarity.example" not in logged
    assert "Private subject line" not in logged
