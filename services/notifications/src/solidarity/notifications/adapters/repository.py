"""SQL (asyncpg) implementations of the read models, the delivery planner and the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from solidarity.notifications.domain.model import (
    PURPOSE_OF,
    CampaignView,
    Delivery,
    DeliveryKind,
    FocusDayView,
    MessageContext,
    Purpose,
    RecipientView,
    RegistrationView,
    ResourceView,
    SessionView,
    delivery_id,
)
from solidarity.notifications.domain.schedule import DEFAULT_REMINDER_OFFSETS_MINUTES
from solidarity.notifications.service_layer.ports import (
    CampaignState,
    CatalogReadModel,
    ClaimedWork,
    DeliveryPlanner,
    PeopleRepository,
    PlannedDelivery,
    PlanningLocks,
    SessionState,
    Settlement,
    WebhookTarget,
)
from solidarity.shared.contracts.envelope import Event
from solidarity.shared.contracts.events.catalog import (
    FocusDayAddedV1,
    ResourcePublishedV1,
    SessionCancelledV1,
)
from solidarity.shared.contracts.events.registration import (
    RegistrantRecordedV1,
    SignupConfirmedV1,
)
from solidarity.shared.db.pool import Connection
from solidarity.shared.messaging.outbox import Outbox

# The ledger key in SQL, the same formula as `domain.model.delivery_id`.
_KEY_SQL = "md5({recipient}::text || '|' || {kind} || '|' || {subject})::uuid"


def _key_sql(recipient: str, kind: str, subject: str) -> str:
    return _KEY_SQL.format(recipient=recipient, kind=kind, subject=subject)


class SqlCatalogReadModel:
    """The catalog's campaigns, focus days, resources and sessions, newest revision wins."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def upsert_campaign(self, event: CampaignState) -> bool:
        row = await self._conn.fetchrow(
            """
            INSERT INTO campaigns (campaign_id, revision, slug, name, description, starts_on,
                ends_on, time_zone, status, discreet, reminder_offsets_minutes)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (campaign_id) DO UPDATE SET
                revision = EXCLUDED.revision, slug = EXCLUDED.slug, name = EXCLUDED.name,
                description = EXCLUDED.description, starts_on = EXCLUDED.starts_on,
                ends_on = EXCLUDED.ends_on, time_zone = EXCLUDED.time_zone,
                status = EXCLUDED.status, discreet = EXCLUDED.discreet,
                reminder_offsets_minutes = EXCLUDED.reminder_offsets_minutes
            WHERE campaigns.revision < EXCLUDED.revision
            RETURNING 1
            """,
            event.campaign_id,
            event.revision,
            event.slug,
            event.name,
            event.description,
            event.starts_on,
            event.ends_on,
            event.time_zone,
            event.status.value,
            event.discreet,
            sorted({m for m in event.reminder_offsets_minutes if m > 0}),
        )
        return row is not None

    async def add_focus_day(self, event: FocusDayAddedV1) -> bool:
        row = await self._conn.fetchrow(
            """
            INSERT INTO focus_days (focus_day_id, campaign_id, revision, day, title, description)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (focus_day_id) DO UPDATE SET
                revision = EXCLUDED.revision, day = EXCLUDED.day, title = EXCLUDED.title,
                description = EXCLUDED.description
            WHERE focus_days.revision < EXCLUDED.revision
            RETURNING 1
            """,
            event.focus_day_id,
            event.campaign_id,
            event.revision,
            event.date,
            event.title,
            event.description,
        )
        return row is not None

    async def add_resource(self, event: ResourcePublishedV1) -> bool:
        row = await self._conn.fetchrow(
            """
            INSERT INTO resources (resource_id, campaign_id, revision, kind, title, audience,
                url, locale)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (resource_id) DO UPDATE SET
                revision = EXCLUDED.revision, kind = EXCLUDED.kind, title = EXCLUDED.title,
                audience = EXCLUDED.audience, url = EXCLUDED.url, locale = EXCLUDED.locale
            WHERE resources.revision < EXCLUDED.revision
            RETURNING 1
            """,
            event.resource_id,
            event.campaign_id,
            event.revision,
            event.kind,
            event.title,
            [role.value for role in event.audience],
            str(event.url),
            event.locale,
        )
        return row is not None

    async def upsert_session(self, event: SessionState, *, moved: bool) -> int | None:
        value = await self._conn.fetchval(
            """
            INSERT INTO sessions (session_id, campaign_id, revision, kind, title, description,
                starts_at, ends_at, time_zone, display_time_zones, audience, join_url, status,
                sequence)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
            ON CONFLICT (session_id) DO UPDATE SET
                campaign_id = EXCLUDED.campaign_id, revision = EXCLUDED.revision,
                kind = EXCLUDED.kind, title = EXCLUDED.title,
                description = EXCLUDED.description, starts_at = EXCLUDED.starts_at,
                ends_at = EXCLUDED.ends_at, time_zone = EXCLUDED.time_zone,
                display_time_zones = EXCLUDED.display_time_zones,
                audience = EXCLUDED.audience, join_url = EXCLUDED.join_url,
                status = EXCLUDED.status,
                -- Attendees' calendars only take an update with a higher SEQUENCE.
                sequence = GREATEST(
                    EXCLUDED.sequence, sessions.sequence + CASE WHEN $15 THEN 1 ELSE 0 END
                )
            WHERE sessions.revision < EXCLUDED.revision
            RETURNING sequence
            """,
            event.session_id,
            event.campaign_id,
            event.revision,
            event.kind.value,
            event.title,
            event.description,
            event.starts_at,
            event.ends_at,
            event.time_zone,
            list(event.display_time_zones),
            [role.value for role in event.audience],
            str(event.join_url) if event.join_url else None,
            event.status.value,
            event.sequence,
            moved,
        )
        return None if value is None else int(value)

    async def cancel_session(self, event: SessionCancelledV1) -> int | None:
        value = await self._conn.fetchval(
            """
            UPDATE sessions SET status = 'cancelled', revision = $2, sequence = sequence + 1
            WHERE session_id = $1 AND revision < $2
            RETURNING sequence
            """,
            event.session_id,
            event.revision,
        )
        return None if value is None else int(value)

    async def bump_session_revision(self, session_id: uuid.UUID, revision: int) -> bool:
        result = await self._conn.execute(
            "UPDATE sessions SET revision = $2 WHERE session_id = $1 AND revision < $2",
            session_id,
            revision,
        )
        return result.endswith(" 1")


