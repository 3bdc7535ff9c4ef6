"""The contract test: every event's committed snapshot, and writing and checking snapshots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import solidarity.shared.contracts as contracts_package
from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.contracts.registry import ALL_EVENTS
from solidarity.shared.contracts.schemas import (
    SNAPSHOT_DIR,
    SNAPSHOT_MODELS,
    BreakingChangeError,
    check_snapshots,
    compatibility_problems,
    event_json_schema,
    render_schema,
    snapshot_path,
    snapshot_report,
    write_snapshots,
)

pytestmark = pytest.mark.unit

REGENERATE = "run `make schemas` (solidarity contracts snapshot) and commit the result"


def read_snapshot(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def test_every_event_and_the_envelope_have_a_snapshot_model() -> None:
    assert set(SNAPSHOT_MODELS) == {*ALL_EVENTS, Envelope}
    assert len({cls.__name__ for cls in SNAPSHOT_MODELS}) == len(SNAPSHOT_MODELS)


@pytest.mark.parametrize("model", SNAPSHOT_MODELS, ids=lambda cls: cls.__name__)
def test_the_current_schema_does_not_break_the_committed_snapshot(model: type[BaseModel]) -> None:
    path = snapshot_path(model)
    assert path.is_file(), f"{model.__name__} has no committed snapshot: {REGENERATE}"
    problems = compatibility_problems(read_snapshot(path), event_json_schema(model))
    assert problems == [], (
        f"{model.__name__} changed in a breaking way; add a V<n+1> event class instead"
    )


@pytest.mark.parametrize("model", SNAPSHOT_MODELS, ids=lambda cls: cls.__name__)
def test_the_committed_snapshot_is_up_to_date(model: type[BaseModel]) -> None:
    """Otherwise the next change would be compared against a stale snapshot."""
    text = snapshot_path(model).read_text(encoding="utf-8")
    assert text == render_schema(event_json_schema(model)), REGENERATE


def test_the_committed_snapshots_have_no_problems() -> None:
    assert check_snapshots(SNAPSHOT_DIR) == []


def test_the_snapshots_ship_inside_the_package() -> None:
    assert SNAPSHOT_DIR.parent == Path(contracts_package.__file__).resolve().parent


def test_writing_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    written = write_snapshots(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{m.__name__}.json" for m in SNAPSHOT_MODELS)
    assert write_snapshots(tmp_path) == []
    for model in SNAPSHOT_MODELS:
        text = snapshot_path(model, tmp_path).read_text(encoding="utf-8")
        assert text == snapshot_path(model).read_text(encoding="utf-8")
        assert list(json.loads(text)) == sorted(json.loads(text))
    assert check_snapshots(tmp_path) == []


def test_a_missing_snapshot_is_reported(tmp_path: Path) -> None:
    write_snapshots(tmp_path)
    snapshot_path(Envelope, tmp_path).unlink()
    problems = check_snapshots(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("Envelope: no snapshot Envelope.json")


def test_a_breaking_difference_is_reported_and_refused_by_the_writer(tmp_path: Path) -> None:
    write_snapshots(tmp_path)
    model = ALL_EVENTS[0]
    path = snapshot_path(model, tmp_path)
    # A snapshot with a property the model no longer has: as if the model dropped it.
    edited = read_snapshot(path)
    edited["properties"]["legacy_code"] = {"type": "string"}
    path.write_text(render_schema(edited), encoding="utf-8")

    report = snapshot_report(tmp_path)
    assert report.breaking == [f"{model.__name__}: breaking: legacy_code: property removed"]
    assert report.outdated == []

    with pytest.raises(BreakingChangeError) as refused:
        write_snapshots(tmp_path)
    assert refused.value.problems == [f"{model.__name__}: legacy_code: property removed"]
    assert "legacy_code" in read_snapshot(path)["properties"], "a refused write writes nothing"

    assert write_snapshots(tmp_path, allow_breaking=True) == [path]
    assert check_snapshots(tmp_path) == []


def test_an_additive_difference_only_needs_regenerating(tmp_path: Path) -> None:
    write_snapshots(tmp_path)
    model = ALL_EVENTS[0]
    path = snapshot_path(model, tmp_path)
    # A snapshot without an optional property: as if the model just gained it.
    edited = read_snapshot(path)
    optional = next(name for name in edited["properties"] if name not in edited["required"])
    del edited["properties"][optional]
    path.write_text(render_schema(edited), encoding="utf-8")

    report = snapshot_report(tmp_path)
    assert report.breaking == []
    assert report.outdated == [
        f"{model.__name__}: needs regenerating "
        f"(compatible change: {optional}: new optional property)"
    ]
    assert write_snapshots(tmp_path) == [path]
    assert check_snapshots(tmp_path) == []


def test_a_cosmetic_difference_only_needs_regenerating(tmp_path: Path) -> None:
    write_snapshots(tmp_path)
    path = snapshot_path(Envelope, tmp_path)
    edited = read_snapshot(path)
    edited["description"] = "an older wording"
    path.write_text(render_schema(edited), encoding="utf-8")
    assert check_snapshots(tmp_path) == [
        "Envelope: needs regenerating (compatible change: descriptions, titles or defaults)"
    ]


def test_a_snapshot_without_a_model_is_reported_and_kept(tmp_path: Path) -> None:
    write_snapshots(tmp_path)
    orphan = tmp_path / "SessionMovedV1.json"
    orphan.write_text("{}\n", encoding="utf-8")
    problems = check_snapshots(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("SessionMovedV1: snapshot SessionMovedV1.json has no model")
    write_snapshots(tmp_path)
    assert orphan.exists()


def test_an_unreadable_snapshot_is_reported(tmp_path: Path) -> None:
    write_snapshots(tmp_path)
    snapshot_path(Envelope, tmp_path).write_text("<<<<<<< HEAD\n", encoding="utf-8")
    problems = check_snapshots(tmp_path)
    assert len(problems) == 1
    assert "Envelope.json is not valid JSON" in problems[0]
    with pytest.raises(BreakingChangeError):
        write_snapshots(tmp_path)
