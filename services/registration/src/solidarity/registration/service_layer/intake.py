"""HTTP intake: a submission becomes an envelope in the outbox, bound for the submissions topic.

HTTP does not decide seats. It checks the API key (before this handler) and the
Idempotency-Key, and writes each submission as a `RegistrationSubmittedV1` envelope into
the outbox together with an intake record (partner, submission id, SHA-256 of the exact
envelope bytes), in one transaction. The consumer recognises the envelope by that record,
which no partner can write, and decides it like any other submission.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from solidarity.registration.domain.records import IntakeRecord
from solidarity.registration.service_layer.commands import AcceptSubmissions
from solidarity.registration.service_layer.unit_of_work import StoredResponse, UnitOfWork


class IdempotencyConflictError(Exception):
    """The Idempotency-Key was used before for a different request."""


@dataclass(frozen=True, slots=True)
class Accepted:
    status_code: int
    body: bytes
    replayed: bool


async def accept_submissions(cmd: AcceptSubmissions, uow: UnitOfWork) -> Accepted:
    """Record the submissions for the decision path, once per Idempotency-Key."""
    async with uow:
        if cmd.idempotency_key is not None:
            stored = await uow.repository.claim_idempotency_key(
                cmd.partner.partner_id,
                cmd.idempotency_key,
                StoredResponse(cmd.request_sha256, cmd.status_code, cmd.response),
            )
            if stored is not None:
                await uow.rollback()
                if stored.request_sha256 != cmd.request_sha256:
                    raise IdempotencyConflictError(cmd.idempotency_key)
                return Accepted(stored.status_code, stored.body, replayed=True)
        records = []
        for submission in cmd.submissions:
            envelope = uow.publish(submission)
            records.append(
                IntakeRecord(
                    event_id=envelope.event_id,
                    partner_id=cmd.partner.partner_id,
                    submission_id=submission.submission_id,
                    envelope_sha256=hashlib.sha256(envelope.to_bytes()).digest(),
                )
            )
        await uow.repository.add_intake(records)
        await uow.commit()
    return Accepted(cmd.status_code, cmd.response, replayed=False)
