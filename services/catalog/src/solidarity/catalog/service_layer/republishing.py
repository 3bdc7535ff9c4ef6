"""Republishing: the current state of everything as events, for a new consumer or an emptied
broker. Each event carries the aggregate's current revision, so a consumer that already has
it treats the event as a no-op."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from solidarity.catalog.domain.errors import NotFoundError
from solidarity.catalog.domain.listing import (
    CampaignFilter,
    Cursor,
    OrganizationFilter,
    PageRequest,
    campaign_key,
    organization_key,
)
from solidarity.catalog.domain.model import Campaign, Organization
from solidarity.catalog.service_layer import commands
from solidarity.catalog.service_layer.unit_of_work import AbstractUnitOfWork
from solidarity.shared.contracts.envelope import Event
from solidarity.shared.contracts.events.common import CampaignStatus
from solidarity.shared.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T", Organization, Campaign)
_BATCH = 200


async def _every(
    fetch: Callable[[PageRequest], Awaitable[list[T]]], key: Callable[[T], str]
) -> AsyncIterator[T]:
    after: Cursor | None = None
    while True:
        rows = await fetch(PageRequest(limit=_BATCH, after=after))
        for row in rows[:_BATCH]:
            yield row
        if len(rows) <= _BATCH:
            return
        last = rows[_BATCH - 1]
        after = Cursor(key=key(last), id=last.id)


async def republish(cmd: commands.Republish, uow: AbstractUnitOfWork) -> int:
    """Put the current state of every organization and announced campaign in the outbox
    (or only the named campaigns and their hosts); drafts stay private. Returns the count."""
    wanted = set(cmd.campaign_slugs)
    async with uow:
        campaign_events: list[Event] = []
        hosts = set()
        async for campaign in _every(
            lambda p: uow.campaigns.list(CampaignFilter(), p), campaign_key
        ):
            if wanted and campaign.details.slug not in wanted:
                continue
            wanted.discard(campaign.details.slug)
            hosts.add(campaign.details.host_organization_id)
            if campaign.status is CampaignStatus.DRAFT:
                continue
            campaign_events += campaign.snapshot_events()
            for day in await uow.focus_days.for_campaign(campaign.id):
                campaign_events.append(day.added_event())
            for resource in await uow.resources.for_campaign(campaign.id):
                campaign_events.append(resource.published_event())
            for session in await uow.sessions.for_campaign(campaign.id):
                campaign_events += session.snapshot_events()
        organization_events: list[Event] = []
        async for organization in _every(
            lambda p: uow.organizations.list(OrganizationFilter(), p), organization_key
        ):
            if not cmd.campaign_slugs or organization.id in hosts:
                organization_events.append(organization.registered_event())
        if wanted:
            raise NotFoundError(
                "campaign_not_found", f"no campaign with the slug(s) {', '.join(sorted(wanted))}"
            )
        events = organization_events + campaign_events
        uow.announce(events)
        await uow.commit()
    log.info("catalog_republished", events=len(events))
    return len(events)
