"""Unsubscribe and preferences: opt-outs per purpose, honoured from the moment they are saved."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from solidarity.notifications.domain.model import PERSON_PURPOSES, Purpose
from solidarity.notifications.service_layer.ports import PeopleRepository


@dataclass(frozen=True, slots=True)
class Preferences:
    recipient_id: uuid.UUID
    receiving: frozenset[Purpose]
    known: bool  # False: nobody by this id (erased, or never here): nothing to change
    locale: str | None = None


def _purpose(value: str) -> Purpose | None:
    try:
        purpose = Purpose(value)
    except ValueError:
        return None
    return purpose if purpose in PERSON_PURPOSES else None


async def current_preferences(people: PeopleRepository, recipient_id: uuid.UUID) -> Preferences:
    if await people.is_erased(recipient_id) or not await people.exists(recipient_id):
        return Preferences(recipient_id, frozenset(), known=False)
    out = await people.opted_out(recipient_id)
    receiving = frozenset(p for p in PERSON_PURPOSES if p.value not in out)
    return Preferences(
        recipient_id, receiving, known=True, locale=await people.locale_of(recipient_id)
    )


async def unsubscribe(
    people: PeopleRepository, recipient_id: uuid.UUID, purpose: str, *, now: datetime
) -> Preferences:
    """One-click: opt out of the purpose the mail was for ('all' for every purpose)."""
    current = await current_preferences(people, recipient_id)
    if not current.known:
        return current
    chosen = list(PERSON_PURPOSES) if purpose == "all" else [p for p in [_purpose(purpose)] if p]
    await people.set_opt_outs(recipient_id, dict.fromkeys(chosen, True), at=now)
    return await current_preferences(people, recipient_id)


async def save_preferences(
    people: PeopleRepository, recipient_id: uuid.UUID, receiving: Collection[str], *, now: datetime
) -> Preferences:
    """The preferences form: every purpose not ticked is opted out, every ticked one back in."""
    current = await current_preferences(people, recipient_id)
    if not current.known:
        return current
    wanted = {p for p in (_purpose(v) for v in receiving) if p is not None}
    await people.set_opt_outs(recipient_id, {p: p not in wanted for p in PERSON_PURPOSES}, at=now)
    return await current_preferences(people, recipient_id)
