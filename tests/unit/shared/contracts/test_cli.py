"""`solidarity contracts snapshot` and `check` against a scratch snapshot directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from solidarity.shared.cli.contracts import app
from solidarity.shared.contracts.envelope import Envelope
from solidarity.shared.contracts.schemas import SNAPSHOT_MODELS, render_schema, snapshot_path

pytestmark = pytest.mark.unit

runner = CliRunner()


def test_snapshot_lists_the_files_it_wrote_then_nothing(tmp_path: Path) -> None:
    first = runner.invoke(app, ["snapshot", "--directory", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert first.output.count("wrote ") == len(SNAPSHOT_MODELS)
    assert "Envelope.json" in first.output

    again = runner.invoke(app, ["snapshot", "--directory", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert "up to date" in again.output


def test_check_passes_on_fresh_snapshots_and_fails_on_a_break(tmp_path: Path) -> None:
    assert runner.invoke(app, ["snapshot", "--directory", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["check", "--directory", str(tmp_path)]).exit_code == 0

    path = snapshot_path(Envelope, tmp_path)
    edited = json.loads(path.read_text(encoding="utf-8"))
    edited["properties"]["trace_id"] = {"type": "string"}
    path.write_text(render_schema(edited), encoding="utf-8")

    result = runner.invoke(app, ["check", "--directory", str(tmp_path)])
    assert result.exit_code == 1
    assert "Envelope: breaking: trace_id: property removed" in result.output

    refused = runner.invoke(app, ["snapshot", "--directory", str(tmp_path)])
    assert refused.exit_code == 1
    assert "trace_id: property removed" in refused.output

    forced = runner.invoke(app, ["snapshot", "--directory", str(tmp_path), "--allow-breaking"])
    assert forced.exit_code == 0, forced.output
    assert runner.invoke(app, ["check", "--directory", str(tmp_path)]).exit_code == 0


def test_check_fails_on_a_missing_snapshot(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--directory", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{len(SNAPSHOT_MODELS)} contract problem(s)" in result.output
