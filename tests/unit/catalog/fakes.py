"""Hand-written fakes of the catalog's ports: in-memory repositories and a unit of work.

The fake unit of work works on a copy of the store and swaps it in on commit, so a handler
that forgets to save, or fails before committing, leaves the store as it was: tests assert
on state (the store, the published events), never on calls.
"""

from __future__ import annotations

import builtins
import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from solidarity.catalog.domain.listing import (
    CampaignFilter,
    FocusDayFilter,
    OrganizationFilter,
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
from solidarity.catalog.service_layer.unit_of_work import AbstractUnitOfWork
from solidarity.shared.contracts.envelope import Event


class _Item(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


T = TypeVar("T", bound=_Item)
F = TypeVar("F")


@dataclass
class FakeStore:
    """What the fake database holds, and the events its outbox received."""

    organizations: dict[uuid.UUID, Organization] = field(default_factory=dict)
    campaigns: dict[uuid.UUID, Campaign] = field(default_factory=dict)
    focus_days: dict[uuid.UUID, FocusDay] = field(default_factory=dict)
    sessions: dict[uuid.UUID, Session] = field(default_factory=dict)
    resources: dict[uuid.UUID, Resource] = field(default_factory=dict)
    outbox: list[Event] = field(default_factory=list)


class _FakeRepository(Generic[T, F]):
    def __init__(
        self,
        items: dict[uuid.UUID, T],
        *,
        key: Callable[[T], str],
        matches: Callable[[T, F], bool],
    ) -> None:
        self._items = items
        self._key = key
        self._matches = matches

    async def get(self, item_id: uuid.UUID, *, lock: bool = False) -> T | None:
        return copy.deepcopy(self._items.get(item_id))

    async def save(self, item: T) -> None:
        self._items[item.id] = copy.deepcopy(item)

    async def remove(self, item_id: uuid.UUID) -> None:
        self._items.pop(item_id, None)

    async def list(self, filters: F, page: PageRequest) -> list[T]:
        rows = sorted(
            (i for i in self._items.values() if self._matches(i, filters)),
            key=lambda i: (self._key(i), i.id),
        )
        if page.after is not None:
            after = (page.after.key, page.after.id)
            rows = [i for i in rows if (self._key(i), i.id) > after]
        return copy.deepcopy(rows[: page.limit + 1])

    def _where(self, keep: Callable[[T], bool]) -> builtins.list[T]:
        return copy.deepcopy(
            sorted((i for i in self._items.values() if keep(i)), key=lambda i: (self._key(i), i.id))
        )


def _org_matches(item: Organization, f: OrganizationFilter) -> bool:
    return (f.kind is None or item.details.kind == f.kind) and (
        f.region is None or item.details.region == f.region
    )


def _campaign_matches(item: Campaign, f: CampaignFilter) -> bool:
    return (f.status is None or item.status == f.status) and (
        f.host_organization_id is None
        or item.details.host_organization_id == f.host_organization_id
    )


def _focus_day_matches(item: FocusDay, f: FocusDayFilter) -> bool:
    return f.campaign_id is None or item.campaign_id == f.campaign_id


def _session_matches(item: Session, f: SessionFilter) -> bool:
    d = item.details
    return (
        (f.campaign_id is None or item.campaign_id == f.campaign_id)
        and (f.status is None or item.status == f.status)
        and (f.kind is None or d.kind == f.kind)
        and (f.focus_day_id is None or d.focus_day_id == f.focus_day_id)
        and (f.audience is None or not d.audience or f.audience in d.audience)
        and (f.starts_from is None or d.starts_at >= f.starts_from)
        and (f.starts_before is None or d.starts_at < f.starts_before)
    )


def _resource_matches(item: Resource, f: ResourceFilter) -> bool:
    d = item.details
    return (
        (f.campaign_id is None or item.campaign_id == f.campaign_id)
        and (f.kind is None or d.kind == f.kind)
        and (f.audience is None or not d.audience or f.audience in d.audience)
    )


class FakeOrganizationRepository(_FakeRepository[Organization, OrganizationFilter]):
    def __init__(self, items: dict[uuid.UUID, Organization]) -> None:
        super().__init__(items, key=organization_key, matches=_org_matches)


class FakeCampaignRepository(_FakeRepository[Campaign, CampaignFilter]):
    def __init__(self, items: dict[uuid.UUID, Campaign]) -> None:
        super().__init__(items, key=campaign_key, matches=_campaign_matches)

    async def get_by_slug(self, slug: str, *, lock: bool = False) -> Campaign | None:
        found = self._where(lambda c: c.details.slug == slug)
        return found[0] if found else None


class FakeFocusDayRepository(_FakeRepository[FocusDay, FocusDayFilter]):
    def __init__(self, items: dict[uuid.UUID, FocusDay]) -> None:
        super().__init__(items, key=focus_day_key, matches=_focus_day_matches)

    async def for_campaign(self, campaign_id: uuid.UUID) -> list[FocusDay]:
        return self._where(lambda d: d.campaign_id == campaign_id)


class FakeSessionRepository(_FakeRepository[Session, SessionFilter]):
    def __init__(self, items: dict[uuid.UUID, Session]) -> None:
        super().__init__(items, key=session_key, matches=_session_matches)

    async def for_campaign(self, campaign_id: uuid.UUID) -> list[Session]:
        return self._where(lambda s: s.campaign_id == campaign_id)

    async def on_focus_day(self, focus_day_id: uuid.UUID) -> list[Session]:
        return self._where(lambda s: s.details.focus_day_id == focus_day_id)


class FakeResourceRepository(_FakeRepository[Resource, ResourceFilter]):
    def __init__(self, items: dict[uuid.UUID, Resource]) -> None:
        super().__init__(items, key=resource_key, matches=_resource_matches)

    async def for_campaign(self, campaign_id: uuid.UUID) -> list[Resource]:
        return self._where(lambda r: r.campaign_id == campaign_id)


class FakeUnitOfWork(AbstractUnitOfWork):
    """A transaction over a copy of the store: commit swaps it in, anything else drops it."""

    def __init__(self, store: FakeStore | None = None) -> None:
        super().__init__()
        self.store = store if store is not None else FakeStore()
        self.committed = False
        self._working: FakeStore | None = None

    async def _begin(self) -> None:
        self.committed = False
        self._working = copy.deepcopy(self.store)
        self.organizations = FakeOrganizationRepository(self._working.organizations)
        self.campaigns = FakeCampaignRepository(self._working.campaigns)
        self.focus_days = FakeFocusDayRepository(self._working.focus_days)
        self.sessions = FakeSessionRepository(self._working.sessions)
        self.resources = FakeResourceRepository(self._working.resources)

    async def _commit(self, events: list[Event]) -> None:
        assert self._working is not None
        self._working.outbox.extend(events)
        for name in ("organizations", "campaigns", "focus_days", "sessions", "resources"):
            setattr(self.store, name, getattr(self._working, name))
        self.store.outbox[:] = self._working.outbox
        self._working = None
        self.committed = True

    async def _end(self) -> None:
        self._working = None


class FixedClock:
    """A clock that says what the test wants."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2023, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now
