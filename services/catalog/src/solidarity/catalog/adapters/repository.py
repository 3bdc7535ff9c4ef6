"""Repositories: the ports the handlers use, and their asyncpg implementations.

Every Postgres repository works on the unit of work's connection, inside its transaction.
`get(..., lock=True)` takes the row lock that serializes concurrent changes of one aggregate.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import asyncpg

from solidarity.catalog.domain.errors import ConflictError
from solidarity.catalog.domain.listing import (
    CampaignFilter,
    FocusDayFilter,
    OrganizationFilter,
    PageRequest,
    ResourceFilter,
    SessionFilter,
)
from solidarity.catalog.domain.model import (
    Campaign,
    CampaignDetails,
    Cancellation,
    FocusDay,
    FocusDayDetails,
    Organization,
    OrganizationDetails,
    Resource,
    ResourceDetails,
    Session,
    SessionDetails,
)
from solidarity.shared.contracts.events.catalog import RegistrationQuestion
from solidarity.shared.contracts.events.common import (
    CampaignStatus,
    OrganizationKind,
    Role,
    SessionKind,
    SessionStatus,
)
from solidarity.shared.db.pool import Connection

# Ports ---------------------------------------------------------------------------------------


class OrganizationRepository(Protocol):
    async def get(
        self, organization_id: uuid.UUID, *, lock: bool = False
    ) -> Organization | None: ...

    async def save(self, organization: Organization) -> None: ...

    async def list(self, filters: OrganizationFilter, page: PageRequest) -> list[Organization]:
        """Up to `page.limit + 1` items after the cursor (the extra one says a page follows)."""
        ...


class CampaignRepository(Protocol):
    async def get(self, campaign_id: uuid.UUID, *, lock: bool = False) -> Campaign | None: ...

    async def get_by_slug(self, slug: str, *, lock: bool = False) -> Campaign | None: ...

    async def save(self, campaign: Campaign) -> None: ...

    async def list(self, filters: CampaignFilter, page: PageRequest) -> list[Campaign]: ...


class FocusDayRepository(Protocol):
    async def get(self, focus_day_id: uuid.UUID, *, lock: bool = False) -> FocusDay | None: ...

    async def for_campaign(self, campaign_id: uuid.UUID) -> list[FocusDay]: ...

    async def save(self, focus_day: FocusDay) -> None: ...

    async def remove(self, focus_day_id: uuid.UUID) -> None: ...

    async def list(self, filters: FocusDayFilter, page: PageRequest) -> list[FocusDay]: ...


class SessionRepository(Protocol):
    async def get(self, session_id: uuid.UUID, *, lock: bool = False) -> Session | None: ...

    async def for_campaign(self, campaign_id: uuid.UUID) -> list[Session]: ...

    async def on_focus_day(self, focus_day_id: uuid.UUID) -> list[Session]: ...

    async def save(self, session: Session) -> None: ...

    async def remove(self, session_id: uuid.UUID) -> None: ...

    async def list(self, filters: SessionFilter, page: PageRequest) -> list[Session]: ...


class ResourceRepository(Protocol):
    async def get(self, resource_id: uuid.UUID, *, lock: bool = False) -> Resource | None: ...

    async def for_campaign(self, campaign_id: uuid.UUID) -> list[Resource]: ...

    async def save(self, resource: Resource) -> None: ...

    async def remove(self, resource_id: uuid.UUID) -> None: ...

    async def list(self, filters: ResourceFilter, page: PageRequest) -> list[Resource]: ...


# Query building ------------------------------------------------------------------------------


class _Where:
    """WHERE clauses with numbered parameters, built one condition at a time."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, clause: str) -> None:
        self.clauses.append(clause)

    def keyset(self, columns: str, cast: str, page: PageRequest) -> None:
        if page.after is not None:
            key = self.param(page.after.key)
            ident = self.param(page.after.id)
            self.add(f"({columns}) > ({key}::{cast}, {ident}::uuid)")

    def sql(self) -> str:
        return f"WHERE {' AND '.join(self.clauses)}" if self.clauses else ""

    def limit(self, page: PageRequest) -> str:
        return f"LIMIT {self.param(page.limit + 1)}"