class SqlPeopleRepository:
    """Recipients, sign-ups, registrations, opt-outs and erasures."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def is_erased(self, recipient_id: uuid.UUID) -> bool:
        value = await self._conn.fetchval(
            "SELECT 1 FROM erased_recipients WHERE recipient_id = $1", recipient_id
        )
        return value is not None

    async def exists(self, recipient_id: uuid.UUID) -> bool:
        value = await self._conn.fetchval(
            "SELECT 1 FROM recipients WHERE recipient_id = $1", recipient_id
        )
        return value is not None

    async def locale_of(self, recipient_id: uuid.UUID) -> str | None:
        value = await self._conn.fetchval(
            "SELECT locale FROM recipients WHERE recipient_id = $1", recipient_id
        )
        return None if value is None else str(value)

    async def record_recipient(self, event: RegistrantRecordedV1) -> None:
        await self._conn.execute(
            """
            INSERT INTO recipients (recipient_id, email, name, role, locale, time_zone)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (recipient_id) DO UPDATE SET
                email = EXCLUDED.email, name = EXCLUDED.name, role = EXCLUDED.role,
                locale = EXCLUDED.locale, time_zone = EXCLUDED.time_zone,
                recorded_at = now()
            """,
            event.registrant_id,
            event.email.strip(),
            event.name,
            event.role.value,
            event.locale,
            event.time_zone,
        )

    async def erase(self, recipient_id: uuid.UUID, *, at: datetime) -> None:
        # The ledger rows go too: with no contact and a tombstone, nothing can be sent again.
        for table in ("recipients", "signups", "registrations", "opt_outs", "deliveries"):
            await self._conn.execute(f"DELETE FROM {table} WHERE recipient_id = $1", recipient_id)
        await self._conn.execute(
            "INSERT INTO erased_recipients (recipient_id, erased_at) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            recipient_id,
            at,
        )

    async def record_signup(self, event: SignupConfirmedV1) -> None:
        await self._conn.execute(
            """
            INSERT INTO signups (recipient_id, campaign_id, signup_id, role,
                consent_invitations, consent_giveaways, consent_news)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (recipient_id, campaign_id) DO UPDATE SET
                signup_id = EXCLUDED.signup_id, role = EXCLUDED.role,
                consent_invitations = EXCLUDED.consent_invitations,
                consent_giveaways = EXCLUDED.consent_giveaways,
                consent_news = EXCLUDED.consent_news
            """,
            event.registrant_id,
            event.campaign_id,
            event.signup_id,
            event.role.value,
            event.consents.invitations,
            event.consents.giveaways,
            event.consents.news,
        )

    async def set_registration(
        self,
        *,
        registration_id: uuid.UUID,
        recipient_id: uuid.UUID,
        session_id: uuid.UUID,
        campaign_id: uuid.UUID,
        partner_id: uuid.UUID | None,
        status: str,
        waitlist_position: int | None = None,
    ) -> None:
        await self._conn.execute(
            """
            INSERT INTO registrations (registration_id, recipient_id, session_id, campaign_id,
                partner_id, status, waitlist_position)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (registration_id) DO UPDATE SET
                status = EXCLUDED.status, waitlist_position = EXCLUDED.waitlist_position
            """,
            registration_id,
            recipient_id,
            session_id,
            campaign_id,
            partner_id,
            status,
            waitlist_position,
        )

    async def opted_out(self, recipient_id: uuid.UUID) -> set[str]:
        rows = await self._conn.fetch(
            "SELECT purpose FROM opt_outs WHERE recipient_id = $1", recipient_id
        )
        return {r["purpose"] for r in rows}

    async def set_opt_outs(
        self, recipient_id: uuid.UUID, purposes: Mapping[Purpose, bool], *, at: datetime
    ) -> None:
        out = [p.value for p, yes in purposes.items() if yes]
        back_in = [p.value for p, yes in purposes.items() if not yes]
        if out:
            await self._conn.execute(
                """
                INSERT INTO opt_outs (recipient_id, purpose, opted_out_at)
                SELECT $1, p, $3 FROM unnest($2::text[]) AS p
                ON CONFLICT DO NOTHING
                """,
                recipient_id,
                out,
                at,
            )
            # Honoured from now on: what is already queued for those purposes is not sent.
            await self._conn.execute(
                """
                UPDATE deliveries SET state = 'dropped', last_error = 'opted_out'
                WHERE recipient_id = $1 AND state = 'pending' AND purpose = ANY($2::text[])
                """,
                recipient_id,
                out,
            )
        if back_in:
            await self._conn.execute(
                "DELETE FROM opt_outs WHERE recipient_id = $1 AND purpose = ANY($2::text[])",
                recipient_id,
                back_in,
            )


_INSERT_COLUMNS = (
    "delivery_id, recipient_id, kind, subject_ref, channel, purpose, campaign_id, session_id, "
    "registration_id, offset_minutes, sequence, due_at, first_due_at"
)

_INVITE_SQL = f"""
INSERT INTO deliveries ({_INSERT_COLUMNS})
SELECT {_key_sql("su.recipient_id", "'invitation'", "s.session_id::text")},
       su.recipient_id, 'invitation', s.session_id::text, 'email', 'invitations',
       s.campaign_id, s.session_id, NULL, NULL, NULL, $1, $1
