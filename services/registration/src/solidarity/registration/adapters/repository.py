"""The repository on PostgreSQL (asyncpg): every read and write in batches, one statement each."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

from solidarity.registration.domain.catalog import CampaignView, SessionRecord
from solidarity.registration.domain.erasure import address_spellings, mentions_address
from solidarity.registration.domain.partners import PartnerAccount
from solidarity.registration.domain.records import (
    IntakeRecord,
    OutcomeItem,
    RecordedRegistrant,
    Registration,
    RegistrationChange,
    RegistrationStatus,
    Signup,
    SubmissionRecord,
)
from solidarity.registration.domain.seats import SeatCounter
from solidarity.registration.domain.submissions import (
    PriorSubmission,
    RegistrantProfile,
    SubmissionStatus,
)
from solidarity.registration.service_layer.unit_of_work import (
    ConcurrentDecisionError,
    RegistrantSummary,
    StoredResponse,
)
from solidarity.shared.contracts.events.catalog import RegistrationQuestion
from solidarity.shared.contracts.events.common import CampaignStatus, Role
from solidarity.shared.db.pool import Connection

# Unique violations that mean "another instance just decided the same thing": the batch is
# retried, and on the retry the other instance's decision is seen and answered as a repeat.
_RACE_CONSTRAINTS = frozenset(
    {
        "registrations_one_live_per_person",
        "signups_one_per_person",
        "registrants_email_sha256_key",
        "submissions_pkey",
    }
)

_REGISTRATION_COLUMNS = """
    r.registration_id, r.session_id, r.campaign_id, r.focus_day_id, r.registrant_id,
    r.partner_id, r.submission_id, r.role, r.school, r.status, r.waitlist_ordinal
"""

_POSITION = """
    CASE WHEN r.status = 'waitlisted' THEN (
        SELECT count(*) FROM registrations w
        WHERE w.session_id = r.session_id AND w.status = 'waitlisted'
          AND w.waitlist_ordinal <= r.waitlist_ordinal
    ) END AS position
