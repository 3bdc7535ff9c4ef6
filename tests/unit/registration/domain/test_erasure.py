"""An erasure finds the person's address in a dead letter's bytes, however it was written."""

from __future__ import annotations

import json
import re

import pytest

from solidarity.registration.domain.erasure import address_spellings, mentions_address

pytestmark = pytest.mark.unit

ADDRESS = "an@school.example"


def _mentions(data: bytes, address: str = ADDRESS) -> bool:
    return mentions_address(data, address_spellings(address))


@pytest.mark.parametrize(
    "data",
    [
        json.dumps({"registrant": {"email": ADDRESS}}).encode(),
        json.dumps({"registrant": {"email": "  AN@School.EXAMPLE "}}).encode(),
        b"not an address an@school.example.",
        b"\xff\xfe\x00an@school.example\x00",  # not UTF-8, a NUL: read all the same
        b'{"note": "line\\nan@school.example"}',  # right after a JSON escape
        b"<An@School.Example>",
    ],
)
def test_the_address_is_found_in_any_case_and_any_bytes(data: bytes) -> None:
    assert _mentions(data)


@pytest.mark.parametrize(
    "data",
    [
        b"joan@school.example",  # a longer local part
        b"an@school.example.org",  # a longer domain
        b"an@school.examples",
        b"an@school-example",
        b"",
    ],
)
def test_a_longer_address_that_contains_it_is_not_the_person(data: bytes) -> None:
    assert not _mentions(data)


def test_letters_outside_ascii_are_found_in_either_case_and_json_escaped() -> None:
    address = "josé@bücher.example"
    for written in ("josé@bücher.example", "JOSÉ@BÜCHER.EXAMPLE", "José@Bücher.example"):
        assert _mentions(written.encode(), address), written
        assert _mentions(json.dumps({"email": written}).encode(), address), written
        upper_hex = re.sub(
            r"\\u[0-9a-f]{4}", lambda m: "\\u" + m[0][2:].upper(), json.dumps(written)
        )
        assert _mentions(upper_hex.encode(), address), upper_hex


def test_a_domain_written_in_punycode_is_found() -> None:
    assert _mentions(b'"jos\\u00e9@xn--bcher-kva.example"', "josé@bücher.example")


def test_an_ascii_address_has_one_spelling() -> None:
    assert address_spellings("Jane.Doe@School.Example") == (b"jane.doe@school.example",)
