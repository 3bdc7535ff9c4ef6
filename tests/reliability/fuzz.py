"""Hypothesis strategies for what can arrive on a consumed topic: raw bytes, any JSON, almost
envelopes, and valid events with one to three fields mutated to odd but plausible values."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from solidarity.shared.contracts.envelope import Envelope, Event, EventHeaders
from solidarity.shared.contracts.events.catalog import (
    CampaignUpdatedV1,
    FocusDayAddedV1,
    ResourcePublishedV1,
    SessionCancelledV1,
    SessionCapacityChangedV1,
    SessionRescheduledV1,
)
from solidarity.shared.contracts.events.common import Consents, Role
from solidarity.shared.contracts.events.registration import (
    RegistrantErasedV1,
    RegistrantRecordedV1,
    RegistrationCancelledV1,
    SessionRegistrationConfirmedV1,
    SessionRegistrationRejectedV1,
    SessionRegistrationWaitlistedV1,
    SignupConfirmedV1,
    WaitlistPromotedV1,
)
from solidarity.shared.contracts.registry import EVENT_TYPES
from solidarity.shared.contracts.topics import (
    CATALOG_CAMPAIGNS,
    CATALOG_SESSIONS,
    REGISTRATION_OUTCOMES,
    REGISTRATION_REGISTRANTS,
    REGISTRATION_SUBMISSIONS,
)
from tests.reliability import platform

HEADER_NAMES = [
    EventHeaders.EVENT_ID,
    EventHeaders.EVENT_TYPE,
    EventHeaders.SCHEMA_VERSION,
    EventHeaders.CORRELATION_ID,
    "x-solidarity-partner",
    "x-solidarity-signature",
    "dlq.source_topic",
]

# Strings that have broken parsers and databases before.
ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\u202e",
        "🏳️‍🌈",
        "ß" * 500,
        "x" * 10_000,
        "'; DROP TABLE registrants; --",
        "%s%s%n",
        "{{7*7}}",
        "<script>alert(1)</script>",
        "\ud7ff",
        "null",
        "NaN",
        "2023-02-30T25:61:00Z",
        "Not/AZone",
        "UTC",
        "\n\r\t",
    ]
)
ODD_INTS = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63, 10**30]),
)


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        ODD_INTS,
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
        ODD_TEXT,
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(st.text(max_size=12), children, max_size=5),
        ),
        max_leaves=25,
    )


def headers() -> st.SearchStrategy[list[tuple[str, bytes]]]:
    name = st.one_of(st.sampled_from(HEADER_NAMES), st.text(max_size=20), ODD_TEXT)
    known_type = st.sampled_from([f"{t}" for t, _ in EVENT_TYPES]).map(str.encode)
    value = st.one_of(
        st.binary(max_size=60),
        known_type,
        st.text(max_size=40).map(str.encode),
        ODD_TEXT.map(lambda t: t.encode("utf-8", errors="surrogatepass")),
    )
    return st.lists(st.tuples(name, value), max_size=6)


def almost_envelopes() -> st.SearchStrategy[bytes]:
    """JSON objects shaped like an envelope, each field right or wrong."""
    known = st.sampled_from(sorted(EVENT_TYPES))
    return st.fixed_dictionaries(
        {},
        optional={
            "event_id": st.one_of(st.uuids().map(str), json_values()),
            "event_type": st.one_of(known.map(lambda k: k[0]), json_values()),
            "schema_version": st.one_of(known.map(lambda k: k[1]), ODD_INTS, json_values()),
            "occurred_at": st.one_of(
                st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat), json_values()
            ),
            "producer": st.one_of(st.text(max_size=120), json_values()),
            "correlation_id": st.one_of(st.uuids().map(str), json_values()),
            "causation_id": st.one_of(st.none(), st.uuids().map(str), json_values()),
            "payload": st.one_of(
                st.dictionaries(st.text(max_size=20), json_values()), json_values()
            ),
        },
    ).map(lambda d: json.dumps(d).encode())


def raw_values() -> st.SearchStrategy[bytes | None]:
    return st.one_of(
        st.none(),
        st.binary(max_size=3000),
        json_values().map(lambda v: json.dumps(v).encode()),
        almost_envelopes(),
    )


# Mutations of valid payloads -------------------------------------------------------------


def _replacement(current: Any) -> st.SearchStrategy[Any]:
    """Odd values of the same JSON type as `current` (and sometimes of another type)."""
    other = json_values()
    if isinstance(current, bool):
        return st.one_of(st.booleans(), other)
    if isinstance(current, int):
        return st.one_of(ODD_INTS, other)
    if isinstance(current, float):
        return st.one_of(st.floats(), other)
    if isinstance(current, str):
        try:
            uuid.UUID(current)
        except ValueError:
            pass
        else:
            return st.one_of(st.uuids().map(str), ODD_TEXT, other)
        try:
            datetime.fromisoformat(current)
        except ValueError:
            pass
        else:
            extreme = st.sampled_from(
                ["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00", "1970-01-01T00:00:00Z"]
            )
            return st.one_of(
                st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat), extreme, other
            )
        return st.one_of(st.text(max_size=300), ODD_TEXT, other)
    if isinstance(current, list):
        many: list[Any] = current * 50
        return st.one_of(st.lists(json_values(), max_size=4), st.just(many), other)
    if isinstance(current, dict):
        return st.one_of(st.just({}), other)
    return other


@st.composite
def mutated_payload(draw: st.DrawFn, payload: dict[str, Any]) -> dict[str, Any]:
    """One to three fields changed, dropped or added (nested objects included)."""
    result: dict[str, Any] = json.loads(json.dumps(payload))
    for _ in range(draw(st.integers(1, 3))):
        target: dict[str, Any] = result
        keys = list(target)
        change_existing: bool = draw(st.booleans())
        if keys and change_existing:
            key = draw(st.sampled_from(keys))
            if isinstance(target[key], dict) and target[key] and draw(st.booleans()):
                target = target[key]
                key = draw(st.sampled_from(list(target)))
            action = draw(st.sampled_from(["replace", "replace", "drop"]))
            if action == "drop":
                del target[key]
            else:
                target[key] = draw(_replacement(target[key]))
        else:
            target[draw(st.text(min_size=1, max_size=15))] = draw(json_values())
    return result


def examples(
    campaign_id: uuid.UUID, session_id: uuid.UUID, partner_id: uuid.UUID
) -> dict[str, list[Event]]:
    """A valid event of every consumed type, by topic."""
    registrant, registration = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC).replace(microsecond=0)
    scheduled = platform.session_scheduled(campaign_id, session_id=session_id, capacity=5)
    outcome = {"registrant_id": registrant, "campaign_id": campaign_id, "partner_id": partner_id}
    return {
        CATALOG_CAMPAIGNS.name: [
            platform.campaign_published("fuzz-campaign", campaign_id=campaign_id),
            CampaignUpdatedV1(
                **platform.campaign_published("fuzz-campaign", campaign_id=campaign_id)
                .model_copy(update={"revision": 2})
                .model_dump(),
                changed_fields=("name",),
            ),
            FocusDayAddedV1(
                focus_day_id=uuid.uuid4(),
                campaign_id=campaign_id,
                revision=3,
                date=date.today() + timedelta(days=2),
                title="Focus day",
            ),
            ResourcePublishedV1(
                resource_id=uuid.uuid4(),
                campaign_id=campaign_id,
                revision=4,
                kind="guide",
                title="Student guide",
                audience=(Role.STUDENT,),
                url="https://example.org/guide.pdf",
            ),
        ],
        CATALOG_SESSIONS.name: [
            scheduled,
            SessionRescheduledV1(
                **scheduled.model_copy(update={"revision": 2, "sequence": 1}).model_dump(),
                previous_starts_at=scheduled.starts_at - timedelta(hours=1),
                previous_ends_at=scheduled.ends_at - timedelta(hours=1),
            ),
            SessionCancelledV1(
                session_id=session_id,
                campaign_id=campaign_id,
                revision=3,
                reason="speaker unavailable",
                cancelled_at=now,
            ),
            SessionCapacityChangedV1(
                session_id=session_id,
                campaign_id=campaign_id,
                revision=4,
                previous_capacity=5,
                capacity=3,
            ),
        ],
        REGISTRATION_OUTCOMES.name: [
            SignupConfirmedV1(
                **outcome, signup_id=uuid.uuid4(), role=Role.STUDENT, consents=Consents()
            ),
            SessionRegistrationConfirmedV1(
                **outcome, registration_id=registration, session_id=session_id
            ),
            SessionRegistrationWaitlistedV1(
                **outcome, registration_id=registration, session_id=session_id, position=3
            ),
            SessionRegistrationRejectedV1(
                partner_id=partner_id, submission_id="s-1", reason="unknown_session", detail=""
            ),
            WaitlistPromotedV1(
                **outcome,
                registration_id=registration,
                session_id=session_id,
                previous_position=1,
            ),
            RegistrationCancelledV1(
                **outcome, registration_id=registration, session_id=session_id, reason="registrant"
            ),
        ],
        REGISTRATION_REGISTRANTS.name: [
            RegistrantRecordedV1(
                registrant_id=registrant,
                email=platform.person_email("fuzz"),
                name=platform.person_name(),
                role=Role.STUDENT,
                time_zone="America/Chicago",
            ),
            RegistrantErasedV1(registrant_id=uuid.uuid4(), erased_at=now),
        ],
        REGISTRATION_SUBMISSIONS.name: [
            platform.submission(
                partner_id, "fuzz-campaign", session_ids=[session_id], name=platform.person_name()
            )
        ],
    }


def envelope_bytes(event: Event, payload: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A real envelope around a (possibly mutated) payload, with the matching headers."""
    envelope = Envelope.wrap(event, producer="fuzz")
    data = json.loads(envelope.to_bytes())
    data["payload"] = payload
    return json.dumps(data).encode(), envelope.headers()
