"""Session times as people read them: "2:00 PM PT / 5:00 PM ET", in English or Spanish."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

SUPPORTED_LOCALES = ("en", "es")

# Generic names people use for zones that change with daylight saving ("PT", not "PDT").
_GENERIC_ZONE_NAMES = {
    "America/Los_Angeles": "PT",
    "America/Vancouver": "PT",
    "America/Tijuana": "PT",
    "America/Denver": "MT",
    "America/Boise": "MT",
    "America/Edmonton": "MT",
    "America/Phoenix": "MST",
    "America/Chicago": "CT",
    "America/Winnipeg": "CT",
    "America/New_York": "ET",
    "America/Detroit": "ET",
    "America/Toronto": "ET",
    "America/Indiana/Indianapolis": "ET",
    "America/Anchorage": "AKT",
    "Pacific/Honolulu": "HT",
    "America/Puerto_Rico": "AT",
    "America/Halifax": "AT",
}

_MONTHS = {
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    "es": [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
}
DASH = "\u2013"  # an en dash between the ends of a range

_WEEKDAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "es": ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"],
}


def base_locale(locale: str | None) -> str:
    """'es-MX' -> 'es'; anything unsupported -> 'en'."""
    language = (locale or "en").split("-")[0].split("_")[0].lower()
    return language if language in SUPPORTED_LOCALES else "en"


def zone_label(zone: str, at: datetime) -> str:
    """A short name for a zone at an instant: generic for North American zones, else the
    abbreviation the zone database gives, else UTC±hh."""
    if zone in _GENERIC_ZONE_NAMES:
        return _GENERIC_ZONE_NAMES[zone]
    name = at.astimezone(ZoneInfo(zone)).tzname() or ""
    if name and name[0] in "+-":
        return f"UTC{name}"
    return name or zone


def clock_time(local: datetime, locale: str) -> str:
    """'2:00 PM' in English, '14:00' in Spanish."""
    if base_locale(locale) == "es":
        return f"{local.hour:02d}:{local.minute:02d}"
    hour = local.hour % 12 or 12
    return f"{hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def long_date(day: date, locale: str) -> str:
    """'Tuesday, November 7, 2023' / 'martes, 7 de noviembre de 2023'."""
    language = base_locale(locale)
    weekday = _WEEKDAYS[language][day.weekday()]
    month = _MONTHS[language][day.month - 1]
    if language == "es":
        return f"{weekday}, {day.day} de {month} de {day.year}"
    return f"{weekday}, {month} {day.day}, {day.year}"


def short_date(day: date, locale: str) -> str:
    """'Tue Nov 7' / 'mar 7 nov'."""
    language = base_locale(locale)
    weekday = _WEEKDAYS[language][day.weekday()][:3]
    month = _MONTHS[language][day.month - 1][:3]
    if language == "es":
        return f"{weekday} {day.day} {month}"
    return f"{weekday} {month} {day.day}"


@dataclass(frozen=True, slots=True)
class SessionTimes:
    """A session's start as a message shows it."""

    date_line: str  # the date in the session's first display zone
    zones_line: str  # "2:00 PM PT / 5:00 PM ET"
    personal_line: str | None  # the time in the reader's own zone, when it is not shown already


def display_zones(time_zone: str, display_time_zones: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(display_time_zones)) or (time_zone,)


def session_times(
    starts_at: datetime,
    *,
    time_zone: str,
    display_time_zones: tuple[str, ...] = (),
    reader_zone: str | None = None,
    locale: str = "en",
) -> SessionTimes:
    """The start in the session's display zones and, if different, in the reader's zone."""
    zones = display_zones(time_zone, display_time_zones)
    locals_ = [(zone, starts_at.astimezone(ZoneInfo(zone))) for zone in zones]
    several_days = len({local.date() for _, local in locals_}) > 1
    parts = []
    for zone, local in locals_:
        day = f"{short_date(local.date(), locale)} " if several_days else ""
        parts.append(f"{day}{clock_time(local, locale)} {zone_label(zone, starts_at)}")
    personal: str | None = None
    if reader_zone and reader_zone not in zones:
        mine = starts_at.astimezone(ZoneInfo(reader_zone))
        shown_offsets = {local.utcoffset() for _, local in locals_}
        if mine.utcoffset() not in shown_offsets or several_days:
            personal = (
                f"{clock_time(mine, locale)} {zone_label(reader_zone, starts_at)}, "
                f"{long_date(mine.date(), locale)}"
            )
    return SessionTimes(
        date_line=long_date(locals_[0][1].date(), locale),
        zones_line=" / ".join(parts),
        personal_line=personal,
    )


def date_range(start: date, end: date, locale: str) -> str:
    """'November 6-10, 2023' / '6-10 de noviembre de 2023', with an en dash."""
    language = base_locale(locale)
    months = _MONTHS[language]
    if start == end:
        return long_date(start, locale)
    if language == "es":
        if (start.year, start.month) == (end.year, end.month):
            return f"{start.day}{DASH}{end.day} de {months[end.month - 1]} de {end.year}"
        if start.year == end.year:
            return (
                f"{start.day} de {months[start.month - 1]} {DASH} "
                f"{end.day} de {months[end.month - 1]} de {end.year}"
            )
        return f"{long_date(start, locale)} {DASH} {long_date(end, locale)}"
    if (start.year, start.month) == (end.year, end.month):
        return f"{months[start.month - 1]} {start.day}{DASH}{end.day}, {end.year}"
    if start.year == end.year:
        first, last = months[start.month - 1], months[end.month - 1]
        return f"{first} {start.day} {DASH} {last} {end.day}, {end.year}"
    return f"{long_date(start, locale)} {DASH} {long_date(end, locale)}"


def lead_time(minutes: int, locale: str) -> str:
    """How long before the start a reminder goes: 'in 24 hours' / 'en 1 hora'."""
    spanish = base_locale(locale) == "es"
    if minutes % 60:
        unit = ("minuto", "minutos") if spanish else ("minute", "minutes")
        count = minutes
    elif minutes >= 48 * 60 and minutes % (24 * 60) == 0:
        unit = ("día", "días") if spanish else ("day", "days")
        count = minutes // (24 * 60)
    else:
        unit = ("hora", "horas") if spanish else ("hour", "hours")
        count = minutes // 60
    word = unit[0] if count == 1 else unit[1]
    return f"{'en' if spanish else 'in'} {count} {word}"
