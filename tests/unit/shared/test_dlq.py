"""Dead letters as the DLQ tools see them: failure details, original headers, bodies for people."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from solidarity.shared.dlq import DeadLetter, DlqError, decode_bytes, printable, redrive
from solidarity.shared.messaging.consumer import DlqHeaders

pytestmark = pytest.mark.unit


def _letter(headers: list[tuple[str, bytes | None]], value: bytes = b"{}") -> DeadLetter:
    return DeadLetter(
        topic="registration.submissions.v1.dlq",
        partition=0,
        offset=5,
        timestamp_ms=0,
        key=b"k",
        value=value,
        headers=tuple(headers),
    )


def test_failure_details_come_from_the_dlq_headers() -> None:
    letter = _letter(
        [
            ("event_type", b"RegistrationSubmitted"),
            (DlqHeaders.SOURCE_TOPIC, b"registration.submissions.v1"),
            (DlqHeaders.SOURCE_PARTITION, b"3"),
            (DlqHeaders.SOURCE_OFFSET, b"not-a-number"),
            (DlqHeaders.ERROR_TYPE, b"ValidationError"),
            (DlqHeaders.CONSUMER_GROUP, b"registration-intake"),
        ],
        value=b"12345",
    )

    summary = letter.summary()

    assert summary["source_topic"] == "registration.submissions.v1"
    assert summary["source_partition"] == 3
    assert summary["source_offset"] is None
    assert summary["error_type"] == "ValidationError"
    assert summary["error_message"] is None
    assert summary["size"] == 5
    assert letter.original_headers == [("event_type", b"RegistrationSubmitted")]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"a": "\xc3\xa9"}', ("text", '{"a": "é"}')),
        (b"\xff\x00", ("hex", "ff 00")),
        (b"", ("empty", "")),
        (None, ("empty", "")),
        (b'{\n\t"a": 1}', ("text", '{\n\t"a": 1}')),  # tabs and new lines are text
        (b"a\x00b", ("hex", "61 00 62")),  # other control characters are not
        (b"\x1b[2J", ("hex", "1b 5b 32 4a")),
    ],
)
def test_bodies_show_as_text_or_hex(data: bytes | None, expected: tuple[str, str]) -> None:
    assert decode_bytes(data) == expected


async def test_redrive_refuses_a_letter_with_nowhere_to_go() -> None:
    with pytest.raises(DlqError, match=r"no dlq\.source_topic header"):
        await redrive("127.0.0.1:1", [_letter([])])


async def test_redrive_refuses_to_feed_another_dlq() -> None:
    letter = _letter([(DlqHeaders.SOURCE_TOPIC, b"catalog.sessions.v1.dlq")])
    with pytest.raises(DlqError, match="another DLQ"):
        await redrive("127.0.0.1:1", [letter])


async def test_a_replacement_body_is_for_one_letter_only() -> None:
    letter = _letter([(DlqHeaders.SOURCE_TOPIC, b"catalog.sessions.v1")])
    with pytest.raises(DlqError, match="exactly one"):
        await redrive("127.0.0.1:1", [letter, letter], value=b"{}")


async def test_nothing_to_redrive_touches_no_broker() -> None:
    assert await redrive("127.0.0.1:1", []) == []


def test_header_names_show_control_characters_escaped() -> None:
    assert printable("a\x00b\x1b[31m café") == "a\\x00b\\x1b[31m café"


def test_show_prints_any_header_as_text_and_never_as_markup(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from solidarity.shared import dlq
    from solidarity.shared.cli.app import run

    letter = _letter(
        [
            ("[/bold]", b"[/x] closes nothing"),
            ("a\x00b", b"\xff\x00"),
            ("x-null", None),
            (DlqHeaders.ERROR_MESSAGE, b"[red]not a style[/red]"),
        ]
    )

    async def read(*args: Any, **kwargs: Any) -> DeadLetter:
        return letter

    monkeypatch.setattr(dlq, "read_dead_letter", read)
    monkeypatch.setattr("solidarity.shared.cli.app.console.width", 200)
    with pytest.raises(SystemExit) as exit_:
        run(
            ["dlq", "show", "x.dlq", "5", "--bootstrap", "127.0.0.1:1", "--data-dir", str(tmp_path)]
        )

    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "[/bold]" in out
    assert "[/x] closes nothing" in out
    assert "a\\x00b" in out
    assert "ff 00 (hex)" in out
    assert "(null)" in out
    assert "[red]not a style[/red]" in out
