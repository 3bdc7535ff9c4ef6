"""The `<Subject><PastVerb>V<n>` naming rule every event class is held to."""

from __future__ import annotations

import uuid

import pytest

from solidarity.shared.contracts.envelope import Event
from solidarity.shared.contracts.registry import ALL_EVENTS, event_type_name

pytestmark = pytest.mark.unit


def test_a_class_without_subject_verb_and_version_is_refused() -> None:
    with pytest.raises(TypeError, match="<Subject><PastVerb>V<n>"):

        class Foo(Event):
            pass


@pytest.mark.parametrize("name", ["SessionScheduled", "ScheduledV1", "sessionScheduledV1"])
def test_near_misses_are_refused(name: str) -> None:
    with pytest.raises(TypeError, match=name):
        type(name, (Event,), {"__module__": __name__})


def test_a_well_named_class_gets_its_type_and_version() -> None:
    class SeatReleasedV2(Event):
        seat_id: uuid.UUID

        def aggregate_key(self) -> str:
            return str(self.seat_id)

    assert SeatReleasedV2.event_type == "SeatReleased"
    assert SeatReleasedV2.schema_version == 2
    assert event_type_name(SeatReleasedV2) == "SeatReleasedV2"


def test_a_private_base_is_exempt() -> None:
    class _SeatState(Event):
        seat_id: uuid.UUID

    assert "event_type" not in _SeatState.__dict__


@pytest.mark.parametrize("event_class", ALL_EVENTS, ids=lambda cls: cls.__name__)
def test_every_registered_event_follows_the_rule(event_class: type[Event]) -> None:
    assert event_type_name(event_class) == event_class.__name__
    assert event_class.model_config.get("frozen") is True
