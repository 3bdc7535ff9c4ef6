"""Micro-benchmark (not a test): CPU per mail to render and assemble the three shapes the bench
sends most (a welcome, a waitlist notice, a confirmation with its calendar invite).

    .venv/bin/python -m tests.unit.notifications.bench_rendering [rounds]

For each shape: the whole `MessageRenderer.render` (templates, calendar, MIME bytes); the MIME
assembly alone as the service writes it now (`adapters.mime`); and the same parts assembled as
it was before, an `EmailMessage` with the default policy (clone of `max_line_length=998`,
each header class cached; headers parsed on the way in, folded on the way out by `as_bytes`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta
from email import headerregistry, policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from solidarity.notifications.adapters import mime
from solidarity.notifications.adapters.rendering import MessageRenderer, RenderedEmail
from solidarity.notifications.domain.model import CALENDAR_METHOD, MessageContext, message_id
from solidarity.notifications.domain.model import DeliveryKind as Kind
from tests.unit.notifications import examples

NOW = examples.SESSION_START - timedelta(days=2)


class _CachedHeaderFactory:
    """As rendering.py had it: each header class built once."""

    def __init__(self) -> None:
        self._registry = headerregistry.HeaderRegistry()
        self._classes: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        cls = self._classes.get(name.lower())
        if cls is None:
            cls = self._classes[name.lower()] = self._registry[name]
        return cls

    def __call__(self, name: str, value: Any) -> Any:
        return self[name](name, value)


OLD_POLICY = policy.default.clone(max_line_length=998, header_factory=_CachedHeaderFactory())
URL = "https://notify.example.org/unsubscribe?token=AAAAAAAAAAAAAAAAAAAAoXJlZ2lzdHJhdGlvbl91cGRhdGVz.x"


def old_assembly(context: MessageContext, rendered: RenderedEmail) -> bytes:
    """How `render` built the message before (rendering.py up to this change)."""
    message = EmailMessage(policy=OLD_POLICY)
    message["From"] = formataddr(("Solidarity Week", "notifications@solidarity.example"))
    message["To"] = context.recipient.email
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(NOW)
    message["Message-ID"] = message_id(context.delivery.delivery_id, domain="solidarity.local")
    message["List-Unsubscribe"] = f"<{URL}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text, cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    if rendered.calendar is not None:
        method = CALENDAR_METHOD[context.delivery.kind]
        message.add_alternative(
            rendered.calendar.decode(), subtype="calendar", params={"method": method}, cte="base64"
        )
        message.add_attachment(
            rendered.calendar, maintype="application", subtype="ics", filename="invite.ics"
        )
    message["Content-Language"] = "en"
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def new_assembly(context: MessageContext, rendered: RenderedEmail) -> bytes:
    """The same parts written by `adapters.mime`, as `render` does now."""
    headers = (
        ("From", formataddr(("Solidarity Week", "notifications@solidarity.example"))),
        ("To", mime.ascii_value(context.recipient.email)),
        ("Subject", mime.unstructured(rendered.subject)),
        ("Date", format_datetime(NOW)),
        ("Message-ID", message_id(context.delivery.delivery_id, domain="solidarity.local")),
        ("List-Unsubscribe", f"<{URL}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Auto-Submitted", "auto-generated"),
    )
    tag = context.delivery.delivery_id.hex
    parts = [mime.text_part("plain", rendered.text), mime.text_part("html", rendered.html)]
    body = mime.Multipart("alternative", mime.boundary(tag, 1), parts)
    if rendered.calendar is not None:
        method = CALENDAR_METHOD[context.delivery.kind]
        calendar_type = f'text/calendar; charset="utf-8"; method="{method}"'
        parts.append(mime.base64_part((("Content-Type", calendar_type),), rendered.calendar))
        attachment = mime.base64_part(
            (
                ("Content-Type", "application/ics"),
                ("Content-Disposition", 'attachment; filename="invite.ics"'),
            ),
            rendered.calendar,
        )
        body = mime.Multipart("mixed", mime.boundary(tag, 0), (body, attachment))
    return mime.message(headers, body, trailing=(("Content-Language", "en"),))


def per_call_ms(call: Callable[[], object], rounds: int) -> float:
    for _ in range(max(10, rounds // 10)):
        call()
    best = float("inf")
    for _ in range(3):  # the best of three: the machine is shared
        started = time.process_time()
        for _ in range(rounds):
            call()
        best = min(best, (time.process_time() - started) / rounds * 1000)
    return best


def main(rounds: int) -> None:
    renderer: MessageRenderer = examples.renderer()
    shapes = {
        "welcome": examples.context(Kind.SIGNUP_WELCOME),
        "waitlisted": examples.context(Kind.WAITLISTED, registration_status="waitlisted"),
        "confirmation": examples.context(Kind.CONFIRMATION),
    }
    columns = ("bytes", "render", "mime now", "before", "render before")
    print(f"{'mail':<13}", " ".join(f"{c:>8}" for c in columns))
    for name, context in shapes.items():
        rendered = renderer.render(context, now=NOW)
        whole = per_call_ms(lambda c=context: renderer.render(c, now=NOW), rounds)  # type: ignore[misc]
        now_ms = per_call_ms(lambda c=context, r=rendered: new_assembly(c, r), rounds)  # type: ignore[misc]
        before = per_call_ms(lambda c=context, r=rendered: old_assembly(c, r), rounds)  # type: ignore[misc]
        print(
            f"{name:<13} {len(rendered.data):>8} {whole:>6.3f}ms {now_ms:>6.3f}ms "
            f"{before:>6.3f}ms {whole - now_ms + before:>11.3f}ms"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
