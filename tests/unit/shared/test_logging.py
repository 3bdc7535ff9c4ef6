"""Personal data passed to a log call never reaches the output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from solidarity.shared.logging import configure_logging, get_logger

pytestmark = pytest.mark.unit

EMAIL = "river.song+solidarity@example.org"


@pytest.fixture
def json_output() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", stream=out)
    yield out
    structlog.reset_defaults()


def test_an_email_in_any_position_never_reaches_the_output(json_output: io.StringIO) -> None:
    log = get_logger("test").bind(correlation_id="c-1")
    log.info("registrant_seen", email=EMAIL)
    log.info("free_text", note=f"contact {EMAIL} about the webinar")
    log.info("nested", payload={"registrant": {"contact": EMAIL}, "tags": [EMAIL]})
    log.info(f"message mentioning {EMAIL}")  # noqa: G004 - the very mistake this guards
    try:
        raise ValueError(f"bad address {EMAIL}")
    except ValueError:
        log.exception("failed")
    logging.getLogger("aiokafka").warning("library line with %s", EMAIL)

    output = json_output.getvalue()
    assert EMAIL not in output
    assert "example.org" not in output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert len(lines) == 6
    assert lines[0]["event"] == "registrant_seen"
    assert lines[0]["email"] == "[redacted]"
    assert lines[0]["correlation_id"] == "c-1"  # context survives redaction


def test_named_personal_fields_are_redacted_whatever_they_hold(json_output: io.StringIO) -> None:
    get_logger("test").info("person", name="Alex Rivera", pronouns="they/them", event_id="e-1")
    line = json.loads(json_output.getvalue())
    assert line["name"] == "[redacted]"
    assert line["pronouns"] == "[redacted]"
    assert line["event_id"] == "e-1"
    assert "Alex Rivera" not in json_output.getvalue()


def test_console_format_redacts_too() -> None:
    out = io.StringIO()
    configure_logging(fmt="console", level="INFO", stream=out)
    try:
        get_logger("test").info("registrant_seen", email=EMAIL, detail=f"to {EMAIL}")
    finally:
        structlog.reset_defaults()
    assert "registrant_seen" in out.getvalue()
    assert EMAIL not in out.getvalue()


@pytest.mark.parametrize(
    ("libraries_level", "shown"), [("WARNING", False), ("INFO", True), ("DEBUG", True)]
)
def test_the_libraries_speak_at_their_own_level(libraries_level: str, shown: bool) -> None:
    out = io.StringIO()
    configure_logging(fmt="json", level="INFO", stream=out, libraries_level=libraries_level)
    try:
        logging.getLogger("aiokafka.consumer.group_coordinator").info("(Re-)joining group g")
        logging.getLogger("aiokafka").debug("a debug line is below the service's own level")
        logging.getLogger("aiokafka").warning("Heartbeat failed")
    finally:
        structlog.reset_defaults()
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert ("(Re-)joining group g" in events) is shown
    assert "a debug line is below the service's own level" not in events
    assert "Heartbeat failed" in events