def _lock(lock: bool) -> str:
    return " FOR UPDATE" if lock else ""


# Organizations -------------------------------------------------------------------------------


def _organization(row: asyncpg.Record) -> Organization:
    return Organization(
        id=row["id"],
        details=OrganizationDetails(
            kind=OrganizationKind(row["kind"]),
            name=row["name"],
            time_zone=row["time_zone"],
            region=row["region"],
        ),
        revision=row["revision"],
    )


class PostgresOrganizationRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def get(self, organization_id: uuid.UUID, *, lock: bool = False) -> Organization | None:
        row = await self._conn.fetchrow(
            f"SELECT * FROM organizations WHERE id = $1{_lock(lock)}", organization_id
        )
        return _organization(row) if row else None

    async def save(self, organization: Organization) -> None:
        d = organization.details
        await self._conn.execute(
            """
            INSERT INTO organizations (id, kind, name, region, time_zone, revision)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (id) DO UPDATE SET
                kind = excluded.kind, name = excluded.name, region = excluded.region,
                time_zone = excluded.time_zone, revision = excluded.revision, updated_at = now()
            """,
            organization.id,
            d.kind.value,
            d.name,
            d.region,
            d.time_zone,
            organization.revision,
        )

    async def list(self, filters: OrganizationFilter, page: PageRequest) -> list[Organization]:
        where = _Where()
        if filters.kind is not None:
            where.add(f"kind = {where.param(filters.kind.value)}")
        if filters.region is not None:
            where.add(f"region = {where.param(filters.region)}")
        where.keyset("name, id", "text", page)
        rows = await self._conn.fetch(
            f"SELECT * FROM organizations {where.sql()} ORDER BY name, id {where.limit(page)}",
            *where.params,
        )
        return [_organization(r) for r in rows]


# Campaigns -----------------------------------------------------------------------------------


def _campaign(row: asyncpg.Record) -> Campaign:
    return Campaign(
        id=row["id"],
        details=CampaignDetails(
            slug=row["slug"],
            name=row["name"],
            starts_on=row["starts_on"],
            ends_on=row["ends_on"],
            time_zone=row["time_zone"],
            description=row["description"],
            host_organization_id=row["host_organization_id"],
            questions=tuple(RegistrationQuestion.model_validate(q) for q in row["questions"]),
            discreet=row["discreet"],
            reminder_offsets_minutes=tuple(row["reminder_offsets_minutes"]),
        ),
        status=CampaignStatus(row["status"]),
        revision=row["revision"],
    )


class PostgresCampaignRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def get(self, campaign_id: uuid.UUID, *, lock: bool = False) -> Campaign | None:
        row = await self._conn.fetchrow(
            f"SELECT * FROM campaigns WHERE id = $1{_lock(lock)}", campaign_id
        )
        return _campaign(row) if row else None

    async def get_by_slug(self, slug: str, *, lock: bool = False) -> Campaign | None:
        row = await self._conn.fetchrow(
            f"SELECT * FROM campaigns WHERE slug = $1{_lock(lock)}", slug
        )
        return _campaign(row) if row else None

    async def save(self, campaign: Campaign) -> None:
        try:
            await self._upsert(campaign)
        except asyncpg.exceptions.UniqueViolationError as exc:
            # Two organizers racing for one slug: the loser hears it as the rule it is.
            raise ConflictError(
                "slug_taken", f"another campaign already uses the slug {campaign.details.slug!r}"
            ) from exc

    async def _upsert(self, campaign: Campaign) -> None:
        d = campaign.details
        await self._conn.execute(
            """
            INSERT INTO campaigns (id, slug, name, description, starts_on, ends_on, time_zone,
                status, host_organization_id, questions, discreet, reminder_offsets_minutes,
                revision)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
            ON CONFLICT (id) DO UPDATE SET
                slug = excluded.slug, name = excluded.name, description = excluded.description,
                starts_on = excluded.starts_on, ends_on = excluded.ends_on,
                time_zone = excluded.time_zone, status = excluded.status,
                host_organization_id = excluded.host_organization_id,
                questions = excluded.questions, discreet = excluded.discreet,
                reminder_offsets_minutes = excluded.reminder_offsets_minutes,
                revision = excluded.revision, updated_at = now()
            """,
            campaign.id,
            d.slug,
            d.name,
            d.description,
            d.starts_on,
            d.ends_on,
            d.time_zone,
            campaign.status.value,
            d.host_organization_id,
            [q.model_dump(mode="json") for q in d.questions],
            d.discreet,
            list(d.reminder_offsets_minutes),
            campaign.revision,
        )

    async def list(self, filters: CampaignFilter, page: PageRequest) -> list[Campaign]:
        where = _Where()
        if filters.status is not None:
            where.add(f"status = {where.param(filters.status.value)}")
        if filters.host_organization_id is not None:
            where.add(f"host_organization_id = {where.param(filters.host_organization_id)}")
        where.keyset("starts_on, id", "date", page)
        rows = await self._conn.fetch(
            f"SELECT * FROM campaigns {where.sql()} ORDER BY starts_on, id {where.limit(page)}",
            *where.params,
        )
        return [_campaign(r) for r in rows]


# Focus days ----------------------------------------------------------------------------------


def _focus_day(row: asyncpg.Record) -> FocusDay:
    return FocusDay(
        id=row["id"],
        campaign_id=row["campaign_id"],
        details=FocusDayDetails(
            date=row["day"], title=row["title"], description=row["description"]
        ),
        revision=row["revision"],
    )


class PostgresFocusDayRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def get(self, focus_day_id: uuid.UUID, *, lock: bool = False) -> FocusDay | None:
        row = await self._conn.fetchrow(
            f"SELECT * FROM focus_days WHERE id = $1{_lock(lock)}", focus_day_id
        )
        return _focus_day(row) if row else None

    async def for_campaign(self, campaign_id: uuid.UUID) -> list[FocusDay]:
        rows = await self._conn.fetch(
            "SELECT * FROM focus_days WHERE campaign_id = $1 ORDER BY day, id", campaign_id
        )
        return [_focus_day(r) for r in rows]

    async def save(self, focus_day: FocusDay) -> None:
        d = focus_day.details
        await self._conn.execute(
            """
            INSERT INTO focus_days (id, campaign_id, day, title, description, revision)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (id) DO UPDATE SET
                day = excluded.day, title = excluded.title, description = excluded.description,
                revision = excluded.revision, updated_at = now()
            """,
            focus_day.id,
            focus_day.campaign_id,
            d.date,
            d.title,
            d.description,
            focus_day.revision,
        )

    async def remove(self, focus_day_id: uuid.UUID) -> None:
        await self._conn.execute("DELETE FROM focus_days WHERE id = $1", focus_day_id)

    async def list(self, filters: FocusDayFilter, page: PageRequest) -> list[FocusDay]:
        where = _Where()
        if filters.campaign_id is not None:
            where.add(f"campaign_id = {where.param(filters.campaign_id)}")
        where.keyset("day, id", "date", page)
        rows = await self._conn.fetch(
            f"SELECT * FROM focus_days {where.sql()} ORDER BY day, id {where.limit(page)}",
            *where.params,
        )
        return [_focus_day(r) for r in rows]


# Sessions ------------------------------------------------------------------------------------


