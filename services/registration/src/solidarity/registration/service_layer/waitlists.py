"""Seat changes after the first decision: cancellations, promotions and capacity changes.

Each function works inside the caller's unit of work, on seat counters the caller has
locked, and publishes the outcome events of what it changed.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from solidarity.registration.domain.records import (
    CancelReason,
    Registration,
    RegistrationChange,
    RegistrationStatus,
)
from solidarity.registration.domain.seats import SeatCounter
from solidarity.registration.service_layer.unit_of_work import UnitOfWork
from solidarity.shared.contracts.events.registration import (
    RegistrationCancelledV1,
    SessionRegistrationWaitlistedV1,
    WaitlistPromotedV1,
)


@dataclass(frozen=True, slots=True)
class Cause:
    """Why these changes happen: the ids the published events carry."""

    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    at: datetime


async def promote_waitlist(uow: UnitOfWork, seats: SeatCounter, cause: Cause) -> int:
    """Confirm the head of the waitlist while seats are free; returns how many."""
    due = seats.promotions_due()
    if due <= 0:
        return 0
    head = await uow.repository.waitlist_head(seats.session_id, due)
    seats.promote(len(head))
    await uow.repository.update_registrations(
        [RegistrationChange(r.registration_id, RegistrationStatus.CONFIRMED) for r in head],
        at=cause.at,
    )
    for position, registration in enumerate(head, start=1):
        uow.publish(
            WaitlistPromotedV1(
                partner_id=registration.partner_id,
                submission_id=registration.submission_id,
                registrant_id=registration.registrant_id,
                campaign_id=registration.campaign_id,
                registration_id=registration.registration_id,
                session_id=registration.session_id,
                previous_position=position,
            ),
            correlation_id=cause.correlation_id,
            causation_id=cause.causation_id,
        )
    return len(head)


async def demote_over_capacity(uow: UnitOfWork, seats: SeatCounter, cause: Cause) -> int:
    """After a capacity cut: the most recently confirmed go back to the head of the waitlist."""
    due = seats.demotions_due()
    if due <= 0:
        return 0
    newest_first = await uow.repository.latest_confirmed(seats.session_id, due)
    moved = list(reversed(newest_first))  # they keep the order in which they were confirmed
    slots = seats.demote(len(moved))
    await uow.repository.update_registrations(
        [
            RegistrationChange(
                r.registration_id, RegistrationStatus.WAITLISTED, waitlist_ordinal=slot.ordinal
            )
            for r, slot in zip(moved, slots, strict=True)
        ],
        at=cause.at,
    )
    for registration, slot in zip(moved, slots, strict=True):
        uow.publish(
            SessionRegistrationWaitlistedV1(
                partner_id=registration.partner_id,
                submission_id=registration.submission_id,
                registrant_id=registration.registrant_id,
                campaign_id=registration.campaign_id,
                registration_id=registration.registration_id,
                session_id=registration.session_id,
                position=slot.position,
            ),
            correlation_id=cause.correlation_id,
            causation_id=cause.causation_id,
        )
    return len(moved)


async def apply_capacity(uow: UnitOfWork, seats: SeatCounter, cause: Cause) -> None:
    """Bring confirmations in line with the (new) capacity: demote or promote."""
    if seats.demotions_due():
        await demote_over_capacity(uow, seats, cause)
    else:
        await promote_waitlist(uow, seats, cause)


async def cancel_registrations(
    uow: UnitOfWork,
    registrations: Sequence[Registration],
    reason: CancelReason,
    cause: Cause,
    *,
    promote: bool = True,
) -> list[Registration]:
    """Cancel live registrations, free their seats and (unless told not to) promote.

    Locks the sessions' seat counters in id order; returns what was cancelled.
    """
    candidates = [r for r in registrations if r.live]
    if not candidates:
        return []
    counters = await uow.repository.lock_seats({r.session_id for r in candidates})
    # Read again under the sessions' locks: a promotion may have changed a status meanwhile.
    fresh = await uow.repository.registrations([r.registration_id for r in candidates])
    live = [r for r in fresh if r.live]
    if not live:
        return []
    by_session: dict[uuid.UUID, list[Registration]] = defaultdict(list)
    for registration in live:
        by_session[registration.session_id].append(registration)
    await uow.repository.update_registrations(
        [
            RegistrationChange(
                r.registration_id, RegistrationStatus.CANCELLED, cancel_reason=reason
            )
            for r in live
        ],
        at=cause.at,
    )
    for session_id in sorted(by_session):
        seats = counters[session_id]
        gone = by_session[session_id]
        seats.release(
            confirmed=sum(r.status is RegistrationStatus.CONFIRMED for r in gone),
            waitlisted=sum(r.status is RegistrationStatus.WAITLISTED for r in gone),
        )
        for registration in gone:
            uow.publish(
                RegistrationCancelledV1(
                    partner_id=registration.partner_id,
                    submission_id=registration.submission_id,
                    registrant_id=registration.registrant_id,
                    campaign_id=registration.campaign_id,
                    registration_id=registration.registration_id,
                    session_id=registration.session_id,
                    reason=reason,
                ),
                correlation_id=cause.correlation_id,
                causation_id=cause.causation_id,
            )
        if promote:
            await promote_waitlist(uow, seats, cause)
    await uow.repository.save_seats([counters[s] for s in sorted(counters)])
    return live
