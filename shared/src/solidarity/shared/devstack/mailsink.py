"""A development SMTP sink: keeps every mail as an .eml file and serves them over a small HTTP API.

Run it with `python -m solidarity.shared.devstack.mailsink --smtp-port P --http-port Q --dir D`.
Tests steer it through `POST /api/faults`: answer an SMTP error for a recipient a number of times,
or accept a message and then drop the connection before the final reply (the sender cannot know
the mail arrived, which is what a duplicate-send test needs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import logging
import re
import secrets
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal

import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, HTTPException, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, model_validator

from solidarity.shared.devstack.embedded import free_port
from solidarity.shared.logging import configure_logging, get_logger

log = get_logger(__name__)

_ID = re.compile(r"^[0-9TZ]{22}-[0-9a-f]{6}$")
_REPLIES = {
    421: "421 4.3.0 Service not available, closing transmission channel",
    450: "450 4.2.0 Mailbox unavailable, try again later",
    451: "451 4.3.0 Local error in processing, try again later",
    452: "452 4.3.1 Insufficient system storage, try again later",
    550: "550 5.1.1 Mailbox unavailable",
    552: "552 5.3.4 Message too big",
    553: "553 5.1.3 Mailbox name not allowed",
    554: "554 5.7.1 Transaction failed",
}


# Storage -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredMail:
    """What the sink knows about one received message (the .eml beside it is the message)."""

    id: str
    mail_from: str
    to: list[str]
    subject: str
    message_id: str | None
    received_at: str
    size: int

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["from"] = data.pop("mail_from")
        return data


class MailStore:
    """Messages as `<id>.eml` with a `<id>.json` index entry each, in one folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def save(self, *, mail_from: str, rcpt_tos: list[str], content: bytes) -> StoredMail:
        now = datetime.now(UTC)
        mail_id = f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(3)}"
        headers = BytesParser(policy=policy.default).parsebytes(content, headersonly=True)
        mail = StoredMail(
            id=mail_id,
            mail_from=mail_from,
            to=list(rcpt_tos),
            subject=str(headers.get("Subject", "")),
            message_id=_header(headers, "Message-ID"),
            received_at=now.isoformat(),
            size=len(content),
        )
        (self.directory / f"{mail_id}.eml").write_bytes(content)
        # The index entry is written last: a listed message always has its .eml.
        index = self.directory / f"{mail_id}.json"
        partial = index.with_suffix(".json.tmp")
        partial.write_text(json.dumps(mail.as_json()))
        partial.replace(index)
        return mail

    def list(self) -> list[StoredMail]:
        found: list[StoredMail] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            found.append(
                StoredMail(
                    id=data["id"],
                    mail_from=data["from"],
                    to=list(data["to"]),
                    subject=data["subject"],
                    message_id=data.get("message_id"),
                    received_at=data["received_at"],
                    size=int(data["size"]),
                )
            )
        return found

    def raw(self, mail_id: str) -> bytes | None:
        if not _ID.match(mail_id):
            return None
        path = self.directory / f"{mail_id}.eml"
        return path.read_bytes() if path.exists() else None

    def clear(self) -> int:
        removed = 0
        for path in list(self.directory.glob("*.json")):
            path.unlink(missing_ok=True)
            removed += 1
        for path in list(self.directory.glob("*.eml")):
            path.unlink(missing_ok=True)
        return removed


def _header(message: EmailMessage, name: str) -> str | None:
    value = message.get(name)
    return str(value).strip() if value is not None else None


# Faults --------------------------------------------------------------------------------------