def _session(row: asyncpg.Record) -> Session:
    cancellation = (
        Cancellation(reason=row["cancellation_reason"], cancelled_at=row["cancelled_at"])
        if row["cancelled_at"] is not None
        else None
    )
    previous = (
        (row["previous_starts_at"], row["previous_ends_at"])
        if row["previous_starts_at"] is not None
        else None
    )
    return Session(
        id=row["id"],
        campaign_id=row["campaign_id"],
        details=SessionDetails(
            kind=SessionKind(row["kind"]),
            title=row["title"],
            starts_at=row["starts_at"],
            ends_at=row["ends_at"],
            time_zone=row["time_zone"],
            description=row["description"],
            focus_day_id=row["focus_day_id"],
            display_time_zones=tuple(row["display_time_zones"]),
            capacity=row["capacity"],
            audience=tuple(Role(r) for r in row["audience"]),
            registration_opens_at=row["registration_opens_at"],
            registration_closes_at=row["registration_closes_at"],
            join_url=row["join_url"],
        ),
        status=SessionStatus(row["status"]),
        sequence=row["sequence"],
        revision=row["revision"],
        cancellation=cancellation,
        previous_times=previous,
    )


class PostgresSessionRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def get(self, session_id: uuid.UUID, *, lock: bool = False) -> Session | None:
        row = await self._conn.fetchrow(
            f"SELECT * FROM sessions WHERE id = $1{_lock(lock)}", session_id
        )
        return _session(row) if row else None

    async def for_campaign(self, campaign_id: uuid.UUID) -> list[Session]:
        rows = await self._conn.fetch(
            "SELECT * FROM sessions WHERE campaign_id = $1 ORDER BY starts_at, id", campaign_id
        )
        return [_session(r) for r in rows]

    async def on_focus_day(self, focus_day_id: uuid.UUID) -> list[Session]:
        rows = await self._conn.fetch(
            "SELECT * FROM sessions WHERE focus_day_id = $1 ORDER BY starts_at, id", focus_day_id
        )
        return [_session(r) for r in rows]

    async def save(self, session: Session) -> None:
        d = session.details
        cancellation = session.cancellation
        previous = session.previous_times
        await self._conn.execute(
            """
            INSERT INTO sessions (id, campaign_id, focus_day_id, kind, title, description,
                starts_at, ends_at, time_zone, display_time_zones, capacity, audience,
                registration_opens_at, registration_closes_at, join_url, status, sequence,
                revision, cancellation_reason, cancelled_at, previous_starts_at,
                previous_ends_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                $17, $18, $19, $20, $21, $22)
            ON CONFLICT (id) DO UPDATE SET
                focus_day_id = excluded.focus_day_id, kind = excluded.kind,
                title = excluded.title, description = excluded.description,
                starts_at = excluded.starts_at, ends_at = excluded.ends_at,
                time_zone = excluded.time_zone, display_time_zones = excluded.display_time_zones,
                capacity = excluded.capacity, audience = excluded.audience,
                registration_opens_at = excluded.registration_opens_at,
                registration_closes_at = excluded.registration_closes_at,
                join_url = excluded.join_url, status = excluded.status,
                sequence = excluded.sequence, revision = excluded.revision,
                cancellation_reason = excluded.cancellation_reason,
                cancelled_at = excluded.cancelled_at,
                previous_starts_at = excluded.previous_starts_at,
                previous_ends_at = excluded.previous_ends_at, updated_at = now()
            """,
            session.id,
            session.campaign_id,
            d.focus_day_id,
            d.kind.value,
            d.title,
            d.description,
            d.starts_at,
            d.ends_at,
            d.time_zone,
            list(d.display_time_zones),
            d.capacity,
            [r.value for r in d.audience],
            d.registration_opens_at,
            d.registration_closes_at,
            d.join_url,
            session.status.value,
            session.sequence,
            session.revision,
            cancellation.reason if cancellation else None,
            cancellation.cancelled_at if cancellation else None,
            previous[0] if previous else None,
            previous[1] if previous else None,
        )

    async def remove(self, session_id: uuid.UUID) -> None:
        await self._conn.execute("DELETE FROM sessions WHERE id = $1", session_id)

    async def list(self, filters: SessionFilter, page: PageRequest) -> list[Session]:
        where = _Where()
        if filters.campaign_id is not None:
            where.add(f"campaign_id = {where.param(filters.campaign_id)}")
        if filters.status is not None:
            where.add(f"status = {where.param(filters.status.value)}")
        if filters.kind is not None:
            where.add(f"kind = {where.param(filters.kind.value)}")
        if filters.focus_day_id is not None:
            where.add(f"focus_day_id = {where.param(filters.focus_day_id)}")
        if filters.audience is not None:
            # An empty audience means everyone.
            role = where.param(filters.audience.value)
            where.add(f"({role} = ANY(audience) OR cardinality(audience) = 0)")
        if filters.starts_from is not None:
            where.add(f"starts_at >= {where.param(filters.starts_from)}")
        if filters.starts_before is not None:
            where.add(f"starts_at < {where.param(filters.starts_before)}")
        where.keyset("starts_at, id", "timestamptz", page)
        rows = await self._conn.fetch(
            f"SELECT * FROM sessions {where.sql()} ORDER BY starts_at, id {where.limit(page)}",
            *where.params,
        )
        return [_session(r) for r in rows]


