"""Campaign files: the demo files hold the seeds' real names, dates and times; bad files are
refused with a message that says where."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from solidarity.catalog.demos import DEFAULT_DEMO, demo_file, demo_files
from solidarity.catalog.domain.zones import display_label
from solidarity.catalog.entrypoints.campaign_file import (
    CampaignFileError,
    parse_campaign_file,
    read_campaign_file,
)
from solidarity.shared.contracts.events.common import CampaignStatus, OrganizationKind

pytestmark = pytest.mark.unit


def test_the_three_demo_campaigns_are_installed() -> None:
    assert set(demo_files()) == {
        "glsen-solidarity-week-2023",
        "state-of-solidarity-2024",
        "nyu-solidarity-week-2020",
    }
    assert DEFAULT_DEMO == "glsen-solidarity-week-2023"


def test_glsen_solidarity_week_has_its_five_focus_days_and_two_guides() -> None:
    command = read_campaign_file(demo_file("glsen-solidarity-week-2023"))
    assert command.status is CampaignStatus.PUBLISHED
    assert (command.campaign.starts_on, command.campaign.ends_on) == (
        date(2023, 11, 6),
        date(2023, 11, 10),
    )
    assert [(d.details.date.day, d.details.title) for d in command.focus_days] == [
        (6, "Black LGBTQ+ Focus Day"),
        (7, "LGBTQ+ Disability Justice Focus Day"),
        (8, "Intersex Youth Focus Day"),
        (9, "LGBT2SQ+ Native American and Indigenous Focus Day"),
        (10, "LGBTQ+ Immigrant Youth Focus Day"),
    ]
    assert {r.details.title for r in command.resources} == {
        "Solidarity Week Student Guide",
        "Solidarity Week Middle and High School Educator Guide",
    }
    assert [q.key for q in command.campaign.questions] == [
        "role",
        "school",
        "solidarity_looks_like",
    ]
    assert sum(s.details.kind == "webinar" for s in command.sessions) >= 3


def test_state_of_solidarity_gatherings_read_as_the_seed_announced_them() -> None:
    command = read_campaign_file(demo_file("state-of-solidarity-2024"))
    labels = []
    for session in command.sessions:
        details = session.details.validated()
        labels.append(
            (
                details.title,
                details.starts_at.date(),
                display_label(details.starts_at, details.display_time_zones),
            )
        )
    assert labels == [
        ("Building Solidarity in an Era of Silos", date(2024, 4, 30), "2 pm PT / 5 pm ET"),
        (
            "Protecting Cross-Racial Solidarity: Countering Attacks on Each Other",
            date(2024, 9, 26),
            "12 pm PT / 3 pm ET",
        ),
        ("Solidarity Beyond the Elections", date(2024, 11, 14), "9 am PT / 12 pm ET"),
    ]


def test_nyu_solidarity_week_is_a_campus_week_in_april_2020() -> None:
    command = read_campaign_file(demo_file("nyu-solidarity-week-2020"))
    assert command.organization is not None
    assert command.organization.details.kind is OrganizationKind.CAMPUS
    assert command.campaign.name == "10th Annual Solidarity Week"
    assert (command.campaign.starts_on, command.campaign.ends_on) == (
        date(2020, 4, 6),
        date(2020, 4, 10),
    )
    assert command.campaign.time_zone == "America/New_York"  # from the organization


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("campaign: [", "not valid YAML"),
        ("- a list", "must hold a mapping"),
        ("organization: {}\n", "campaign"),
        (
            "campaign: {slug: s, name: n, starts_on: 2024-01-01, ends_on: 2024-01-02}\n",
            "time_zone is needed",
        ),
        (
            "campaign: {slug: s, name: n, starts_on: 2023-11-31, ends_on: 2024-01-02}\n",
            "not valid YAML",
        ),
        (
            "campaign: {slug: s, name: n, starts_on: 2024-01-01, ends_on: 2024-01-02,"
            " time_zone: UTC, colour: pink}\n",
            "campaign.colour",
        ),
    ],
)
def test_bad_files_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(CampaignFileError) as excinfo:
        parse_campaign_file(text, source="week.yaml")
    assert fragment in excinfo.value.message
    assert excinfo.value.code == "invalid_campaign_file"


def test_a_missing_file_is_a_campaign_file_error(tmp_path: Path) -> None:
    with pytest.raises(CampaignFileError):
        read_campaign_file(tmp_path / "nowhere.yaml")


def test_a_cancelled_session_needs_a_reason() -> None:
    text = (
        "campaign: {slug: s, name: n, starts_on: 2024-01-01, ends_on: 2024-01-02, time_zone: UTC}\n"
        "sessions:\n"
        "  - {key: a, kind: webinar, title: t, starts_at: 2024-01-01 10:00,"
        " ends_at: 2024-01-01 11:00, status: cancelled}\n"
    )
    with pytest.raises(CampaignFileError, match="cancellation_reason"):
        parse_campaign_file(text)
