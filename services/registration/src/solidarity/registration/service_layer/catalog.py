"""Keeping the read model of campaigns and sessions, and what session changes do to seats.

Events are applied in the order given (the order of their partitions); a replayed or late
event whose revision was already applied for its aspect changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from solidarity.registration.domain.catalog import apply_campaign_event, apply_session_event
from solidarity.registration.domain.seats import SeatCounter
from solidarity.registration.service_layer.commands import (
    ApplyCatalogEvents,
    ReceivedCatalogEvent,
)
from solidarity.registration.service_layer.unit_of_work import UnitOfWork
from solidarity.registration.service_layer.waitlists import (
    Cause,
    apply_capacity,
    cancel_registrations,
)
from solidarity.shared.contracts.envelope import utc_now
from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    CampaignUpdatedV1,
    FocusDayAddedV1,
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionRescheduledV1,
    SessionScheduledV1,
)

HANDLED_EVENTS = (
    CampaignPublishedV1,
    CampaignUpdatedV1,
    FocusDayAddedV1,
    SessionScheduledV1,
    SessionRescheduledV1,
    SessionCancelledV1,
    SessionCapacityChangedV1,
)


@dataclass
class CatalogReport:
    applied: int = 0
    stale: int = 0


async def apply_catalog_events(
    cmd: ApplyCatalogEvents,
    uow: UnitOfWork,
    *,
    clock: Callable[[], datetime] = utc_now,
) -> CatalogReport:
    """Apply catalog events in order, in one unit of work."""
    report = CatalogReport()
    async with uow:
        for received in cmd.events:
            changed = await _apply_one(received, uow, clock())
            report.applied += changed
            report.stale += not changed
        await uow.commit()
    return report


async def _apply_one(received: ReceivedCatalogEvent, uow: UnitOfWork, now: datetime) -> bool:
    event = received.event
    repo = uow.repository
    if isinstance(event, CampaignPublishedV1 | CampaignUpdatedV1):
        campaign = apply_campaign_event(await repo.campaign(event.campaign_id), event)
        if campaign is None:
            return False
        await repo.save_campaign(campaign)
        return True
    if isinstance(event, FocusDayAddedV1):
        await repo.save_focus_day(event.focus_day_id, event.campaign_id, event.date, event.revision)
        return True
    if not isinstance(
        event,
        SessionScheduledV1 | SessionRescheduledV1 | SessionCancelledV1 | SessionCapacityChangedV1,
    ):
        return False
    locked = await repo.lock_session(event.session_id)
    before, seats = locked if locked is not None else (None, None)
    after = apply_session_event(before, event)
    if after is None:
        return False
    if seats is None:
        seats = SeatCounter(session_id=after.session_id, capacity=after.capacity)
        await repo.save_session(after, seats)  # registrations need the row to exist
    cause = Cause(correlation_id=received.correlation_id, causation_id=received.event_id, at=now)
    if after.cancelled and (before is None or not before.cancelled):
        live = await repo.live_registrations_of_session(after.session_id)
        if live:
            # cancel_registrations locks and saves the counters itself; read them back after.
            await cancel_registrations(uow, live, "session_cancelled", cause, promote=False)
            relocked = await repo.lock_session(after.session_id)
            assert relocked is not None
            seats = relocked[1]
    if seats.capacity != after.capacity:
        seats.set_capacity(after.capacity)
        if not after.cancelled:
            await apply_capacity(uow, seats, cause)
    await repo.save_session(after, seats)
    return True