FROM sessions s
JOIN signups su ON su.campaign_id = s.campaign_id AND su.consent_invitations
WHERE s.status <> 'cancelled' AND s.starts_at > $1 AND s.kind = ANY($2::text[])
  AND (cardinality(s.audience) = 0 OR su.role = ANY(s.audience))
  AND NOT EXISTS (SELECT 1 FROM opt_outs o
                  WHERE o.recipient_id = su.recipient_id AND o.purpose = 'invitations')
  AND NOT EXISTS (SELECT 1 FROM registrations r
                  WHERE r.recipient_id = su.recipient_id AND r.session_id = s.session_id)
  AND {{where}}
ON CONFLICT DO NOTHING
"""

_REMINDERS_SQL = f"""
INSERT INTO deliveries ({_INSERT_COLUMNS})
SELECT {_key_sql("r.recipient_id", "'reminder'", "x.ref")},
       r.recipient_id, 'reminder', x.ref, 'email', 'reminders', s.campaign_id, s.session_id,
       r.registration_id, o.m, s.sequence, x.due_at, x.due_at
FROM registrations r
JOIN sessions s ON s.session_id = r.session_id
LEFT JOIN campaigns c ON c.campaign_id = s.campaign_id
CROSS JOIN LATERAL unnest(COALESCE(c.reminder_offsets_minutes, $2::int[])) AS o(m)
CROSS JOIN LATERAL (SELECT format('%s:%sm:s%s', r.registration_id, o.m, s.sequence) AS ref,
                           s.starts_at - make_interval(mins => o.m) AS due_at) x
