"""Loading a whole campaign from its definition: compare with what is stored, change only
what differs, and announce only those changes (loading the same file twice announces nothing)."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field

from solidarity.catalog.domain.errors import ConflictError, InvalidError
from solidarity.catalog.domain.keys import campaign_id_for, item_id_for, organization_id_for
from solidarity.catalog.domain.model import (
    Campaign,
    FocusDay,
    Organization,
    Resource,
    Session,
    ensure_consistent,
)
from solidarity.catalog.service_layer import commands
from solidarity.catalog.service_layer.handlers import Clock, ensure_host_exists, publish_contents
from solidarity.catalog.service_layer.unit_of_work import AbstractUnitOfWork
from solidarity.shared.contracts.envelope import utc_now
from solidarity.shared.contracts.events.catalog import SessionRescheduledV1
from solidarity.shared.contracts.events.common import CampaignStatus, SessionStatus
from solidarity.shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # organization, campaign, focus day, session, resource
    key: str
    what: str  # registered, created, updated, rescheduled, cancelled, removed, published, ...


@dataclass(slots=True)
class LoadReport:
    """What a load changed and how many events it put in the outbox."""

    campaign_id: uuid.UUID
    slug: str
    changes: list[Change] = field(default_factory=list)
    events: int = 0

    def note(self, kind: str, key: str, what: str) -> None:
        self.changes.append(Change(kind, key, what))


async def load_campaign(
    cmd: commands.LoadCampaign, uow: AbstractUnitOfWork, *, clock: Clock = utc_now
) -> LoadReport:
    async with uow:
        organization_change = (
            await _load_organization(uow, cmd.organization) if cmd.organization else None
        )
        campaign, report = await _load_campaign_itself(uow, cmd)
        if organization_change is not None and cmd.organization is not None:
            report.changes.insert(
                0, Change("organization", cmd.organization.key, organization_change)
            )
        if cmd.status is CampaignStatus.DRAFT and campaign.status is not CampaignStatus.DRAFT:
            raise ConflictError(
                "cannot_unpublish",
                f"campaign {campaign.details.slug!r} is {campaign.status.value}; it cannot go "
                "back to draft",
            )
        days = await _load_focus_days(uow, cmd, campaign, report)
        sessions = await _load_sessions(uow, cmd, campaign, days, report, clock)
        await _load_resources(uow, cmd, campaign, report)
        await _remove_missing(uow, cmd, campaign, days, sessions, report)
        ensure_consistent(campaign, list(days.values()), list(sessions.values()))
        if cmd.status is CampaignStatus.PUBLISHED and campaign.status is CampaignStatus.DRAFT:
            await publish_contents(uow, campaign)
            report.note("campaign", campaign.details.slug, "published")
        elif cmd.status is CampaignStatus.ARCHIVED:
            before = campaign.revision
            uow.announce(campaign.archive())
            if campaign.revision != before:
                await uow.campaigns.save(campaign)
                report.note("campaign", campaign.details.slug, "archived")
        report.events = len(uow.announced)
        await uow.commit()
    log.info(
        "campaign_loaded",
        campaign_id=str(report.campaign_id),
        changes=len(report.changes),
        events=report.events,
    )
    return report


async def _load_organization(
    uow: AbstractUnitOfWork, definition: commands.OrganizationDefinition
) -> str | None:
    organization_id = organization_id_for(definition.key)
    organization = await uow.organizations.get(organization_id, lock=True)
    if organization is None:
        organization, events = Organization.register(organization_id, definition.details)
        await uow.organizations.save(organization)
        uow.announce(events)
        return "registered"
    before = organization.revision
    uow.announce(organization.revise(definition.details))
    if organization.revision == before:
        return None
    await uow.organizations.save(organization)
    return "updated"


async def _load_campaign_itself(
    uow: AbstractUnitOfWork, cmd: commands.LoadCampaign
) -> tuple[Campaign, LoadReport]:
    details = cmd.campaign.validated()
    await ensure_host_exists(uow, details)
    campaign = await uow.campaigns.get_by_slug(details.slug, lock=True)
    if campaign is None:
        campaign_id = campaign_id_for(details.slug)
        if await uow.campaigns.get(campaign_id) is not None:
            raise ConflictError(
                "campaign_exists",
                f"the campaign first loaded as {details.slug!r} has another slug now",
            )
        campaign = Campaign.create(campaign_id, details)
        await uow.campaigns.save(campaign)
        report = LoadReport(campaign_id=campaign.id, slug=details.slug)
        report.note("campaign", details.slug, "created")
        return campaign, report
    report = LoadReport(campaign_id=campaign.id, slug=details.slug)
    before = campaign.revision
    # Its contents are checked against the new dates once they are loaded too.
    uow.announce(campaign.revise(details))
    if campaign.revision != before:
        await uow.campaigns.save(campaign)
        report.note("campaign", details.slug, "updated")
    return campaign, report


async def _load_focus_days(
    uow: AbstractUnitOfWork,
    cmd: commands.LoadCampaign,
    campaign: Campaign,
    report: LoadReport,
) -> dict[str, FocusDay]:
    stored = {day.id: day for day in await uow.focus_days.for_campaign(campaign.id)}
    loaded: dict[str, FocusDay] = {}
    for definition in cmd.focus_days:
        if definition.key in loaded:
            raise InvalidError("duplicate_key", f"two focus days use the key {definition.key!r}")
        day_id = item_id_for(campaign.id, "focus-day", definition.key)
        day = stored.get(day_id)
        if day is None:
            day, events = FocusDay.add(day_id, campaign, definition.details)
            await uow.focus_days.save(day)
            report.note("focus day", definition.key, "added")
        else:
            before = day.revision
            events = day.revise(campaign, definition.details)
            if day.revision != before:
                await uow.focus_days.save(day)
                report.note("focus day", definition.key, "updated")
        uow.announce(events)
        loaded[definition.key] = day
    return loaded


async def _load_sessions(
    uow: AbstractUnitOfWork,
    cmd: commands.LoadCampaign,
    campaign: Campaign,
    days: dict[str, FocusDay],
    report: LoadReport,
    clock: Clock,
) -> dict[str, Session]:
    stored = {s.id: s for s in await uow.sessions.for_campaign(campaign.id)}
    loaded: dict[str, Session] = {}
    for definition in cmd.sessions:
        if definition.key in loaded:
            raise InvalidError("duplicate_key", f"two sessions use the key {definition.key!r}")
        focus_day: FocusDay | None = None
        if definition.focus_day is not None:
            focus_day = days.get(definition.focus_day)
            if focus_day is None:
                raise InvalidError(
                    "unknown_focus_day",
                    f"session {definition.key!r} names focus day {definition.focus_day!r}, "
                    "which the file does not define",
                )
        details = dataclasses.replace(
            definition.details, focus_day_id=focus_day.id if focus_day else None
        )
        session_id = item_id_for(campaign.id, "session", definition.key)
        session = stored.get(session_id)
        before = session.revision if session is not None else 0
        if session is None:
            session, events = Session.schedule(session_id, campaign, details, focus_day=focus_day)
            report.note("session", definition.key, "scheduled")
        else:
            if session.status is SessionStatus.CANCELLED and definition.cancellation_reason is None:
                raise ConflictError(
                    "session_cancelled",
                    f"session {definition.key!r} is cancelled; a cancelled session cannot be "
                    "brought back (add a new one)",
                )
            events = session.revise(campaign, details, focus_day=focus_day)
            if session.revision != before:
                moved = any(isinstance(e, SessionRescheduledV1) for e in events)
                report.note("session", definition.key, "rescheduled" if moved else "updated")
        if definition.cancellation_reason is not None:
            cancelled = session.cancel(campaign, reason=definition.cancellation_reason, at=clock())
            if cancelled:
                report.note("session", definition.key, "cancelled")
            events = [*events, *cancelled]
        if session.revision != before:
            await uow.sessions.save(session)
        uow.announce(events)
        loaded[definition.key] = session
    return loaded


async def _load_resources(
    uow: AbstractUnitOfWork,
    cmd: commands.LoadCampaign,
    campaign: Campaign,
    report: LoadReport,
) -> None:
    stored = {r.id: r for r in await uow.resources.for_campaign(campaign.id)}
    seen: set[str] = set()
    for definition in cmd.resources:
        if definition.key in seen:
            raise InvalidError("duplicate_key", f"two resources use the key {definition.key!r}")
        seen.add(definition.key)
        resource_id = item_id_for(campaign.id, "resource", definition.key)
        resource = stored.get(resource_id)
        if resource is None:
            resource, events = Resource.add(resource_id, campaign, definition.details)
            await uow.resources.save(resource)
            report.note("resource", definition.key, "added")
        else:
            before = resource.revision
            events = resource.revise(campaign, definition.details)
            if resource.revision != before:
                await uow.resources.save(resource)
                report.note("resource", definition.key, "updated")
        uow.announce(events)


async def _remove_missing(
    uow: AbstractUnitOfWork,
    cmd: commands.LoadCampaign,
    campaign: Campaign,
    days: dict[str, FocusDay],
    sessions: dict[str, Session],
    report: LoadReport,
) -> None:
    """What the file no longer names: removed from a draft, refused once announced."""
    wanted_resources = {item_id_for(campaign.id, "resource", r.key) for r in cmd.resources}
    wanted_sessions = {s.id for s in sessions.values()}
    wanted_days = {d.id for d in days.values()}
    gone_sessions = [
        s for s in await uow.sessions.for_campaign(campaign.id) if s.id not in wanted_sessions
    ]
    gone_resources = [
        r for r in await uow.resources.for_campaign(campaign.id) if r.id not in wanted_resources
    ]
    gone_days = [
        d for d in await uow.focus_days.for_campaign(campaign.id) if d.id not in wanted_days
    ]
    if not (gone_sessions or gone_resources or gone_days):
        return
    if campaign.status is not CampaignStatus.DRAFT:
        described = [f"session {s.details.title!r}" for s in gone_sessions]
        described += [f"resource {r.details.title!r}" for r in gone_resources]
        described += [f"focus day {d.details.title!r}" for d in gone_days]
        raise ConflictError(
            "already_announced",
            f"the file no longer names {', '.join(described)} of the {campaign.status.value} "
            "campaign; mark a session `status: cancelled` with a `cancellation_reason` instead "
            "of deleting it (focus days and resources cannot be withdrawn once announced)",
        )
    for session in gone_sessions:
        session.ensure_removable(campaign)
        await uow.sessions.remove(session.id)
        report.note("session", str(session.id), "removed")
    for resource in gone_resources:
        resource.ensure_removable(campaign)
        await uow.resources.remove(resource.id)
        report.note("resource", str(resource.id), "removed")
    for day in gone_days:
        day.ensure_removable(campaign, used_by_sessions=False)
        await uow.focus_days.remove(day.id)
        report.note("focus day", str(day.id), "removed")
