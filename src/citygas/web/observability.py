"""Structured JSON logs with request id and tenant; Prometheus metrics; the request-id middleware."""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = Counter(
    "citygas_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY
)
HTTP_LATENCY = Histogram(
    "citygas_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_RELAYED = Counter(
    "citygas_outbox_events_total", "Outbox events relayed", ["outcome"], registry=REGISTRY
)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        body.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str, ensure_ascii=False)


def configure_logging(level: str, *, json_logs: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_logs else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs requests, with ids


access_log = logging.getLogger("citygas.access")


class RequestContext:
    """Every request's id (the caller's `X-Request-Id` if sane, else a new one: on the response, the logs
    and the audit rows), its metrics and access log line; before login, the double-submit CSRF token for
    forms. Plain ASGI, not `BaseHTTPMiddleware`: that one runs each request in extra tasks and streams,
    which cost the vend API a noticeable share of its CPU."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        request.state.request_id = request_id
        if not request.cookies.get("cg_csrf") and not scope["path"].startswith("/api/"):
            # Before login, forms are protected by a double-submit cookie set with the first page.
            request.state.anonymous_csrf = secrets.token_urlsafe(24)
        started = time.perf_counter()
        status = 500  # what the caller gets if the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _log_request(request, status, time.perf_counter() - started)


def _log_request(request: Request, status: int, elapsed: float) -> None:
    route = request.scope.get("route")
    template = getattr(route, "path", "unmatched")
    HTTP_REQUESTS.labels(request.method, template, str(status)).inc()
    HTTP_LATENCY.labels(request.method, template).observe(elapsed)
    if not access_log.isEnabledFor(logging.INFO):
        return
    principal = getattr(request.state, "principal", None)
    access_log.info(
        "request",
        extra={
            "request_id": request.state.request_id,
            "method": request.method,
            "path": request.url.path,
            "status": status,
            "ms": round(elapsed * 1000, 2),
            "tenant": str(principal.tenant_id) if principal else None,
        },
    )
