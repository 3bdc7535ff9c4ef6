"""The mail sink's parts without sockets: the store, the fault book and the HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from solidarity.shared.devstack.mailsink import FaultBook, FaultRequest, MailStore, create_app

pytestmark = pytest.mark.unit

RAW = (
    b"From: invites@solidarity.example\r\n"
    b"To: ada@school.example\r\n"
    b"Subject: =?utf-8?q?Solidarit=C3=A9_Week?=\r\n"
    b"Message-ID: <d-1@solidarity.example>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello\r\n"
)


def test_the_store_keeps_the_message_and_its_index(tmp_path: Path) -> None:
    store = MailStore(tmp_path / "mail")

    saved = store.save(
        mail_from="invites@solidarity.example", rcpt_tos=["ada@school.example"], content=RAW
    )

    assert saved.subject == "Solidarité Week"
    assert saved.message_id == "<d-1@solidarity.example>"
    assert store.list() == [saved]
    assert store.raw(saved.id) == RAW
    assert MailStore(tmp_path / "mail").list() == [saved]  # survives a restart
    assert store.raw("../../etc/passwd") is None
    assert store.clear() == 1
    assert store.list() == []
    assert list((tmp_path / "mail").iterdir()) == []


def test_a_fault_fires_its_number_of_times_for_its_recipient_only() -> None:
    book = FaultBook()
    book.add(FaultRequest(recipient="Ada@School.example", code=451, times=2))

    assert book.take(stage="rcpt", recipients=["bo@school.example"]) is None
    assert book.take(stage="data", recipients=["ada@school.example"]) is None
    fired = [book.take(stage="rcpt", recipients=["ada@school.example"]) for _ in range(3)]

    assert [f.code if f else None for f in fired] == [451, 451, None]


def test_a_fault_without_times_fires_forever_and_drops_are_separate() -> None:
    book = FaultBook()
    book.add(FaultRequest(code=550, times=None))
    book.add(FaultRequest(drop_after_data=True))

    assert all(book.take(stage="rcpt", recipients=["x@y.example"]) for _ in range(20))
    drop = book.take(stage="drop", recipients=["x@y.example"])
    assert drop is not None
    assert drop.drop_after_data
    assert book.take(stage="drop", recipients=["x@y.example"]) is None
    assert book.clear() == 2


@pytest.mark.parametrize(
    "body",
    [{}, {"code": 451, "drop_after_data": True}, {"code": 250}, {"code": 451, "times": 0}],
)
def test_a_fault_request_is_either_a_code_or_a_drop(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FaultRequest.model_validate(body)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, MailStore]]:
    store = MailStore(tmp_path / "mail")
    transport = httpx.ASGITransport(app=create_app(store, FaultBook()))
    async with httpx.AsyncClient(transport=transport, base_url="http://sink") as client:
        yield client, store


async def test_the_api_lists_shows_and_clears(
    api: tuple[httpx.AsyncClient, MailStore],
) -> None:
    client, store = api
    saved = store.save(mail_from="a@b.example", rcpt_tos=["c@d.example"], content=RAW)

    listed = (await client.get("/api/messages")).json()
    raw = await client.get(f"/api/messages/{saved.id}")
    page = await client.get(f"/messages/{saved.id}")

    assert [m["id"] for m in listed] == [saved.id]
    assert set(listed[0]) == {"id", "from", "to", "subject", "message_id", "received_at", "size"}
    assert raw.content == RAW
    assert raw.headers["content-type"] == "message/rfc822"
    assert "Solidarité Week" in page.text
    assert (await client.get("/api/messages/nope")).status_code == 404
    assert (await client.delete("/api/messages")).json() == {"deleted": 1}


async def test_the_index_page_escapes_what_a_mail_says(
    api: tuple[httpx.AsyncClient, MailStore],
) -> None:
    client, store = api
    store.save(
        mail_from="a@b.example",
        rcpt_tos=["c@d.example"],
        content=b"Subject: <script>alert(1)</script>\r\n\r\nhi\r\n",
    )

    page = (await client.get("/")).text

    assert "<script>" not in page
    assert "&lt;script&gt;" in page


async def test_faults_are_added_listed_and_cleared(
    api: tuple[httpx.AsyncClient, MailStore],
) -> None:
    client, _ = api

    added = await client.post("/api/faults", json={"recipient": "x@y.example", "code": 421})

    assert added.status_code == 201
    assert added.json()["remaining"] == 1
    assert len((await client.get("/api/faults")).json()) == 1
    assert (await client.delete("/api/faults")).json() == {"deleted": 1}
    assert (await client.get("/api/faults")).json() == []
