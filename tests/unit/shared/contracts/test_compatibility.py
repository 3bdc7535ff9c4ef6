"""The breaking-change detector: it fails on every kind of break and passes additive changes."""

from __future__ import annotations

import copy
import json
import uuid
from enum import StrEnum
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from solidarity.shared.contracts.events.catalog import SessionScheduledV1
from solidarity.shared.contracts.schemas import (
    SNAPSHOT_DIR,
    compare_schemas,
    compatibility_problems,
    event_json_schema,
)

pytestmark = pytest.mark.unit


class Format(StrEnum):
    WEBINAR = "webinar"
    WORKSHOP = "workshop"


class FewerFormats(StrEnum):
    WEBINAR = "webinar"


class MoreFormats(StrEnum):
    WEBINAR = "webinar"
    WORKSHOP = "workshop"
    TRAINING = "training"


class Venue(BaseModel):
    room: str
    floor: int | None = None


class VenueWithoutFloor(BaseModel):
    room: str


class SeatHeld(BaseModel):
    """The baseline every variant below differs from in one way."""

    session_id: uuid.UUID
    title: str
    seats: int | None = None
    note: str = ""
    format: Format
    channel: Literal["email", "webhook"] = "email"
    venues: tuple[Venue, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)


def schema(model: type[BaseModel]) -> dict[str, Any]:
    return event_json_schema(model)


def assert_breaks(old: type[BaseModel], new: type[BaseModel], *, naming: str) -> list[str]:
    problems = compatibility_problems(schema(old), schema(new))
    assert problems, f"expected a breaking change naming {naming!r}"
    assert any(naming in problem for problem in problems), problems
    return problems


def test_a_schema_is_compatible_with_itself() -> None:
    assert compare_schemas(schema(SeatHeld), schema(SeatHeld)).breaking == []
    assert compare_schemas(schema(SeatHeld), schema(SeatHeld)).additive == []


def test_a_removed_field_breaks() -> None:
    class SeatHeldWithoutTitle(BaseModel):
        session_id: uuid.UUID
        seats: int | None = None
        note: str = ""
        format: Format
        channel: Literal["email", "webhook"] = "email"
        venues: tuple[Venue, ...] = ()
        labels: dict[str, str] = Field(default_factory=dict)

    problems = assert_breaks(SeatHeld, SeatHeldWithoutTitle, naming="title")
    assert problems == ["title: property removed"]


def test_a_changed_type_breaks() -> None:
    class SeatHeldWithNumericTitle(SeatHeld):
        title: int  # type: ignore[assignment]

    problems = assert_breaks(SeatHeld, SeatHeldWithNumericTitle, naming="title")
    assert "type changed from string to integer" in problems[0]


def test_dropping_none_from_a_type_breaks() -> None:
    class SeatHeldWithCountedSeats(SeatHeld):
        seats: int = 0

    problems = assert_breaks(SeatHeld, SeatHeldWithCountedSeats, naming="seats")
    assert "integer|null to integer" in problems[0]


def test_adding_none_to_a_type_breaks_old_consumers() -> None:
    class SeatHeldWithOptionalTitle(SeatHeld):
        title: str | None = None  # type: ignore[assignment]

    assert_breaks(SeatHeld, SeatHeldWithOptionalTitle, naming="title")


def test_an_optional_field_made_required_breaks() -> None:
    class SeatHeldWithRequiredNote(SeatHeld):
        note: str

    problems = assert_breaks(SeatHeld, SeatHeldWithRequiredNote, naming="note")
    assert problems == ["note: optional property made required"]


def test_a_new_required_field_breaks() -> None:
    class SeatHeldWithHolder(SeatHeld):
        holder_id: uuid.UUID

    problems = assert_breaks(SeatHeld, SeatHeldWithHolder, naming="holder_id")
    assert "new required property" in problems[0]


def test_an_enum_value_removed_breaks() -> None:
    class SeatHeldWithFewerFormats(SeatHeld):
        format: FewerFormats  # type: ignore[assignment]

    problems = assert_breaks(SeatHeld, SeatHeldWithFewerFormats, naming="format")
    assert problems == ["format: enum value 'workshop' removed"]


def test_a_literal_value_removed_breaks() -> None:
    class SeatHeldByEmailOnly(SeatHeld):
        channel: Literal["email"] = "email"

    assert_breaks(SeatHeld, SeatHeldByEmailOnly, naming="channel")


def test_a_free_string_restricted_to_an_enum_breaks() -> None:
    class SeatHeldWithTitleChoices(SeatHeld):
        title: Literal["intro", "advanced"]

    assert_breaks(SeatHeld, SeatHeldWithTitleChoices, naming="title")


def test_forbidding_extra_properties_breaks() -> None:
    class StrictSeatHeld(SeatHeld):
        model_config = ConfigDict(extra="forbid")

    problems = assert_breaks(SeatHeld, StrictSeatHeld, naming="additionalProperties")
    assert problems == ["(root): additionalProperties tightened from True to False"]


def test_a_change_inside_a_nested_model_breaks_and_names_its_path() -> None:
    class SeatHeldInSmallerVenues(SeatHeld):
        venues: tuple[VenueWithoutFloor, ...] = ()  # type: ignore[assignment]

    problems = assert_breaks(SeatHeld, SeatHeldInSmallerVenues, naming="venues[].floor")
    assert problems == ["venues[].floor: property removed"]


