"""Domain errors: specific types with a message a person can act on and a stable `code` that the
API returns in `application/problem+json`."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "domain_error"
    status = 400
    title = "The request cannot be carried out"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(DomainError):
    code = "conflict"
    status = 409
    title = "Conflict with the current state"


class ValidationFailed(DomainError):
    code = "validation_error"
    status = 422
    title = "Invalid input"


class PermissionDenied(DomainError):
    code = "forbidden"
    status = 403
    title = "Not allowed"


class NotAuthenticated(DomainError):
    code = "unauthenticated"
    status = 401
    title = "Authentication required"


class TooManyRequests(DomainError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"
