"""Flat summaries of a pyinstrument session: where a service's CPU went, by library and by function.

pyinstrument's own tree view follows call paths; for a service that is mostly waiting on its
event loop, the question is rather "of the busy time, how much is pydantic, asyncpg, the
email package, logging...". This reads the samples and answers that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ENV_PROFILE_TARGET = "SOLIDARITY_BENCH_PROFILE_TARGET"
ENV_PROFILE_OUTPUT = "SOLIDARITY_BENCH_PROFILE_OUTPUT"
ENV_PROFILE_KEEP_SESSION = "SOLIDARITY_BENCH_PROFILE_KEEP_SESSION"

_IDLE = ("epoll.poll", "select.select", "select.poll", "KqueueSelector.select")
_SITE = re.compile(r"site-packages/([^/]+)/")
_SOLIDARITY = re.compile(r"/solidarity/([^/]+)/(?:([^/]+)/)?")


def _function(identifier: str) -> tuple[str, str, str]:
    """(function, file, class) of a pyinstrument frame identifier."""
    parts = identifier.split("\x00")
    function = parts[0]
    file = parts[1] if len(parts) > 1 else ""
    cls = ""
    if len(parts) > 2:
        for attribute in parts[2].split("\x01")[1:]:
            if attribute.startswith("c"):
                cls = attribute[1:]
    return function, file, cls


def package_of(file: str) -> str:
    """`pydantic`, `asyncpg`, `solidarity.notifications`, `stdlib:email`, ..."""
    site = _SITE.search(file)
    if site:
        return site.group(1).removesuffix(".py")
    own = _SOLIDARITY.search(file)
    if own:
        return f"solidarity.{own.group(1)}"
    if file.startswith("<"):
        return "builtin"
    stdlib = re.search(r"/python3\.\d+/([^/]+)", file)
    if stdlib:
        return f"stdlib:{stdlib.group(1).removesuffix('.py')}"
    return "other"


def _label(identifier: str) -> str:
    function, file, cls = _function(identifier)
    name = f"{cls}.{function}" if cls else function
    short = "/".join(file.split("/")[-2:]) if "/" in file else file
    return f"{name}  ({short})"


def summarise(records: Iterable[tuple[Sequence[str], float]], *, top: int = 30) -> str:
    """A text report: busy and idle time, self time by package, top functions."""
    idle = busy = 0.0
    by_package: dict[str, float] = {}
    self_time: dict[str, float] = {}
    inclusive: dict[str, float] = {}
    for stack, seconds in records:
        if not stack:
            continue
        leaf_function, leaf_file, _ = _function(stack[-1])
        if leaf_function in _IDLE or any(leaf_function.endswith(i) for i in _IDLE):
            idle += seconds
            continue
        busy += seconds
        _add(by_package, package_of(leaf_file), seconds)
        _add(self_time, _label(stack[-1]), seconds)
        for identifier in set(stack):
            _, file, _ = _function(identifier)
            if "/solidarity/" in file:
                _add(inclusive, _label(identifier), seconds)
    lines = [
        f"sampled {idle + busy:,.1f} s: busy {busy:,.1f} s, idle (waiting) {idle:,.1f} s",
        "",
        "busy time by package of the running function (self time):",
    ]
    lines += [
        f"  {seconds:8.2f} s  {100 * seconds / busy if busy else 0:5.1f} %  {package}"
        for package, seconds in _largest(by_package, top)
    ]
    lines += ["", f"top {top} functions by self time:"]
    lines += [
        f"  {seconds:8.2f} s  {100 * seconds / busy if busy else 0:5.1f} %  {label}"
        for label, seconds in _largest(self_time, top)
    ]
    lines += ["", f"top {top} platform functions by inclusive time (busy only):"]
    lines += [
        f"  {seconds:8.2f} s  {100 * seconds / busy if busy else 0:5.1f} %  {label}"
        for label, seconds in _largest(inclusive, top)
    ]
    return "\n".join(lines) + "\n"


def _add(totals: dict[str, float], key: str, seconds: float) -> None:
    totals[key] = totals.get(key, 0.0) + seconds


def _largest(totals: dict[str, float], count: int) -> list[tuple[str, float]]:
    return sorted(totals.items(), key=lambda item: -item[1])[:count]


def summarise_session(session: Any, *, top: int = 30) -> str:
    """`summarise` over a `pyinstrument.session.Session`."""
    return summarise(((stack, float(t)) for stack, t in session.frame_records), top=top)


def summarise_file(path: Path, *, top: int = 30) -> str:
    from pyinstrument.session import Session  # a development dependency

    return summarise_session(Session.load(str(path)), top=top)
