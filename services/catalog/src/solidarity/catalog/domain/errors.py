"""Why a catalog command cannot go ahead: a stable code for machines and a message for people."""

from __future__ import annotations


class CatalogError(Exception):
    """A rule refused the command; `code` is stable, `message` says what to fix."""

    status = "invalid"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidError(CatalogError):
    """The input breaks a rule (end before start, unknown time zone, outside the campaign)."""

    status = "invalid"


class NotFoundError(CatalogError):
    """The thing named does not exist."""

    status = "not_found"


class ConflictError(CatalogError):
    """The input is fine but the current state forbids it (archived campaign, slug taken)."""

    status = "conflict"
