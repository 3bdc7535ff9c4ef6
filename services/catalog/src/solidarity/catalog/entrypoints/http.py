"""The admin HTTP API: organizers create, read, update, list, publish and cancel.

Routes are thin: parse the body, build a command, call its handler, answer. Every route
needs the admin bearer token; every error answers `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated, Any, Protocol

import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from solidarity.catalog.domain.errors import CatalogError, ConflictError, NotFoundError
from solidarity.catalog.domain.listing import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CampaignFilter,
    Cursor,
    FocusDayFilter,
    OrganizationFilter,
    PageRequest,
    ResourceFilter,
    SessionFilter,
)
from solidarity.catalog.domain.model import (
    FocusDayDetails,
    OrganizationDetails,
    ResourceDetails,
    SessionDetails,
)
from solidarity.catalog.entrypoints.http_models import (
    CampaignIn,
    CampaignOut,
    CampaignPatch,
    ErrorBody,
    FocusDayIn,
    FocusDayOut,
    FocusDayPatch,
    OrganizationIn,
    OrganizationOut,
    OrganizationPatch,
    PageOut,
    ResourceIn,
    ResourceOut,
    ResourcePatch,
    SessionCancelIn,
    SessionIn,
    SessionOut,
    SessionPatch,
)
from solidarity.catalog.service_layer import commands, handlers, queries
from solidarity.catalog.service_layer.unit_of_work import AbstractUnitOfWork
from solidarity.shared.contracts.events.common import (
    CampaignStatus,
    OrganizationKind,
    Role,
    SessionKind,
    SessionStatus,
)
from solidarity.shared.logging import get_logger

log = get_logger(__name__)

CORRELATION_HEADER = "X-Correlation-ID"


class UnitOfWorkFactory(Protocol):
    """Builds one unit of work per request (the composition root provides it)."""

    def __call__(self, *, correlation_id: uuid.UUID | None = None) -> AbstractUnitOfWork: ...


class ServiceUnavailableError(Exception):
    """The service cannot answer the admin API right now (starting, or no token set)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Auth and per-request wiring -----------------------------------------------------------------

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="The catalog's admin token (SOLIDARITY_ADMIN_TOKEN), as `Bearer <token>`.",
)


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    expected: SecretStr | None = request.app.state.admin_token
    if expected is None:
        raise ServiceUnavailableError(
            "admin_api_disabled",
            "the admin API is disabled: set SOLIDARITY_ADMIN_TOKEN and restart the service",
        )
    given = credentials.credentials if credentials is not None else ""
    if not given or not secrets.compare_digest(
        given.encode(), expected.get_secret_value().encode()
    ):
        raise StarletteHTTPException(
            status_code=401,
            detail="a valid admin bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _correlation_id(request: Request) -> uuid.UUID:
    raw = request.headers.get(CORRELATION_HEADER)
    try:
        return uuid.UUID(raw) if raw else uuid.uuid4()
    except ValueError:
        return uuid.uuid4()


async def unit_of_work(request: Request, response: Response) -> AbstractUnitOfWork:
    factory: UnitOfWorkFactory | None = getattr(request.app.state, "uow_factory", None)
    if factory is None:
        raise ServiceUnavailableError("starting", "the service is starting; try again shortly")
    correlation_id = _correlation_id(request)
    structlog.contextvars.bind_contextvars(correlation_id=str(correlation_id))
    response.headers[CORRELATION_HEADER] = str(correlation_id)
    return factory(correlation_id=correlation_id)


Uow = Annotated[AbstractUnitOfWork, Depends(unit_of_work)]


async def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page; omit for the first")
    ] = None,
) -> PageRequest:
    return PageRequest(limit=limit, after=Cursor.decode(cursor) if cursor else None)


Paging = Annotated[PageRequest, Depends(page_request)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not valid JSON"},
    401: {"model": ErrorBody, "description": "Missing or wrong admin token"},
    503: {
        "model": ErrorBody,
        "description": "Starting, the database away (Retry-After), or no admin token configured",
    },
    404: {"model": ErrorBody, "description": "Not found"},
    409: {"model": ErrorBody, "description": "The current state forbids it"},
    422: {"model": ErrorBody, "description": "The input breaks a rule"},
}

router = APIRouter(dependencies=[Depends(require_admin)], responses=_ERRORS)


# Organizations -------------------------------------------------------------------------------


