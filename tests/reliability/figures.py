"""Scenario sizes and figures: moderate in CI, bigger from the command line, one report.

Sizes: every scenario takes its CI size from `size(ci=..., full=...)`. The environment
variable `SOLIDARITY_RELIABILITY_SCALE` changes them all at once: a number multiplies the CI
sizes (`2` doubles them), `full` takes the sizes the issue names (20,000 submissions, ...).

Figures: each scenario calls `record(...)` before it asserts, which prints one line starting
with `FIGURES` (seen with `pytest -s`) and, when `SOLIDARITY_RELIABILITY_RESULTS` names a
folder, writes the same figures there as JSON for `solidarity reliability --report`.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

SCALE_ENV = "SOLIDARITY_RELIABILITY_SCALE"
RESULTS_ENV = "SOLIDARITY_RELIABILITY_RESULTS"


def scale() -> str:
    return os.environ.get(SCALE_ENV, "").strip().lower() or "1"


def size(*, ci: int, full: int, least: int = 1) -> int:
    """How big a scenario runs: `ci` by default, `full` with SCALE=full, else ci x SCALE."""
    factor = scale()
    if factor == "full":
        return full
    try:
        multiplier = float(factor)
    except ValueError as exc:
        raise ValueError(f"{SCALE_ENV} is a number or 'full', not {factor!r}") from exc
    return max(least, round(ci * multiplier))


FULL_TIME_FACTOR = 12.0
"""How much longer a scenario may take at the issue's sizes than at CI's (20,000 submissions
against 600-1,000): the per-test timeout (300 s in pyproject.toml) is multiplied by it."""


def time_factor() -> float:
    """How much longer than at CI size a scenario may take at the current scale."""
    factor = scale()
    if factor == "full":
        return FULL_TIME_FACTOR
    try:
        return max(1.0, float(factor))
    except ValueError as exc:
        raise ValueError(f"{SCALE_ENV} is a number or 'full', not {factor!r}") from exc


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def record(
    scenario: str, title: str, *, outcome: str | None = None, **figures: Any
) -> dict[str, Any]:
    """Print the scenario's FIGURES line and keep the figures for the report (`outcome`: for
    figures gathered outside any one test; otherwise the report takes the test's)."""
    test = "" if outcome else os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    line = " ".join(f"{k}={_format(v)}" for k, v in figures.items())
    print(f"\nFIGURES [{scenario}] {title}: {line}", flush=True)
    entry = {
        "scenario": scenario,
        "title": title,
        "test": test,
        "scale": scale(),
        "outcome": outcome,
        "recorded_at": time.time(),
        "figures": figures,
    }
    folder = os.environ.get(RESULTS_ENV)
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        name = f"{scenario.replace('/', '_')}-{uuid.uuid4().hex[:8]}.json"
        (path / name).write_text(json.dumps(entry, default=str))
    return entry
