"""What partners change after the decision: cancelling registrations and erasing a person."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from solidarity.registration.domain.records import Registration
from solidarity.registration.domain.submissions import normalise_email
from solidarity.registration.service_layer.commands import CancelRegistrations, EraseRegistrant
from solidarity.registration.service_layer.unit_of_work import UnitOfWork
from solidarity.registration.service_layer.waitlists import Cause, cancel_registrations
from solidarity.shared.contracts.envelope import utc_now
from solidarity.shared.contracts.events.registration import RegistrantErasedV1, registrant_key


class NotFoundError(Exception):
    """Nothing of the kind, for this partner."""


class NotDecidedYetError(Exception):
    """The submission is accepted but not decided yet: try again in a moment."""


@dataclass(frozen=True, slots=True)
class Erased:
    registrant_id: uuid.UUID
    erased_at: datetime
    already: bool


async def cancel_submission(
    cmd: CancelRegistrations,
    uow: UnitOfWork,
    *,
    clock: Callable[[], datetime] = utc_now,
) -> list[Registration]:
    """Cancel the live session registrations a partner's submission holds; promotes waiters."""
    async with uow:
        repo = uow.repository
        record = await repo.submission(cmd.partner_id, cmd.submission_id)
        if record is None:
            if await repo.pending_intake(cmd.partner_id, cmd.submission_id):
                raise NotDecidedYetError(cmd.submission_id)
            raise NotFoundError(cmd.submission_id)
        wanted = set(cmd.session_ids)
        ids = [
            item.registration_id
            for item in record.outcome
            if item.registration_id is not None and (not wanted or item.session_id in wanted)
        ]
        registrations = await repo.registrations(ids)
        cancelled = await cancel_registrations(
            uow,
            registrations,
            "registrant",
            Cause(correlation_id=None, causation_id=record.event_id, at=clock()),
        )
        await uow.commit()
    return cancelled


async def erase_registrant(
    cmd: EraseRegistrant,
    uow: UnitOfWork,
    *,
    clock: Callable[[], datetime] = utc_now,
) -> Erased:
    """Forget a person here and tell the other services to forget them too."""
    async with uow:
        repo = uow.repository
        registrant_id = cmd.registrant_id
        if registrant_id is None and cmd.email is not None:
            email = normalise_email(cmd.email)
            found = await repo.registrants_by_email(
                [registrant_key(email if email is not None else cmd.email)]
            )
            registrant_id = next(iter(found.values()), None)
        if registrant_id is None:
            raise NotFoundError("registrant")
        summary = await repo.registrant(registrant_id)
        if summary is None or not await repo.partner_knows(cmd.partner_id, registrant_id):
            raise NotFoundError("registrant")  # the same answer: no probing who exists
        if summary.erased_at is not None:
            await uow.rollback()
            return Erased(registrant_id, summary.erased_at, already=True)
        now = clock()
        cause = Cause(correlation_id=None, causation_id=None, at=now)
        live = await repo.live_registrations_of_registrant(registrant_id)
        await cancel_registrations(uow, live, "erased", cause)
        await repo.erase_registrant(registrant_id, at=now)
        uow.publish(RegistrantErasedV1(registrant_id=registrant_id, erased_at=now))
        await uow.commit()
    return Erased(registrant_id, now, already=False)