class FaultRequest(BaseModel):
    """A fault to inject: an SMTP reply code for a recipient, or a dropped connection."""

    recipient: str | None = Field(
        default=None, description="Only for this recipient (case-insensitive); none: everyone."
    )
    code: int | None = Field(default=None, description="SMTP reply code, e.g. 421, 451, 550.")
    stage: Literal["rcpt", "data"] = Field(
        default="rcpt", description="Answer the code at RCPT TO or after DATA."
    )
    drop_after_data: bool = Field(
        default=False,
        description="Keep the message, then close the connection instead of replying 250.",
    )
    times: int | None = Field(
        default=1,
        ge=1,
        description="How many times it fires before mail is accepted; null: always.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> FaultRequest:
        if self.drop_after_data == (self.code is not None):
            raise ValueError("give either a code or drop_after_data")
        if self.code is not None and not 400 <= self.code <= 599:
            raise ValueError("code must be an SMTP error code (4xx or 5xx)")
        return self


@dataclass
class Fault:
    id: int
    recipient: str | None
    code: int | None
    stage: str
    drop_after_data: bool
    remaining: int | None  # None: forever
    fired: int = 0

    def matches(self, recipients: list[str]) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.recipient is None:
            return True
        return self.recipient.lower() in (r.lower() for r in recipients)

    def fire(self) -> None:
        self.fired += 1
        if self.remaining is not None:
            self.remaining -= 1

    def reply(self) -> str:
        assert self.code is not None
        return _REPLIES.get(self.code, f"{self.code} Injected failure")


class FaultBook:
    """The faults in force; touched only from the event loop, so no lock is needed."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, request: FaultRequest) -> Fault:
        fault = Fault(
            id=self._next_id,
            recipient=request.recipient,
            code=request.code,
            stage=request.stage,
            drop_after_data=request.drop_after_data,
            remaining=request.times,
        )
        self._next_id += 1
        self._faults.append(fault)
        return fault

    def clear(self) -> int:
        count = len(self._faults)
        self._faults.clear()
        return count

    def all(self) -> list[Fault]:
        return list(self._faults)

    def take(self, *, stage: str, recipients: list[str]) -> Fault | None:
        """The first fault that applies here; it is counted as fired."""
        for fault in self._faults:
            kind_matches = fault.drop_after_data if stage == "drop" else fault.stage == stage
            is_code = fault.code is not None
            if (stage == "drop" or is_code) and kind_matches and fault.matches(recipients):
                fault.fire()
                return fault
        return None


# SMTP ----------------------------------------------------------------------------------------


class SinkHandler:
    """aiosmtpd handler: applies faults, stores what is accepted. Logs no address or subject."""

    def __init__(self, store: MailStore, faults: FaultBook) -> None:
        self.store = store
        self.faults = faults

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        fault = self.faults.take(stage="rcpt", recipients=[address])
        if fault is not None:
            log.info("mailsink_fault_fired", fault_id=fault.id, code=fault.code, stage="rcpt")
            if fault.code == 421:
                _close_after_reply(server)
            return fault.reply()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        recipients = list(envelope.rcpt_tos)
        fault = self.faults.take(stage="data", recipients=recipients)
        if fault is not None:
            log.info("mailsink_fault_fired", fault_id=fault.id, code=fault.code, stage="data")
            if fault.code == 421:
                _close_after_reply(server)
            return fault.reply()
        content = envelope.original_content or b""
        mail = self.store.save(
            mail_from=str(envelope.mail_from or ""), rcpt_tos=recipients, content=content
        )
        log.info("mailsink_received", mail_id=mail.id, recipients=len(recipients), size=mail.size)
        drop = self.faults.take(stage="drop", recipients=recipients)
        if drop is not None:
            log.info("mailsink_fault_fired", fault_id=drop.id, stage="drop_after_data")
            if server.transport is not None:
                server.transport.close()
            # connection_lost cancels this session's task; no reply is ever written.
            await asyncio.Event().wait()
        return "250 OK"


def _close_after_reply(server: SMTP) -> None:
    """A 421 means the server closes the channel: do so once the reply has been written."""
    transport = server.transport
    if transport is not None:
        asyncio.get_running_loop().call_soon(transport.close)


# HTTP ----------------------------------------------------------------------------------------


def create_app(store: MailStore, faults: FaultBook) -> FastAPI:
    """The mail sink's web page and API."""
    app = FastAPI(
        title="Solidarity mail sink",
        description="Every mail sent in development, kept for people and tests to read.",
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return _render_index(store.list())

    @app.get("/messages/{mail_id}", response_class=HTMLResponse)
    async def show_page(mail_id: str) -> str:
        raw = store.raw(mail_id)
        if raw is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such message")
        return _render_message(mail_id, raw)

    @app.get("/api/messages")
    async def list_messages() -> list[dict[str, Any]]:
        return [mail.as_json() for mail in store.list()]

    @app.get("/api/messages/{mail_id}")
    async def raw_message(mail_id: str) -> Response:
        raw = store.raw(mail_id)
        if raw is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such message")
        return Response(content=raw, media_type="message/rfc822")

    @app.delete("/api/messages")
    async def clear_messages() -> dict[str, int]:
        return {"deleted": store.clear()}

    @app.get("/api/faults")
    async def list_faults() -> list[dict[str, Any]]:
        return [asdict(f) for f in faults.all()]

    @app.post("/api/faults", status_code=status.HTTP_201_CREATED)
    async def add_fault(request: FaultRequest) -> dict[str, Any]:
        return asdict(faults.add(request))

    @app.delete("/api/faults")
    async def clear_faults() -> dict[str, int]:
        return {"deleted": faults.clear()}

    return app


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
    "table{border-collapse:collapse;width:100%}"
    "td,th{border-bottom:1px solid #ddd;padding:.4rem .6rem;text-align:left;vertical-align:top}"
    "pre{white-space:pre-wrap;background:#f6f6f6;padding:1rem}"
    "iframe{width:100%;height:30rem;border:1px solid #ddd}"
)


def _render_index(mails: list[StoredMail]) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(m.received_at)}</td>"
        f"<td>{html.escape(m.mail_from)}</td>"
        f"<td>{html.escape(', '.join(m.to))}</td>"
        f'<td><a href="/messages/{html.escape(m.id)}">{html.escape(m.subject or "(none)")}</a></td>'
        f'<td><a href="/api/messages/{html.escape(m.id)}">.eml</a></td>'
        "</tr>"
        for m in reversed(mails)
    )
    empty = "" if mails else "<p>No mail yet.</p>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Mail sink</title>"
        f"<style>{_STYLE}</style></head><body><h1>Mail sink ({len(mails)})</h1>{empty}"
        "<table><tr><th>received</th><th>from</th><th>to</th><th>subject</th><th></th></tr>"
        f"{rows}</table></body></html>"
    )


