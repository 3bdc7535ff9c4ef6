"""The envelope every event travels in, in the body and again in Kafka headers."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

_CLASS_NAME = re.compile(r"^(?P<subject>[A-Z][A-Za-z]+?)(?P<verb>[A-Z][a-z]+)V(?P<version>\d+)$")


class Event(BaseModel):
    """Base of every cross-service event: frozen, named `<Subject><PastVerb>V<n>`.

    Consumers ignore fields they do not know, so a producer may add optional fields
    within a version (the contract test holds that line).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    schema_version: ClassVar[int]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__.startswith("_"):
            return  # a shared base of several events, never sent itself
        match = _CLASS_NAME.match(cls.__name__)
        if match is None:
            raise TypeError(f"event class {cls.__name__} must be named <Subject><PastVerb>V<n>")
        cls.event_type = cls.__name__[: -len(f"V{match['version']}")]
        cls.schema_version = int(match["version"])

    def aggregate_key(self) -> str:
        """The Kafka key that keeps this event in order with its aggregate's other events."""
        raise NotImplementedError


def utc_now() -> datetime:
    return datetime.now(UTC)


class EventHeaders:
    """Names of the Kafka headers that carry the envelope, so consumers route without parsing."""

    EVENT_ID = "event_id"
    EVENT_TYPE = "event_type"
    SCHEMA_VERSION = "schema_version"
    OCCURRED_AT = "occurred_at"
    PRODUCER = "producer"
    CORRELATION_ID = "correlation_id"
    CAUSATION_ID = "causation_id"
    CONTENT_TYPE = "content-type"


class Envelope(BaseModel):
    """One event on the wire: identity, provenance and the typed payload as JSON."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: uuid.UUID
    event_type: str = Field(min_length=1, max_length=200)
    schema_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    producer: str = Field(min_length=1, max_length=100)
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    payload: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        producer: str,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        event_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
    ) -> Self:
        """Put an event in a new envelope; a fresh correlation id starts a new conversation."""
        new_id = event_id or uuid.uuid4()
        return cls(
            event_id=new_id,
            event_type=event.event_type,
            schema_version=event.schema_version,
            occurred_at=occurred_at or utc_now(),
            producer=producer,
            correlation_id=correlation_id or new_id,
            causation_id=causation_id,
            payload=event.model_dump(mode="json"),
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def headers(self) -> list[tuple[str, bytes]]:
        """The envelope as Kafka headers (everything but the payload)."""
        pairs = [
            (EventHeaders.EVENT_ID, str(self.event_id)),
            (EventHeaders.EVENT_TYPE, self.event_type),
            (EventHeaders.SCHEMA_VERSION, str(self.schema_version)),
            (EventHeaders.OCCURRED_AT, self.occurred_at.isoformat()),
            (EventHeaders.PRODUCER, self.producer),
            (EventHeaders.CORRELATION_ID, str(self.correlation_id)),
            (EventHeaders.CONTENT_TYPE, "application/json"),
        ]
        if self.causation_id is not None:
            pairs.append((EventHeaders.CAUSATION_ID, str(self.causation_id)))
        return [(k, v.encode()) for k, v in pairs]

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        """Parse a body; raises `ValueError` (pydantic's ValidationError) on anything malformed."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError(f"an envelope must be a JSON object, got {type(data).__name__}")
        return cls.model_validate(data)


def headers_to_dict(headers: Sequence[tuple[str, bytes | None]] | None) -> Mapping[str, str]:
    """Kafka headers as a plain mapping (last value wins; undecodable values are dropped)."""
    result: dict[str, str] = {}
    for key, value in headers or ():
        if value is None:
            continue
        try:
            result[key] = value.decode()
        except UnicodeDecodeError:
            continue
    return result