@router.post(
    "/organizations",
    status_code=201,
    tags=["organizations"],
    summary="Register a school, campus, partner or nonprofit",
)
async def create_organization(body: OrganizationIn, uow: Uow) -> OrganizationOut:
    details = OrganizationDetails(
        kind=body.kind, name=body.name, time_zone=body.time_zone, region=body.region
    )
    organization = await handlers.register_organization(
        commands.RegisterOrganization(details=details), uow
    )
    return OrganizationOut.of(organization)


@router.get("/organizations", tags=["organizations"], summary="List organizations by name")
async def list_organizations(
    uow: Uow,
    page: Paging,
    kind: OrganizationKind | None = None,
    region: str | None = None,
) -> PageOut[OrganizationOut]:
    found = await queries.list_organizations(
        uow, OrganizationFilter(kind=kind, region=region), page
    )
    return PageOut(
        items=[OrganizationOut.of(o) for o in found.items], next_cursor=found.next_cursor
    )


@router.get("/organizations/{organization_id}", tags=["organizations"])
async def get_organization(organization_id: uuid.UUID, uow: Uow) -> OrganizationOut:
    return OrganizationOut.of(await queries.get_organization(uow, organization_id))


@router.patch("/organizations/{organization_id}", tags=["organizations"])
async def update_organization(
    organization_id: uuid.UUID, body: OrganizationPatch, uow: Uow
) -> OrganizationOut:
    organization = await handlers.revise_organization(
        commands.ReviseOrganization(organization_id=organization_id, changes=body.changes()), uow
    )
    return OrganizationOut.of(organization)


# Campaigns -----------------------------------------------------------------------------------


@router.post("/campaigns", status_code=201, tags=["campaigns"], summary="Create a draft campaign")
async def create_campaign(body: CampaignIn, uow: Uow) -> CampaignOut:
    campaign = await handlers.create_campaign(
        commands.CreateCampaign(
            slug=body.slug,
            name=body.name,
            description=body.description,
            starts_on=body.starts_on,
            ends_on=body.ends_on,
            time_zone=body.time_zone,
            host_organization_id=body.host_organization_id,
            questions=tuple(body.questions),
            discreet=body.discreet,
            reminder_offsets_minutes=tuple(body.reminder_offsets_minutes),
        ),
        uow,
    )
    return CampaignOut.of(campaign)


@router.get("/campaigns", tags=["campaigns"], summary="List campaigns by start date")
async def list_campaigns(
    uow: Uow,
    page: Paging,
    status: CampaignStatus | None = None,
    host_organization_id: uuid.UUID | None = None,
) -> PageOut[CampaignOut]:
    found = await queries.list_campaigns(
        uow, CampaignFilter(status=status, host_organization_id=host_organization_id), page
    )
    return PageOut(items=[CampaignOut.of(c) for c in found.items], next_cursor=found.next_cursor)


@router.get("/campaigns/{campaign_id}", tags=["campaigns"])
async def get_campaign(campaign_id: uuid.UUID, uow: Uow) -> CampaignOut:
    return CampaignOut.of(await queries.get_campaign(uow, campaign_id))


@router.patch(
    "/campaigns/{campaign_id}",
    tags=["campaigns"],
    summary="Change a campaign (not its status); refused once archived",
)
async def update_campaign(campaign_id: uuid.UUID, body: CampaignPatch, uow: Uow) -> CampaignOut:
    campaign = await handlers.revise_campaign(
        commands.ReviseCampaign(campaign_id=campaign_id, changes=body.changes()), uow
    )
    return CampaignOut.of(campaign)


@router.post(
    "/campaigns/{campaign_id}/publish",
    tags=["campaigns"],
    summary="Publish: announce the campaign and everything in it (again: no-op)",
)
async def publish_campaign(campaign_id: uuid.UUID, uow: Uow) -> CampaignOut:
    campaign = await handlers.publish_campaign(commands.PublishCampaign(campaign_id), uow)
    return CampaignOut.of(campaign)


@router.post(
    "/campaigns/{campaign_id}/archive",
    tags=["campaigns"],
    summary="Archive: the campaign and its contents become read-only",
)
async def archive_campaign(campaign_id: uuid.UUID, uow: Uow) -> CampaignOut:
    campaign = await handlers.archive_campaign(commands.ArchiveCampaign(campaign_id), uow)
    return CampaignOut.of(campaign)


# Focus days ----------------------------------------------------------------------------------


