"""Malformed and invalid messages for every consumed topic, and the DLQ command line."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from solidarity.shared.contracts.envelope import Envelope, Event, EventHeaders
from solidarity.shared.partners import PartnerCredentials, raw_envelope, raw_headers, signed_value
from tests.reliability import platform
from tests.reliability.platform import Record

CLI = [sys.executable, "-m", "solidarity.shared.cli.app"]


@dataclass(frozen=True)
class BadInput:
    """One bad record and what kind of bad it is."""

    kind: str
    record: Record


def _first_required(event: Event) -> str:
    for name, info in type(event).model_fields.items():
        if info.is_required():
            return name
    raise AssertionError(f"{type(event).__name__} has no required field")


def _headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    return envelope.headers()


def bad_inputs(example: Event, count: int) -> list[BadInput]:
    """`count` records that no consumer can use, of a dozen kinds, built around a valid event
    of the topic (so some look almost right: right headers, wrong body)."""
    envelope = Envelope.wrap(example, producer="reliability")
    kinds: list[tuple[str, Any]] = []

    def with_id() -> Envelope:
        return envelope.model_copy(update={"event_id": uuid.uuid4()})

    def body(env: Envelope) -> bytes:
        return env.to_bytes()

    def make(kind: str) -> Record:
        key = uuid.uuid4().hex.encode()
        if kind == "not_json":
            return key, b"not json at all {", []
        if kind == "binary":
            return key, bytes(range(256))[::-1], []
        if kind == "json_scalar":
            return key, b"123", []
        if kind == "json_array":
            return key, b'[{"event_id": 1}]', []
        if kind == "not_an_envelope":
            return key, b'{"not": "an envelope"}', []
        if kind == "empty_body":
            return key, b"", []
        if kind == "tombstone":
            return key, None, []
        if kind == "unknown_type":
            env = with_id().model_copy(update={"event_type": "SessionTeleported"})
            return key, body(env), _headers(env)
        if kind == "unknown_version":
            env = with_id().model_copy(update={"schema_version": 99})
            return key, body(env), _headers(env)
        if kind == "missing_field":
            env = with_id()
            payload = dict(env.payload)
            payload.pop(_first_required(example))
            env = env.model_copy(update={"payload": payload})
            return key, body(env), _headers(env)
        if kind == "wrong_type":
            env = with_id()
            payload = {k: ["a", "list"] for k in env.payload}
            env = env.model_copy(update={"payload": payload})
            return key, body(env), _headers(env)
        if kind == "truncated":
            env = with_id()
            raw = body(env)
            return key, raw[: len(raw) // 2], _headers(env)
        if kind == "bad_envelope_id":
            data = json.loads(body(with_id()))
            data["event_id"] = "not-a-uuid"
            return key, json.dumps(data).encode(), []
        raise AssertionError(kind)

    names = [
        "not_json",
        "binary",
        "json_scalar",
        "json_array",
        "not_an_envelope",
        "empty_body",
        "tombstone",
        "unknown_type",
        "unknown_version",
        "missing_field",
        "wrong_type",
        "truncated",
        "bad_envelope_id",
    ]
    kinds = [(names[i % len(names)], None) for i in range(count)]
    return [BadInput(kind, make(kind)) for kind, _ in kinds]


def bad_submissions(credentials: PartnerCredentials, campaign: str, count: int) -> list[BadInput]:
    """Submissions that cannot be decided: no role (signed, or unsigned), and plain garbage.
    Those whose partner and submission id can be read are still answered (a rejection)."""
    found: list[BadInput] = []
    for i in range(count):
        event_id = uuid.uuid4()
        payload = {
            "partner_id": str(credentials.partner_id),
            "submission_id": f"bad-{i}-{event_id.hex[:8]}",
            "campaign": campaign,
            "registrant": {"email": platform.person_email("bad")},  # no role
        }
        value = raw_envelope(
            payload, producer="reliability", event_id=event_id, occurred_at=datetime.now(UTC)
        )
        email = payload["registrant"]["email"]  # type: ignore[index]
        if i % 3 == 0:
            signed = signed_value(credentials, value, email=email, headers=raw_headers(event_id))
            found.append(BadInput("signed_no_role", (signed.key, signed.value, [*signed.headers])))
        elif i % 3 == 1:
            found.append(BadInput("unsigned_no_role", (None, value, raw_headers(event_id))))
        else:
            found.append(BadInput("not_json", (uuid.uuid4().hex.encode(), b"{broken", [])))
    return found


def answerable(bad: BadInput) -> str | None:
    """The submission id a bad submission is answered under, if any."""
    if bad.kind not in ("signed_no_role", "unsigned_no_role"):
        return None
    _, value, _ = bad.record
    assert value is not None
    submission_id: str = json.loads(value)["payload"]["submission_id"]
    return submission_id


def envelope_id(record: Record) -> uuid.UUID | None:
    for key, value in record[2]:
        if key == EventHeaders.EVENT_ID:
            return uuid.UUID(value.decode())
    return None


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def cli(*args: str, timeout_s: float = 120.0) -> CliResult:
    """The `solidarity` command, as a person runs it."""
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=timeout_s)
    assert process.returncode is not None
    return CliResult(process.returncode, out.decode(), err.decode())


def interleave(
    valid: Sequence[Record], bad: Sequence[BadInput], *, seed: int
) -> list[tuple[Record, BadInput | None]]:
    """The bad records at random places among the valid ones (each tagged, None if valid)."""
    rng = random.Random(seed)
    result: list[tuple[Record, BadInput | None]] = [(r, None) for r in valid]
    for item in bad:
        result.insert(rng.randrange(len(result) + 1), (item.record, item))
    return result
