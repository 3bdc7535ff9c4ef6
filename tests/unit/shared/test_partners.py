"""The partner client: messages the registration service trusts, and the HTTP API's manners."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import httpx
import pytest

from solidarity.registration.domain.partners import (
    PARTNER_HEADER as SERVICE_PARTNER_HEADER,
)
from solidarity.registration.domain.partners import (
    SIGNATURE_HEADER as SERVICE_SIGNATURE_HEADER,
)
from solidarity.registration.domain.partners import (
    PartnerAccount,
    signature_matches,
    signing_secret,
)
from solidarity.registration.service_layer.commands import ReceivedSubmission
from solidarity.registration.service_layer.decisions import authenticate
from solidarity.shared.contracts.envelope import Envelope, headers_to_dict
from solidarity.shared.contracts.events.common import RejectionReason
from solidarity.shared.contracts.events.registration import RegistrationSubmittedV1
from solidarity.shared.contracts.signing import PARTNER_HEADER, SIGNATURE_HEADER, sign
from solidarity.shared.partners import (
    HttpPartner,
    Outcome,
    PartnerCredentials,
    PartnerError,
    SignedMessage,
    http_submission,
    raw_envelope,
    signed_message,
    signed_value,
)

pytestmark = pytest.mark.unit

MASTER_KEY = b"unit-master-key-0123456789"


def _credentials(partner_id: uuid.UUID | None = None) -> PartnerCredentials:
    partner_id = partner_id or uuid.uuid4()
    return PartnerCredentials(
        partner_id=partner_id,
        name="Riverside",
        api_key="swk_test",
        signing_secret=signing_secret(MASTER_KEY, partner_id),
        campaigns=("solidarity-week-2026",),
    )


def _submission(
    partner_id: uuid.UUID, email: str = " Amara@Example.org "
) -> RegistrationSubmittedV1:
    return RegistrationSubmittedV1(
        partner_id=partner_id,
        submission_id="riverside-000123",
        campaign="solidarity-week-2026",
        registrant={"email": email, "role": "student"},
        session_ids=(uuid.uuid4(),),
    )


def _as_received(message: SignedMessage) -> ReceivedSubmission:
    """What the registration consumer makes of the record a partner publishes."""
    envelope = Envelope.from_bytes(message.value)
    headers = headers_to_dict(list(message.headers))
    return ReceivedSubmission(
        event_id=envelope.event_id,
        correlation_id=envelope.correlation_id,
        submission=RegistrationSubmittedV1.model_validate(envelope.payload),
        raw_envelope=message.value,
        signature=headers.get(SERVICE_SIGNATURE_HEADER),
        signed_partner=headers.get(SERVICE_PARTNER_HEADER),
    )


def _authenticate(message: SignedMessage, partner_id: uuid.UUID) -> RejectionReason | None:
    source, refusal = authenticate(
        _as_received(message),
        intake={},
        partners={partner_id: PartnerAccount(partner_id=partner_id, name="Riverside")},
        master_key=MASTER_KEY,
    )
    assert source == "kafka"
    return None if refusal is None else refusal.reason


def test_the_service_trusts_a_signed_message() -> None:
    account = _credentials()
    message = signed_message(account, _submission(account.partner_id), producer="riverside")

    assert (PARTNER_HEADER, SIGNATURE_HEADER) == (SERVICE_PARTNER_HEADER, SERVICE_SIGNATURE_HEADER)
    assert signature_matches(
        account.signing_secret, message.value, sign(account.signing_secret, message.value)
    )
    assert _authenticate(message, account.partner_id) is None


def test_a_forged_or_misattributed_message_is_refused() -> None:
    account = _credentials()
    message = signed_message(account, _submission(account.partner_id), producer="riverside")
    forged = signed_value(
        account,
        message.value,
        email="amara@example.org",
        headers=message.headers,
        signature=sign("sws_not-the-secret", message.value),
    )
    someone_else = _credentials()
    misattributed = SignedMessage(
        key=message.key,
        value=message.value,
        headers=tuple(
            (k, str(someone_else.partner_id).encode() if k == PARTNER_HEADER else v)
            for k, v in message.headers
        ),
        event_id=message.event_id,
    )
    tampered = signed_value(
        account,
        message.value.replace(b"riverside-000123", b"riverside-000124"),
        email="amara@example.org",
        headers=message.headers,
        signature=headers_to_dict(list(message.headers))[SIGNATURE_HEADER],
    )

    for bad in (forged, misattributed):
        assert _authenticate(bad, account.partner_id) is RejectionReason.INVALID_SIGNATURE
    assert (
        signature_matches(
            account.signing_secret,
            tampered.value,
            headers_to_dict(list(tampered.headers))[SIGNATURE_HEADER],
        )
        is False
    )


def test_a_message_is_keyed_by_the_email_hash_and_carries_its_envelope() -> None:
    account = _credentials()
    event_id = uuid.uuid4()
    message = signed_message(
        account, _submission(account.partner_id), producer="riverside", event_id=event_id
    )

    envelope = Envelope.from_bytes(message.value)
    headers = headers_to_dict(list(message.headers))
    assert message.key == hashlib.sha256(b"amara@example.org").hexdigest().encode()
    assert envelope.event_id == envelope.correlation_id == event_id == message.event_id
    assert envelope.event_type == "RegistrationSubmitted"
    assert envelope.payload["partner_id"] == str(account.partner_id)
    assert headers["event_type"] == "RegistrationSubmitted"
    assert headers["schema_version"] == "1"
    assert headers[PARTNER_HEADER] == str(account.partner_id)


def test_a_partner_signs_only_its_own_submissions() -> None:
    with pytest.raises(PartnerError):
        signed_message(_credentials(), _submission(uuid.uuid4()), producer="riverside")


def test_a_raw_envelope_is_signed_as_it_is() -> None:
    account = _credentials()
    event_id = uuid.uuid4()
    value = raw_envelope(
        {"partner_id": str(account.partner_id), "submission_id": "x", "registrant": {}},
        producer="riverside",
        event_id=event_id,
        occurred_at=Envelope.wrap(_submission(account.partner_id), producer="p").occurred_at,
    )
    message = signed_value(account, value, email="a@example.org")

    assert json.loads(value)["correlation_id"] == str(event_id)
    assert signature_matches(
        account.signing_secret, value, headers_to_dict(list(message.headers))[SIGNATURE_HEADER]
    )


def test_credentials_come_from_the_cli_and_never_show_their_secrets() -> None:
    partner_id = uuid.uuid4()
    account = PartnerCredentials.from_json(
        {
            "partner_id": str(partner_id),
            "name": "Riverside",
            "campaigns": ["a", "b"],
            "api_key": "swk_secret-key",
            "signing_secret": "sws_secret-signing",
        }
    )

    assert account.partner_id == partner_id
    assert account.campaigns == ("a", "b")
    assert "secret" not in repr(account)


def test_over_http_the_submission_has_no_partner_id() -> None:
    body = http_submission(_submission(uuid.uuid4()))

    assert "partner_id" not in body
    assert body["submission_id"] == "riverside-000123"


class FakeRegistrationApi:
    """The registration HTTP API's manners: 503 once, then 202; 409 until decided; replays."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.busy_once = True
        self.undecided = 2
        self.keys: dict[str, bytes] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.headers.get("Authorization") != "Bearer swk_test":
            return httpx.Response(401, json={"detail": "unknown API key"})
        if path == "/v1/registrations/batch":
            if self.busy_once:
                self.busy_once = False
                return httpx.Response(503, headers={"Retry-After": "0"}, json={})
            key = request.headers["Idempotency-Key"]
            replayed = key in self.keys
            self.keys.setdefault(key, request.content)
            body = {"accepted": 1, "invalid": 0, "items": [{"index": 0, "state": "pending"}]}
            headers = {"Idempotent-Replayed": "true"} if replayed else {}
            return httpx.Response(202, json=body, headers=headers)
        if request.method == "DELETE":
            if self.undecided:
                self.undecided -= 1
                return httpx.Response(409, headers={"Retry-After": "0"}, json={})
            return httpx.Response(200, json={"submission_id": "a/b", "cancelled": []})
        if path.startswith("/v1/stats/"):
            return httpx.Response(404, json={"detail": "no such campaign"})
        return httpx.Response(404, json={})