@router.post("/campaigns/{campaign_id}/focus-days", status_code=201, tags=["focus days"])
async def create_focus_day(campaign_id: uuid.UUID, body: FocusDayIn, uow: Uow) -> FocusDayOut:
    details = FocusDayDetails(date=body.date, title=body.title, description=body.description)
    day = await handlers.add_focus_day(
        commands.AddFocusDay(campaign_id=campaign_id, details=details), uow
    )
    return FocusDayOut.of(day)


@router.get("/campaigns/{campaign_id}/focus-days", tags=["focus days"])
async def list_focus_days(campaign_id: uuid.UUID, uow: Uow, page: Paging) -> PageOut[FocusDayOut]:
    found = await queries.list_focus_days(uow, FocusDayFilter(campaign_id=campaign_id), page)
    return PageOut(items=[FocusDayOut.of(d) for d in found.items], next_cursor=found.next_cursor)


@router.get("/focus-days/{focus_day_id}", tags=["focus days"])
async def get_focus_day(focus_day_id: uuid.UUID, uow: Uow) -> FocusDayOut:
    return FocusDayOut.of(await queries.get_focus_day(uow, focus_day_id))


@router.patch("/focus-days/{focus_day_id}", tags=["focus days"])
async def update_focus_day(focus_day_id: uuid.UUID, body: FocusDayPatch, uow: Uow) -> FocusDayOut:
    day = await handlers.revise_focus_day(
        commands.ReviseFocusDay(focus_day_id=focus_day_id, changes=body.changes()), uow
    )
    return FocusDayOut.of(day)


@router.delete(
    "/focus-days/{focus_day_id}",
    status_code=204,
    tags=["focus days"],
    summary="Remove a focus day of a draft campaign",
)
async def delete_focus_day(focus_day_id: uuid.UUID, uow: Uow) -> Response:
    await handlers.remove_focus_day(commands.RemoveFocusDay(focus_day_id), uow)
    return Response(status_code=204)


# Sessions ------------------------------------------------------------------------------------


@router.post(
    "/campaigns/{campaign_id}/sessions",
    status_code=201,
    tags=["sessions"],
    summary="Schedule a session (announced at once if the campaign is published)",
)
async def create_session(campaign_id: uuid.UUID, body: SessionIn, uow: Uow) -> SessionOut:
    details = SessionDetails(
        kind=body.kind,
        title=body.title,
        description=body.description,
        focus_day_id=body.focus_day_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        time_zone=body.time_zone,
        display_time_zones=tuple(body.display_time_zones),
        capacity=body.capacity,
        audience=tuple(body.audience),
        registration_opens_at=body.registration_opens_at,
        registration_closes_at=body.registration_closes_at,
        join_url=body.join_url,
    )
    session = await handlers.schedule_session(
        commands.ScheduleSession(campaign_id=campaign_id, details=details), uow
    )
    return SessionOut.of(session)


@router.get("/sessions", tags=["sessions"], summary="List sessions by start time")
async def list_sessions(
    uow: Uow,
    page: Paging,
    campaign_id: uuid.UUID | None = None,
    status: SessionStatus | None = None,
    kind: SessionKind | None = None,
    focus_day_id: uuid.UUID | None = None,
    audience: Annotated[
        Role | None, Query(description="Sessions open to this role (or to everyone)")
    ] = None,
    starts_from: Annotated[
        AwareDatetime | None, Query(description="Inclusive; with an offset, e.g. ...Z")
    ] = None,
    starts_before: Annotated[AwareDatetime | None, Query(description="Exclusive")] = None,
) -> PageOut[SessionOut]:
    filters = SessionFilter(
        campaign_id=campaign_id,
        status=status,
        kind=kind,
        focus_day_id=focus_day_id,
        audience=audience,
        starts_from=starts_from,
        starts_before=starts_before,
    )
    found = await queries.list_sessions(uow, filters, page)
    return PageOut(items=[SessionOut.of(s) for s in found.items], next_cursor=found.next_cursor)


@router.get("/sessions/{session_id}", tags=["sessions"])
async def get_session(session_id: uuid.UUID, uow: Uow) -> SessionOut:
    return SessionOut.of(await queries.get_session(uow, session_id))


@router.patch(
    "/sessions/{session_id}",
    tags=["sessions"],
    summary="Change a session; new times reschedule it, a capacity cut is allowed",
)
async def update_session(session_id: uuid.UUID, body: SessionPatch, uow: Uow) -> SessionOut:
    session = await handlers.revise_session(
        commands.ReviseSession(session_id=session_id, changes=body.changes()), uow
    )
    return SessionOut.of(session)


