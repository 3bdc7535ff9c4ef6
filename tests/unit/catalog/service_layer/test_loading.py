"""Loading a campaign file on the fake unit of work: idempotent, and only changes announced."""

from __future__ import annotations

from collections import Counter
from datetime import UTC

import pytest

from solidarity.catalog.demos import demo_file
from solidarity.catalog.domain.errors import ConflictError, InvalidError
from solidarity.catalog.entrypoints.campaign_file import parse_campaign_file
from solidarity.catalog.service_layer import commands
from solidarity.catalog.service_layer.loading import load_campaign
from solidarity.catalog.service_layer.republishing import republish
from solidarity.shared.contracts.events.catalog import (
    CampaignPublishedV1,
    CampaignUpdatedV1,
    FocusDayAddedV1,
    OrganizationRegisteredV1,
    ResourcePublishedV1,
    SessionCancelledV1,
    SessionRescheduledV1,
    SessionScheduledV1,
)
from solidarity.shared.contracts.events.common import CampaignStatus
from tests.unit.catalog.fakes import FakeStore, FakeUnitOfWork

pytestmark = pytest.mark.unit

GLSEN = demo_file("glsen-solidarity-week-2023").read_text()


async def _load(store: FakeStore, text: str) -> int:
    report = await load_campaign(parse_campaign_file(text), FakeUnitOfWork(store))
    return report.events


def _types(store: FakeStore, start: int = 0) -> Counter[str]:
    return Counter(type(e).__name__ for e in store.outbox[start:])


async def test_the_first_load_announces_the_whole_published_campaign() -> None:
    store = FakeStore()
    assert await _load(store, GLSEN) == len(store.outbox) == 13
    assert _types(store) == {
        OrganizationRegisteredV1.__name__: 1,
        CampaignPublishedV1.__name__: 1,
        FocusDayAddedV1.__name__: 5,
        ResourcePublishedV1.__name__: 2,
        SessionScheduledV1.__name__: 4,
    }
    # The campaign is announced before anything in it (they share its topic and key).
    names = [type(e).__name__ for e in store.outbox]
    assert names.index("CampaignPublishedV1") < names.index("FocusDayAddedV1")


async def test_loading_the_same_file_twice_changes_nothing() -> None:
    store = FakeStore()
    await _load(store, GLSEN)
    snapshot = (dict(store.sessions), dict(store.campaigns), len(store.outbox))
    report = await load_campaign(parse_campaign_file(GLSEN), FakeUnitOfWork(store))
    assert report.events == 0
    assert report.changes == []
    assert (store.sessions, store.campaigns, len(store.outbox)) == snapshot


async def test_an_edited_file_announces_only_its_changes() -> None:
    store = FakeStore()
    await _load(store, GLSEN)
    start = len(store.outbox)
    edited = GLSEN.replace(
        "starts_at: 2023-11-08 19:00\n    ends_at: 2023-11-08 20:00",
        "starts_at: 2023-11-08 18:00\n    ends_at: 2023-11-08 19:00",
    ).replace("title: Solidarity Week Student Guide", "title: Solidarity Week Student Guide 2023")
    assert edited.count("18:00") > GLSEN.count("18:00")

    report = await load_campaign(parse_campaign_file(edited), FakeUnitOfWork(store))

    assert report.events == 2
    assert _types(store, start) == {
        SessionRescheduledV1.__name__: 1,
        ResourcePublishedV1.__name__: 1,
    }
    moved = next(e for e in store.outbox[start:] if isinstance(e, SessionRescheduledV1))
    assert moved.sequence == 1
    assert moved.previous_starts_at.astimezone(UTC).hour == 0  # 19:00 ET is 00:00 UTC
    assert moved.starts_at.astimezone(UTC).hour == 23
    assert {(c.kind, c.what) for c in report.changes} == {
        ("session", "rescheduled"),
        ("resource", "updated"),
    }
    assert await _load(store, edited) == 0  # and the edited file is now the truth


async def test_a_cancelled_session_in_the_file_is_cancelled_once() -> None:
    store = FakeStore()
    await _load(store, GLSEN)
    start = len(store.outbox)
    cancelled = GLSEN.replace(
        "    join_url: https://example.org/demo/glsen/intersex-youth-webinar\n",
        "    join_url: https://example.org/demo/glsen/intersex-youth-webinar\n"
        "    status: cancelled\n"
        "    cancellation_reason: Moved to the spring\n",
    )
    assert await _load(store, cancelled) == 1
    (event,) = store.outbox[start:]
    assert isinstance(event, SessionCancelledV1)
    assert event.reason == "Moved to the spring"
    assert await _load(store, cancelled) == 0
    with pytest.raises(ConflictError) as excinfo:
        await _load(store, GLSEN)  # bringing it back
    assert excinfo.value.code == "session_cancelled"