"""


def _registration(row: asyncpg.Record) -> Registration:
    return Registration(
        registration_id=row["registration_id"],
        session_id=row["session_id"],
        campaign_id=row["campaign_id"],
        focus_day_id=row["focus_day_id"],
        registrant_id=row["registrant_id"],
        partner_id=row["partner_id"],
        submission_id=row["submission_id"],
        role=row["role"],
        school=row["school"],
        status=RegistrationStatus(row["status"]),
        waitlist_ordinal=row["waitlist_ordinal"],
        position=row.get("position"),
    )


def _partner(row: asyncpg.Record) -> PartnerAccount:
    return PartnerAccount(
        partner_id=row["partner_id"],
        name=row["name"],
        campaigns=frozenset(row["campaigns"] or ()),
        secret_version=row["secret_version"],
        active=row["disabled_at"] is None,
    )


def _campaign(row: asyncpg.Record) -> CampaignView:
    questions = row["questions"]
    if isinstance(questions, str):
        questions = json.loads(questions)
    return CampaignView(
        campaign_id=row["campaign_id"],
        slug=row["slug"],
        status=CampaignStatus(row["status"]),
        starts_on=row["starts_on"],
        ends_on=row["ends_on"],
        time_zone=row["time_zone"],
        questions=tuple(RegistrationQuestion.model_validate(q) for q in questions),
        revision=row["revision"],
    )


def _session(row: asyncpg.Record) -> SessionRecord:
    return SessionRecord(
        session_id=row["session_id"],
        campaign_id=row["campaign_id"],
        focus_day_id=row["focus_day_id"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        audience=tuple(Role(a) for a in row["audience"]),
        registration_opens_at=row["registration_opens_at"],
        registration_closes_at=row["registration_closes_at"],
        status=row["status"],
        capacity=row["capacity"],
        state_revision=row["state_revision"],
        status_revision=row["status_revision"],
        capacity_revision=row["capacity_revision"],
    )


def _seats(row: asyncpg.Record) -> SeatCounter:
    return SeatCounter(
        session_id=row["session_id"],
        capacity=row["capacity"],
        confirmed=row["confirmed"],
        waitlisted=row["waitlisted"],
        tail=row["waitlist_tail"],
        head=row["waitlist_head"],
        accepting=row["status"] != "cancelled",
    )


def _submission(row: asyncpg.Record) -> SubmissionRecord:
    outcome = row["outcome"]
    if isinstance(outcome, str):
        outcome = json.loads(outcome)
    return SubmissionRecord(
        partner_id=row["partner_id"],
        submission_id=row["submission_id"],
        event_id=row["event_id"],
        body_sha256=row["body_sha256"],
        source=row["source"],
        status=SubmissionStatus(row["status"]),
        registrant_id=row["registrant_id"],
        campaign_id=row["campaign_id"],
        outcome=tuple(OutcomeItem.from_json(item) for item in outcome),
    )


class SqlRepository:
    """Reads and writes of the registration service on one connection (in a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def _guarded(self, query: str, *args: Any) -> None:
        """Run a write that can lose a race with another instance (see `_RACE_CONSTRAINTS`)."""
        try:
            await self._conn.execute(query, *args)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name in _RACE_CONSTRAINTS:
                raise ConcurrentDecisionError(exc.constraint_name) from exc
            raise

    # Partners and intake ----------------------------------------------------------------------

    _PARTNERS = """
        SELECT p.partner_id, p.name, p.secret_version, p.disabled_at,
               array_remove(array_agg(c.campaign_slug), NULL) AS campaigns
        FROM partners p LEFT JOIN partner_campaigns c USING (partner_id)
    """

    async def partners(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, PartnerAccount]:
        if not ids:
            return {}
        rows = await self._conn.fetch(
            self._PARTNERS + " WHERE p.partner_id = ANY($1::uuid[]) GROUP BY p.partner_id",
            list(ids),
        )
        return {r["partner_id"]: _partner(r) for r in rows}

    async def partner_by_api_key(self, api_key_sha256: bytes) -> PartnerAccount | None:
        row = await self._conn.fetchrow(
            self._PARTNERS + " WHERE p.api_key_sha256 = $1 GROUP BY p.partner_id", api_key_sha256
        )
        return _partner(row) if row is not None else None

    async def add_partner(self, partner: PartnerAccount, *, api_key_sha256: bytes) -> None:
        await self._conn.execute(
            "INSERT INTO partners (partner_id, name, api_key_sha256, secret_version) "
            "VALUES ($1, $2, $3, $4)",
            partner.partner_id,
            partner.name,
            api_key_sha256,
            partner.secret_version,
        )
        await self._conn.execute(
            "INSERT INTO partner_campaigns (partner_id, campaign_slug) "
            "SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            partner.partner_id,
            sorted(partner.campaigns),
        )

    async def list_partners(self) -> list[PartnerAccount]:
        rows = await self._conn.fetch(self._PARTNERS + " GROUP BY p.partner_id ORDER BY p.name")
        return [_partner(r) for r in rows]

    async def intake(self, event_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, IntakeRecord]:
        if not event_ids:
            return {}
        rows = await self._conn.fetch(
            "SELECT event_id, partner_id, submission_id, envelope_sha256 FROM intake "
            "WHERE event_id = ANY($1::uuid[])",
            list(event_ids),
        )
        return {
            r["event_id"]: IntakeRecord(
                r["event_id"], r["partner_id"], r["submission_id"], bytes(r["envelope_sha256"])
            )
            for r in rows
        }

    async def add_intake(self, records: Sequence[IntakeRecord]) -> None:
        if not records:
            return
        await self._conn.execute(
            """
            INSERT INTO intake (event_id, partner_id, submission_id, envelope_sha256)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[])
            """,
            [r.event_id for r in records],
            [r.partner_id for r in records],
            [r.submission_id for r in records],
            [r.envelope_sha256 for r in records],
        )

    async def forget_intake(self, event_ids: Collection[uuid.UUID]) -> None:
        if event_ids:
            await self._conn.execute(
                "DELETE FROM intake WHERE event_id = ANY($1::uuid[])", list(event_ids)
            )

    async def pending_intake(self, partner_id: uuid.UUID, submission_id: str) -> bool:
        value = await self._conn.fetchval(
            "SELECT 1 FROM intake WHERE partner_id = $1 AND submission_id = $2 LIMIT 1",
            partner_id,
            submission_id,
        )
        return value is not None

    async def claim_idempotency_key(
        self, partner_id: uuid.UUID, key: str, response: StoredResponse
    ) -> StoredResponse | None:
        # A concurrent claim of the same key waits here until the first one commits.
        claimed = await self._conn.fetchval(
            """
            INSERT INTO idempotency_keys
                (partner_id, idempotency_key, request_sha256, status_code, response)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT DO NOTHING RETURNING 1
            """,
            partner_id,
            key,
            response.request_sha256,
            response.status_code,
            response.body,
        )
        if claimed is not None:
            return None
        row = await self._conn.fetchrow(
            "SELECT request_sha256, status_code, response FROM idempotency_keys "
            "WHERE partner_id = $1 AND idempotency_key = $2",
            partner_id,
            key,
        )
        if row is None:  # claimed and rolled back in between: the caller retries
            raise ConcurrentDecisionError("idempotency key")
        return StoredResponse(
            request_sha256=bytes(row["request_sha256"]),
            status_code=row["status_code"],
            body=bytes(row["response"]),
        )

    # Catalog read model -----------------------------------------------------------------------

    async def campaigns_by_slug(self, slugs: Collection[str]) -> dict[str, CampaignView]:
        if not slugs:
            return {}
        rows = await self._conn.fetch(
            "SELECT DISTINCT ON (slug) * FROM campaigns WHERE slug = ANY($1::text[]) "
            "ORDER BY slug, revision DESC, updated_at DESC",
            list(slugs),
        )
        return {r["slug"]: _campaign(r) for r in rows}

    async def campaign(self, campaign_id: uuid.UUID) -> CampaignView | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM campaigns WHERE campaign_id = $1 FOR UPDATE", campaign_id
        )
        return _campaign(row) if row is not None else None

    async def save_campaign(self, campaign: CampaignView) -> None:
        await self._conn.execute(
            """
            INSERT INTO campaigns (campaign_id, slug, status, starts_on, ends_on, time_zone,
                                   questions, revision)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
            ON CONFLICT (campaign_id) DO UPDATE SET
                slug = EXCLUDED.slug, status = EXCLUDED.status, starts_on = EXCLUDED.starts_on,
                ends_on = EXCLUDED.ends_on, time_zone = EXCLUDED.time_zone,
                questions = EXCLUDED.questions, revision = EXCLUDED.revision, updated_at = now()
            WHERE campaigns.revision < EXCLUDED.revision
            """,
            campaign.campaign_id,
            campaign.slug,
            campaign.status.value,
            campaign.starts_on,
            campaign.ends_on,
            campaign.time_zone,
            [q.model_dump(mode="json") for q in campaign.questions],
            campaign.revision,
        )

    async def save_focus_day(
        self, focus_day_id: uuid.UUID, campaign_id: uuid.UUID, day: date, revision: int
    ) -> None:
        await self._conn.execute(
            """
            INSERT INTO focus_days (focus_day_id, campaign_id, day, revision)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (focus_day_id) DO UPDATE SET
                campaign_id = EXCLUDED.campaign_id, day = EXCLUDED.day,
                revision = EXCLUDED.revision
            WHERE focus_days.revision < EXCLUDED.revision
            """,
            focus_day_id,
            campaign_id,
            day,
            revision,
        )

    async def sessions(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, SessionRecord]:
        if not ids:
            return {}
        rows = await self._conn.fetch(
            "SELECT * FROM sessions WHERE session_id = ANY($1::uuid[])", list(ids)
        )
        return {r["session_id"]: _session(r) for r in rows}

    async def lock_session(self, session_id: uuid.UUID) -> tuple[SessionRecord, SeatCounter] | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM sessions WHERE session_id = $1 FOR UPDATE", session_id
        )
        return (_session(row), _seats(row)) if row is not None else None

    async def save_session(self, record: SessionRecord, seats: SeatCounter) -> None:
        await self._conn.execute(
            """
            INSERT INTO sessions (session_id, campaign_id, focus_day_id, starts_at, ends_at,
                audience, registration_opens_at, registration_closes_at, status,
                state_revision, status_revision, capacity_revision, capacity,
                confirmed, waitlisted, waitlist_tail, waitlist_head)
            VALUES ($1, $2, $3, $4, $5, $6::text[], $7, $8, $9, $10, $11, $12, $13,
                    $14, $15, $16, $17)
            ON CONFLICT (session_id) DO UPDATE SET
                campaign_id = EXCLUDED.campaign_id, focus_day_id = EXCLUDED.focus_day_id,
                starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
                audience = EXCLUDED.audience,
                registration_opens_at = EXCLUDED.registration_opens_at,
                registration_closes_at = EXCLUDED.registration_closes_at,
                status = EXCLUDED.status, state_revision = EXCLUDED.state_revision,
                status_revision = EXCLUDED.status_revision,
                capacity_revision = EXCLUDED.capacity_revision, capacity = EXCLUDED.capacity,
                confirmed = EXCLUDED.confirmed, waitlisted = EXCLUDED.waitlisted,
                waitlist_tail = EXCLUDED.waitlist_tail, waitlist_head = EXCLUDED.waitlist_head
            """,
            record.session_id,
            record.campaign_id,
            record.focus_day_id,
            record.starts_at,
            record.ends_at,
            [a.value for a in record.audience],
            record.registration_opens_at,
            record.registration_closes_at,
            record.status,
            record.state_revision,
            record.status_revision,
            record.capacity_revision,
            seats.capacity,
            seats.confirmed,
            seats.waitlisted,
            seats.tail,
            seats.head,
        )

    # Decisions --------------------------------------------------------------------------------

    async def prior_submissions(
        self, keys: Collection[tuple[uuid.UUID, str]]
    ) -> dict[tuple[uuid.UUID, str], PriorSubmission]:
        if not keys:
            return {}
        rows = await self._conn.fetch(
            """
            SELECT s.partner_id, s.submission_id, s.status, s.body_sha256, s.registrant_id
            FROM submissions s
            JOIN unnest($1::uuid[], $2::text[]) AS k(p, i)
              ON s.partner_id = k.p AND s.submission_id = k.i
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {
            (r["partner_id"], r["submission_id"]): PriorSubmission(
                status=SubmissionStatus(r["status"]),
                body_sha256=r["body_sha256"],
                registrant_id=r["registrant_id"],
            )
            for r in rows
        }

    async def registrants_by_email(self, hashes: Collection[str]) -> dict[str, uuid.UUID]:
        if not hashes:
            return {}
        rows = await self._conn.fetch(
            "SELECT email_sha256, registrant_id FROM registrants "
            "WHERE email_sha256 = ANY($1::text[])",
            list(hashes),
        )
        return {r["email_sha256"]: r["registrant_id"] for r in rows}

    async def record_registrants(
        self, profiles: Sequence[RegistrantProfile]
    ) -> dict[str, RecordedRegistrant]:
        """Insert new people and update changed details, in email-hash order (no deadlocks)."""
        if not profiles:
            return {}
        ordered = sorted(
            {p.email_sha256: p for p in profiles}.values(), key=lambda p: p.email_sha256
        )
        rows = await self._conn.fetch(
            """
            INSERT INTO registrants AS r (registrant_id, email_sha256, email, name, pronouns,
                role, age_band, school, organization, time_zone, locale, details_sha256)
            SELECT gen_random_uuid(), * FROM unnest($1::text[], $2::text[], $3::text[],
                $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                $10::text[], $11::text[])
            ON CONFLICT (email_sha256) DO UPDATE SET
                email = EXCLUDED.email, name = EXCLUDED.name, pronouns = EXCLUDED.pronouns,
                role = EXCLUDED.role, age_band = EXCLUDED.age_band, school = EXCLUDED.school,
                organization = EXCLUDED.organization, time_zone = EXCLUDED.time_zone,
                locale = EXCLUDED.locale, details_sha256 = EXCLUDED.details_sha256,
                updated_at = now()
            WHERE r.details_sha256 IS DISTINCT FROM EXCLUDED.details_sha256
            RETURNING registrant_id, email_sha256, (xmax = 0) AS inserted
            """,
            [p.email_sha256 for p in ordered],
            [p.email for p in ordered],
            [p.name for p in ordered],
            [p.pronouns for p in ordered],
            [p.role for p in ordered],
            [p.age_band for p in ordered],
            [p.school for p in ordered],
            [p.organization for p in ordered],
            [p.time_zone for p in ordered],
            [p.locale for p in ordered],
            [p.details_sha256 for p in ordered],
        )
        result = {
            r["email_sha256"]: RecordedRegistrant(
                registrant_id=r["registrant_id"],
                email_sha256=r["email_sha256"],
                inserted=r["inserted"],
                changed=not r["inserted"],
            )
            for r in rows
        }
        unchanged = [p.email_sha256 for p in ordered if p.email_sha256 not in result]
        for email_sha256, registrant_id in (await self.registrants_by_email(unchanged)).items():
            result[email_sha256] = RecordedRegistrant(
                registrant_id=registrant_id,
                email_sha256=email_sha256,
                inserted=False,
                changed=False,
            )
        return result

    async def signups_of(
        self, keys: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], Signup]:
        if not keys:
            return {}
        rows = await self._conn.fetch(
            """
            SELECT s.* FROM signups s
            JOIN unnest($1::uuid[], $2::uuid[]) AS k(c, r)
              ON s.campaign_id = k.c AND s.registrant_id = k.r
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {
            (r["campaign_id"], r["registrant_id"]): Signup(
                signup_id=r["signup_id"],
                campaign_id=r["campaign_id"],
                registrant_id=r["registrant_id"],
                partner_id=r["partner_id"],
                role=r["role"],
                school=r["school"],
                invitations=r["consent_invitations"],
                giveaways=r["consent_giveaways"],
                news=r["consent_news"],
            )
            for r in rows
        }

    async def add_signups(self, signups: Sequence[Signup]) -> None:
        if not signups:
            return
        ordered = sorted(signups, key=lambda s: (s.campaign_id, s.registrant_id))
        await self._guarded(
            """
            INSERT INTO signups (signup_id, campaign_id, registrant_id, partner_id, role, school,
                consent_invitations, consent_giveaways, consent_news, answers)
            SELECT u.i, u.c, u.r, u.p, u.ro, u.sc, u.ci, u.cg, u.cn, u.a::jsonb
            FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
                        $7::bool[], $8::bool[], $9::bool[], $10::text[])
                 AS u(i, c, r, p, ro, sc, ci, cg, cn, a)
            """,
            [s.signup_id for s in ordered],
            [s.campaign_id for s in ordered],
            [s.registrant_id for s in ordered],
            [s.partner_id for s in ordered],
            [s.role for s in ordered],
            [s.school for s in ordered],
            [s.invitations for s in ordered],
            [s.giveaways for s in ordered],
            [s.news for s in ordered],
            [json.dumps(s.answers) for s in ordered],
        )

    async def live_registrations_of(
        self, keys: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], Registration]:
        if not keys:
            return {}
        rows = await self._conn.fetch(
            f"""
            SELECT {_REGISTRATION_COLUMNS}, {_POSITION}
            FROM registrations r
            JOIN unnest($1::uuid[], $2::uuid[]) AS k(s, p)
              ON r.session_id = k.s AND r.registrant_id = k.p
            WHERE r.status <> 'cancelled'
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {(r["session_id"], r["registrant_id"]): _registration(r) for r in rows}

    async def lock_seats(self, session_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, SeatCounter]:
        """Lock the sessions' seat counters in id order, so two transactions never deadlock."""
        if not session_ids:
            return {}
        rows = await self._conn.fetch(
            """
            SELECT session_id, capacity, confirmed, waitlisted, waitlist_tail, waitlist_head,
                   status
            FROM sessions WHERE session_id = ANY($1::uuid[])
            ORDER BY session_id FOR UPDATE
            """,
            sorted(set(session_ids)),
        )
        return {r["session_id"]: _seats(r) for r in rows}

    async def save_seats(self, counters: Sequence[SeatCounter]) -> None:
        if not counters:
            return
        ordered = sorted(counters, key=lambda c: c.session_id)
        await self._conn.execute(
            """
            UPDATE sessions s SET capacity = u.cap, confirmed = u.c, waitlisted = u.w,
                waitlist_tail = u.t, waitlist_head = u.h
            FROM unnest($1::uuid[], $2::int[], $3::int[], $4::int[], $5::bigint[], $6::bigint[])
                 AS u(id, cap, c, w, t, h)
            WHERE s.session_id = u.id
            """,
            [c.session_id for c in ordered],
            [c.capacity for c in ordered],
            [c.confirmed for c in ordered],
            [c.waitlisted for c in ordered],
            [c.tail for c in ordered],
            [c.head for c in ordered],
        )

    async def add_registrations(self, registrations: Sequence[Registration]) -> None:
        if not registrations:
            return
        rows = registrations
        await self._guarded(
            """
            INSERT INTO registrations (registration_id, session_id, campaign_id, focus_day_id,
                registrant_id, partner_id, submission_id, role, school, status, waitlist_ordinal,
                confirmed_at)
            SELECT u.i, u.s, u.c, u.f, u.r, u.p, u.sub, u.ro, u.sc, u.st, u.o,
                   CASE WHEN u.st = 'confirmed' THEN clock_timestamp() END
            FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[],
                        $11::text[], $7::text[], $8::text[], $9::text[], $10::bigint[])
                 WITH ORDINALITY AS u(i, s, c, f, r, p, sub, ro, sc, st, o, n)
            ORDER BY u.n
            """,
            [r.registration_id for r in rows],
            [r.session_id for r in rows],
            [r.campaign_id for r in rows],
            [r.focus_day_id for r in rows],
            [r.registrant_id for r in rows],
            [r.partner_id for r in rows],
            [r.role for r in rows],
            [r.school for r in rows],
            [r.status.value for r in rows],
            [r.waitlist_ordinal for r in rows],
            [r.submission_id for r in rows],
        )

    async def save_submissions(self, records: Sequence[SubmissionRecord]) -> None:
        """Record each submission's answer under the partner's id for it.

        An existing answer is replaced only by a repeat of the same submission, or when it
        was a rejection; anything else means this batch decided on a stale view (another
        instance answered that id meanwhile): the batch is retried.
        """
        if not records:
            return
        latest = {(r.partner_id, r.submission_id): r for r in records}  # last answer wins
        ordered = [latest[k] for k in sorted(latest)]
        saved = await self._conn.fetch(
            """
            INSERT INTO submissions AS s (partner_id, submission_id, event_id, body_sha256,
                source, status, registrant_id, campaign_id, outcome)
            SELECT u.p, u.i, u.e, u.b, u.so, u.st, u.r, u.c, u.o::jsonb
            FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                        $7::uuid[], $8::uuid[], $9::text[]) AS u(p, i, e, b, so, st, r, c, o)
            ON CONFLICT (partner_id, submission_id) DO UPDATE SET
                event_id = EXCLUDED.event_id, body_sha256 = EXCLUDED.body_sha256,
                source = EXCLUDED.source, status = EXCLUDED.status,
                registrant_id = EXCLUDED.registrant_id, campaign_id = EXCLUDED.campaign_id,
                outcome = EXCLUDED.outcome, decided_at = now()
            WHERE s.status = 'rejected'
               OR (s.status <> 'erased' AND s.body_sha256 = EXCLUDED.body_sha256)
            RETURNING 1
            """,
            [r.partner_id for r in ordered],
            [r.submission_id for r in ordered],
            [r.event_id for r in ordered],
            [r.body_sha256 for r in ordered],
            [r.source for r in ordered],
            [r.status.value for r in ordered],
            [r.registrant_id for r in ordered],
            [r.campaign_id for r in ordered],
            [json.dumps([item.to_json() for item in r.outcome]) for r in ordered],
        )
        if len(saved) != len(ordered):
            raise ConcurrentDecisionError("submissions answered meanwhile")

    # Changes after the decision ---------------------------------------------------------------

    async def submission(
        self, partner_id: uuid.UUID, submission_id: str
    ) -> SubmissionRecord | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM submissions WHERE partner_id = $1 AND submission_id = $2",
            partner_id,
            submission_id,
        )
        return _submission(row) if row is not None else None

    async def registrations(self, ids: Collection[uuid.UUID]) -> list[Registration]:
        if not ids:
            return []
        rows = await self._conn.fetch(
            f"""
            SELECT {_REGISTRATION_COLUMNS}, {_POSITION} FROM registrations r
            WHERE r.registration_id = ANY($1::uuid[]) ORDER BY r.registration_id
            """,
            list(ids),
        )
        return [_registration(r) for r in rows]

    async def waitlist_head(self, session_id: uuid.UUID, count: int) -> list[Registration]:
        if count <= 0:
            return []
        rows = await self._conn.fetch(
            f"""
            SELECT {_REGISTRATION_COLUMNS} FROM registrations r
            WHERE r.session_id = $1 AND r.status = 'waitlisted'
            ORDER BY r.waitlist_ordinal LIMIT $2
            """,
            session_id,
            count,
        )
        return [_registration(r) for r in rows]

    async def latest_confirmed(self, session_id: uuid.UUID, count: int) -> list[Registration]:
        if count <= 0:
            return []
        rows = await self._conn.fetch(
            f"""
            SELECT {_REGISTRATION_COLUMNS} FROM registrations r
            WHERE r.session_id = $1 AND r.status = 'confirmed'
            ORDER BY r.confirmed_at DESC, r.created_at DESC, r.registration_id DESC LIMIT $2
            """,
            session_id,
            count,
        )
        return [_registration(r) for r in rows]

    async def live_registrations_of_session(self, session_id: uuid.UUID) -> list[Registration]:
        rows = await self._conn.fetch(
            f"""
            SELECT {_REGISTRATION_COLUMNS} FROM registrations r
            WHERE r.session_id = $1 AND r.status <> 'cancelled'
            ORDER BY r.registration_id
            """,
            session_id,
        )
        return [_registration(r) for r in rows]

    async def live_registrations_of_registrant(
        self, registrant_id: uuid.UUID
    ) -> list[Registration]:
        rows = await self._conn.fetch(
            f"""
            SELECT {_REGISTRATION_COLUMNS} FROM registrations r
            WHERE r.registrant_id = $1 AND r.status <> 'cancelled'
            ORDER BY r.session_id
            """,
            registrant_id,
        )
        return [_registration(r) for r in rows]

    async def update_registrations(
        self, changes: Sequence[RegistrationChange], *, at: datetime
    ) -> None:
        if not changes:
            return
        # Leaving the waitlist first, then joining it: ordinals stay unique at every step.
        ordered = sorted(changes, key=lambda c: c.status is RegistrationStatus.WAITLISTED)
        await self._conn.execute(
            """
            UPDATE registrations r SET
                status = u.st,
                waitlist_ordinal = u.o,
                -- In the order given, a microsecond apart: "most recently confirmed" stays exact.
                confirmed_at = CASE WHEN u.st = 'confirmed'
                    THEN $5::timestamptz + u.n * interval '1 microsecond' END,
                cancelled_at = CASE WHEN u.st = 'cancelled' THEN $5::timestamptz END,
                cancel_reason = u.cr
            FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[])
                 WITH ORDINALITY AS u(id, st, o, cr, n)
            WHERE r.registration_id = u.id
            """,
            [c.registration_id for c in ordered],
            [c.status.value for c in ordered],
            [c.waitlist_ordinal for c in ordered],
            [c.cancel_reason for c in ordered],
            at,
        )

    async def registrant(self, registrant_id: uuid.UUID) -> RegistrantSummary | None:
        row = await self._conn.fetchrow(
            "SELECT registrant_id, erased_at FROM registrants WHERE registrant_id = $1 FOR UPDATE",
            registrant_id,
        )
        if row is None:
            return None
        return RegistrantSummary(row["registrant_id"], row["erased_at"])

    async def partner_knows(self, partner_id: uuid.UUID, registrant_id: uuid.UUID) -> bool:
        value = await self._conn.fetchval(
            "SELECT 1 FROM submissions WHERE partner_id = $1 AND registrant_id = $2 LIMIT 1",
            partner_id,
            registrant_id,
        )
        return value is not None

    async def erase_registrant(self, registrant_id: uuid.UUID, *, at: datetime) -> None:
        """Remove the person's data here; ids, roles and schools stay for anonymous counts."""
        person = await self._conn.fetchrow(
            "SELECT email_sha256, email FROM registrants WHERE registrant_id = $1", registrant_id
        )
        key = person["email_sha256"] if person else None
        dead_letters = await self._dead_letters_mentioning(person["email"] if person else None)
        await self._conn.execute(
            """
            UPDATE registrants SET email_sha256 = NULL, email = NULL, name = NULL,
                pronouns = NULL, age_band = NULL, school = NULL, organization = NULL,
                time_zone = NULL,
                locale = NULL, details_sha256 = NULL, erased_at = $2, updated_at = $2
            WHERE registrant_id = $1
            """,
            registrant_id,
            at,
        )
        await self._conn.execute(
            "UPDATE signups SET answers = NULL WHERE registrant_id = $1", registrant_id
        )
        await self._conn.execute(
            "UPDATE submissions SET status = 'erased', body_sha256 = NULL WHERE registrant_id = $1",
            registrant_id,
        )
        # Published copies of the person's details must not stay in the outbox either, nor
        # dead letters of their submissions (they keep the original bytes: keyed by the email
        # hash, or by whatever key the partner chose, found by the address in them), sent or
        # not: an erased person's data must not go out later. The DLQ topic's own copies
        # expire with its retention (see docs/operations.md).
        await self._conn.execute(
            """
            DELETE FROM outbox WHERE
                (event_type = 'DeadLetter' AND (key = $2 OR id = ANY($3::bigint[])))
                OR (sent_at IS NOT NULL AND (
                    (event_type = 'RegistrantRecorded' AND key = $1)
                    OR (event_type = 'RegistrationSubmitted' AND key = $2)))
            """,
            str(registrant_id).encode(),
            (key or "").encode(),
            dead_letters,
        )

    async def _dead_letters_mentioning(self, email: str | None) -> list[int]:
        """The outbox ids of dead letters whose bytes hold this address, whatever their key.

        PostgreSQL narrows them down (ASCII case ignored; `encode(..., 'escape')` reads any
        bytes as text, where `convert_from` would fail on bytes that are not UTF-8); the few it
        finds are checked here, so that a longer address that contains this one is not taken
        for it. It reads every dead letter in the outbox: see docs/services/registration.md.
        """
        if not email:
            return []
        spellings = address_spellings(email)
        candidates = await self._conn.fetch(
            """
            SELECT o.id, o.value FROM outbox o
            CROSS JOIN LATERAL (
                SELECT lower(encode(o.value, 'escape')) AS text OFFSET 0
            ) AS letter
            WHERE o.event_type = 'DeadLetter'
              AND EXISTS (
                SELECT 1 FROM unnest($1::bytea[]) AS s(spelling)
                WHERE position(encode(s.spelling, 'escape') IN letter.text) > 0
              )
            """,
            list(spellings),
        )
        return [r["id"] for r in candidates if mentions_address(r["value"], spellings)]
