"""How an erasure finds a person's address in bytes kept as they came (dead letters).

A dead letter keeps a submission's original bytes, whatever its Kafka key, so the address is
there as the partner wrote it: any case, maybe JSON-escaped (`\\u00e9`), maybe with its domain
in punycode. The service keeps the address normalised (lower case, Unicode domain); these
functions give the ways it may have been written and tell a mention of it from a longer
address that contains it. ASCII letters are compared ignoring case; letters outside ASCII in
the case combinations `address_spellings` lists.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterable

_MAX_CASED = 4
"""Letters outside ASCII whose case combinations are all listed (2**4 = 16 spellings)."""

_LOCAL = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789.!#$%&'*+/=?^_`{|}~-")
"""Bytes that can continue an address's local part to the left (lower-cased)."""

_LABEL = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")
"""Bytes that can continue a domain label to the right (lower-cased)."""

_JSON_ESCAPES = frozenset(b"bfnrt/")
"""`\\n`, `\\t`, ...: a letter after a backslash is an escape, not part of an address."""


def _case_variants(address: str) -> list[str]:
    cased = [i for i, c in enumerate(address) if not c.isascii() and c.lower() != c.upper()]
    if not cased:
        return [address]
    if len(cased) > _MAX_CASED:
        return [address.lower(), address.upper()]
    variants = []
    for choice in itertools.product((str.lower, str.upper), repeat=len(cased)):
        chars = list(address)
        for index, change in zip(cased, choice, strict=True):
            chars[index] = change(chars[index])
        variants.append("".join(chars))
    return variants


def _domain_variants(address: str) -> list[str]:
    local, at, domain = address.rpartition("@")
    variants = [address]
    if at and not domain.isascii():
        with contextlib.suppress(UnicodeError):  # not every Unicode domain has one
            variants.append(f"{local}@{domain.encode('idna').decode('ascii')}")
    return variants


def address_spellings(address: str) -> tuple[bytes, ...]:
    """The bytes a normalised address may appear as in a message, ASCII letters lower-cased:
    UTF-8 and JSON-escaped, each case of its letters outside ASCII, its domain in Unicode
    and in punycode."""
    spellings: dict[bytes, None] = {}
    for domain_variant in _domain_variants(address.lower()):
        for text in _case_variants(domain_variant):
            spellings[text.encode().lower()] = None
            spellings[json.dumps(text)[1:-1].encode().lower()] = None
    return tuple(spellings)


def _starts_address(data: bytes, start: int) -> bool:
    if start == 0:
        return True
    before = data[start - 1]
    if before not in _LOCAL:
        return True  # a quote, a space, a non-ASCII character, ...
    # `\n` and friends end just before: the address starts here.
    return before in _JSON_ESCAPES and start >= 2 and data[start - 2] == ord("\\")


def _ends_address(data: bytes, end: int) -> bool:
    if end == len(data):
        return True
    after = data[end]
    if after in _LABEL:
        return False
    if after == ord("."):  # a sentence's full stop, or the next label of a longer domain
        return end + 1 == len(data) or data[end + 1] not in _LABEL
    return True


def mentions_address(data: bytes, spellings: Iterable[bytes]) -> bool:
    """Whether `data` holds one of these spellings as a whole address (ignoring ASCII case):
    `joan@school.example` and `an@school.example.org` do not mention `an@school.example`."""
    haystack = data.lower()
    for spelling in spellings:
        start = haystack.find(spelling)
        while start != -1:
            if _starts_address(haystack, start) and _ends_address(haystack, start + len(spelling)):
                return True
            start = haystack.find(spelling, start + 1)
    return False
