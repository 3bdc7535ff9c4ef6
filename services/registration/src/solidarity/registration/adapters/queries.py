"""Read-only views for partners: a submission's status, and anonymous campaign statistics."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from solidarity.registration.adapters.repository import SqlRepository
from solidarity.shared.db.pool import Connection


async def submission_status(
    conn: Connection, partner_id: uuid.UUID, submission_id: str
) -> dict[str, Any] | None:
    """Where a partner's submission stands now: pending, or its outcome with current statuses."""
    repo = SqlRepository(conn)
    record = await repo.submission(partner_id, submission_id)
    if record is None:
        if await repo.pending_intake(partner_id, submission_id):
            return {"submission_id": submission_id, "state": "pending"}
        return None
    current = {
        r.registration_id: r
        for r in await repo.registrations(
            [i.registration_id for i in record.outcome if i.registration_id is not None]
        )
    }
    signup: dict[str, Any] | None = None
    sessions: list[dict[str, Any]] = []
    rejections: list[dict[str, Any]] = []
    for item in record.outcome:
        if item.kind == "signup":
            signup = {"signup_id": str(item.signup_id), "status": "confirmed"}
            if item.duplicate:
                signup["duplicate"] = True
        elif item.kind == "session" and item.registration_id is not None:
            now = current.get(item.registration_id)
            entry: dict[str, Any] = {
                "session_id": str(item.session_id),
                "registration_id": str(item.registration_id),
                "status": now.status.value if now else item.status,
            }
            if now is not None and now.position is not None:
                entry["position"] = now.position
            if item.duplicate:
                entry["duplicate"] = True
            sessions.append(entry)
        elif item.kind == "rejected":
            rejection: dict[str, Any] = {"reason": item.reason}
            if item.session_id is not None:
                rejection["session_id"] = str(item.session_id)
            if item.detail:
                rejection["detail"] = item.detail
            rejections.append(rejection)
    return {
        "submission_id": submission_id,
        "state": record.status.value,
        "registrant_id": str(record.registrant_id) if record.registrant_id else None,
        "campaign_id": str(record.campaign_id) if record.campaign_id else None,
        "signup": signup,
        "sessions": sessions,
        "rejections": rejections,
    }


async def campaign_stats(conn: Connection, slug: str) -> dict[str, Any] | None:
    """Counts for one campaign, by focus day, session, school and role: never a person."""
    campaign_id = await conn.fetchval(
        "SELECT campaign_id FROM campaigns WHERE slug = $1 ORDER BY revision DESC LIMIT 1", slug
    )
    if campaign_id is None:
        return None
    signups = await conn.fetch(
        "SELECT role, coalesce(school, '') AS school, count(*) AS n FROM signups "
        "WHERE campaign_id = $1 GROUP BY role, school",
        campaign_id,
    )
    registrations = await conn.fetch(
        """
        SELECT r.session_id, r.focus_day_id, f.day, r.role, coalesce(r.school, '') AS school,
               r.status, count(*) AS n
        FROM registrations r LEFT JOIN focus_days f USING (focus_day_id)
        WHERE r.campaign_id = $1
        GROUP BY r.session_id, r.focus_day_id, f.day, r.role, r.school, r.status
        """,
        campaign_id,
    )
    seats = await conn.fetch(
        "SELECT session_id, capacity, confirmed, waitlisted FROM sessions WHERE campaign_id = $1",
        campaign_id,
    )

    def tally() -> dict[str, int]:
        return defaultdict(int)

    signup_roles, signup_schools = tally(), tally()
    for row in signups:
        signup_roles[row["role"]] += row["n"]
        signup_schools[row["school"] or "unspecified"] += row["n"]
    by_status, by_role, by_school = tally(), tally(), tally()
    by_focus_day: dict[str, dict[str, int]] = defaultdict(tally)
    by_session: dict[str, dict[str, Any]] = {}
    for row in seats:
        by_session[str(row["session_id"])] = {
            "capacity": row["capacity"],
            "confirmed": row["confirmed"],
            "waitlisted": row["waitlisted"],
            "cancelled": 0,
        }
    for row in registrations:
        status, n = row["status"], row["n"]
        by_status[status] += n
        by_role[row["role"]] += n
        by_school[row["school"] or "unspecified"] += n
        day = str(row["day"]) if row["day"] is not None else "none"
        by_focus_day[day][status] += n
        session = by_session.setdefault(
            str(row["session_id"]),
            {"capacity": None, "confirmed": 0, "waitlisted": 0, "cancelled": 0},
        )
        if status == "cancelled":
            session["cancelled"] += n
    return {
        "campaign": slug,
        "campaign_id": str(campaign_id),
        "signups": {
            "total": sum(signup_roles.values()),
            "by_role": dict(signup_roles),
            "by_school": dict(signup_schools),
        },
        "registrations": {
            "by_status": dict(by_status),
            "by_role": dict(by_role),
            "by_school": dict(by_school),
            "by_focus_day": {k: dict(v) for k, v in by_focus_day.items()},
            "by_session": by_session,
        },
    }
