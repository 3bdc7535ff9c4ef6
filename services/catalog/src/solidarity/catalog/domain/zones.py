"""Time zones and the "2 pm PT / 5 pm ET" labels people expect to read."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from solidarity.catalog.domain.errors import InvalidError

# What organizers write for the zones people know by a generic name (seed 004: "2 pm PT / 5 pm ET").
GENERIC_ABBREVIATIONS = {
    "America/Los_Angeles": "PT",
    "America/Denver": "MT",
    "America/Phoenix": "MT",
    "America/Chicago": "CT",
    "America/New_York": "ET",
    "America/Anchorage": "AKT",
    "Pacific/Honolulu": "HT",
}


def zone(name: str) -> ZoneInfo:
    """The IANA zone with this name; an unknown name is an input error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise InvalidError("unknown_time_zone", f"unknown IANA time zone: {name!r}") from exc


def localize(value: datetime, zone_name: str) -> datetime:
    """An aware datetime: a naive one is read as wall-clock time in the zone."""
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value
    return value.replace(tzinfo=zone(zone_name))


def clock_label(instant: datetime, zone_name: str) -> str:
    """'2 pm PT', '12:30 pm ET', '9 am CET'."""
    local = instant.astimezone(zone(zone_name))
    hour = local.hour % 12 or 12
    minutes = f":{local.minute:02d}" if local.minute else ""
    meridiem = "am" if local.hour < 12 else "pm"
    abbreviation = GENERIC_ABBREVIATIONS.get(zone_name) or local.tzname() or zone_name
    return f"{hour}{minutes} {meridiem} {abbreviation}"


def display_label(instant: datetime, zone_names: Iterable[str]) -> str:
    """The start time in every display zone: '2 pm PT / 5 pm ET'."""
    return " / ".join(clock_label(instant, name) for name in zone_names)
