"""The PNG canvas writes valid files, and the chart draws from a results document."""

from __future__ import annotations

import struct
import zlib

import pytest

from solidarity.shared.bench.chart import HEIGHT, WIDTH, draw_chart
from solidarity.shared.bench.png import BLACK, WHITE, Canvas

pytestmark = pytest.mark.unit


def _decode(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, width, height, pixels = 8, 0, 0, b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            pixels = zlib.decompress(body)
        offset += 12 + length
    return width, height, pixels


def test_a_canvas_becomes_a_valid_png() -> None:
    canvas = Canvas(4, 3)
    canvas.rect(1, 1, 2, 1, BLACK)
    width, height, pixels = _decode(canvas.png_bytes())
    assert (width, height) == (4, 3)
    assert len(pixels) == 3 * (1 + 4 * 3)
    row = pixels[1 + 13 : 2 * 13]  # the second row, without its filter byte
    assert row[3:9] == bytes(BLACK) * 2
    assert row[:3] == bytes(WHITE)


def test_drawing_is_clipped_and_text_advances() -> None:
    canvas = Canvas(10, 10)
    canvas.line(-5, -5, 20, 20, BLACK, width=3, dash=2)
    end = canvas.text(0, 0, "ab1", BLACK)
    assert end == 18
    assert canvas.pixel(9, 9) in (BLACK, WHITE)


def test_the_chart_draws_from_results() -> None:
    results = {
        "raw": {"bare_pipeline_per_s": 9000.0, "smtp_mails_per_s": 700.0},
        "burst": {"registrations": 1000, "decided_per_s": 1200.0, "mails_per_s": 180.0},
        "fanout": {"invites": 10, "invites_per_s": 150.0},
        "scaling": {"decided_per_s": 1300.0, "mails_per_s": 200.0},
        "series": {"answered": [0, 500, 1200, 900], "mails": [0, 0, 150, 180]},
        "meta": {"started_at": "2026-11-22T06:00:00+00:00"},
    }
    width, height, _ = _decode(draw_chart(results).png_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