# Resources -----------------------------------------------------------------------------------


def _resource(row: asyncpg.Record) -> Resource:
    return Resource(
        id=row["id"],
        campaign_id=row["campaign_id"],
        details=ResourceDetails(
            kind=row["kind"],
            title=row["title"],
            url=row["url"],
            audience=tuple(Role(r) for r in row["audience"]),
            locale=row["locale"],
        ),
        revision=row["revision"],
    )


class PostgresResourceRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def get(self, resource_id: uuid.UUID, *, lock: bool = False) -> Resource | None:
        row = await self._conn.fetchrow(
            f"SELECT * FROM resources WHERE id = $1{_lock(lock)}", resource_id
        )
        return _resource(row) if row else None

    async def for_campaign(self, campaign_id: uuid.UUID) -> list[Resource]:
        rows = await self._conn.fetch(
            "SELECT * FROM resources WHERE campaign_id = $1 ORDER BY title, id", campaign_id
        )
        return [_resource(r) for r in rows]

    async def save(self, resource: Resource) -> None:
        d = resource.details
        await self._conn.execute(
            """
            INSERT INTO resources (id, campaign_id, kind, title, url, audience, locale, revision)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (id) DO UPDATE SET
                kind = excluded.kind, title = excluded.title, url = excluded.url,
                audience = excluded.audience, locale = excluded.locale,
                revision = excluded.revision, updated_at = now()
            """,
            resource.id,
            resource.campaign_id,
            d.kind,
            d.title,
            d.url,
            [r.value for r in d.audience],
            d.locale,
            resource.revision,
        )

    async def remove(self, resource_id: uuid.UUID) -> None:
        await self._conn.execute("DELETE FROM resources WHERE id = $1", resource_id)

    async def list(self, filters: ResourceFilter, page: PageRequest) -> list[Resource]:
        where = _Where()
        if filters.campaign_id is not None:
            where.add(f"campaign_id = {where.param(filters.campaign_id)}")
        if filters.kind is not None:
            where.add(f"kind = {where.param(filters.kind)}")
        if filters.audience is not None:
            role = where.param(filters.audience.value)
            where.add(f"({role} = ANY(audience) OR cardinality(audience) = 0)")
        where.keyset("title, id", "text", page)
        rows = await self._conn.fetch(
            f"SELECT * FROM resources {where.sql()} ORDER BY title, id {where.limit(page)}",
            *where.params,
        )
        return [_resource(r) for r in rows]
