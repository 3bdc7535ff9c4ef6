"""Scenario 12's scanner: does a log hold an email address or a name the scenarios made up?"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from solidarity.shared.logging import EMAIL_PATTERN

# platform.person_name() makes "Amara Okafor-<6 hex>"; look for any of them, known or not.
NAME_PATTERN = re.compile(r"Amara Okafor-[0-9a-f]{6}", re.IGNORECASE)


@dataclass
class Scan:
    """What one scan looked at and found."""

    lines: int = 0
    leaks: list[str] = field(default_factory=list)

    def add(self, other: Scan) -> None:
        self.lines += other.lines
        self.leaks.extend(other.leaks)


def scan(texts: Iterable[str], personal: set[str]) -> Scan:
    """Every line that holds one of the personal strings (emails compared case-insensitively).

    Emails and names are found by pattern first, then checked against what the scenarios
    used, so the scan stays linear in the size of the logs whatever the number of people.
    """
    known = {p.lower() for p in personal}
    result = Scan()
    for text in texts:
        for line in text.splitlines():
            result.lines += 1
            found = [m.lower() for m in EMAIL_PATTERN.findall(line)]
            found += [m.lower() for m in NAME_PATTERN.findall(line)]
            hits = [f for f in found if f in known]
            if hits:
                result.leaks.append(f"{hits[0]} in: {line[:300]}")
    return result