@router.post(
    "/sessions/{session_id}/cancel",
    tags=["sessions"],
    summary="Cancel a session with a reason (again: no-op)",
)
async def cancel_session(session_id: uuid.UUID, body: SessionCancelIn, uow: Uow) -> SessionOut:
    session = await handlers.cancel_session(
        commands.CancelSession(session_id=session_id, reason=body.reason), uow
    )
    return SessionOut.of(session)


# Resources -----------------------------------------------------------------------------------


@router.post("/campaigns/{campaign_id}/resources", status_code=201, tags=["resources"])
async def create_resource(campaign_id: uuid.UUID, body: ResourceIn, uow: Uow) -> ResourceOut:
    details = ResourceDetails(
        kind=body.kind,
        title=body.title,
        url=body.url,
        audience=tuple(body.audience),
        locale=body.locale,
    )
    resource = await handlers.add_resource(
        commands.AddResource(campaign_id=campaign_id, details=details), uow
    )
    return ResourceOut.of(resource)


@router.get("/resources", tags=["resources"], summary="List resources by title")
async def list_resources(
    uow: Uow,
    page: Paging,
    campaign_id: uuid.UUID | None = None,
    kind: str | None = None,
    audience: Role | None = None,
) -> PageOut[ResourceOut]:
    found = await queries.list_resources(
        uow, ResourceFilter(campaign_id=campaign_id, kind=kind, audience=audience), page
    )
    return PageOut(items=[ResourceOut.of(r) for r in found.items], next_cursor=found.next_cursor)


@router.get("/resources/{resource_id}", tags=["resources"])
async def get_resource(resource_id: uuid.UUID, uow: Uow) -> ResourceOut:
    return ResourceOut.of(await queries.get_resource(uow, resource_id))


@router.patch("/resources/{resource_id}", tags=["resources"])
async def update_resource(resource_id: uuid.UUID, body: ResourcePatch, uow: Uow) -> ResourceOut:
    resource = await handlers.revise_resource(
        commands.ReviseResource(resource_id=resource_id, changes=body.changes()), uow
    )
    return ResourceOut.of(resource)


@router.delete(
    "/resources/{resource_id}",
    status_code=204,
    tags=["resources"],
    summary="Remove a resource of a draft campaign",
)
async def delete_resource(resource_id: uuid.UUID, uow: Uow) -> Response:
    await handlers.remove_resource(commands.RemoveResource(resource_id), uow)
    return Response(status_code=204)


# Errors --------------------------------------------------------------------------------------

_BAD_REQUEST_CODES = frozenset({"invalid_cursor", "invalid_limit"})


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = error_body(status_code, code, message)
    if details is not None:
        body["error"]["details"] = details
    return JSONResponse(body, status_code=status_code, headers=headers)


def error_body(status_code: int, code: str, message: str) -> dict[str, Any]:
    """`{"error": {"code", "message"}}`: also the shape of the errors the kit answers."""
    return {"error": {"code": code, "message": message}}


def _catalog_error_status(exc: CatalogError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    return 400 if exc.code in _BAD_REQUEST_CODES else 422


async def _on_catalog_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CatalogError)
    return error_response(_catalog_error_status(exc), exc.code, exc.message)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the body is not valid JSON")
    # Never echo the input back: it may hold what an organizer typed about people.
    details = [
        {"location": [str(p) for p in e.get("loc", ())], "message": str(e.get("msg", ""))}
        for e in errors
    ]
    return error_response(
        422, "invalid_request", "the request does not match the API", details=details
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
}


async def _on_unavailable(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceUnavailableError)
    return error_response(503, exc.code, exc.message, headers={"Retry-After": "5"})


async def _on_unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected_error", error_type=type(exc).__name__)
    return error_response(500, "internal_error", "something went wrong on our side")


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


def install(
    app: FastAPI, *, admin_token: SecretStr | None, uow_factory: UnitOfWorkFactory | None = None
) -> None:
    """Mount the admin API on a service app, with its error bodies and its token."""
    app.state.admin_token = admin_token
    if uow_factory is not None:
        app.state.uow_factory = uow_factory
    app.include_router(router)
    app.add_exception_handler(CatalogError, _on_catalog_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(ServiceUnavailableError, _on_unavailable)
    app.add_exception_handler(Exception, _on_unexpected_error)