async def test_the_http_partner_retries_busy_and_undecided_and_sees_replays() -> None:
    api = FakeRegistrationApi()
    async with HttpPartner(
        _credentials(),
        base_url="http://registration.test",
        transport=httpx.MockTransport(api),
    ) as partner:
        first = await partner.submit_batch([{"submission_id": "a"}], idempotency_key="k1")
        again = await partner.submit_batch([{"submission_id": "a"}], idempotency_key="k1")
        cancelled = await partner.cancel("a/b", session_ids=[uuid.UUID(int=1)])
        unknown = await partner.stats("nope")

    assert first.status_code == 202
    assert not first.replayed
    assert again.replayed
    assert cancelled["cancelled"] == []
    assert unknown is None
    batch_calls = [r for r in api.requests if r.url.path == "/v1/registrations/batch"]
    assert len(batch_calls) == 3  # one 503, then two answered
    assert json.loads(batch_calls[-1].content) == {"submissions": [{"submission_id": "a"}]}
    deletes = [r for r in api.requests if r.method == "DELETE"]
    assert len(deletes) == 3  # 409 twice, then done
    assert (
        deletes[-1].url.raw_path
        == b"/v1/registrations/a%2Fb?session_id=" + str(uuid.UUID(int=1)).encode()
    )


def _outcome(**payload: Any) -> Outcome:
    correlation = uuid.uuid4()
    return Outcome(
        event_id=uuid.uuid4(),
        event_type=payload.pop("type"),
        correlation_id=correlation,
        causation_id=payload.pop("causation", None),
        payload=payload,
    )


def test_an_outcome_names_the_envelope_it_answers() -> None:
    cause = uuid.uuid4()
    decided = _outcome(type="SessionRegistrationWaitlisted", causation=cause, position=3)
    dead_lettered = _outcome(type="SessionRegistrationRejected", reason="invalid_submission")
    promoted = _outcome(type="WaitlistPromoted", previous_position=1)

    assert decided.answers == cause
    assert decided.position == 3
    assert decided.is_answer
    assert dead_lettered.answers == dead_lettered.correlation_id
    assert dead_lettered.reason == "invalid_submission"
    assert not promoted.is_answer
    assert promoted.position == 1
