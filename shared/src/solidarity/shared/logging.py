"""structlog setup: JSON in production, readable on a terminal, and personal data never printed."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
REDACTED = "[redacted]"

# Keys whose values are personal data or free text, whatever they contain.
SENSITIVE_KEYS = frozenset(
    {
        "email",
        "emails",
        "recipient",
        "to",
        "name",
        "full_name",
        "display_name",
        "pronouns",
        "answers",
        "answer",
        "free_text",
        "body",
        "text",
        "address",
        "phone",
        "password",
        "secret",
        "api_key",
        "authorization",
        "token",
    }
)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return EMAIL_PATTERN.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if str(k).lower() in SENSITIVE_KEYS else _redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, BaseException):
        return EMAIL_PATTERN.sub(REDACTED, f"{type(value).__name__}: {value}")
    return value


def redact_personal_data(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace sensitive keys and anything shaped like an email address, wherever it appears."""
    redacted: MutableMapping[str, Any] = {}
    for key, value in event_dict.items():
        if key.lower() in SENSITIVE_KEYS:
            redacted[key] = REDACTED
        else:
            redacted[key] = _redact_value(value)
    return dict(redacted)


def _redact_rendered(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # Tracebacks are rendered to text before this runs; scrub them too.
    for key in ("exception", "stack"):
        if isinstance(event_dict.get(key), str):
            event_dict[key] = EMAIL_PATTERN.sub(REDACTED, event_dict[key])
    return event_dict


class _RedactingFilter(logging.Filter):
    """Scrubs records from the standard library (uvicorn, aiokafka, FastStream) too."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if EMAIL_PATTERN.search(message):
            record.msg = EMAIL_PATTERN.sub(REDACTED, message)
            record.args = None
        return True


class _CurrentStderr:
    """sys.stderr as it is at each write, not as it was when logging was configured
    (pytest and daemons swap it; a bound stream would write to a closed capture)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(
    *,
    fmt: str = "json",
    level: str = "INFO",
    stream: TextIO | None = None,
    libraries_level: str = "WARNING",
) -> None:
    """Configure structlog and the standard library logging once per process.

    `libraries_level` is for the chatty libraries (aiokafka, FastStream, asyncio): never more
    verbose than `level`.
    """
    out: TextIO = stream if stream is not None else _CurrentStderr()  # type: ignore[assignment]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_personal_data,
    ]
    renderer: Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
        tail: list[Processor] = [structlog.processors.StackInfoRenderer(), renderer]
    else:
        renderer = structlog.processors.JSONRenderer()
        tail = [
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _redact_rendered,
            renderer,
        ]
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.addFilter(_RedactingFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([] if fmt == "console" else [structlog.processors.format_exc_info]),
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "faststream", "asyncio", "mail.log"):
        logging.getLogger(noisy).setLevel(
            max(logging.getLevelNamesMapping()[libraries_level], root.level)
        )


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; bind context (event_id, correlation_id, topic, ...) on it."""
    return structlog.get_logger(name)
