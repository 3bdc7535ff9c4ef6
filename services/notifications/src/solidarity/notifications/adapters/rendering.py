"""Messages made from templates: subject, plain text, HTML, calendar invite, and headers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2

from solidarity.notifications.adapters import mime
from solidarity.notifications.adapters.calendar import session_invite
from solidarity.notifications.adapters.tokens import TokenSigner, UnsubscribeToken
from solidarity.notifications.domain.model import (
    CALENDAR_METHOD,
    SEAT_HOLDER_KINDS,
    DeliveryKind,
    MessageContext,
    calendar_uid,
    message_id,
    resources_for,
)
from solidarity.notifications.domain.timefmt import (
    base_locale,
    date_range,
    lead_time,
    long_date,
    session_times,
)

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

_KIND_LABELS = {
    "en": {
        "webinar": "webinar",
        "training": "training",
        "workshop": "workshop",
        "speaking_engagement": "talk",
        "in_person_event": "in-person event",
    },
    "es": {
        "webinar": "seminario web",
        "training": "capacitación",
        "workshop": "taller",
        "speaking_engagement": "charla",
        "in_person_event": "evento presencial",
    },
}


_BLANK_LINES = re.compile(r"\n{3,}")

_NEUTRAL_CALENDAR_TITLE = {"en": "Scheduled event", "es": "Evento programado"}
_JOIN = {"en": "Join", "es": "Enlace para unirte"}


class TemplateMissingError(LookupError):
    """No template for this kind in this language (nor in English)."""


@dataclass(frozen=True, slots=True)
class Sender:
    """Who mail comes from; the discreet name shows in inboxes instead of the campaign's."""

    address: str
    name: str = "Solidarity Week"
    discreet_name: str = "Notifications"


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    data: bytes  # the message as it goes over SMTP (see `adapters.mime`)
    subject: str
    text: str
    html: str
    calendar: bytes | None


def template_environment(directory: Path = TEMPLATES_DIR) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        # The templates ship with the package: no stat() of each file at every render.
        auto_reload=False,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