async def test_a_published_campaign_refuses_to_lose_a_session_silently() -> None:
    store = FakeStore()
    await _load(store, GLSEN)
    start = GLSEN.index("  - key: intersex-youth-webinar")
    end = GLSEN.index("  - key: immigrant-youth-speaking-engagement")
    without = GLSEN[:start] + GLSEN[end:]
    before = len(store.outbox)
    with pytest.raises(ConflictError) as excinfo:
        await _load(store, without)
    assert excinfo.value.code == "already_announced"
    assert "cancellation_reason" in excinfo.value.message
    assert len(store.outbox) == before


async def test_a_draft_file_announces_nothing_but_its_organization_and_can_drop_items() -> None:
    store = FakeStore()
    draft = GLSEN.replace("status: published", "status: draft")
    await _load(store, draft)
    assert _types(store) == {OrganizationRegisteredV1.__name__: 1}
    start = draft.index("  - key: intersex-youth-webinar")
    end = draft.index("  - key: immigrant-youth-speaking-engagement")
    assert await _load(store, draft[:start] + draft[end:]) == 0
    assert len(store.sessions) == 3
    assert await _load(store, GLSEN) == 1 + 5 + 2 + 4  # published now, with the session back


async def test_a_published_campaign_cannot_go_back_to_draft() -> None:
    store = FakeStore()
    await _load(store, GLSEN)
    with pytest.raises(ConflictError) as excinfo:
        await _load(store, GLSEN.replace("status: published", "status: draft"))
    assert excinfo.value.code == "cannot_unpublish"


async def test_archiving_from_the_file_and_reloading_the_archived_file() -> None:
    store = FakeStore()
    await _load(store, GLSEN)
    archived = GLSEN.replace("status: published", "status: archived")
    start = len(store.outbox)
    assert await _load(store, archived) == 1
    (event,) = store.outbox[start:]
    assert isinstance(event, CampaignUpdatedV1)
    assert event.status is CampaignStatus.ARCHIVED
    assert await _load(store, archived) == 0
    with pytest.raises(ConflictError):
        await _load(store, archived.replace("title: Intersex Youth Focus Day", "title: Changed"))


async def test_a_session_must_name_a_focus_day_the_file_defines() -> None:
    broken = GLSEN.replace("focus_day: intersex-youth", "focus_day: intersex")
    with pytest.raises(InvalidError) as excinfo:
        await _load(FakeStore(), broken)
    assert excinfo.value.code == "unknown_focus_day"


async def test_moving_the_week_and_its_contents_together_is_one_consistent_load() -> None:
    store = FakeStore()
    await _load(store, GLSEN)
    # A week later, everything in it too: checked once the whole file is loaded.
    moved = GLSEN
    for day in range(10, 5, -1):
        moved = moved.replace(f"2023-11-{day:02d}", f"2023-11-{day + 7:02d}")
    assert await _load(store, moved) > 0
    assert {d.details.date.day for d in store.focus_days.values()} == set(range(13, 18))


async def test_republish_re_emits_the_current_revision_of_everything() -> None:
    store = FakeStore()
    await _load(store, GLSEN)
    await _load(store, GLSEN.replace("capacity: 300", "capacity: 250"))
    latest = {}
    for event in store.outbox:
        latest[getattr(event, "session_id", None) or id(event)] = event
    start = len(store.outbox)

    count = await republish(commands.Republish(), FakeUnitOfWork(store))

    events = store.outbox[start:]
    assert count == len(events) == 13
    for event in events:
        session_id = getattr(event, "session_id", None)
        if session_id is not None:
            assert event.revision == latest[session_id].revision  # type: ignore[attr-defined]
    capacities = sorted(
        e.capacity for e in events if isinstance(e, SessionScheduledV1) and e.capacity is not None
    )
    assert capacities == [250, 500, 500, 500]


async def test_republishing_one_campaign_leaves_the_others_out() -> None:
    store = FakeStore()
    await _load(store, GLSEN)
    await _load(store, demo_file("state-of-solidarity-2024").read_text())
    start = len(store.outbox)
    count = await republish(
        commands.Republish(campaign_slugs=("state-of-solidarity-2024",)), FakeUnitOfWork(store)
    )
    assert count == 1 + 1 + 3  # its host, the campaign, three gatherings
    assert _types(store, start)[SessionScheduledV1.__name__] == 3