WHERE r.status = 'confirmed' AND s.status <> 'cancelled'
  AND x.due_at > $1
  -- One reminder per offset per seat: after a move, what already went is not repeated
  -- (the update mail carried the new time); what was pending is planned at the new time.
  AND NOT EXISTS (SELECT 1 FROM deliveries p
                  WHERE p.registration_id = r.registration_id AND p.kind = 'reminder'
                    AND p.offset_minutes = o.m AND p.state IN ('sent', 'sending', 'unknown'))
  AND {{where}}
ON CONFLICT DO NOTHING
"""

_NOTIFY_SQL = f"""
INSERT INTO deliveries ({_INSERT_COLUMNS})
SELECT {_key_sql("r.recipient_id", "$2::text", "x.ref")},
       r.recipient_id, $2::text, x.ref, 'email', 'registration_updates', s.campaign_id,
       s.session_id, r.registration_id, NULL, $3::int, $5, $5
FROM registrations r
JOIN sessions s ON s.session_id = r.session_id
CROSS JOIN LATERAL (SELECT CASE WHEN $6 THEN format('%s:s%s', r.registration_id, $3::int)
                               ELSE r.registration_id::text END AS ref) x
WHERE r.session_id = $1 AND r.status = ANY($4::text[])
ON CONFLICT DO NOTHING
"""


def _lock_key(campaign_id: uuid.UUID) -> int:
    """A campaign's advisory lock key (int4; a collision only serializes two campaigns)."""
    return int.from_bytes(campaign_id.bytes[:4], "big", signed=True)


def _count(status: str) -> int:
    """Rows touched, from a command tag such as 'INSERT 0 12' or 'UPDATE 3'."""
    return int(status.split()[-1])