def _render_message(mail_id: str, raw: bytes) -> str:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    header_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in message.items()
    )
    parts: list[str] = []
    for part in _leaf_parts(message):
        content_type = part.get_content_type()
        if content_type == "text/plain":
            parts.append(f"<h2>text</h2><pre>{html.escape(str(part.get_content()))}</pre>")
        elif content_type == "text/html":
            # Sandboxed: a mail's HTML must not run scripts in the sink's page.
            srcdoc = html.escape(str(part.get_content()), quote=True)
            parts.append(f'<h2>html</h2><iframe sandbox srcdoc="{srcdoc}"></iframe>')
        else:
            name = html.escape(part.get_filename() or "")
            parts.append(f"<p>attachment {html.escape(content_type)} {name}</p>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Mail</title>"
        f"<style>{_STYLE}</style></head><body><p><a href='/'>all mail</a> · "
        f"<a href='/api/messages/{html.escape(mail_id)}'>raw .eml</a></p>"
        f"<table>{header_rows}</table>{''.join(parts)}</body></html>"
    )


def _leaf_parts(message: EmailMessage) -> Iterator[EmailMessage]:
    if message.is_multipart():
        for part in message.iter_parts():
            assert isinstance(part, EmailMessage)
            yield from _leaf_parts(part)
    else:
        yield message


# Running -------------------------------------------------------------------------------------


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the sink stops SMTP and HTTP together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MailSink:
    """The SMTP server and the HTTP server on one event loop."""

    def __init__(
        self, *, directory: Path, smtp_port: int, http_port: int, host: str = "127.0.0.1"
    ) -> None:
        self.store = MailStore(directory)
        self.faults = FaultBook()
        self.host = host
        self.smtp_port = smtp_port
        self.http_port = http_port
        self._smtp: asyncio.Server | None = None
        self._http: _QuietServer | None = None
        self._http_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        handler = SinkHandler(self.store, self.faults)
        self._smtp = await loop.create_server(
            lambda: SMTP(handler, hostname="solidarity-mailsink", ident="Solidarity mail sink"),
            host=self.host,
            port=self.smtp_port,
        )
        config = uvicorn.Config(
            create_app(self.store, self.faults),
            host=self.host,
            port=self.http_port,
            access_log=False,
            log_config=None,
            lifespan="off",
        )
        self._http = _QuietServer(config)
        self._http_task = asyncio.create_task(self._http.serve())
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()  # raises what stopped it (a taken port, say)
                raise RuntimeError("the mail sink's HTTP server stopped during start")
            await asyncio.sleep(0.02)
        log.info("mailsink_started", smtp_port=self.smtp_port, http_port=self.http_port)

    async def stop(self) -> None:
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._http_task
        if self._smtp is not None:
            self._smtp.close()
            await self._smtp.wait_closed()
        log.info("mailsink_stopped")


def quiet_smtp_library_logs() -> None:
    """aiosmtpd logs every command line (addresses included) at INFO: keep it to warnings."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)


@contextlib.asynccontextmanager
async def running_mail_sink(directory: Path) -> AsyncIterator[MailSink]:
    """A sink in this process on free loopback ports, for tests: started, then stopped."""
    quiet_smtp_library_logs()
    sink = MailSink(directory=directory, smtp_port=free_port(), http_port=free_port())
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()


async def _serve(args: argparse.Namespace) -> None:
    sink = MailSink(
        directory=Path(args.dir), smtp_port=args.smtp_port, http_port=args.http_port, host=args.host
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await sink.start()
    try:
        await stop.wait()
    finally:
        await sink.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m solidarity.shared.devstack.mailsink",
        description="A development SMTP sink that keeps every mail and serves them over HTTP.",
    )
    parser.add_argument("--smtp-port", type=int, default=1025, help="SMTP port (default 1025)")
    parser.add_argument("--http-port", type=int, default=8025, help="web/API port (default 8025)")
    parser.add_argument("--dir", default=".solidarity/mail", help="where the .eml files go")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--log-format", choices=["console", "json"], default="console")
    args = parser.parse_args(argv)
    configure_logging(fmt=args.log_format, level="INFO")
    quiet_smtp_library_logs()
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
