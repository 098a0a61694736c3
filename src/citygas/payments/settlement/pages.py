"""Back-office pages: settlement imports and their matching (/ops/settlement), daily collections per
channel (/ops/collections) and agent float reconciliation (/ops/agent-floats), each with a CSV export."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.payments.settlement.rules import SettlementSource
from citygas.payments.settlement.service import (
    agent_floats_csv,
    collections_csv,
    default_cutoff,
    do_import_settlement_report,
    get_settlement,
    list_agent_floats,
    list_daily_collections,
    list_settlement_lines,
    list_settlements,
    list_unsettled,
)
from citygas.platform.errors import DomainError, ValidationFailed
from citygas.platform.time import to_india, utcnow
from citygas.platform.uow import UnitOfWork
from citygas.web.deps import Requires, uow_with, verify_csrf
from citygas.web.render import render

router = APIRouter(prefix="/ops", dependencies=[Depends(verify_csrf)], include_in_schema=False)
Reconcile = Annotated[UnitOfWork, Depends(uow_with(Permission.PAYMENTS_RECONCILE))]
MAX_REPORT_BYTES = 20 * 1024 * 1024


def _period(first: date | None, last: date | None) -> tuple[date, date]:
    today = to_india(utcnow()).date()
    last = last or today
    return first or last - timedelta(days=6), last


def _settlement_page(
    request: Request, uow: UnitOfWork, source: SettlementSource, status_code: int = 200, **extra: object
) -> Response:
    cutoff = default_cutoff(uow.session, source)
    return render(
        request,
        "settlement/list.html",
        status_code=status_code,
        settlements=list_settlements(uow.session),
        source=source,
        sources=list(SettlementSource),
        cutoff=cutoff,
        unsettled=list_unsettled(uow.session, source=source, through=cutoff) if cutoff else [],
        **extra,
    )


@router.get("/settlement", response_class=HTMLResponse)
def settlement_page(
    request: Request, uow: Reconcile, source: SettlementSource = SettlementSource.GATEWAY
) -> Response:
    return _settlement_page(request, uow, source)


@router.post("/settlement", response_class=HTMLResponse)
async def upload_settlement(
    request: Request,
    uow: Reconcile,
    principal: Annotated[Principal, Depends(Requires(Permission.PAYMENTS_RECONCILE))],
    report: Annotated[UploadFile, File(description="the settlement report, CSV")],
    source: Annotated[SettlementSource, Form()] = SettlementSource.GATEWAY,
) -> Response:
    raw = await report.read(MAX_REPORT_BYTES + 1)
    try:
        if len(raw) > MAX_REPORT_BYTES:
            raise ValidationFailed("the report is larger than 20 MB; split it by settlement")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationFailed("the report is not UTF-8 text (CSV)") from exc
        result = do_import_settlement_report(
            uow.session,
            text=text,
            source=source,
            file_name=report.filename or "",
            imported_by=principal.label,
        )
    except DomainError as exc:
        uow.rollback()
        problems = exc.extra.get("problems", [])
        return _settlement_page(
            request, uow, source, status_code=exc.status, error=exc.detail, problems=problems
        )
    uow.because(f"settlement report {report.filename or ''} imported").commit()
    return _settlement_page(request, uow, source, imported=result.settlements)


@router.get("/settlement/{settlement_pk}", response_class=HTMLResponse)
def settlement_detail(request: Request, settlement_pk: str, uow: Reconcile) -> Response:
    settlement = get_settlement(uow.session, settlement_pk)
    return render(
        request,
        "settlement/detail.html",
        settlement=settlement,
        lines=list_settlement_lines(uow.session, settlement),
    )


@router.get("/collections", response_class=HTMLResponse)
def collections_page(
    request: Request,
    uow: Reconcile,
    first: Annotated[date | None, Query()] = None,
    last: Annotated[date | None, Query()] = None,
) -> Response:
    first, last = _period(first, last)
    rows = list_daily_collections(uow.session, first=first, last=last)
    by_channel: dict[str, tuple[int, int]] = {}
    for row in rows:
        n, total = by_channel.get(row.channel, (0, 0))
        by_channel[row.channel] = (n + row.count, total + row.amount_paise)
    return render(
        request,
        "settlement/collections.html",
        rows=rows,
        first=first,
        last=last,
        by_channel=sorted(by_channel.items()),
        total_count=sum(r.count for r in rows),
        total_paise=sum(r.amount_paise for r in rows),
    )


@router.get("/collections.csv")
def collections_export(
    uow: Reconcile,
    first: Annotated[date | None, Query()] = None,
    last: Annotated[date | None, Query()] = None,
) -> Response:
    first, last = _period(first, last)
    body = collections_csv(list_daily_collections(uow.session, first=first, last=last))
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="collections-{first}-{last}.csv"'},
    )


@router.get("/agent-floats", response_class=HTMLResponse)
def agent_floats_page(
    request: Request,
    uow: Reconcile,
    first: Annotated[date | None, Query()] = None,
    last: Annotated[date | None, Query()] = None,
) -> Response:
    first, last = _period(first, last)
    return render(
        request,
        "settlement/agent_floats.html",
        rows=list_agent_floats(uow.session, first=first, last=last),
        first=first,
        last=last,
    )


@router.get("/agent-floats.csv")
def agent_floats_export(
    uow: Reconcile,
    first: Annotated[date | None, Query()] = None,
    last: Annotated[date | None, Query()] = None,
) -> Response:
    first, last = _period(first, last)
    body = agent_floats_csv(list_agent_floats(uow.session, first=first, last=last))
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="agent-floats-{first}-{last}.csv"'},
    )
