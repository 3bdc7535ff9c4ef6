"""People's pages: one-click unsubscribe (RFC 8058) and preferences per purpose.

No page shows an address or a name: a link may be forwarded, and a page that named the
person could out them. Forms are parsed by hand (application/x-www-form-urlencoded), so the
service needs no multipart dependency.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from solidarity.notifications.adapters.clock import Clock
from solidarity.notifications.adapters.repository import SqlPeopleRepository
from solidarity.notifications.adapters.tokens import InvalidTokenError, TokenSigner
from solidarity.notifications.domain.model import PERSON_PURPOSES
from solidarity.notifications.domain.timefmt import base_locale
from solidarity.notifications.service_layer import preferences as prefs
from solidarity.shared.http_models import service_unavailable
from solidarity.shared.logging import get_logger

log = get_logger(__name__)

# What every page may answer besides itself: HTML, but for the kit's 503 (and FastAPI's 422,
# documented by FastAPI, of a request that does not validate).
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "The link is invalid or expired (a page that says so)",
        "content": {"text/html": {"schema": {"type": "string"}}},
    },
    **service_unavailable("The database is away: retry after `Retry-After`"),
}

router = APIRouter(tags=["preferences"], responses=_ERRORS)


@dataclass(frozen=True, slots=True)
class PageText:
    title: str
    invalid: str
    confirm: str
    button: str
    done: str
    all: str
    unknown: str
    choose: str
    save: str
    saved: str
    manage: str
    purposes: dict[str, str]


_TEXT = {
    "en": PageText(
        title="Your mail preferences",
        invalid="This link is not valid. Please use the link from your most recent email.",
        confirm="Stop receiving {purpose}?",
        button="Unsubscribe",
        done="You will not receive {purpose} any more.",
        all="any mail from us",
        unknown="There is nothing to change for this link.",
        choose="Choose what you receive:",
        save="Save",
        saved="Your choices are saved.",
        manage="Choose what you receive",
        purposes={
            "invitations": "invitations to webinars and talks",
            "reminders": "reminders before your sessions",
            "registration_updates": "confirmations and changes to your registrations",
            "welcome": "welcome messages when you sign up",
        },
    ),
    "es": PageText(
        title="Tus preferencias de correo",
        invalid="Este enlace no es válido. Usa el enlace de tu correo más reciente.",
        confirm="¿Dejar de recibir {purpose}?",
        button="Darme de baja",
        done="Ya no recibirás {purpose}.",
        all="ningún correo nuestro",
        unknown="No hay nada que cambiar con este enlace.",
        choose="Elige qué recibes:",
        save="Guardar",
        saved="Guardamos tus preferencias.",
        manage="Elegir qué recibes",
        purposes={
            "invitations": "invitaciones a seminarios web y charlas",
            "reminders": "recordatorios antes de tus sesiones",
            "registration_updates": "confirmaciones y cambios de tus inscripciones",
            "welcome": "mensajes de bienvenida al inscribirte",
        },
    ),
}


@dataclass(frozen=True, slots=True)
class PreferencePages:
    """What the routes need, set on `app.state.preference_pages` by the composition root."""

    signer: TokenSigner
    clock: Clock


def _deps(request: Request) -> PreferencePages:
    pages: PreferencePages = request.app.state.preference_pages
    return pages


def _page(locale: str, body: str, *, status: int = 200) -> HTMLResponse:
    title = html.escape(_TEXT[locale].title)
    page = (
        f"<!doctype html><html lang='{locale}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'>"
        f"<meta name='robots' content='noindex'><title>{title}</title></head>"
        "<body style='font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;"
        f"padding:0 1rem'><h1>{title}</h1>{body}</body></html>"
    )
    return HTMLResponse(
        page,
        status_code=status,
        headers={"cache-control": "no-store", "referrer-policy": "no-referrer"},
    )


def _purpose_label(locale: str, purpose: str) -> str:
    text = _TEXT[locale]
    if purpose == "all":
        return text.all
    return text.purposes.get(purpose, purpose)


async def _form(request: Request) -> dict[str, list[str]]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return parse_qs(body, keep_blank_values=True)


def _language(request: Request, result: prefs.Preferences | None = None) -> str:
    """The person's language if known, else the browser's."""
    if result is not None and result.locale:
        return base_locale(result.locale)
    accepted = request.headers.get("accept-language", "").split(",")[0].strip()
    return base_locale(accepted or None)


def _invalid(request: Request) -> HTMLResponse:
    locale = _language(request)
    return _page(locale, f"<p>{html.escape(_TEXT[locale].invalid)}</p>", status=400)


async def _read(request: Request, recipient_id: uuid.UUID) -> prefs.Preferences:
    async with request.app.state.runtime.pool.acquire() as conn:
        return await prefs.current_preferences(SqlPeopleRepository(conn), recipient_id)


@router.get("/unsubscribe", response_class=HTMLResponse, summary="Confirm an unsubscribe")
async def unsubscribe_page(request: Request, token: str = Query(default="")) -> HTMLResponse:
    # A GET never unsubscribes: link scanners and previews follow links.
    try:
        parsed = _deps(request).signer.verify(token)
    except InvalidTokenError:
        return _invalid(request)
    locale = _language(request, await _read(request, parsed.recipient_id))
    text = _TEXT[locale]
    query = html.escape(urlencode({"token": token}))
    question = text.confirm.format(purpose=_purpose_label(locale, parsed.purpose))
    body = (
        f"<p>{html.escape(question)}</p>"
        f"<form method='post' action='/unsubscribe?{query}'>"
        "<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        f"<button type='submit'>{html.escape(text.button)}</button></form>"
        f"<p><a href='/preferences?{query}'>{html.escape(text.manage)}</a></p>"
    )
    return _page(locale, body)


@router.post(
    "/unsubscribe", response_class=HTMLResponse, summary="One-click unsubscribe (RFC 8058)"
)
async def unsubscribe_now(request: Request, token: str = Query(default="")) -> HTMLResponse:
    deps = _deps(request)
    form = await _form(request)
    token = token or (form.get("token") or [""])[0]
    try:
        parsed = deps.signer.verify(token)
    except InvalidTokenError:
        return _invalid(request)
    async with request.app.state.runtime.pool.acquire() as conn, conn.transaction():
        result = await prefs.unsubscribe(
            SqlPeopleRepository(conn), parsed.recipient_id, parsed.purpose, now=deps.clock.now()
        )
    locale = _language(request, result)
    text = _TEXT[locale]
    if not result.known:
        return _page(locale, f"<p>{html.escape(text.unknown)}</p>")
    log.info(
        "recipient_unsubscribed", recipient_id=str(parsed.recipient_id), purpose=parsed.purpose
    )
    done = text.done.format(purpose=_purpose_label(locale, parsed.purpose))
    query = html.escape(urlencode({"token": token}))
    return _page(
        locale,
        f"<p>{html.escape(done)}</p>"
        f"<p><a href='/preferences?{query}'>{html.escape(text.manage)}</a></p>",
    )


def _preferences_form(locale: str, token: str, receiving: frozenset[str], note: str = "") -> str:
    text = _TEXT[locale]
    boxes = "".join(
        "<p><label><input type='checkbox' name='receive' value='{value}'{checked}> {label}"
        "</label></p>".format(
            value=purpose.value,
            checked=" checked" if purpose.value in receiving else "",
            label=html.escape(_purpose_label(locale, purpose.value)),
        )
        for purpose in PERSON_PURPOSES
    )
    saved = f"<p role='status'><strong>{html.escape(note)}</strong></p>" if note else ""
    return (
        f"{saved}<form method='post' action='/preferences'>"
        f"<input type='hidden' name='token' value='{html.escape(token)}'>"
        f"<p>{html.escape(text.choose)}</p>{boxes}"
        f"<button type='submit'>{html.escape(text.save)}</button></form>"
    )


@router.get("/preferences", response_class=HTMLResponse, summary="The preferences page")
async def preferences_page(request: Request, token: str = Query(default="")) -> HTMLResponse:
    try:
        parsed = _deps(request).signer.verify(token)
    except InvalidTokenError:
        return _invalid(request)
    current = await _read(request, parsed.recipient_id)
    locale = _language(request, current)
    if not current.known:
        return _page(locale, f"<p>{html.escape(_TEXT[locale].unknown)}</p>")
    receiving = frozenset(p.value for p in current.receiving)
    return _page(locale, _preferences_form(locale, token, receiving))


@router.post("/preferences", response_class=HTMLResponse, summary="Save preferences")
async def save_preferences(request: Request) -> HTMLResponse:
    deps = _deps(request)
    form = await _form(request)
    token = (form.get("token") or [""])[0]
    try:
        parsed = deps.signer.verify(token)
    except InvalidTokenError:
        return _invalid(request)
    async with request.app.state.runtime.pool.acquire() as conn, conn.transaction():
        result = await prefs.save_preferences(
            SqlPeopleRepository(conn),
            parsed.recipient_id,
            form.get("receive", []),
            now=deps.clock.now(),
        )
    locale = _language(request, result)
    if not result.known:
        return _page(locale, f"<p>{html.escape(_TEXT[locale].unknown)}</p>")
    receiving = frozenset(p.value for p in result.receiving)
    return _page(locale, _preferences_form(locale, token, receiving, _TEXT[locale].saved))