class SqlDeliveryPlanner:
    """Writes delivery intents in the consumer's transaction; fan-outs are one statement."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def plan(self, delivery: PlannedDelivery) -> bool:
        row = await self._conn.fetchrow(
            f"""
            INSERT INTO deliveries ({_INSERT_COLUMNS}, payload)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $11, $12)
            ON CONFLICT DO NOTHING
            RETURNING 1
            """,
            delivery_id(delivery.recipient_id, delivery.kind.value, delivery.subject_ref),
            delivery.recipient_id,
            delivery.kind.value,
            delivery.subject_ref,
            delivery.channel,
            PURPOSE_OF[delivery.kind].value,
            delivery.campaign_id,
            delivery.session_id,
            delivery.registration_id,
            delivery.sequence,
            delivery.due_at,
            delivery.payload,
        )
        return row is not None

    async def invite_audience(
        self, session_id: uuid.UUID, *, now: datetime, kinds: Sequence[str]
    ) -> int:
        status = await self._conn.execute(
            _INVITE_SQL.format(where="s.session_id = $3"), now, list(kinds), session_id
        )
        return _count(status)

    async def invite_to_upcoming(
        self,
        recipient_id: uuid.UUID,
        campaign_id: uuid.UUID,
        *,
        now: datetime,
        kinds: Sequence[str],
    ) -> int:
        status = await self._conn.execute(
            _INVITE_SQL.format(where="su.recipient_id = $3 AND su.campaign_id = $4"),
            now,
            list(kinds),
            recipient_id,
            campaign_id,
        )
        return _count(status)

    async def plan_reminders(
        self,
        *,
        now: datetime,
        session_id: uuid.UUID | None = None,
        registration_id: uuid.UUID | None = None,
        campaign_id: uuid.UUID | None = None,
    ) -> int:
        if registration_id is not None:
            where, value = "r.registration_id = $3", registration_id
        elif session_id is not None:
            where, value = "r.session_id = $3", session_id
        elif campaign_id is not None:
            where, value = "s.campaign_id = $3", campaign_id
        else:
            raise ValueError("plan reminders for a registration, a session or a campaign")
        status = await self._conn.execute(
            _REMINDERS_SQL.format(where=where),
            now,
            list(DEFAULT_REMINDER_OFFSETS_MINUTES),
            value,
        )
        return _count(status)

    async def drop_pending(
        self,
        *,
        reason: str,
        kinds: Sequence[DeliveryKind],
        session_id: uuid.UUID | None = None,
        registration_id: uuid.UUID | None = None,
        campaign_id: uuid.UUID | None = None,
    ) -> int:
        conditions = ["state = 'pending'", "kind = ANY($2::text[])"]
        args: list[Any] = [reason, [k.value for k in kinds]]
        for column, value in (
            ("session_id", session_id),
            ("registration_id", registration_id),
            ("campaign_id", campaign_id),
        ):
            if value is not None:
                args.append(value)
                conditions.append(f"{column} = ${len(args)}")
        if len(args) == 2:
            raise ValueError("drop deliveries of a session, a registration or a campaign")
        status = await self._conn.execute(
            f"UPDATE deliveries SET state = 'dropped', last_error = $1 "
            f"WHERE {' AND '.join(conditions)}",
            *args,
        )
        return _count(status)

    async def drop_unwanted_reminders(self, campaign_id: uuid.UUID) -> int:
        """Pending reminders at an offset the campaign no longer uses."""
        status = await self._conn.execute(
            """
            UPDATE deliveries d SET state = 'dropped', last_error = 'reminder_offset_removed'
            FROM campaigns c
            WHERE d.campaign_id = $1 AND c.campaign_id = d.campaign_id
              AND d.state = 'pending' AND d.kind = 'reminder'
              AND NOT (d.offset_minutes = ANY(c.reminder_offsets_minutes))
            """,
            campaign_id,
        )
        return _count(status)

    async def notify_registrants(
        self,
        session_id: uuid.UUID,
        *,
        kind: DeliveryKind,
        sequence: int,
        statuses: Sequence[str],
        now: datetime,
    ) -> int:
        status = await self._conn.execute(
            _NOTIFY_SQL,
            session_id,
            kind.value,
            sequence,
            list(statuses),
            now,
            kind == DeliveryKind.RESCHEDULED,
        )
        return _count(status)

    async def plan_webhook(
        self, partner_id: uuid.UUID, *, event_id: uuid.UUID, body: dict[str, Any], now: datetime
    ) -> bool:
        row = await self._conn.fetchrow(
            f"""
            INSERT INTO deliveries ({_INSERT_COLUMNS}, payload)
            SELECT {_key_sql("$1::uuid", "'webhook'", "$2::text")}, $1, 'webhook', $2::text,
                   'webhook', 'partner_webhooks', NULL, NULL, NULL, NULL, NULL, $4, $4, $3
            FROM webhook_endpoints WHERE partner_id = $1 AND active
            ON CONFLICT DO NOTHING
            RETURNING 1
            """,
            partner_id,
            str(event_id),
            body,
            now,
        )
        return row is not None


_ERASURE_LOCK = 7_311_003  # shared by outcome batches, exclusive for erasures
_CAMPAIGN_LOCK_SPACE = 7_311_004  # advisory lock keys: (space, hash of the campaign id)


class ConnectionUnitOfWork:
    """The repositories bound to one connection whose transaction the caller owns (the consumer
    runner's batch transaction, or an HTTP request's)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.catalog: CatalogReadModel = SqlCatalogReadModel(conn)
        self.people: PeopleRepository = SqlPeopleRepository(conn)
        self.deliveries: DeliveryPlanner = SqlDeliveryPlanner(conn)

    async def hold(self, locks: PlanningLocks) -> None:
        # Always the erasure lock first, then campaigns in sorted order: no two batches can
        # wait on each other in a cycle. Transaction-scoped: released at commit or rollback.
        if locks.erasure == "exclusive":
            await self.conn.execute("SELECT pg_advisory_xact_lock($1)", _ERASURE_LOCK)
        elif locks.erasure == "shared":
            await self.conn.execute("SELECT pg_advisory_xact_lock_shared($1)", _ERASURE_LOCK)
        if locks.campaigns:
            await self.conn.execute(
                """
                SELECT count(pg_advisory_xact_lock($1, k))
                FROM unnest($2::int[]) WITH ORDINALITY AS u(k, n)
                """,
                _CAMPAIGN_LOCK_SPACE,
                sorted({_lock_key(c) for c in locks.campaigns}),
            )


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        delivery_id=row["delivery_id"],
        recipient_id=row["recipient_id"],
        kind=DeliveryKind(row["kind"]),
        subject_ref=row["subject_ref"],
        channel=row["channel"],
        purpose=Purpose(row["purpose"]),
        attempts=row["attempts"],
        campaign_id=row["campaign_id"],
        session_id=row["session_id"],
        registration_id=row["registration_id"],
        offset_minutes=row["offset_minutes"],
        sequence=row["sequence"],
        payload=row["payload"],
    )


