"""The HTTP bodies every service's app answers through the kit, as OpenAPI documents them.

The operations routes (`/health`, `/ready`, `/metrics`, `/asyncapi.json`), the 503 while the
database is away, and the 422 of a request that does not validate. A service documents its
own routes' errors with `service_unavailable(...)` and `InvalidRequest`, so that every
answer an operation can give is in its document (the reliability suite checks each one).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemDetails(BaseModel):
    """RFC 9457 problem details: the kit's default error body (with `detail`, like FastAPI's)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str = Field(examples=["database_unavailable"])


class FieldError(BaseModel):
    """One field in error: where and why, never the value that was sent."""

    loc: list[str | int]
    msg: str
    type: str


class InvalidRequest(BaseModel):
    """422: the request does not validate; one entry per field in error."""

    detail: list[FieldError]


class Health(BaseModel):
    status: Literal["ok", "failing"]
    service: str
    ended: list[str] | None = Field(
        default=None, description="The background tasks that ended (when failing)"
    )


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, bool] = Field(examples=[{"database": True, "broker": True}])


class ErrorMessage(BaseModel):
    """FastAPI's own error body, `{"detail": "..."}`: what went wrong, never the input."""

    detail: str = Field(examples=["an API key is required"])


def service_unavailable(
    description: str, *, own: type[BaseModel] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The `responses` entry of a 503: the kit's problem details while the database is away.

    `own` is the body of the service's own 503s (starting, busy), answered as
    `application/json`; the kit's own 503 is `application/problem+json`.
    """
    content = {PROBLEM_MEDIA_TYPE: {"schema": ProblemDetails.model_json_schema()}}
    if own is None:
        return {503: {"description": description, "content": content}}
    return {503: {"model": own, "description": description, "content": content}}


def field_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors without their input, context or URL (they may hold personal data)."""
    return [
        {
            "loc": [part if isinstance(part, int) else str(part) for part in error["loc"]],
            "msg": error["msg"],
            "type": error["type"],
        }
        for error in errors
    ]


def answer_invalid_requests_without_their_input(app: FastAPI) -> None:
    """Answer 422 as FastAPI does, minus the values sent: an email must not come back."""

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": field_errors(exc.errors())}, status_code=422)

    app.add_exception_handler(RequestValidationError, invalid)
