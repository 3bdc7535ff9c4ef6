"""Counts staged inside a transaction count only once that transaction is the one that stayed."""

from __future__ import annotations

import pytest

from solidarity.registration.adapters.metrics import StagedCounts

pytestmark = pytest.mark.unit


def test_only_the_last_transactions_counts_are_applied() -> None:
    applied: list[str] = []
    staged = StagedCounts()
    staged.stage(10, lambda: applied.append("rolled back"))
    staged.stage(11, lambda: applied.append("kept 1"))
    staged.stage(11, lambda: applied.append("kept 2"))
    staged.settle()
    assert applied == ["kept 1", "kept 2"]
    staged.settle()
    assert applied == ["kept 1", "kept 2"]