def test_a_change_to_map_values_breaks() -> None:
    class SeatHeldWithCountedLabels(SeatHeld):
        labels: dict[str, int] = Field(default_factory=dict)  # type: ignore[assignment]

    assert_breaks(SeatHeld, SeatHeldWithCountedLabels, naming="labels{}")


def test_a_tightened_constraint_breaks_and_a_loosened_one_does_not() -> None:
    class Short(BaseModel):
        reason: str = Field(max_length=200)

    class Shorter(BaseModel):
        reason: str = Field(max_length=100)

    assert compatibility_problems(schema(Short), schema(Shorter)) == [
        "reason: maxLength changed from 200 to 100 (tightened)"
    ]
    loosened = compare_schemas(schema(Shorter), schema(Short))
    assert loosened.breaking == []
    assert loosened.additive == ["reason: maxLength changed from 100 to 200 (loosened)"]


def test_a_new_optional_field_is_additive() -> None:
    class SeatHeldWithLocale(SeatHeld):
        locale: str = "en"
        room_id: uuid.UUID | None = None

    comparison = compare_schemas(schema(SeatHeld), schema(SeatHeldWithLocale))
    assert comparison.breaking == []
    assert comparison.additive == [
        "locale: new optional property",
        "room_id: new optional property",
    ]


def test_a_new_enum_value_is_additive() -> None:
    class SeatHeldWithMoreFormats(SeatHeld):
        format: MoreFormats  # type: ignore[assignment]

    comparison = compare_schemas(schema(SeatHeld), schema(SeatHeldWithMoreFormats))
    assert comparison.breaking == []
    assert comparison.additive == ["format: enum value 'training' added"]


def test_a_required_field_made_optional_is_additive() -> None:
    class SeatHeldWithDefaultTitle(SeatHeld):
        title: str = "untitled"

    comparison = compare_schemas(schema(SeatHeld), schema(SeatHeldWithDefaultTitle))
    assert comparison.breaking == []
    assert comparison.additive == ["title: required property made optional"]


def test_descriptions_and_defaults_are_not_compared() -> None:
    class DescribedSeatHeld(SeatHeld):
        """Another description."""

        note: str = Field(default="none", description="Free text from the organizer")

    comparison = compare_schemas(schema(SeatHeld), schema(DescribedSeatHeld))
    assert comparison.breaking == []
    assert comparison.additive == []


def test_a_recursive_model_is_compared_without_looping() -> None:
    class Node(BaseModel):
        name: str
        children: list[Node] = []

    class SlimNode(BaseModel):
        children: list[SlimNode] = []

    assert compatibility_problems(schema(Node), schema(Node)) == []
    problems = compatibility_problems(schema(Node), schema(SlimNode))
    assert "name: property removed" in problems


def committed_session_scheduled() -> dict[str, Any]:
    path = SNAPSHOT_DIR / f"{SessionScheduledV1.__name__}.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def test_edits_to_a_real_snapshot_are_caught() -> None:
    """The same rules on a committed snapshot, edited the way a careless change would."""
    old = committed_session_scheduled()

    without_title = copy.deepcopy(old)
    del without_title["properties"]["title"]
    without_title["required"].remove("title")
    assert compatibility_problems(old, without_title) == ["title: property removed"]

    numeric_sequence = copy.deepcopy(old)
    numeric_sequence["properties"]["sequence"]["type"] = "string"
    assert compatibility_problems(old, numeric_sequence) == [
        "sequence: type changed from integer to string"
    ]

    required_description = copy.deepcopy(old)
    required_description["required"].append("description")
    assert compatibility_problems(old, required_description) == [
        "description: optional property made required"
    ]

    with_venue = copy.deepcopy(old)
    with_venue["properties"]["venue"] = {"type": "string"}
    with_venue["required"].append("venue")
    assert compatibility_problems(old, with_venue) == [
        "venue: new required property (old producers do not send it)"
    ]

    # The enum lives in $defs behind a $ref: the detector follows it to every user.
    fewer_kinds = copy.deepcopy(old)
    fewer_kinds["$defs"]["SessionKind"]["enum"].remove("webinar")
    assert compatibility_problems(old, fewer_kinds) == ["kind: enum value 'webinar' removed"]

    fewer_roles = copy.deepcopy(old)
    fewer_roles["$defs"]["Role"]["enum"].remove("staff")
    assert compatibility_problems(old, fewer_roles) == ["audience[]: enum value 'staff' removed"]

    required_capacity = copy.deepcopy(old)
    required_capacity["properties"]["capacity"] = {"type": "integer", "minimum": 0}
    assert compatibility_problems(old, required_capacity) == [
        "capacity: type changed from integer|null to integer"
    ]


def test_additive_edits_to_a_real_snapshot_pass() -> None:
    old = committed_session_scheduled()
    new = copy.deepcopy(old)
    new["properties"]["venue"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    new["$defs"]["SessionKind"]["enum"].append("hackathon")
    comparison = compare_schemas(old, new)
    assert comparison.breaking == []
    assert comparison.additive == [
        "kind: enum value 'hackathon' added",
        "venue: new optional property",
    ]


def test_an_external_ref_is_refused() -> None:
    old = {"type": "object", "properties": {"a": {"$ref": "https://example.org/a.json"}}}
    with pytest.raises(ValueError, match="only local"):
        compatibility_problems(old, old)
