"""Commands: what the entrypoints ask the handlers to do (imperative, one dataclass each)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from solidarity.registration.domain.partners import PartnerAccount
from solidarity.shared.contracts.envelope import Event
from solidarity.shared.contracts.events.registration import RegistrationSubmittedV1


@dataclass(frozen=True, slots=True)
class ReceivedSubmission:
    """A submission as it came off the submissions topic."""

    event_id: uuid.UUID
    correlation_id: uuid.UUID
    submission: RegistrationSubmittedV1
    raw_envelope: bytes  # the exact bytes: signatures and intake fingerprints cover them
    signature: str | None = None  # x-solidarity-signature
    signed_partner: str | None = None  # x-solidarity-partner


@dataclass(frozen=True, slots=True)
class DecideSubmissions:
    """Decide a batch of submissions, in order, in one transaction."""

    submissions: tuple[ReceivedSubmission, ...]


@dataclass(frozen=True, slots=True)
class ReceivedCatalogEvent:
    event_id: uuid.UUID
    correlation_id: uuid.UUID
    event: Event


@dataclass(frozen=True, slots=True)
class ApplyCatalogEvents:
    """Bring the read model of campaigns and sessions up to date, in order."""

    events: tuple[ReceivedCatalogEvent, ...]


@dataclass(frozen=True, slots=True)
class AcceptSubmissions:
    """Take submissions over HTTP: record them for the consumer, answer at once.

    `response` is what the caller answers when this is new; with an `idempotency_key`, it is
    stored under it and a repeat of the same request gets it back.
    """

    partner: PartnerAccount
    submissions: tuple[RegistrationSubmittedV1, ...]
    request_sha256: bytes
    response: bytes  # the JSON body to answer
    status_code: int = 202
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class CancelRegistrations:
    """A partner cancels the session registrations of one of its submissions."""

    partner_id: uuid.UUID
    submission_id: str
    session_ids: tuple[uuid.UUID, ...] = ()  # empty: every session of the submission


@dataclass(frozen=True, slots=True)
class EraseRegistrant:
    """Forget a person: by registrant id or by email, asked by a partner that registered them."""

    partner_id: uuid.UUID
    registrant_id: uuid.UUID | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class CreatePartner:
    name: str
    campaigns: tuple[str, ...]