# A registration's mails go out one at a time, in the order they were planned: a due mail of a
# registration is held while an earlier one (by `first_due_at`, then `ordinal`: a retry keeps its
# place) is still pending, or while any is `sending` or `unknown`. Safe with several claimers:
# the earlier mail is visible as pending or `sending` in every snapshot (a row locked by
# another claimer is still pending in ours), and the states only move on to settled ones.
# The probe reads `deliveries_registration_open` (open mails only, a few per registration).
# The read models a mail needs are looked up one due row at a time, by primary key, as scalar
# subqueries (a missing row is NULL: not claimed yet). Written as EXISTS, PostgreSQL may turn
# them into "hashed SubPlans", which read the whole recipients table on every claim: 2.6 ms at
# 40,000 recipients, growing with every person signed up.
_CLAIM_SQL = """
WITH due AS (
    SELECT d.delivery_id FROM deliveries d
    WHERE d.state = 'pending' AND d.due_at <= $1
      AND CASE d.channel
          WHEN 'email' THEN
              (SELECT true FROM recipients r WHERE r.recipient_id = d.recipient_id)
              AND (SELECT true FROM campaigns c WHERE c.campaign_id = d.campaign_id)
              AND (d.session_id IS NULL
                   OR (SELECT true FROM sessions s WHERE s.session_id = d.session_id))
          ELSE
              (SELECT true FROM webhook_endpoints w
               WHERE w.partner_id = d.recipient_id AND w.active LIMIT 1)
          END
      AND (d.registration_id IS NULL OR NOT EXISTS (
          SELECT 1 FROM deliveries e
          WHERE e.registration_id = d.registration_id AND e.registration_id IS NOT NULL
            AND e.state IN ('pending', 'sending', 'unknown')
            AND (e.state <> 'pending'
                 OR (e.first_due_at, e.ordinal) < (d.first_due_at, d.ordinal))))
    ORDER BY d.due_at
    LIMIT $2
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries d
SET state = 'sending', attempts = d.attempts + 1, claimed_at = $1
FROM due WHERE d.delivery_id = due.delivery_id
RETURNING d.*
"""


# A batch's outcomes. Only a `sending` row moves (an `unknown` one may also become `sent`, when
# the reconciler learns it arrived): a row erased, or settled by someone else meanwhile, is not
# touched and gets no event. `sent`, `failed` and `dropped` are final (`finished_at`); a retry
# is `pending` again at its new `due_at` (its place in its registration's order is kept:
# `first_due_at` does not move); `unknown` keeps `claimed_at` for the in-doubt policy.
_SETTLE_SQL = """
UPDATE deliveries d
SET state = u.state,
    last_error = u.reason,
    finished_at = CASE WHEN u.state IN ('sent', 'failed', 'dropped') THEN $5
                       ELSE d.finished_at END,
    due_at = COALESCE(u.due_at, d.due_at),
    claimed_at = CASE WHEN u.state = 'pending' THEN NULL ELSE d.claimed_at END
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) AS u(id, state, reason, due_at)
WHERE d.delivery_id = u.id
  AND (d.state = 'sending' OR (d.state = 'unknown' AND u.state = 'sent'))
RETURNING d.delivery_id
"""


