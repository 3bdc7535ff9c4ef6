"""A partner platform's side of the registration contract: sign, publish, submit, read answers.

Written from the partner guide (docs/partners.md) and nothing else, once, for everything that
plays a partner: the `solidarity demo` command and the end-to-end tests. A partner

- builds a `RegistrationSubmittedV1` envelope per submission and signs its exact bytes with
  its signing secret (hex HMAC-SHA256 in `x-solidarity-signature`, its id in
  `x-solidarity-partner`), keyed by the SHA-256 of the person's lower-cased email;
- publishes it to `registration.submissions.v1` (`KafkaPartner`), or POSTs it to the
  registration service's HTTP API with its API key and an Idempotency-Key (`HttpPartner`);
- reads its answers from `registration.outcomes.v1`, keeping those with its partner id
  (`OutcomeReader`).

Accounts are made by the registration service's own CLI (`create_partner_account`), which
prints the API key and the signing secret once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from solidarity.shared.contracts.envelope import Envelope, EventHeaders
from solidarity.shared.contracts.events.registration import (
    RegistrationSubmittedV1,
    registrant_key,
)
from solidarity.shared.contracts.signing import PARTNER_HEADER, SIGNATURE_HEADER, sign
from solidarity.shared.contracts.topics import REGISTRATION_OUTCOMES, REGISTRATION_SUBMISSIONS

# The first answers to a submission; the others come later (a seat freed, a cancellation).
ANSWER_TYPES = frozenset(
    {
        "SignupConfirmed",
        "SessionRegistrationConfirmed",
        "SessionRegistrationWaitlisted",
        "SessionRegistrationRejected",
    }
)
FOLLOW_UP_TYPES = frozenset({"WaitlistPromoted", "RegistrationCancelled"})


class PartnerError(RuntimeError):
    """A partner operation cannot go ahead; the message is one line for a person."""


# Accounts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartnerCredentials:
    """What a partner is handed once: its id, API key (HTTP) and signing secret (Kafka)."""

    partner_id: uuid.UUID
    name: str
    api_key: str = field(repr=False)
    signing_secret: str = field(repr=False)
    campaigns: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """From the output of `solidarity partners create --json`."""
        return cls(
            partner_id=uuid.UUID(str(data["partner_id"])),
            name=str(data["name"]),
            api_key=str(data["api_key"]),
            signing_secret=str(data["signing_secret"]),
            campaigns=tuple(str(c) for c in data.get("campaigns", ())),
        )


async def create_partner_account(
    name: str,
    campaigns: Sequence[str],
    *,
    data_dir: Path | None = None,
    dsn: str | None = None,
    python: str = sys.executable,
    timeout_s: float = 120.0,
) -> PartnerCredentials:
    """Create a partner with the registration service's CLI (`solidarity partners create`).

    With `data_dir`, the CLI finds the local stack's registration database and its generated
    partner master key there; with `dsn`, the environment must hold the master key.
    """
    if not campaigns:
        raise PartnerError("a partner needs at least one campaign")
    args = [python, "-m", "solidarity.shared.cli.app", "partners", "create", name, "--json"]
    for slug in campaigns:
        args += ["--campaign", slug]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    if dsn is not None:
        args += ["--dsn", dsn]
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=timeout_s)
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise PartnerError(
            f"`solidarity partners create` took longer than {timeout_s:.0f} s"
        ) from exc
    if process.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise PartnerError(
            f"`solidarity partners create` failed (exit {process.returncode}): {last[0]}"
        )
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if not lines:
        raise PartnerError("`solidarity partners create --json` printed no JSON")
    return PartnerCredentials.from_json(json.loads(lines[-1]))


# Signing -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """One Kafka record as a partner publishes it."""

    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    event_id: uuid.UUID | None


def submission_envelope(
    submission: RegistrationSubmittedV1,
    *,
    producer: str,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    """The envelope of one submission; its event id is also its correlation id (answers carry
    the correlation id back, so a partner can tell which message an answer is for)."""
    new_id = event_id or uuid.uuid4()
    return Envelope.wrap(
        submission,
        producer=producer,
        event_id=new_id,
        correlation_id=new_id,
        occurred_at=occurred_at,
    )


def signed_value(
    credentials: PartnerCredentials,
    value: bytes,
    *,
    email: str,
    headers: Iterable[tuple[str, bytes]] = (),
    event_id: uuid.UUID | None = None,
    signature: str | None = None,
) -> SignedMessage:
    """Any body signed as given (`signature` overrides the real one, to test a refusal)."""
    extra = [(k, v) for k, v in headers if k not in (PARTNER_HEADER, SIGNATURE_HEADER)]
    return SignedMessage(
        key=registrant_key(email).encode(),
        value=value,
        headers=(
            *extra,
            (PARTNER_HEADER, str(credentials.partner_id).encode()),
            (SIGNATURE_HEADER, (signature or sign(credentials.signing_secret, value)).encode()),
        ),
        event_id=event_id,
    )


def signed_message(
    credentials: PartnerCredentials,
    submission: RegistrationSubmittedV1,
    *,
    producer: str,
    event_id: uuid.UUID | None = None,
) -> SignedMessage:
    """A submission in its envelope, signed, keyed and with the envelope in its headers."""
    if submission.partner_id != credentials.partner_id:
        raise PartnerError("the submission's partner_id is not this partner's")
    envelope = submission_envelope(submission, producer=producer, event_id=event_id)
    return signed_value(
        credentials,
        envelope.to_bytes(),
        email=submission.registrant.email,
        headers=envelope.headers(),
        event_id=envelope.event_id,
    )


def raw_envelope(
    payload: Mapping[str, Any], *, producer: str, event_id: uuid.UUID, occurred_at: datetime
) -> bytes:
    """An envelope around a payload that is not validated (for a deliberately bad message)."""
    return json.dumps(
        {
            "event_id": str(event_id),
            "event_type": RegistrationSubmittedV1.event_type,
            "schema_version": RegistrationSubmittedV1.schema_version,
            "occurred_at": occurred_at.isoformat(),
            "producer": producer,
            "correlation_id": str(event_id),
            "payload": dict(payload),
        }
    ).encode()


def raw_headers(event_id: uuid.UUID) -> list[tuple[str, bytes]]:
    """The envelope headers of a raw submission envelope."""
    return [
        (EventHeaders.EVENT_ID, str(event_id).encode()),
        (EventHeaders.EVENT_TYPE, RegistrationSubmittedV1.event_type.encode()),
        (EventHeaders.SCHEMA_VERSION, str(RegistrationSubmittedV1.schema_version).encode()),
        (EventHeaders.CORRELATION_ID, str(event_id).encode()),
        (EventHeaders.CONTENT_TYPE, b"application/json"),
    ]


# Over Kafka ----------------------------------------------------------------------------------


class KafkaPartner:
    """Publishes a partner's signed messages to `registration.submissions.v1`, in order."""

    def __init__(
        self,
        credentials: PartnerCredentials,
        *,
        bootstrap_servers: str,
        topic_prefix: str = "",
        enable_idempotence: bool = False,
    ) -> None:
        self.credentials = credentials
        self.topic = REGISTRATION_SUBMISSIONS.full_name(topic_prefix)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=f"partner-{credentials.partner_id}",
            acks="all",
            # The embedded broker fails InitProducerId: idempotence only on real Kafka.
            enable_idempotence=enable_idempotence,
            linger_ms=5,
            request_timeout_ms=30_000,
        )

    async def __aenter__(self) -> Self:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()

    async def publish(
        self,
        messages: Iterable[SignedMessage],
        *,
        on_sent: Callable[[int], None] | None = None,
    ) -> int:
        """Send every message (one person's messages stay in order: same key, same partition)
        and wait until the broker has them all."""
        pending: list[asyncio.Future[Any]] = []
        for message in messages:
            future = await self._producer.send(
                self.topic, value=message.value, key=message.key, headers=list(message.headers)
            )
            if on_sent is not None:
                future.add_done_callback(_counting(on_sent))
            pending.append(future)
        await asyncio.gather(*pending)
        return len(pending)


