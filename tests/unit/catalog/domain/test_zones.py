"""Time zone names and the "2 pm PT / 5 pm ET" labels of seed 004."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from solidarity.catalog.domain.errors import InvalidError
from solidarity.catalog.domain.zones import clock_label, display_label, localize, zone

pytestmark = pytest.mark.unit

PT_ET = ("America/Los_Angeles", "America/New_York")


@pytest.mark.parametrize(
    ("instant", "label"),
    [
        # SolidarityIs' 2024 State of Solidarity series, as the seed prints it.
        (datetime(2024, 4, 30, 21, 0, tzinfo=UTC), "2 pm PT / 5 pm ET"),
        (datetime(2024, 9, 26, 19, 0, tzinfo=UTC), "12 pm PT / 3 pm ET"),
        (datetime(2024, 11, 14, 17, 0, tzinfo=UTC), "9 am PT / 12 pm ET"),  # after DST ends
    ],
)
def test_the_seed_times_read_as_the_seed_prints_them(instant: datetime, label: str) -> None:
    assert display_label(instant, PT_ET) == label


def test_minutes_and_other_zones() -> None:
    instant = datetime(2023, 11, 6, 23, 30, tzinfo=UTC)
    assert clock_label(instant, "America/Chicago") == "5:30 pm CT"
    assert clock_label(instant, "Europe/Berlin") == "12:30 am CET"


def test_unknown_zones_are_input_errors() -> None:
    for name in ("Mars/Olympus", "", "../../etc/passwd"):
        with pytest.raises(InvalidError) as excinfo:
            zone(name)
        assert excinfo.value.code == "unknown_time_zone"


def test_localize_reads_naive_times_as_wall_clock_and_keeps_aware_ones() -> None:
    naive = localize(datetime(2024, 4, 30, 14, 0), "America/Los_Angeles")
    assert naive.astimezone(UTC) == datetime(2024, 4, 30, 21, 0, tzinfo=UTC)
    aware = datetime(2024, 4, 30, 21, 0, tzinfo=UTC)
    assert localize(aware, "America/New_York") is aware
