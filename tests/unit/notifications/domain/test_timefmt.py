"""Times as people read them: display zones, the reader's own zone, English and Spanish."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from solidarity.notifications.domain.timefmt import (
    base_locale,
    date_range,
    lead_time,
    session_times,
    zone_label,
)

pytestmark = pytest.mark.unit

# Tuesday, November 7, 2023, 22:00 UTC: 2 PM in Los Angeles, 5 PM in New York.
START = datetime(2023, 11, 7, 22, 0, tzinfo=UTC)
PT_ET = ("America/Los_Angeles", "America/New_York")


def test_display_zones_read_like_the_campaign_writes_them() -> None:
    times = session_times(START, time_zone="America/New_York", display_time_zones=PT_ET)

    assert times.zones_line == "2:00 PM PT / 5:00 PM ET"
    assert times.date_line == "Tuesday, November 7, 2023"
    assert times.personal_line is None


def test_the_readers_own_zone_is_added_when_not_shown_already() -> None:
    madrid = session_times(
        START, time_zone="America/New_York", display_time_zones=PT_ET, reader_zone="Europe/Madrid"
    )
    in_la = session_times(
        START,
        time_zone="America/New_York",
        display_time_zones=PT_ET,
        reader_zone="America/Los_Angeles",
    )

    assert madrid.personal_line == "11:00 PM CET, Tuesday, November 7, 2023"
    assert in_la.personal_line is None


def test_spanish_uses_a_24_hour_clock_and_spanish_dates() -> None:
    times = session_times(
        START,
        time_zone="America/New_York",
        display_time_zones=PT_ET,
        reader_zone="America/Mexico_City",
        locale="es-MX",
    )

    assert times.zones_line == "14:00 PT / 17:00 ET"
    assert times.date_line == "martes, 7 de noviembre de 2023"
    assert times.personal_line == "16:00 CST, martes, 7 de noviembre de 2023"


def test_each_zone_shows_its_day_when_the_days_differ() -> None:
    late = datetime(2023, 11, 8, 7, 0, tzinfo=UTC)  # 11 PM in LA, 2 AM next day in NY

    times = session_times(late, time_zone="America/New_York", display_time_zones=PT_ET)

    assert times.zones_line == "Tue Nov 7 11:00 PM PT / Wed Nov 8 2:00 AM ET"


def test_without_display_zones_the_session_zone_is_shown() -> None:
    times = session_times(START, time_zone="America/Chicago")

    assert times.zones_line == "4:00 PM CT"


def test_zone_labels_fall_back_to_the_zone_database_then_to_utc_offsets() -> None:
    assert zone_label("Europe/Berlin", START) == "CET"
    assert zone_label("Asia/Riyadh", START) == "UTC+03"
    assert zone_label("America/Phoenix", START) == "MST"


@pytest.mark.parametrize(
    ("minutes", "locale", "expected"),
    [
        (1440, "en", "in 24 hours"),
        (60, "en", "in 1 hour"),
        (30, "en", "in 30 minutes"),
        (2880, "en", "in 2 days"),
        (60, "es", "en 1 hora"),
        (1440, "es", "en 24 horas"),
    ],
)
def test_lead_times(minutes: int, locale: str, expected: str) -> None:
    assert lead_time(minutes, locale) == expected


def test_date_ranges() -> None:
    assert date_range(date(2023, 11, 6), date(2023, 11, 10), "en") == "November 6\u201310, 2023"
    assert (
        date_range(date(2023, 11, 6), date(2023, 11, 10), "es") == "6\u201310 de noviembre de 2023"
    )
    assert date_range(date(2020, 3, 30), date(2020, 4, 3), "en") == "March 30 \u2013 April 3, 2020"


def test_unsupported_locales_fall_back_to_english() -> None:
    assert base_locale("fr-FR") == "en"
    assert base_locale("es_ES") == "es"
    assert base_locale(None) == "en"