def _counting(on_sent: Callable[[int], None]) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback that counts a message the broker acknowledged."""

    def done(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            on_sent(1)

    return done


# Over HTTP -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """The registration API's answer to a POST."""

    status_code: int
    body: dict[str, Any]
    replayed: bool


def http_submission(submission: RegistrationSubmittedV1) -> dict[str, Any]:
    """A submission as the HTTP API takes it: without `partner_id` (the API key says)."""
    body = submission.model_dump(mode="json")
    body.pop("partner_id", None)
    return body


class HttpPartner:
    """A partner on the registration service's HTTP API (API key, Idempotency-Key)."""

    def __init__(
        self,
        credentials: PartnerCredentials,
        *,
        base_url: str,
        timeout_s: float = 60.0,
        retries: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.credentials = credentials
        self._retries = retries
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {credentials.api_key}"},
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def _request(
        self, method: str, url: str, *, retry_conflict: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One call, retried when the service says "busy" (503) or, if asked, "not decided yet"
        (409); POSTs carry an Idempotency-Key, so a retry records nothing twice."""
        response: httpx.Response | None = None
        for attempt in range(self._retries + 1):
            response = await self._client.request(method, url, **kwargs)
            retryable = response.status_code == 503 or (
                retry_conflict and response.status_code == 409
            )
            if not retryable or attempt == self._retries:
                return response
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")) * 0.5)
        assert response is not None
        return response

    @staticmethod
    def _answer(response: httpx.Response) -> HttpAnswer:
        if response.status_code in (401, 403, 404, 409, 413) or response.status_code >= 500:
            raise PartnerError(f"{response.request.url.path} answered {response.status_code}")
        return HttpAnswer(
            status_code=response.status_code,
            body=response.json(),
            replayed=response.headers.get("Idempotent-Replayed") == "true",
        )

    async def submit(
        self,
        submission: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        wait: str | None = None,
    ) -> HttpAnswer:
        """`POST /v1/registrations`: 202 pending, 200 with the outcome (`wait`), 422 invalid."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        params = {"wait": wait} if wait else None
        response = await self._request(
            "POST", "/v1/registrations", json=dict(submission), headers=headers, params=params
        )
        return self._answer(response)

    async def submit_batch(
        self, submissions: Sequence[Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> HttpAnswer:
        """`POST /v1/registrations/batch`: each item answered by index, pending or invalid."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = await self._request(
            "POST",
            "/v1/registrations/batch",
            json={"submissions": [dict(s) for s in submissions]},
            headers=headers,
        )
        return self._answer(response)

    async def status(self, submission_id: str) -> dict[str, Any] | None:
        """`GET /v1/registrations/{id}`: where a submission stands now (None: unknown)."""
        response = await self._request("GET", f"/v1/registrations/{quote(submission_id, '')}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def cancel(
        self, submission_id: str, *, session_ids: Collection[uuid.UUID] = ()
    ) -> dict[str, Any]:
        """`DELETE /v1/registrations/{id}`: cancel its registrations (or only these sessions)."""
        response = await self._request(
            "DELETE",
            f"/v1/registrations/{quote(submission_id, '')}",
            params=[("session_id", str(s)) for s in session_ids],
            retry_conflict=True,
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def erase(
        self, *, email: str | None = None, registrant_id: uuid.UUID | None = None
    ) -> dict[str, Any]:
        """`POST /v1/erasures`: remove a person's data from every service."""
        if (email is None) == (registrant_id is None):
            raise PartnerError("erase by email or by registrant id, not both")
        body = {"email": email} if email is not None else {"registrant_id": str(registrant_id)}
        response = await self._request("POST", "/v1/erasures", json=body)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    async def stats(self, slug: str) -> dict[str, Any] | None:
        """`GET /v1/stats/campaigns/{slug}` (None while the service does not know it yet)."""
        response = await self._request("GET", f"/v1/stats/campaigns/{quote(slug, '')}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


# Answers -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """One event of `registration.outcomes.v1` that belongs to one of our partners."""

    event_id: uuid.UUID
    event_type: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    payload: Mapping[str, Any]

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> Self:
        return cls(
            event_id=envelope.event_id,
            event_type=envelope.event_type,
            correlation_id=envelope.correlation_id,
            causation_id=envelope.causation_id,
            payload=envelope.payload,
        )

    @property
    def is_answer(self) -> bool:
        """A first answer to a submission (not a later promotion or cancellation)."""
        return self.event_type in ANSWER_TYPES

    @property
    def answers(self) -> uuid.UUID:
        """The id of the submission envelope this answers: the decision carries it as its
        causation id; the answer to a dead-lettered message only as its correlation id."""
        return self.causation_id or self.correlation_id

    def _uuid(self, name: str) -> uuid.UUID | None:
        value = self.payload.get(name)
        return uuid.UUID(str(value)) if value else None

    @property
    def partner_id(self) -> uuid.UUID | None:
        return self._uuid("partner_id")

    @property
    def submission_id(self) -> str | None:
        value = self.payload.get("submission_id")
        return str(value) if value is not None else None

    @property
    def registrant_id(self) -> uuid.UUID | None:
        return self._uuid("registrant_id")

    @property
    def session_id(self) -> uuid.UUID | None:
        return self._uuid("session_id")

    @property
    def registration_id(self) -> uuid.UUID | None:
        return self._uuid("registration_id")

    @property
    def reason(self) -> str | None:
        value = self.payload.get("reason")
        return str(value) if value is not None else None

    @property
    def duplicate(self) -> bool:
        return bool(self.payload.get("duplicate", False))

    @property
    def position(self) -> int | None:
        value = self.payload.get("position", self.payload.get("previous_position"))
        return int(value) if value is not None else None


class OutcomeReader:
    """Reads `registration.outcomes.v1` from its beginning, keeping our partners' answers.

    No consumer group (nothing to join, nothing committed): every partition is assigned and
    read from the start, so a reader started late misses nothing.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        partner_ids: Collection[uuid.UUID],
        topic_prefix: str = "",
    ) -> None:
        self.topic = REGISTRATION_OUTCOMES.full_name(topic_prefix)
        self._partners = {str(p) for p in partner_ids}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="partner-outcomes",
            max_poll_records=5_000,
        )
        self.skipped = 0  # records of other partners (or unreadable)

    async def __aenter__(self) -> Self:
        await self._consumer.start()
        try:
            partitions = await self._partitions()
            self._consumer.assign(partitions)
            await self._consumer.seek_to_beginning(*partitions)
        except BaseException:
            await self._consumer.stop()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def _partitions(self) -> list[TopicPartition]:
        for _ in range(50):
            found = self._consumer.partitions_for_topic(self.topic)
            if found:
                return [TopicPartition(self.topic, p) for p in sorted(found)]
            await self._consumer.topics()  # refreshes the metadata
            await asyncio.sleep(0.1)
        raise PartnerError(f"there is no topic {self.topic} on this broker")

    async def poll(self, timeout_s: float = 0.5) -> list[Outcome]:
        """What arrived since the last call (possibly nothing), in partition order."""
        batch = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        found: list[Outcome] = []
        for records in batch.values():
            for record in records:
                outcome = self._parse(record.value)
                if outcome is None:
                    self.skipped += 1
                else:
                    found.append(outcome)
        return found

    def _parse(self, raw: bytes | None) -> Outcome | None:
        if not raw:
            return None
        try:
            envelope = Envelope.from_bytes(raw)
        except ValueError:
            return None
        if str(envelope.payload.get("partner_id")) not in self._partners:
            return None
        return Outcome.from_envelope(envelope)