class SqlDeliveryLedger:
    """The ledger seen by senders: claims with FOR UPDATE SKIP LOCKED, outcomes with their
    `NotificationSentV1`/`NotificationFailedV1` in the same transaction (the outbox)."""

    def __init__(self, pool: asyncpg.Pool, outbox: Outbox) -> None:
        self._pool = pool
        self._outbox = outbox

    async def claim_due(self, *, now: datetime, limit: int) -> list[ClaimedWork]:
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                rows = await conn.fetch(_CLAIM_SQL, now, limit)
            if not rows:
                return []
            deliveries = [_delivery(r) for r in rows]
            return await self._with_context(conn, deliveries)

    async def _with_context(
        self, conn: Connection, deliveries: list[Delivery]
    ) -> list[ClaimedWork]:
        email = [d for d in deliveries if d.channel == "email"]
        hooks = [d for d in deliveries if d.channel == "webhook"]
        people = list({d.recipient_id for d in email})
        campaigns_ids = list({d.campaign_id for d in email if d.campaign_id})
        session_ids = list({d.session_id for d in email if d.session_id})
        registration_ids = list({d.registration_id for d in email if d.registration_id})
        recipients = {
            r["recipient_id"]: RecipientView(
                recipient_id=r["recipient_id"],
                email=r["email"],
                name=r["name"],
                role=r["role"],
                locale=r["locale"],
                time_zone=r["time_zone"],
            )
            for r in await conn.fetch(
                "SELECT * FROM recipients WHERE recipient_id = ANY($1::uuid[])", people
            )
        }
        opt_outs: dict[uuid.UUID, set[str]] = {}
        for r in await conn.fetch(
            "SELECT recipient_id, purpose FROM opt_outs WHERE recipient_id = ANY($1::uuid[])",
            people,
        ):
            opt_outs.setdefault(r["recipient_id"], set()).add(r["purpose"])
        focus: dict[uuid.UUID, list[FocusDayView]] = {}
        for r in await conn.fetch(
            "SELECT * FROM focus_days WHERE campaign_id = ANY($1::uuid[]) ORDER BY day, title",
            campaigns_ids,
        ):
            focus.setdefault(r["campaign_id"], []).append(
                FocusDayView(day=r["day"], title=r["title"], description=r["description"])
            )
        resources: dict[uuid.UUID, list[ResourceView]] = {}
        for r in await conn.fetch(
            "SELECT * FROM resources WHERE campaign_id = ANY($1::uuid[]) ORDER BY title",
            campaigns_ids,
        ):
            resources.setdefault(r["campaign_id"], []).append(
                ResourceView(
                    kind=r["kind"],
                    title=r["title"],
                    url=r["url"],
                    audience=tuple(r["audience"]),
                    locale=r["locale"],
                )
            )
        campaigns = {
            r["campaign_id"]: CampaignView(
                campaign_id=r["campaign_id"],
                name=r["name"],
                description=r["description"],
                starts_on=r["starts_on"],
                ends_on=r["ends_on"],
                time_zone=r["time_zone"],
                discreet=r["discreet"],
                focus_days=tuple(focus.get(r["campaign_id"], ())),
                resources=tuple(resources.get(r["campaign_id"], ())),
            )
            for r in await conn.fetch(
                "SELECT * FROM campaigns WHERE campaign_id = ANY($1::uuid[])", campaigns_ids
            )
        }
        sessions = {
            r["session_id"]: SessionView(
                session_id=r["session_id"],
                campaign_id=r["campaign_id"],
                kind=r["kind"],
                title=r["title"],
                description=r["description"],
                starts_at=r["starts_at"],
                ends_at=r["ends_at"],
                time_zone=r["time_zone"],
                display_time_zones=tuple(r["display_time_zones"]),
                audience=tuple(r["audience"]),
                join_url=r["join_url"],
                status=r["status"],
                sequence=r["sequence"],
            )
            for r in await conn.fetch(
                "SELECT * FROM sessions WHERE session_id = ANY($1::uuid[])", session_ids
            )
        }
        registrations = {
            r["registration_id"]: RegistrationView(
                registration_id=r["registration_id"],
                status=r["status"],
                waitlist_position=r["waitlist_position"],
            )
            for r in await conn.fetch(
                "SELECT * FROM registrations WHERE registration_id = ANY($1::uuid[])",
                registration_ids,
            )
        }
        targets = {
            r["partner_id"]: WebhookTarget(url=r["url"], secret=r["signing_secret"])
            for r in await conn.fetch(
                "SELECT * FROM webhook_endpoints WHERE partner_id = ANY($1::uuid[]) AND active",
                list({d.recipient_id for d in hooks}),
            )
        }
        work: list[ClaimedWork] = []
        for d in deliveries:
            if d.channel == "webhook":
                work.append(ClaimedWork(delivery=d, webhook=targets.get(d.recipient_id)))
                continue
            recipient = recipients.get(d.recipient_id)
            campaign = campaigns.get(d.campaign_id) if d.campaign_id else None
            if recipient is None or campaign is None:
                work.append(ClaimedWork(delivery=d))  # erased meanwhile: dropped by the sender
                continue
            work.append(
                ClaimedWork(
                    delivery=d,
                    context=MessageContext(
                        delivery=d,
                        recipient=recipient,
                        campaign=campaign,
                        session=sessions.get(d.session_id) if d.session_id else None,
                        registration=(
                            registrations.get(d.registration_id) if d.registration_id else None
                        ),
                        opted_out=frozenset(opt_outs.get(d.recipient_id, ())),
                    ),
                )
            )
        return work

    async def settle(self, settlements: Sequence[Settlement], *, now: datetime) -> set[uuid.UUID]:
        """A batch's outcomes in one statement and their events in one outbox insert, in one
        transaction (four round trips for the batch, instead of five per mail)."""
        if not settlements:
            return set()
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                _SETTLE_SQL,
                [s.delivery.delivery_id for s in settlements],
                [s.state for s in settlements],
                [s.reason for s in settlements],
                [s.due_at for s in settlements],
                now,
            )
            settled = {r["delivery_id"] for r in rows}
            events = [
                s.event
                for s in settlements
                if s.event is not None and s.delivery.delivery_id in settled
            ]
            if events:
                await self._outbox.add(conn, events)
        return settled

    async def _settle_one(self, settlement: Settlement, *, now: datetime) -> bool:
        return settlement.delivery.delivery_id in await self.settle([settlement], now=now)

    async def record_sent(self, delivery: Delivery, *, now: datetime, event: Event | None) -> bool:
        return await self._settle_one(Settlement(delivery, "sent", event=event), now=now)

    async def record_failed(
        self, delivery: Delivery, *, now: datetime, reason: str, event: Event | None
    ) -> bool:
        return await self._settle_one(
            Settlement(delivery, "failed", reason=reason, event=event), now=now
        )

    async def record_retry(
        self, delivery: Delivery, *, now: datetime, due_at: datetime, reason: str
    ) -> bool:
        return await self._settle_one(
            Settlement(delivery, "pending", reason=reason, due_at=due_at), now=now
        )

    async def record_unknown(self, delivery: Delivery, *, now: datetime, reason: str) -> bool:
        return await self._settle_one(Settlement(delivery, "unknown", reason=reason), now=now)

    async def record_dropped(self, delivery: Delivery, *, now: datetime, reason: str) -> bool:
        return await self._settle_one(Settlement(delivery, "dropped", reason=reason), now=now)

    async def mark_stuck_unknown(self, *, claimed_before: datetime) -> int:
        async with self._pool.acquire() as conn:
            status = await conn.execute(
                """
                UPDATE deliveries SET state = 'unknown', last_error = 'sender_lease_expired'
                WHERE state = 'sending' AND claimed_at < $1
                """,
                claimed_before,
            )
        return _count(status)

    async def in_doubt(self, *, limit: int) -> list[Delivery]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM deliveries WHERE state = 'unknown' ORDER BY claimed_at LIMIT $1",
                limit,
            )
        return [_delivery(r) for r in rows]

    async def requeue(self, delivery: Delivery, *, now: datetime) -> bool:
        async with self._pool.acquire() as conn:
            status = await conn.execute(
                """
                UPDATE deliveries SET state = 'pending', due_at = $2, claimed_at = NULL
                WHERE delivery_id = $1 AND state = 'unknown'
                """,
                delivery.delivery_id,
                now,
            )
        return _count(status) == 1

    async def queue_depth(self, *, now: datetime) -> dict[str, int]:
        """Counts for metrics: due now, waiting (later or for contact), in flight, in doubt."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                """
                SELECT count(*) FILTER (WHERE state = 'pending' AND due_at <= $1) AS due,
                       count(*) FILTER (WHERE state = 'pending' AND due_at > $1) AS scheduled,
                       count(*) FILTER (WHERE state = 'sending') AS sending,
                       count(*) FILTER (WHERE state = 'unknown') AS unknown
                FROM deliveries WHERE state IN ('pending', 'sending', 'unknown')
                """,
                now,
            )
        assert row is not None
        return {key: int(row[key]) for key in ("due", "scheduled", "sending", "unknown")}
