"""The partner API: submit (one or a batch), read a submission's status, cancel, erase, stats.

Routes are thin: authenticate the API key, parse, build a command, call a handler, answer.
Submissions are not decided here: they are written to the outbox for the one decision path
(the submissions consumer) and answered 202 with a status URL, or with the outcome when
`?wait=` is given and the decision comes in time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import asyncpg
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from solidarity.registration.adapters import queries
from solidarity.registration.adapters.metrics import RegistrationMetrics
from solidarity.registration.adapters.repository import SqlRepository
from solidarity.registration.adapters.unit_of_work import SqlUnitOfWork
from solidarity.registration.domain.partners import PartnerAccount, hash_api_key
from solidarity.registration.entrypoints.http_models import (
    BatchAcceptedOut,
    BatchIn,
    CampaignStatsOut,
    CancelledOut,
    ErasedOut,
    ErasureIn,
    SubmissionAcceptedOut,
    SubmissionIn,
    SubmissionStatusOut,
)
from solidarity.registration.service_layer.changes import (
    NotDecidedYetError,
    NotFoundError,
    cancel_submission,
    erase_registrant,
)
from solidarity.registration.service_layer.commands import (
    AcceptSubmissions,
    CancelRegistrations,
    EraseRegistrant,
)
from solidarity.registration.service_layer.intake import (
    Accepted,
    IdempotencyConflictError,
    accept_submissions,
)
from solidarity.registration.service_layer.unit_of_work import ConcurrentDecisionError
from solidarity.registration.settings import RegistrationSettings
from solidarity.shared.contracts.events.registration import RegistrationSubmittedV1
from solidarity.shared.db.pool import TRANSIENT_DB_ERRORS
from solidarity.shared.http_models import (
    ErrorMessage,
    InvalidRequest,
    field_errors,
    service_unavailable,
)
from solidarity.shared.logging import get_logger
from solidarity.shared.runtime import ServiceRuntime

log = get_logger(__name__)

# What every route may answer besides its own; each route adds its own codes below.
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorMessage, "description": "The body is not JSON"},
    401: {"model": ErrorMessage, "description": "No API key, or an unknown or inactive one"},
    422: {"model": InvalidRequest, "description": "The request does not validate"},
    **service_unavailable("Starting, or busy: retry after `Retry-After`", own=ErrorMessage),
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "Not found for this partner"}
}
_KEY_REUSED: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorMessage, "description": "This Idempotency-Key was used for another request"}
}

router = APIRouter(prefix="/v1", tags=["partners"], responses=_ERRORS)

T = TypeVar("T")

_RETRYABLE: tuple[type[BaseException], ...] = (ConcurrentDecisionError, *TRANSIENT_DB_ERRORS)


@dataclass(frozen=True, slots=True)
class RegistrationContext:
    """What the routes need besides the runtime: settings and metrics."""

    settings: RegistrationSettings
    metrics: RegistrationMetrics


# Dependencies --------------------------------------------------------------------------------


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise HTTPException(503, "the service is starting")
    return runtime


def _context(request: Request) -> RegistrationContext:
    context: RegistrationContext = request.app.state.registration
    return context


async def authenticated_partner(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> PartnerAccount:
    """The partner whose API key is in `Authorization: Bearer ...` or `X-API-Key`."""
    key = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key:
        raise HTTPException(401, "an API key is required", {"WWW-Authenticate": "Bearer"})
    runtime = _runtime(request)
    async with runtime.pool.acquire() as conn:
        partner = await SqlRepository(conn).partner_by_api_key(hash_api_key(key))
    if partner is None or not partner.active:
        raise HTTPException(401, "unknown API key", {"WWW-Authenticate": "Bearer"})
    return partner


Partner = Annotated[PartnerAccount, Depends(authenticated_partner)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Same key and body: the same response. Same key, another body: 409.",
    ),
]
Wait = Annotated[
    str | None,
    Query(
        description="Wait up to this long for the outcome (e.g. 2s, 500ms); at most 10 s.",
        pattern=r"^\d+(\.\d+)?(ms|s)?$",
    ),
]


# Helpers -------------------------------------------------------------------------------------


def _status_url(submission_id: str) -> str:
    return f"/v1/registrations/{quote(submission_id, safe='')}"


def _wait_seconds(wait: str | None, settings: RegistrationSettings) -> float:
    if not wait:
        return 0.0
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)?", wait)
    if match is None:
        return 0.0
    value = float(match[1]) / (1000 if match[2] == "ms" else 1)
    return min(value, settings.http_wait_max_s)


def _request_sha256(request: Request, body: bytes) -> bytes:
    return hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + body).digest()


async def _retrying(action: Callable[[], Awaitable[T]]) -> T:
    """Run a transaction again when it lost a race or hit a passing database error."""
    for attempt in range(4):
        try:
            return await action()
        except _RETRYABLE as exc:
            if attempt == 3:
                log.warning("http_transaction_gave_up", error_type=type(exc).__name__)
                raise HTTPException(503, "busy, try again", {"Retry-After": "1"}) from exc
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def _accept(
    request: Request,
    partner: PartnerAccount,
    submissions: tuple[RegistrationSubmittedV1, ...],
    response: dict[str, Any],
    idempotency_key: str | None,
) -> Accepted:
    runtime = _runtime(request)
    command = AcceptSubmissions(
        partner=partner,
        submissions=submissions,
        request_sha256=_request_sha256(request, await request.body()),
        response=_json(response),
        idempotency_key=idempotency_key,
    )
    try:
        accepted = await _retrying(
            lambda: accept_submissions(
                command, SqlUnitOfWork(outbox=runtime.outbox, pool=runtime.pool)
            )
        )
    except IdempotencyConflictError as exc:
        raise HTTPException(409, "this Idempotency-Key was used for a different request") from exc
    if not accepted.replayed:
        _context(request).metrics.accepted.inc(len(submissions))
    return accepted


async def _wait_for_outcome(
    request: Request, partner: PartnerAccount, submission_id: str, seconds: float
) -> dict[str, Any] | None:
    runtime = _runtime(request)
    poll = _context(request).settings.http_wait_poll_s
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        async with runtime.pool.acquire() as conn:
            status = await queries.submission_status(conn, partner.partner_id, submission_id)
        if status is not None and status["state"] != "pending":
            return status
        if asyncio.get_running_loop().time() >= deadline:
            return None
        await asyncio.sleep(poll)


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _answer(accepted: Accepted, extra_headers: dict[str, str] | None = None) -> Response:
    headers = {"Idempotent-Replayed": "true"} if accepted.replayed else {}
    headers.update(extra_headers or {})
    return Response(
        accepted.body,
        status_code=accepted.status_code,
        headers=headers,
        media_type="application/json",
    )


# Routes --------------------------------------------------------------------------------------


@router.post(
    "/registrations",
    status_code=202,
    summary="Submit one registration (decided asynchronously; ?wait= for the outcome)",
    response_model=SubmissionAcceptedOut,
    responses={
        200: {"model": SubmissionStatusOut, "description": "Decided within `?wait=`"},
        **_KEY_REUSED,
    },
)
async def submit(
    request: Request,
    submission: SubmissionIn,
    partner: Partner,
    idempotency_key: IdempotencyKey = None,
    wait: Wait = None,
) -> Response:
    try:
        event = submission.for_partner(partner.partner_id)
    except ValidationError as exc:
        return JSONResponse({"detail": field_errors(exc.errors())}, status_code=422)
    url = _status_url(event.submission_id)
    body = {"submission_id": event.submission_id, "state": "pending", "status_url": url}
    accepted = await _accept(request, partner, (event,), body, idempotency_key)
    seconds = _wait_seconds(wait, _context(request).settings)
    if seconds > 0:
        status = await _wait_for_outcome(request, partner, event.submission_id, seconds)
        if status is not None:
            return JSONResponse({**status, "status_url": url}, status_code=200)
    return _answer(accepted, {"Location": url})


@router.post(
    "/registrations/batch",
    status_code=202,
    summary="Submit up to 1,000 registrations at once; each is answered by its index",
    response_model=BatchAcceptedOut,
    responses={
        **_KEY_REUSED,
        413: {"model": ErrorMessage, "description": "More submissions than one call takes"},
        422: {
            "model": BatchAcceptedOut | InvalidRequest,
            "description": "No submission of the batch is valid (each item says why), "
            "or the batch itself does not validate",
        },
    },
)
async def submit_batch(
    request: Request,
    batch: BatchIn,
    partner: Partner,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    settings = _context(request).settings
    if len(batch.submissions) > settings.http_batch_max:
        raise HTTPException(413, f"at most {settings.http_batch_max} submissions per call")
    items: list[dict[str, Any]] = []
    valid: list[RegistrationSubmittedV1] = []
    for index, raw in enumerate(batch.submissions):
        try:
            event = SubmissionIn.model_validate(raw).for_partner(partner.partner_id)
        except ValidationError as exc:
            items.append({"index": index, "state": "invalid", "errors": field_errors(exc.errors())})
            continue
        valid.append(event)
        items.append(
            {
                "index": index,
                "submission_id": event.submission_id,
                "state": "pending",
                "status_url": _status_url(event.submission_id),
            }
        )
    body = {"accepted": len(valid), "invalid": len(items) - len(valid), "items": items}
    if not valid:
        return JSONResponse(body, status_code=422)
    return _answer(await _accept(request, partner, tuple(valid), body, idempotency_key))


@router.get(
    "/registrations/{submission_id:path}",
    summary="A submission's status and outcome",
    response_model=SubmissionStatusOut,
    response_model_exclude_unset=True,
    responses=_NOT_FOUND,
)
async def status(request: Request, submission_id: str, partner: Partner) -> dict[str, Any]:
    runtime = _runtime(request)
    async with runtime.pool.acquire() as conn:
        found = await queries.submission_status(conn, partner.partner_id, submission_id)
    if found is None:
        raise HTTPException(404, "no such submission for this partner")
    return {**found, "status_url": _status_url(submission_id)}


@router.delete(
    "/registrations/{submission_id:path}",
    summary="Cancel a submission's session registrations (all, or those given)",
    response_model=CancelledOut,
    responses={
        **_NOT_FOUND,
        409: {"model": ErrorMessage, "description": "Not decided yet: try again shortly"},
    },
)
async def cancel(
    request: Request,
    submission_id: str,
    partner: Partner,
    session_id: Annotated[list[uuid.UUID] | None, Query()] = None,
) -> dict[str, Any]:
    runtime = _runtime(request)
    command = CancelRegistrations(
        partner_id=partner.partner_id,
        submission_id=submission_id,
        session_ids=tuple(session_id or ()),
    )
    uow_box: list[SqlUnitOfWork] = []

    async def run() -> list[Any]:
        uow = SqlUnitOfWork(outbox=runtime.outbox, pool=runtime.pool)
        uow_box.append(uow)
        return await cancel_submission(command, uow)

    try:
        cancelled = await _retrying(run)
    except NotFoundError as exc:
        raise HTTPException(404, "no such submission for this partner") from exc
    except NotDecidedYetError as exc:
        raise HTTPException(
            409, "not decided yet; try again shortly", {"Retry-After": "1"}
        ) from exc
    _context(request).metrics.count_events([e.event_type for e, _ in uow_box[-1].committed])
    return {
        "submission_id": submission_id,
        "cancelled": [
            {"registration_id": str(r.registration_id), "session_id": str(r.session_id)}
            for r in cancelled
        ],
    }


@router.post(
    "/erasures",
    summary="Erase a registrant's personal data everywhere",
    response_model=ErasedOut,
    responses=_NOT_FOUND,
)
async def erase(request: Request, erasure: ErasureIn, partner: Partner) -> dict[str, Any]:
    runtime = _runtime(request)
    command = EraseRegistrant(
        partner_id=partner.partner_id, registrant_id=erasure.registrant_id, email=erasure.email
    )
    uow_box: list[SqlUnitOfWork] = []

    async def run() -> Any:
        uow = SqlUnitOfWork(outbox=runtime.outbox, pool=runtime.pool)
        uow_box.append(uow)
        return await erase_registrant(command, uow)

    try:
        erased = await _retrying(run)
    except NotFoundError as exc:
        raise HTTPException(404, "no such registrant for this partner") from exc
    _context(request).metrics.count_events([e.event_type for e, _ in uow_box[-1].committed])
    log.info("registrant_erased", registrant_id=str(erased.registrant_id), already=erased.already)
    return {
        "registrant_id": str(erased.registrant_id),
        "erased_at": erased.erased_at.isoformat(),
        "already_erased": erased.already,
    }


@router.get(
    "/stats/campaigns/{slug}",
    summary="Registration counts (no personal data)",
    response_model=CampaignStatsOut,
    responses={
        **_NOT_FOUND,
        403: {"model": ErrorMessage, "description": "This partner does not work on this campaign"},
    },
)
async def stats(request: Request, slug: str, partner: Partner) -> dict[str, Any]:
    if not partner.may_register_for(slug):
        raise HTTPException(403, "this partner does not work on this campaign")
    runtime = _runtime(request)
    try:
        async with runtime.pool.acquire() as conn:
            found = await queries.campaign_stats(conn, slug)
    except asyncpg.PostgresError as exc:
        raise HTTPException(503, "statistics unavailable") from exc
    if found is None:
        raise HTTPException(404, "no such campaign")
    return found