class MessageRenderer:
    """Turns a message context into a ready-to-send email, in the reader's language."""

    def __init__(
        self,
        *,
        signer: TokenSigner,
        public_base_url: str,
        sender: Sender,
        domain: str,
        environment: jinja2.Environment | None = None,
    ) -> None:
        self._signer = signer
        self._base_url = public_base_url.rstrip("/")
        self._sender = sender
        self._domain = domain
        self._env = environment or template_environment()
        # The From header for each mode, written once.
        self._from = {
            discreet: _mailbox(name, sender.address)
            for discreet, name in ((False, sender.name), (True, sender.discreet_name))
        }

    def unsubscribe_url(self, token: str) -> str:
        return f"{self._base_url}/unsubscribe?{urlencode({'token': token})}"

    def preferences_url(self, token: str) -> str:
        return f"{self._base_url}/preferences?{urlencode({'token': token})}"

    def template_vars(self, context: MessageContext, *, locale: str) -> dict[str, Any]:
        delivery, recipient, campaign = context.delivery, context.recipient, context.campaign
        token = self._signer.sign(
            UnsubscribeToken(recipient_id=recipient.recipient_id, purpose=delivery.purpose.value)
        )
        values: dict[str, Any] = {
            "kind": delivery.kind.value,
            "locale": locale,
            "discreet": campaign.discreet,
            "person": {"name": recipient.name, "role": recipient.role},
            "campaign": {
                "name": campaign.name,
                "description": campaign.description,
                "dates": date_range(campaign.starts_on, campaign.ends_on, locale),
                "focus_days": [
                    {"date": long_date(day.day, locale), "title": day.title}
                    for day in campaign.focus_days
                ],
            },
            "resources": [
                {"title": r.title, "url": r.url, "kind": r.kind}
                for r in resources_for(campaign, role=recipient.role, locale=locale)
            ],
            "links": {
                "campaign_name": campaign.name,
                "unsubscribe_url": self.unsubscribe_url(token),
                "preferences_url": self.preferences_url(token),
            },
            "registration": {
                "waitlist_position": (
                    context.registration.waitlist_position if context.registration else None
                )
            },
            "reminder": {"lead": lead_time(delivery.offset_minutes or 0, locale)},
        }
        session = context.session
        if session is not None:
            times = session_times(
                session.starts_at,
                time_zone=session.time_zone,
                display_time_zones=session.display_time_zones,
                reader_zone=recipient.time_zone,
                locale=locale,
            )
            shows_join = delivery.kind in SEAT_HOLDER_KINDS and not session.cancelled
            values["session"] = {
                "title": session.title,
                "description": session.description,
                "kind_label": _KIND_LABELS[locale].get(session.kind, session.kind),
                "date_line": times.date_line,
                "zones_line": times.zones_line,
                "personal_line": times.personal_line,
                "join_url": session.join_url if shows_join else None,
                "cancelled": session.cancelled,
            }
        return values

    def _templates(self, kind: DeliveryKind, locale: str) -> tuple[jinja2.Template, ...]:
        for language in dict.fromkeys((locale, "en")):
            try:
                return (
                    self._env.get_template(f"{language}/{kind.value}.txt.j2"),
                    self._env.get_template(f"{language}/{kind.value}.html.j2"),
                )
            except jinja2.TemplateNotFound:
                continue
        raise TemplateMissingError(f"no template for {kind.value}")

    def calendar(self, context: MessageContext, *, locale: str, now: datetime) -> bytes | None:
        method = CALENDAR_METHOD.get(context.delivery.kind)
        session, registration = context.session, context.registration
        if method is None or session is None or registration is None:
            return None
        discreet = context.campaign.discreet
        join = session.join_url if method == "REQUEST" else None
        description_parts = [] if discreet else [session.description]
        if join:
            description_parts.append(f"{_JOIN[locale]}: {join}")
        sequence = context.delivery.sequence
        if sequence is None:
            # A cancel must not be older than the request the attendee holds.
            sequence = session.sequence + (1 if method == "CANCEL" else 0)
        return session_invite(
            method=method,
            uid=calendar_uid(registration.registration_id, domain=self._domain),
            sequence=sequence,
            summary=_NEUTRAL_CALENDAR_TITLE[locale] if discreet else session.title,
            description="\n\n".join(p for p in description_parts if p),
            starts_at=session.starts_at,
            ends_at=session.ends_at,
            time_zone=session.time_zone,
            organizer_email=self._sender.address,
            attendee_email=context.recipient.email,
            stamp=now,
            url=join,
        )

    def render(self, context: MessageContext, *, now: datetime) -> RenderedEmail:
        locale = base_locale(context.recipient.locale)
        values = self.template_vars(context, locale=locale)
        text_template, html_template = self._templates(context.delivery.kind, locale)
        module = text_template.make_module(values)
        subject = " ".join(str(getattr(module, "subject", "")).split())
        text = _BLANK_LINES.sub("\n\n", str(module).strip()) + "\n"
        html = html_template.render(values | {"subject": subject})
        calendar = self.calendar(context, locale=locale, now=now)

        kind = context.delivery.kind
        headers = (
            ("From", self._from[context.campaign.discreet]),
            ("To", mime.ascii_address(context.recipient.email)),
            ("Subject", mime.unstructured(subject)),
            ("Date", format_datetime(now)),
            ("Message-ID", message_id(context.delivery.delivery_id, domain=self._domain)),
            # RFC 8058: an HTTPS URI that takes a POST with "List-Unsubscribe=One-Click".
            ("List-Unsubscribe", f"<{values['links']['unsubscribe_url']}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("Auto-Submitted", "auto-generated"),
        )
        tag = context.delivery.delivery_id.hex
        alternatives = [mime.text_part("plain", text), mime.text_part("html", html)]
        if calendar is None:
            body = mime.Multipart("alternative", mime.boundary(tag, 1), alternatives)
        else:
            method = CALENDAR_METHOD[kind]
            calendar_type = f'text/calendar; charset="utf-8"; method="{method}"'
            alternatives.append(mime.base64_part((("Content-Type", calendar_type),), calendar))
            attachment = mime.base64_part(
                (
                    ("Content-Type", "application/ics"),
                    ("Content-Disposition", 'attachment; filename="invite.ics"'),
                ),
                calendar,
            )
            body = mime.Multipart(
                "mixed",
                mime.boundary(tag, 0),
                (mime.Multipart("alternative", mime.boundary(tag, 1), alternatives), attachment),
            )
        data = mime.message(headers, body, trailing=(("Content-Language", locale),))
        return RenderedEmail(data=data, subject=subject, text=text, html=html, calendar=calendar)


def _mailbox(name: str, address: str) -> str:
    """`Name <address>`: quoted as needed when the name is ASCII, encoded words when not."""
    mime.ascii_value(address)
    if name.isascii() and name.isprintable():
        return formataddr((name, address))
    return f"{mime.unstructured(name)} <{address}>"
