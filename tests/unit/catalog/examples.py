"""Example catalog data for tests, from the seeds: GLSEN's week and SolidarityIs' series."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

from solidarity.catalog.domain.model import (
    Campaign,
    CampaignDetails,
    FocusDay,
    FocusDayDetails,
    OrganizationDetails,
    ResourceDetails,
    SessionDetails,
)
from solidarity.shared.contracts.events.common import OrganizationKind, Role, SessionKind

NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def glsen() -> OrganizationDetails:
    return OrganizationDetails(
        kind=OrganizationKind.NONPROFIT,
        name="GLSEN",
        time_zone="America/New_York",
        region="United States",
    )


def solidarity_week(**overrides: object) -> CampaignDetails:
    values: dict[str, object] = {
        "slug": "glsen-solidarity-week-2023",
        "name": "Solidarity Week",
        "starts_on": date(2023, 11, 6),
        "ends_on": date(2023, 11, 10),
        "time_zone": "America/New_York",
    }
    values.update(overrides)
    return CampaignDetails(**values)  # type: ignore[arg-type]


def draft_campaign(**overrides: object) -> Campaign:
    return Campaign.create(uuid.uuid4(), solidarity_week(**overrides))


def published_campaign(**overrides: object) -> Campaign:
    campaign = draft_campaign(**overrides)
    campaign.publish()
    return campaign


def black_lgbtq_day(campaign: Campaign) -> FocusDay:
    day, _ = FocusDay.add(
        uuid.uuid4(),
        campaign,
        FocusDayDetails(date=date(2023, 11, 6), title="Black LGBTQ+ Focus Day"),
    )
    return day


def webinar(**overrides: object) -> SessionDetails:
    values: dict[str, object] = {
        "kind": SessionKind.WEBINAR,
        "title": "Black LGBTQ+ Focus Day webinar",
        "starts_at": datetime(2023, 11, 6, 19, 0, tzinfo=NEW_YORK),
        "ends_at": datetime(2023, 11, 6, 20, 0, tzinfo=NEW_YORK),
        "time_zone": "America/New_York",
        "display_time_zones": ("America/Los_Angeles", "America/New_York"),
        "capacity": 100,
        "audience": (Role.STUDENT, Role.EDUCATOR),
        "join_url": "https://example.org/join/black-lgbtq",
    }
    values.update(overrides)
    return SessionDetails(**values)  # type: ignore[arg-type]


def student_guide(**overrides: object) -> ResourceDetails:
    values: dict[str, object] = {
        "kind": "guide",
        "title": "Solidarity Week Student Guide",
        "url": "https://example.org/GLSEN_Solidarity_Week_2022_Student_Guide.pdf",
        "audience": (Role.STUDENT,),
    }
    values.update(overrides)
    return ResourceDetails(**values)  # type: ignore[arg-type]
