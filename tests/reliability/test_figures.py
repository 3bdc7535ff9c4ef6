"""How a bigger run stretches the scenarios' limits: sizes, the per-test timeout and the waits."""

from __future__ import annotations

import pytest

from tests.reliability import platform
from tests.reliability.figures import SCALE_ENV, size, time_factor

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("scale", "factor", "submissions"), [("", 1.0, 600), ("3", 3.0, 1800), ("full", 12.0, 20_000)]
)
def test_sizes_and_time_grow_together(
    monkeypatch: pytest.MonkeyPatch, scale: str, factor: float, submissions: int
) -> None:
    monkeypatch.setenv(SCALE_ENV, scale)
    assert (time_factor(), size(ci=600, full=20_000)) == (factor, submissions)


async def test_a_wait_lasts_longer_at_a_bigger_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never() -> bool:
        return False

    monkeypatch.setenv(SCALE_ENV, "3")
    with pytest.raises(AssertionError, match="not reached in 1 s"):
        await platform.wait_until(never, timeout_s=0.2, what="never")  # 0.2 s x 3 -> 0.6 s
