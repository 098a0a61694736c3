"""Liveness, readiness and metrics for load balancers and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from citygas.platform.outbox import OutboxEvent, OutboxStatus
from citygas.platform.uow import Database

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up. Says nothing about its dependencies, on purpose: a load balancer should not
    restart every web node because the database blinked."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> Response:
    db: Database = request.app.state.db
    from citygas.platform.migrations import current_revision, head_revision  # noqa: PLC0415

    try:
        with db.system(read_only=True) as uow:
            uow.session.execute(text("SELECT 1"))
            revision = current_revision(uow.session)
    except Exception as exc:  # noqa: BLE001 - any database failure means "not ready"
        return Response(
            f'{{"status":"unavailable","reason":"database: {type(exc).__name__}"}}',
            status_code=503,
            media_type="application/json",
        )
    head = head_revision()
    if revision != head:
        return Response(
            f'{{"status":"unavailable","reason":"schema at {revision}, code expects {head}"}}',
            status_code=503,
            media_type="application/json",
        )
    return Response('{"status":"ready"}', media_type="application/json")


@router.get("/fonts/noto-sans-devanagari.ttf")
def devanagari_font() -> Response:
    """The Hindi font for pages, from the font package the receipts use: a cheap phone without Devanagari
    fonts still shows Hindi, and nothing font-shaped is committed to the repository."""
    from citygas.receipts.pdf import devanagari_font as find_font  # noqa: PLC0415

    path = find_font()
    if path is None:
        return Response(status_code=404)
    return FileResponse(path, media_type="font/ttf", headers={"Cache-Control": "public, max-age=604800"})


@router.get("/metrics")
def metrics(request: Request) -> Response:
    from citygas.web.observability import REGISTRY  # noqa: PLC0415

    db: Database = request.app.state.db
    body = generate_latest(REGISTRY)
    with db.system(read_only=True) as uow:
        rows = uow.session.execute(
            select(OutboxEvent.status, func.count()).group_by(OutboxEvent.status)
        ).all()
    counts = dict(rows)
    extra = "# HELP citygas_outbox_events Outbox events by status\n# TYPE citygas_outbox_events gauge\n"
    extra += "".join(
        f'citygas_outbox_events{{status="{s.value}"}} {counts.get(s.value, 0)}\n' for s in OutboxStatus
    )
    return Response(body + extra.encode(), media_type=CONTENT_TYPE_LATEST)
