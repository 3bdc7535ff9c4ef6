"""The run's chart (PNG): rates against their raw limits, the burst second by second on a log
scale, and each service's memory over the run against the 300 MB target."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solidarity.shared.bench.png import BLACK, GREY, LIGHT, Canvas, Color, text_width

WIDTH, HEIGHT = 1100, 660
BLUE: Color = (52, 101, 164)
ORANGE: Color = (230, 126, 34)
GREEN: Color = (46, 139, 87)
RED: Color = (200, 40, 40)
PALE_BLUE: Color = (160, 190, 225)
PALE_ORANGE: Color = (245, 200, 150)
PALE_GREY: Color = (205, 205, 205)
MEMORY_COLORS: dict[str, Color] = {
    "registration": BLUE,
    "notifications": ORANGE,
    "catalog": GREEN,
    "mailsink": PALE_GREY,
}
RSS_TARGET_MB = 300.0


def _number(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.0f}K"
    return f"{value:,.0f}"


def _bar_groups(results: dict[str, Any]) -> list[tuple[str, list[tuple[str, float, Color]]]]:
    raw, burst, fan, scaling = (
        results.get("raw", {}),
        results.get("burst", {}),
        results.get("fanout", {}),
        results.get("scaling", {}),
    )
    registration = [
        ("BARE PIPELINE", float(raw.get("bare_pipeline_per_s", 0)), PALE_BLUE),
        ("DECIDED, 1 INSTANCE", float(burst.get("decided_per_s", 0)), BLUE),
    ]
    notifications = [
        ("SMTP RAW LIMIT", float(raw.get("smtp_mails_per_s", 0)), PALE_ORANGE),
        ("MAILS, 1 INSTANCE", float(burst.get("mails_per_s", 0)), ORANGE),
    ]
    if scaling:
        registration.append(("DECIDED, 2 INSTANCES", float(scaling.get("decided_per_s", 0)), BLUE))
        notifications.append(("MAILS, 2 INSTANCES", float(scaling.get("mails_per_s", 0)), ORANGE))
    if fan.get("invites"):
        notifications.append(("FAN-OUT INVITES", float(fan.get("invites_per_s", 0)), GREEN))
    infrastructure = [
        ("BROKER PIPE MSGS", float(raw.get("pipe_msgs_per_s", 0)), PALE_GREY),
        ("POSTGRES ROWS", float(raw.get("pg_rows_per_s", 0)), PALE_GREY),
    ]
    return [
        ("REGISTRATION, PER SECOND", registration),
        ("NOTIFICATIONS, PER SECOND", notifications),
        ("RAW INFRASTRUCTURE, PER SECOND", infrastructure),
    ]


def _bars(canvas: Canvas, results: dict[str, Any], left: int, top: int, width: int) -> None:
    label_width = 130
    y = top
    for title, bars in _bar_groups(results):
        canvas.text(left, y, title, BLACK)
        y += 16
        scale = max((value for _, value, _ in bars), default=0.0) or 1.0
        for label, value, color in bars:
            canvas.text(left, y + 4, label, BLACK)
            length = int((width - label_width - 60) * value / scale)
            canvas.rect(left + label_width, y, left + label_width + max(1, length), y + 14, color)
            canvas.text(left + label_width + length + 6, y + 4, _number(value), BLACK)
            y += 22
        y += 12


def _polyline(canvas: Canvas, points: Sequence[tuple[int, int]], color: Color) -> None:
    for start, end in itertools.pairwise(points):
        canvas.line(*start, *end, color, width=2)


def _legend(canvas: Canvas, x: int, y: int, items: Sequence[tuple[str, Color]]) -> None:
    for label, color in items:
        canvas.rect(x, y, x + 10, y + 8, color)
        x = canvas.text(x + 14, y + 1, label, BLACK) + 12


def _rates(canvas: Canvas, results: dict[str, Any], left: int, top: int, w: int, h: int) -> None:
    """Submitted, answered and mailed per second, on a log scale, with the raw limits."""
    series = results.get("series") or {}
    lines = [
        ([float(v) for v in series.get("submitted", [])], PALE_GREY, "SUBMITTED/S"),
        ([float(v) for v in series.get("answered", [])], BLUE, "ANSWERED/S"),
        ([float(v) for v in series.get("mails", [])], ORANGE, "MAILS/S"),
    ]
    raw = results.get("raw", {})
    limits = [
        (float(raw.get("bare_pipeline_per_s", 0)), PALE_BLUE, "BARE PIPELINE"),
        (float(raw.get("smtp_mails_per_s", 0)), PALE_ORANGE, "SMTP LIMIT"),
    ]
    canvas.text(left, top - 30, "THE BURST, SECOND BY SECOND (LOG SCALE)", BLACK)
    seconds = max([len(values) for values, _, _ in lines] + [2])
    highest = max([v for values, _, _ in lines for v in values] + [v for v, _, _ in limits] + [10])
    decades = max(1, math.ceil(math.log10(highest)))

    def y_of(value: float) -> int:
        fraction = math.log10(max(1.0, value)) / decades
        return top + h - int(h * min(1.0, fraction))

    def x_of(second: int) -> int:
        return left + int(w * second / (seconds - 1))

    for decade in range(decades + 1):
        y = y_of(10.0**decade)
        canvas.line(left + 1, y, left + w, y, LIGHT)
        label = _number(10.0**decade)
        canvas.text(left - text_width(label) - 4, y - 3, label, GREY)
    canvas.line(left, top + h, left + w, top + h, BLACK)
    canvas.line(left, top, left, top + h, BLACK)
    for value, color, _ in limits:
        if value:
            canvas.line(left + 1, y_of(value), left + w, y_of(value), color, width=2, dash=6)
    for values, color, _ in lines:
        _polyline(canvas, [(x_of(s), y_of(v)) for s, v in enumerate(values)], color)
    canvas.text(left, top + h + 8, "0 S", GREY)
    end = f"{seconds - 1} S"
    canvas.text(left + w - text_width(end), top + h + 8, end, GREY)
    _legend(
        canvas,
        left,
        top + h + 26,
        [(label, color) for _, color, label in lines] + [(label, c) for _, c, label in limits],
    )


def _memory(canvas: Canvas, results: dict[str, Any], left: int, top: int, w: int, h: int) -> None:
    """Each service's resident memory over the run, with the target."""
    memory = (results.get("series") or {}).get("memory") or {}
    by_process: dict[str, list[float]] = {
        name: values
        for name, values in (memory.get("by_process") or {}).items()
        if name.split("-")[0] in MEMORY_COLORS
    }
    step = int(memory.get("step_s", 1) or 1)
    canvas.text(left, top - 18, "RESIDENT MEMORY, MB", BLACK)
    points = max([len(v) for v in by_process.values()] + [2])
    ceiling = max([v for values in by_process.values() for v in values] + [RSS_TARGET_MB]) * 1.1

    def y_of(value: float) -> int:
        return top + h - int(h * value / ceiling)

    def x_of(index: int) -> int:
        return left + int(w * index / (points - 1))

    canvas.line(left, top + h, left + w, top + h, BLACK)
    canvas.line(left, top, left, top + h, BLACK)
    for value in (100.0, 200.0, RSS_TARGET_MB):
        if value < ceiling:
            canvas.line(left + 1, y_of(value), left + w, y_of(value), LIGHT)
            canvas.text(
                left - text_width(_number(value)) - 4, y_of(value) - 3, _number(value), GREY
            )
    canvas.line(left + 1, y_of(RSS_TARGET_MB), left + w, y_of(RSS_TARGET_MB), RED, dash=6)
    for name, values in sorted(by_process.items()):
        color = MEMORY_COLORS[name.split("-")[0]]
        _polyline(canvas, [(x_of(i), y_of(v)) for i, v in enumerate(values) if v], color)
    end = f"{(points - 1) * step} S"
    canvas.text(left + w - text_width(end), top + h + 6, end, GREY)
    _legend(
        canvas,
        left,
        top + h + 20,
        [(name.upper(), color) for name, color in MEMORY_COLORS.items()] + [("TARGET", RED)],
    )


def draw_chart(results: dict[str, Any]) -> Canvas:
    canvas = Canvas(WIDTH, HEIGHT)
    meta = results.get("meta", {})
    burst = results.get("burst", {})
    title = f"SOLIDARITY BENCH: {int(burst.get('registrations', 0)):,} REGISTRATIONS"
    canvas.text(20, 16, title, BLACK, scale=2)
    canvas.text(20, 40, f"{meta.get('started_at', '')}, {meta.get('cpus', '?')} CPUS", GREY)
    _bars(canvas, results, left=20, top=70, width=480)
    _memory(canvas, results, left=60, top=430, w=440, h=170)
    _rates(canvas, results, left=600, top=100, w=470, h=460)
    return canvas


def write_chart(results: dict[str, Any], path: Path) -> None:
    draw_chart(results).save(path)
