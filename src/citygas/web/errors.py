"""Errors as `application/problem+json` (RFC 9457) with a stable `code` on the API, and as a readable
page in the portals. Nothing a user sends should ever produce a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from citygas.platform.errors import DomainError
from citygas.web.deps import LoginRequired, is_api

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
}


def problem(request: Request, status: int, code: str, title: str, detail: str, **extra: Any) -> Response:
    if is_api(request):
        body = {
            "type": f"https://citygas.dev/problems/{code}",
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
            "instance": request.url.path,
            "request_id": getattr(request.state, "request_id", None),
            **extra,
        }
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)
    from citygas.web.render import render  # noqa: PLC0415 - render imports deps, which this module shares

    return render(request, "error.html", status_code=status, title=title, detail=detail, code=code)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        return problem(request, exc.status, exc.code, exc.title, exc.detail, **exc.extra)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{exc.login_path}?next={target}", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors)
        return problem(request, 422, "validation_error", "Invalid input", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return problem(request, exc.status_code, code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:  # noqa: ARG001 - logged via exc_info
        log.exception("unhandled error", extra={"request_id": getattr(request.state, "request_id", None)})
        return problem(
            request,
            500,
            "internal_error",
            "Something went wrong on our side",
            "The error has been logged. Try again; if it persists, quote the request id.",
        )
