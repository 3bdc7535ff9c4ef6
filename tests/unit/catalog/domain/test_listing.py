"""Cursors and page sizes for listing the catalog."""

from __future__ import annotations

import uuid

import pytest

from solidarity.catalog.domain.errors import InvalidError
from solidarity.catalog.domain.listing import MAX_LIMIT, Cursor, PageRequest

pytestmark = pytest.mark.unit


def test_a_cursor_survives_its_round_trip() -> None:
    cursor = Cursor(key="2023-11-06T19:00:00.000000+00:00", id=uuid.uuid4())
    assert Cursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize("text", ["", "not-a-cursor", "W10", "WyJhIiwgIm5vdC1hLXV1aWQiXQ"])
def test_a_made_up_cursor_is_refused(text: str) -> None:
    with pytest.raises(InvalidError) as excinfo:
        Cursor.decode(text)
    assert excinfo.value.code == "invalid_cursor"


@pytest.mark.parametrize("limit", [0, MAX_LIMIT + 1])
def test_page_sizes_are_bounded(limit: int) -> None:
    with pytest.raises(InvalidError):
        PageRequest(limit=limit)
