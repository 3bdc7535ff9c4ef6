"""Read-side queries for the admin API: one item, or a filtered page of items."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from solidarity.catalog.domain.listing import (
    CampaignFilter,
    Cursor,
    FocusDayFilter,
    OrganizationFilter,
    Page,
    PageRequest,
    ResourceFilter,
    SessionFilter,
    campaign_key,
    focus_day_key,
    organization_key,
    resource_key,
    session_key,
)
from solidarity.catalog.domain.model import Campaign, FocusDay, Organization, Resource, Session
from solidarity.catalog.service_layer import handlers
from solidarity.catalog.service_layer.unit_of_work import AbstractUnitOfWork


class _Identified(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


T = TypeVar("T", bound=_Identified)


async def _page(
    fetch: Callable[[PageRequest], Awaitable[list[T]]], page: PageRequest, key: Callable[[T], str]
) -> Page[T]:
    rows = await fetch(page)
    items = rows[: page.limit]
    next_cursor = None
    if len(rows) > page.limit:
        last = items[-1]
        next_cursor = Cursor(key=key(last), id=last.id).encode()
    return Page(items=items, next_cursor=next_cursor)


async def get_organization(uow: AbstractUnitOfWork, organization_id: uuid.UUID) -> Organization:
    async with uow:
        return await handlers.organization_or_404(uow, organization_id)


async def list_organizations(
    uow: AbstractUnitOfWork, filters: OrganizationFilter, page: PageRequest
) -> Page[Organization]:
    async with uow:
        return await _page(lambda p: uow.organizations.list(filters, p), page, organization_key)


async def get_campaign(uow: AbstractUnitOfWork, campaign_id: uuid.UUID) -> Campaign:
    async with uow:
        return await handlers.campaign_or_404(uow, campaign_id)


async def list_campaigns(
    uow: AbstractUnitOfWork, filters: CampaignFilter, page: PageRequest
) -> Page[Campaign]:
    async with uow:
        return await _page(lambda p: uow.campaigns.list(filters, p), page, campaign_key)


async def get_focus_day(uow: AbstractUnitOfWork, focus_day_id: uuid.UUID) -> FocusDay:
    async with uow:
        return await handlers.focus_day_or_404(uow, focus_day_id)


async def list_focus_days(
    uow: AbstractUnitOfWork, filters: FocusDayFilter, page: PageRequest
) -> Page[FocusDay]:
    async with uow:
        if filters.campaign_id is not None:
            await handlers.campaign_or_404(uow, filters.campaign_id)
        return await _page(lambda p: uow.focus_days.list(filters, p), page, focus_day_key)


async def get_session(uow: AbstractUnitOfWork, session_id: uuid.UUID) -> Session:
    async with uow:
        return await handlers.session_or_404(uow, session_id)


async def list_sessions(
    uow: AbstractUnitOfWork, filters: SessionFilter, page: PageRequest
) -> Page[Session]:
    async with uow:
        if filters.campaign_id is not None:
            await handlers.campaign_or_404(uow, filters.campaign_id)
        return await _page(lambda p: uow.sessions.list(filters, p), page, session_key)


async def get_resource(uow: AbstractUnitOfWork, resource_id: uuid.UUID) -> Resource:
    async with uow:
        return await handlers.resource_or_404(uow, resource_id)


async def list_resources(
    uow: AbstractUnitOfWork, filters: ResourceFilter, page: PageRequest
) -> Page[Resource]:
    async with uow:
        if filters.campaign_id is not None:
            await handlers.campaign_or_404(uow, filters.campaign_id)
        return await _page(lambda p: uow.resources.list(filters, p), page, resource_key)
