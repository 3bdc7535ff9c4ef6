"""Command handlers: load aggregates, apply the domain's rules, announce its events, commit."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import datetime

from solidarity.catalog.domain.errors import ConflictError, InvalidError, NotFoundError
from solidarity.catalog.domain.model import (
    Campaign,
    CampaignDetails,
    FocusDay,
    Organization,
    Resource,
    Session,
)
from solidarity.catalog.service_layer import commands
from solidarity.catalog.service_layer.unit_of_work import AbstractUnitOfWork
from solidarity.shared.contracts.envelope import Event, utc_now
from solidarity.shared.logging import get_logger

log = get_logger(__name__)

Clock = Callable[[], datetime]


# Loading with the errors people expect ------------------------------------------------------


async def organization_or_404(
    uow: AbstractUnitOfWork, organization_id: uuid.UUID, *, lock: bool = False
) -> Organization:
    found = await uow.organizations.get(organization_id, lock=lock)
    if found is None:
        raise NotFoundError("organization_not_found", f"no organization {organization_id}")
    return found


async def campaign_or_404(
    uow: AbstractUnitOfWork, campaign_id: uuid.UUID, *, lock: bool = False
) -> Campaign:
    found = await uow.campaigns.get(campaign_id, lock=lock)
    if found is None:
        raise NotFoundError("campaign_not_found", f"no campaign {campaign_id}")
    return found


async def focus_day_or_404(
    uow: AbstractUnitOfWork, focus_day_id: uuid.UUID, *, lock: bool = False
) -> FocusDay:
    found = await uow.focus_days.get(focus_day_id, lock=lock)
    if found is None:
        raise NotFoundError("focus_day_not_found", f"no focus day {focus_day_id}")
    return found


async def session_or_404(
    uow: AbstractUnitOfWork, session_id: uuid.UUID, *, lock: bool = False
) -> Session:
    found = await uow.sessions.get(session_id, lock=lock)
    if found is None:
        raise NotFoundError("session_not_found", f"no session {session_id}")
    return found


async def resource_or_404(
    uow: AbstractUnitOfWork, resource_id: uuid.UUID, *, lock: bool = False
) -> Resource:
    found = await uow.resources.get(resource_id, lock=lock)
    if found is None:
        raise NotFoundError("resource_not_found", f"no resource {resource_id}")
    return found


async def _focus_day_for(
    uow: AbstractUnitOfWork, focus_day_id: uuid.UUID | None
) -> FocusDay | None:
    if focus_day_id is None:
        return None
    day = await uow.focus_days.get(focus_day_id)
    if day is None:
        raise InvalidError("unknown_focus_day", f"no focus day {focus_day_id}")
    return day


async def ensure_host_exists(uow: AbstractUnitOfWork, details: CampaignDetails) -> None:
    host = details.host_organization_id
    if host is not None and await uow.organizations.get(host) is None:
        raise InvalidError("unknown_organization", f"no organization {host} to host the campaign")


async def _ensure_slug_free(
    uow: AbstractUnitOfWork, slug: str, campaign_id: uuid.UUID | None
) -> None:
    taken = await uow.campaigns.get_by_slug(slug)
    if taken is not None and taken.id != campaign_id:
        raise ConflictError("slug_taken", f"another campaign already uses the slug {slug!r}")


# Organizations -------------------------------------------------------------------------------


async def register_organization(
    cmd: commands.RegisterOrganization, uow: AbstractUnitOfWork
) -> Organization:
    async with uow:
        organization_id = cmd.organization_id or uuid.uuid4()
        if await uow.organizations.get(organization_id) is not None:
            raise ConflictError("organization_exists", f"organization {organization_id} exists")
        organization, events = Organization.register(organization_id, cmd.details)
        await uow.organizations.save(organization)
        uow.announce(events)
        await uow.commit()
    log.info("organization_registered", organization_id=str(organization.id))
    return organization


async def revise_organization(
    cmd: commands.ReviseOrganization, uow: AbstractUnitOfWork
) -> Organization:
    async with uow:
        organization = await organization_or_404(uow, cmd.organization_id, lock=True)
        before = organization.revision
        events = organization.revise(dataclasses.replace(organization.details, **cmd.changes))
        if organization.revision != before:
            await uow.organizations.save(organization)
        uow.announce(events)
        await uow.commit()
    log.info("organization_revised", organization_id=str(organization.id), events=len(events))
    return organization


# Campaigns -----------------------------------------------------------------------------------


async def create_campaign(cmd: commands.CreateCampaign, uow: AbstractUnitOfWork) -> Campaign:
    """A new draft: nothing is announced until it is published."""
    async with uow:
        time_zone = cmd.time_zone
        if cmd.host_organization_id is not None:
            host = await uow.organizations.get(cmd.host_organization_id)
            if host is None:
                raise InvalidError(
                    "unknown_organization",
                    f"no organization {cmd.host_organization_id} to host the campaign",
                )
            time_zone = time_zone or host.details.time_zone
        if not time_zone:
            raise InvalidError(
                "time_zone_required", "give a time zone, or a host organization to take it from"
            )
        details = CampaignDetails(
            slug=cmd.slug,
            name=cmd.name,
            starts_on=cmd.starts_on,
            ends_on=cmd.ends_on,
            time_zone=time_zone,
            description=cmd.description,
            host_organization_id=cmd.host_organization_id,
            questions=cmd.questions,
            discreet=cmd.discreet,
            reminder_offsets_minutes=cmd.reminder_offsets_minutes,
        )
        campaign_id = cmd.campaign_id or uuid.uuid4()
        if await uow.campaigns.get(campaign_id) is not None:
            raise ConflictError("campaign_exists", f"campaign {campaign_id} exists")
        campaign = Campaign.create(campaign_id, details)
        await _ensure_slug_free(uow, campaign.details.slug, None)
        await uow.campaigns.save(campaign)
        await uow.commit()
    log.info("campaign_created", campaign_id=str(campaign.id))
    return campaign


async def revise_campaign(cmd: commands.ReviseCampaign, uow: AbstractUnitOfWork) -> Campaign:
    async with uow:
        campaign = await campaign_or_404(uow, cmd.campaign_id, lock=True)
        details = dataclasses.replace(campaign.details, **cmd.changes)
        if details.slug != campaign.details.slug:
            await _ensure_slug_free(uow, details.slug, campaign.id)
        if details.host_organization_id != campaign.details.host_organization_id:
            await ensure_host_exists(uow, details)
        before = campaign.revision
        events = campaign.revise(
            details,
            focus_days=await uow.focus_days.for_campaign(campaign.id),
            sessions=await uow.sessions.for_campaign(campaign.id),
        )
        if campaign.revision != before:
            await uow.campaigns.save(campaign)
        uow.announce(events)
        await uow.commit()
    log.info("campaign_revised", campaign_id=str(campaign.id), events=len(events))
    return campaign


async def publish_campaign(cmd: commands.PublishCampaign, uow: AbstractUnitOfWork) -> Campaign:
    """Open the campaign and announce it with its focus days, resources and sessions."""
    async with uow:
        campaign = await campaign_or_404(uow, cmd.campaign_id, lock=True)
        events = await publish_contents(uow, campaign)
        await uow.commit()
    log.info("campaign_published", campaign_id=str(campaign.id), events=len(events))
    return campaign


async def publish_contents(uow: AbstractUnitOfWork, campaign: Campaign) -> list[Event]:
    """Publish a campaign with everything it holds (shared with the campaign loader)."""
    before = campaign.revision
    events = campaign.publish(
        focus_days=await uow.focus_days.for_campaign(campaign.id),
        resources=await uow.resources.for_campaign(campaign.id),
        sessions=await uow.sessions.for_campaign(campaign.id),
    )
    if campaign.revision != before:
        await uow.campaigns.save(campaign)
    uow.announce(events)
    return events


async def archive_campaign(cmd: commands.ArchiveCampaign, uow: AbstractUnitOfWork) -> Campaign:
    async with uow:
        campaign = await campaign_or_404(uow, cmd.campaign_id, lock=True)
        before = campaign.revision
        events = campaign.archive()
        if campaign.revision != before:
            await uow.campaigns.save(campaign)
        uow.announce(events)
        await uow.commit()
    log.info("campaign_archived", campaign_id=str(campaign.id), events=len(events))
    return campaign


# Focus days ----------------------------------------------------------------------------------


async def add_focus_day(cmd: commands.AddFocusDay, uow: AbstractUnitOfWork) -> FocusDay:
    async with uow:
        campaign = await campaign_or_404(uow, cmd.campaign_id, lock=True)
        focus_day_id = cmd.focus_day_id or uuid.uuid4()
        if await uow.focus_days.get(focus_day_id) is not None:
            raise ConflictError("focus_day_exists", f"focus day {focus_day_id} exists")
        day, events = FocusDay.add(focus_day_id, campaign, cmd.details)
        await uow.focus_days.save(day)
        uow.announce(events)
        await uow.commit()
    log.info("focus_day_added", focus_day_id=str(day.id), campaign_id=str(campaign.id))
    return day


async def revise_focus_day(cmd: commands.ReviseFocusDay, uow: AbstractUnitOfWork) -> FocusDay:
    async with uow:
        day = await focus_day_or_404(uow, cmd.focus_day_id)
        campaign = await campaign_or_404(uow, day.campaign_id, lock=True)
        day = await focus_day_or_404(uow, cmd.focus_day_id, lock=True)
        before = day.revision
        events = day.revise(
            campaign,
            dataclasses.replace(day.details, **cmd.changes),
            sessions=await uow.sessions.on_focus_day(day.id),
        )
        if day.revision != before:
            await uow.focus_days.save(day)
        uow.announce(events)
        await uow.commit()
    log.info("focus_day_revised", focus_day_id=str(day.id), events=len(events))
    return day


async def remove_focus_day(cmd: commands.RemoveFocusDay, uow: AbstractUnitOfWork) -> None:
    """Only from a draft: a published focus day has no withdrawal event in contract v1."""
    async with uow:
        day = await focus_day_or_404(uow, cmd.focus_day_id)
        campaign = await campaign_or_404(uow, day.campaign_id, lock=True)
        day.ensure_removable(
            campaign, used_by_sessions=bool(await uow.sessions.on_focus_day(day.id))
        )
        await uow.focus_days.remove(day.id)
        await uow.commit()
    log.info("focus_day_removed", focus_day_id=str(day.id))


# Sessions ------------------------------------------------------------------------------------


async def schedule_session(cmd: commands.ScheduleSession, uow: AbstractUnitOfWork) -> Session:
    async with uow:
        campaign = await campaign_or_404(uow, cmd.campaign_id, lock=True)
        session_id = cmd.session_id or uuid.uuid4()
        if await uow.sessions.get(session_id) is not None:
            raise ConflictError("session_exists", f"session {session_id} exists")
        focus_day = await _focus_day_for(uow, cmd.details.focus_day_id)
        session, events = Session.schedule(session_id, campaign, cmd.details, focus_day=focus_day)
        await uow.sessions.save(session)
        uow.announce(events)
        await uow.commit()
    log.info("session_scheduled", session_id=str(session.id), campaign_id=str(campaign.id))
    return session


async def revise_session(cmd: commands.ReviseSession, uow: AbstractUnitOfWork) -> Session:
    """Change a session; moving a published one is a reschedule (old and new times)."""
    async with uow:
        session = await session_or_404(uow, cmd.session_id)
        campaign = await campaign_or_404(uow, session.campaign_id, lock=True)
        session = await session_or_404(uow, cmd.session_id, lock=True)
        details = dataclasses.replace(session.details, **cmd.changes)
        before = session.revision
        events = session.revise(
            campaign, details, focus_day=await _focus_day_for(uow, details.focus_day_id)
        )
        if session.revision != before:
            await uow.sessions.save(session)
        uow.announce(events)
        await uow.commit()
    log.info("session_revised", session_id=str(session.id), events=len(events))
    return session


async def cancel_session(
    cmd: commands.CancelSession, uow: AbstractUnitOfWork, *, clock: Clock = utc_now
) -> Session:
    async with uow:
        session = await session_or_404(uow, cmd.session_id)
        campaign = await campaign_or_404(uow, session.campaign_id, lock=True)
        session = await session_or_404(uow, cmd.session_id, lock=True)
        before = session.revision
        events = session.cancel(campaign, reason=cmd.reason, at=clock())
        if session.revision != before:
            await uow.sessions.save(session)
        uow.announce(events)
        await uow.commit()
    log.info("session_cancelled", session_id=str(session.id), events=len(events))
    return session


# Resources -----------------------------------------------------------------------------------


async def add_resource(cmd: commands.AddResource, uow: AbstractUnitOfWork) -> Resource:
    async with uow:
        campaign = await campaign_or_404(uow, cmd.campaign_id, lock=True)
        resource_id = cmd.resource_id or uuid.uuid4()
        if await uow.resources.get(resource_id) is not None:
            raise ConflictError("resource_exists", f"resource {resource_id} exists")
        resource, events = Resource.add(resource_id, campaign, cmd.details)
        await uow.resources.save(resource)
        uow.announce(events)
        await uow.commit()
    log.info("resource_added", resource_id=str(resource.id), campaign_id=str(campaign.id))
    return resource


async def revise_resource(cmd: commands.ReviseResource, uow: AbstractUnitOfWork) -> Resource:
    async with uow:
        resource = await resource_or_404(uow, cmd.resource_id)
        campaign = await campaign_or_404(uow, resource.campaign_id, lock=True)
        resource = await resource_or_404(uow, cmd.resource_id, lock=True)
        before = resource.revision
        events = resource.revise(campaign, dataclasses.replace(resource.details, **cmd.changes))
        if resource.revision != before:
            await uow.resources.save(resource)
        uow.announce(events)
        await uow.commit()
    log.info("resource_revised", resource_id=str(resource.id), events=len(events))
    return resource


async def remove_resource(cmd: commands.RemoveResource, uow: AbstractUnitOfWork) -> None:
    """Only from a draft: a published resource has no withdrawal event in contract v1."""
    async with uow:
        resource = await resource_or_404(uow, cmd.resource_id)
        campaign = await campaign_or_404(uow, resource.campaign_id, lock=True)
        resource.ensure_removable(campaign)
        await uow.resources.remove(resource.id)
        await uow.commit()
    log.info("resource_removed", resource_id=str(resource.id))
