"""Calendar invites (.ics, iTIP): REQUEST for a seat, CANCEL when it is gone, with VTIMEZONE."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import icalendar

PRODID = "-//Solidarity Week//Notifications//EN"


def session_invite(
    *,
    method: str,
    uid: str,
    sequence: int,
    summary: str,
    description: str,
    starts_at: datetime,
    ends_at: datetime,
    time_zone: str,
    organizer_email: str,
    attendee_email: str,
    stamp: datetime,
    url: str | None = None,
) -> bytes:
    """One VEVENT in the session's own zone (DTSTART;TZID=...), its VTIMEZONE included."""
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"unsupported calendar method {method}")
    zone = ZoneInfo(time_zone)
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", starts_at.astimezone(zone))
    event.add("dtend", ends_at.astimezone(zone))
    event.add("summary", summary)
    if description:
        event.add("description", description)
    if url:
        event.add("url", url)
        event.add("location", url)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    organizer = icalendar.vCalAddress(f"mailto:{organizer_email}")
    event.add("organizer", organizer)
    attendee = icalendar.vCalAddress(f"mailto:{attendee_email}")
    attendee.params["ROLE"] = icalendar.vText("REQ-PARTICIPANT")
    attendee.params["RSVP"] = icalendar.vText("FALSE")
    event.add("attendee", attendee)
    # A VTIMEZONE with the transitions around the session only (not 1970-2038): small, and
    # enough for any client to place the start and the end.
    calendar.add_component(
        icalendar.Timezone.from_tzid(
            time_zone,
            first_date=date(starts_at.year - 1, 1, 1),
            last_date=date(ends_at.year + 1, 12, 31),
        )
    )
    calendar.add_component(event)
    return bytes(calendar.to_ical())
