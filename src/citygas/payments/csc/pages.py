"""The CSC agent portal (`/agent/`, made for a phone at 360 px) and the back office's agent pages
(`/ops/csc/`): profiles and commission, float top-ups and their approval, statements."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.ledger.service import india_today
from citygas.payments.csc import service
from citygas.payments.csc.models import CscAgent
from citygas.payments.csc.rules import (
    CommissionInputError,
    CommissionSummary,
    Period,
    commission_from_form,
    describe_commission,
    statement_csv_rows,
)
from citygas.platform.errors import DomainError, ValidationFailed
from citygas.platform.ids import uuid7
from citygas.platform.money import AmountError, parse_rupees
from citygas.platform.uow import UnitOfWork
from citygas.sts import group_token
from citygas.web.deps import current_principal, uow_with, verify_csrf
from citygas.web.render import render

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

P = Permission
AgentUow = Annotated[UnitOfWork, Depends(uow_with(P.AGENT_VEND))]
ManageUow = Annotated[UnitOfWork, Depends(uow_with(P.AGENT_MANAGE))]
ApproveUow = Annotated[UnitOfWork, Depends(uow_with(P.FLOAT_APPROVE))]
StatementUow = Annotated[UnitOfWork, Depends(uow_with(P.AGENT_MANAGE, P.FLOAT_APPROVE))]


def _principal(request: Request) -> Principal:
    principal = current_principal(request)
    assert principal is not None  # the route's permission dependency has checked it
    return principal


def _me(request: Request, uow: UnitOfWork) -> CscAgent:
    return service.get_agent_for_user(uow.session, _principal(request).id)


def _paise(text: str, what: str) -> int:
    try:
        paise = int(parse_rupees(text))
    except AmountError as exc:
        raise ValidationFailed(f"{what}: {exc}") from exc
    if paise <= 0:
        raise ValidationFailed(f"{what} must be more than ₹0")
    return paise


def _day(text: str) -> date:
    if not text:
        return india_today()
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValidationFailed("a day is written YYYY-MM-DD") from exc


# --- the agent portal -------------------------------------------------------------------------------


def agent_home_page(request: Request, uow: UnitOfWork) -> Response:
    """/agent/: the float, a consumer look-up, and today's vends. (Routed from `web.portals`.)"""
    principal = _principal(request)
    if not principal.can(P.AGENT_VEND):
        return render(request, "agent/home.html", agent=None, heading="CSC agent")
    try:
        agent = _me(request, uow)
    except DomainError as exc:
        return render(request, "agent/home.html", agent=None, error=exc.detail)
    this_month = Period.of(india_today())
    return render(
        request,
        "agent/home.html",
        agent=agent,
        float_paise=service.get_float(uow.session, agent),
        commission_paise=service.get_commission_payable(uow.session, agent),
        this_month=this_month,
        summary=service.commission_summary(uow.session, agent, this_month),
        payouts=service.list_commission_payouts(uow.session, agent=agent, limit=12),
        vends=service.list_vends_of_day(uow.session, agent),
        commission=describe_commission(service.rule_of(agent)),
        flash=request.query_params.get("flash", "")[:200],
    )


def _consumer_page(
    request: Request, uow: UnitOfWork, agent: CscAgent, q: str, status_code: int = 200, **extra: Any
) -> Response:
    lookup = None
    error = extra.pop("error", None)
    if q.strip():
        try:
            lookup = service.lookup_consumer(uow.session, q)
        except DomainError as exc:
            error, status_code = exc.detail, exc.status
    return render(
        request,
        "agent/consumer.html",
        status_code=status_code,
        agent=agent,
        q=q.strip().upper(),
        lookup=lookup,
        float_paise=service.get_float(uow.session, agent),
        # Made when the form is shown: a double click or a resubmission carries the same reference
        # and so vends once.
        client_ref=extra.pop("client_ref", None) or uuid7().hex,
        error=error,
        **extra,
    )


@router.get("/agent/consumer", response_class=HTMLResponse)
def agent_consumer(request: Request, uow: AgentUow, q: str = "") -> Response:
    return _consumer_page(request, uow, _me(request, uow), q)


@router.post("/agent/vend", response_class=HTMLResponse)
def agent_vend(
    request: Request,
    uow: AgentUow,
    consumer_number: Annotated[str, Form(max_length=24)] = "",
    amount: Annotated[str, Form(max_length=20)] = "",
    client_ref: Annotated[str, Form(max_length=64)] = "",
    cash_received: Annotated[str, Form(max_length=4)] = "",
) -> Response:
    agent = _me(request, uow)
    try:
        if cash_received != "yes":
            raise ValidationFailed("confirm that you have received the cash")
        outcome = service.do_csc_vend(
            uow.session,
            agent,
            consumer_number,
            _paise(amount, "the amount"),
            client_ref,
            master_key=request.app.state.settings.master_key_bytes,
        )
    except DomainError as exc:
        uow.rollback()
        return _consumer_page(
            request,
            uow,
            agent,
            consumer_number,
            status_code=exc.status,
            error=exc.detail,
            client_ref=client_ref,
            amount=amount,
        )
    uow.commit()
    return RedirectResponse(f"/agent/vends/{outcome.vend.id}", status_code=303)


@router.get("/agent/vends/{vend_id}", response_class=HTMLResponse)
def agent_vend_done(request: Request, vend_id: uuid.UUID, uow: AgentUow) -> Response:
    agent = _me(request, uow)
    row, vend = service.get_csc_vend(uow.session, agent, vend_id)
    tokens = [{**t, "grouped": group_token(t["token"])} for t in vend.tokens]
    return render(
        request,
        "agent/vend.html",
        agent=agent,
        row=row,
        vend=vend,
        tokens=tokens,
        float_paise=service.get_float(uow.session, agent),
    )


def _float_page(
    request: Request, uow: UnitOfWork, agent: CscAgent, status_code: int = 200, **extra: Any
) -> Response:
    return render(
        request,
        "agent/float.html",
        status_code=status_code,
        agent=agent,
        float_paise=service.get_float(uow.session, agent),
        topups=service.list_float_topups(uow.session, agent=agent, limit=30),
        **extra,
    )


@router.get("/agent/float", response_class=HTMLResponse)
def agent_float(request: Request, uow: AgentUow) -> Response:
    return _float_page(request, uow, _me(request, uow))


@router.post("/agent/float", response_class=HTMLResponse)
def agent_request_topup(
    request: Request,
    uow: AgentUow,
    amount: Annotated[str, Form(max_length=20)] = "",
    reference: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    agent = _me(request, uow)
    why = "float top-up requested by the agent"
    if refused := _enter_float_topup(request, uow, agent, amount, reference, note, why):
        return _float_page(request, uow, agent, status_code=refused.status, error=refused.detail)
    return _float_page(request, uow, agent, flash="Sent to the back office for approval.")


def _enter_float_topup(
    request: Request, uow: UnitOfWork, agent: CscAgent, amount: str, reference: str, note: str, why: str
) -> DomainError | None:
    """Record a float top-up for the back office to approve, and commit it with `why`; or roll back and
    return what refused it. The agent and the back office enter them alike; only their pages differ."""
    try:
        service.do_request_float_topup(
            uow.session,
            agent,
            amount_paise=_paise(amount, "the amount"),
            reference=reference,
            note=note,
            requested_by=_principal(request).label,
        )
    except DomainError as exc:
        uow.rollback()
        return exc
    uow.because(why).commit()
    return None


def _statement(
    request: Request, uow: UnitOfWork, agent: CscAgent, day: date, *, csv_download: bool
) -> Response:
    totals = service.get_statement(uow.session, agent, day)
    if csv_download:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["agent_csc_id", "day", "item", "value"])
        for item, value in statement_csv_rows(totals):
            writer.writerow([agent.csc_id, day.isoformat(), item, value])
        writer.writerow([])
        writer.writerow(["receipt_number", "time_ist", "consumer_number", "amount_paise", "commission_paise"])
        for row, vend in reversed(service.list_vends_of_day(uow.session, agent, day)):
            writer.writerow(
                [
                    vend.receipt_number,
                    vend.created_at.isoformat(),
                    row.consumer_number,
                    row.amount_paise,
                    row.commission_paise,
                ]
            )
        name = f"statement-{agent.csc_id}-{day.isoformat()}.csv"
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return render(
        request,
        "agent/statement.html",
        agent=agent,
        statement_day=day,  # not `day`: render() gives every template `day()`, the date formatter
        totals=totals,
        vends=service.list_vends_of_day(uow.session, agent, day),
        csv_href=f"{request.url.path}.csv?day={day.isoformat()}",
    )


@router.get("/agent/statement", response_class=HTMLResponse)
def agent_statement(request: Request, uow: AgentUow, day: str = "") -> Response:
    return _statement(request, uow, _me(request, uow), _day(day), csv_download=False)


@router.get("/agent/statement.csv")
def agent_statement_csv(request: Request, uow: AgentUow, day: str = "") -> Response:
    return _statement(request, uow, _me(request, uow), _day(day), csv_download=True)


# --- the back office --------------------------------------------------------------------------------


def _agents_page(request: Request, uow: UnitOfWork, status_code: int = 200, **extra: Any) -> Response:
    agents = service.list_agents(uow.session)
    return render(
        request,
        "agent/ops_agents.html",
        status_code=status_code,
        rows=[
            (a, service.get_float(uow.session, a), describe_commission(service.rule_of(a))) for a in agents
        ],
        candidates=service.list_unprofiled_agent_users(uow.session),
        pending=len(service.list_float_topups(uow.session, state="requested")),
        **extra,
    )


@router.get("/ops/csc/agents", response_class=HTMLResponse)
def ops_agents(request: Request, uow: ManageUow) -> Response:
    return _agents_page(request, uow)


@router.post("/ops/csc/agents", response_class=HTMLResponse)
def ops_create_agent(
    request: Request,
    uow: ManageUow,
    username: Annotated[str, Form(max_length=64)] = "",
    csc_id: Annotated[str, Form(max_length=32)] = "",
    village: Annotated[str, Form(max_length=120)] = "",
    commission_kind: Annotated[str, Form(max_length=8)] = "percent",
    percent: Annotated[str, Form(max_length=12)] = "",
    flat: Annotated[str, Form(max_length=20)] = "",
    cap: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    try:
        rule = commission_from_form(commission_kind, percent=percent, flat_rupees=flat, cap_rupees=cap)
        agent = service.do_create_agent(
            uow.session, username=username, csc_id=csc_id, village=village, rule=rule
        )
    except CommissionInputError as exc:
        uow.rollback()
        return _agents_page(request, uow, status_code=422, error=str(exc))
    except DomainError as exc:
        uow.rollback()
        return _agents_page(request, uow, status_code=exc.status, error=exc.detail)
    uow.because(f"CSC agent {agent.csc_id} set up").commit()
    return RedirectResponse(f"/ops/csc/agents/{agent.id}", status_code=303)


def _agent_page(
    request: Request, uow: UnitOfWork, agent: CscAgent, status_code: int = 200, **extra: Any
) -> Response:
    topups = service.list_float_topups(uow.session, agent=agent, limit=50)
    last_month = Period.of(india_today()).previous()
    return render(
        request,
        "agent/ops_agent.html",
        status_code=status_code,
        agent=agent,
        float_paise=service.get_float(uow.session, agent),
        commission_paise=service.get_commission_payable(uow.session, agent),
        commission=describe_commission(service.rule_of(agent)),
        topups=[(t, service.float_topup_history(uow.session, t)) for t in topups],
        can_approve=_principal(request).can(P.FLOAT_APPROVE),
        last_month=last_month,
        summary=service.commission_summary(uow.session, agent, last_month),
        payouts=service.list_commission_payouts(uow.session, agent=agent, limit=50),
        **extra,
    )


@router.get("/ops/csc/agents/{agent_id}", response_class=HTMLResponse)
def ops_agent(request: Request, agent_id: uuid.UUID, uow: ManageUow) -> Response:
    return _agent_page(request, uow, service.get_agent(uow.session, agent_id))


@router.post("/ops/csc/agents/{agent_id}/commission", response_class=HTMLResponse)
def ops_set_commission(
    request: Request,
    agent_id: uuid.UUID,
    uow: ManageUow,
    commission_kind: Annotated[str, Form(max_length=8)] = "percent",
    percent: Annotated[str, Form(max_length=12)] = "",
    flat: Annotated[str, Form(max_length=20)] = "",
    cap: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    agent = service.get_agent(uow.session, agent_id)
    try:
        rule = commission_from_form(commission_kind, percent=percent, flat_rupees=flat, cap_rupees=cap)
    except CommissionInputError as exc:
        uow.rollback()
        return _agent_page(request, uow, agent, status_code=422, error=str(exc))
    service.do_set_commission(uow.session, agent, rule)
    uow.because("commission terms changed").commit()
    return RedirectResponse(f"/ops/csc/agents/{agent.id}", status_code=303)


@router.post("/ops/csc/agents/{agent_id}/topups", response_class=HTMLResponse)
def ops_enter_topup(
    request: Request,
    agent_id: uuid.UUID,
    uow: ManageUow,
    amount: Annotated[str, Form(max_length=20)] = "",
    reference: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    agent = service.get_agent(uow.session, agent_id)
    why = "float top-up entered by the back office"
    if refused := _enter_float_topup(request, uow, agent, amount, reference, note, why):
        return _agent_page(request, uow, agent, status_code=refused.status, error=refused.detail)
    return RedirectResponse(f"/ops/csc/agents/{agent.id}", status_code=303)


@router.get("/ops/csc/agents/{agent_id}/statement", response_class=HTMLResponse)
def ops_agent_statement(request: Request, agent_id: uuid.UUID, uow: StatementUow, day: str = "") -> Response:
    return _statement(request, uow, service.get_agent(uow.session, agent_id), _day(day), csv_download=False)


@router.get("/ops/csc/agents/{agent_id}/statement.csv")
def ops_agent_statement_csv(
    request: Request, agent_id: uuid.UUID, uow: StatementUow, day: str = ""
) -> Response:
    return _statement(request, uow, service.get_agent(uow.session, agent_id), _day(day), csv_download=True)


def _topups_page(request: Request, uow: UnitOfWork, status_code: int = 200, **extra: Any) -> Response:
    pending = service.list_float_topups(uow.session, state="requested", limit=200)
    agents = {a.id: a for a in service.list_agents(uow.session)}
    requesters = service.float_topup_requesters(uow.session, [t.id for t in pending])
    me = _principal(request)
    return render(
        request,
        "agent/ops_topups.html",
        status_code=status_code,
        # The third item: this person entered the top-up, so the page offers no approve button (four eyes).
        rows=[
            (t, agents.get(t.agent_id), t.id in requesters and requesters[t.id].is_person(me.kind, me.id))
            for t in pending
        ],
        **extra,
    )


@router.get("/ops/csc/topups", response_class=HTMLResponse)
def ops_topups(request: Request, uow: ApproveUow) -> Response:
    return _topups_page(request, uow)


@router.post("/ops/csc/topups/{topup_id}/approve", response_class=HTMLResponse)
def ops_approve_topup(request: Request, topup_id: uuid.UUID, uow: ApproveUow) -> Response:
    topup = service.get_float_topup(uow.session, topup_id)
    try:
        service.do_approve_float_topup(uow.session, topup, permissions=_principal(request).permissions)
    except DomainError as exc:
        uow.rollback()
        return _topups_page(request, uow, status_code=exc.status, error=exc.detail)
    uow.because(f"float top-up {topup.reference} approved against the bank credit").commit()
    return RedirectResponse("/ops/csc/topups", status_code=303)


@router.post("/ops/csc/topups/{topup_id}/reject", response_class=HTMLResponse)
def ops_reject_topup(
    request: Request,
    topup_id: uuid.UUID,
    uow: ApproveUow,
    reason: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    topup = service.get_float_topup(uow.session, topup_id)
    try:
        service.do_reject_float_topup(
            uow.session, topup, permissions=_principal(request).permissions, reason=reason
        )
    except DomainError as exc:
        uow.rollback()
        return _topups_page(request, uow, status_code=exc.status, error=exc.detail)
    uow.because(reason).commit()
    return RedirectResponse("/ops/csc/topups", status_code=303)


# --- commission payouts -----------------------------------------------------------------------------


def _period(text: str) -> Period:
    if not text.strip():
        return Period.of(india_today()).previous()  # usually the month just ended is paid
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from exc


def _payouts_page(
    request: Request, uow: UnitOfWork, period: Period, status_code: int = 200, **extra: Any
) -> Response:
    summaries = service.commission_summaries(uow.session, period)
    empty = CommissionSummary(0, 0, 0, 0)
    return render(
        request,
        "agent/ops_payouts.html",
        status_code=status_code,
        period=period,
        rows=[(a, summaries.get(a.id, empty)) for a in service.list_agents(uow.session)],
        payouts=service.list_commission_payouts(uow.session, period=period, limit=500),
        agents={a.id: a for a in service.list_agents(uow.session)},
        **extra,
    )


@router.get("/ops/csc/payouts", response_class=HTMLResponse)
def ops_payouts(request: Request, uow: ManageUow, period: str = "") -> Response:
    try:
        chosen = _period(period)
    except DomainError as exc:
        return _payouts_page(request, uow, _period(""), status_code=exc.status, error=exc.detail)
    return _payouts_page(request, uow, chosen)


@router.post("/ops/csc/agents/{agent_id}/payouts", response_class=HTMLResponse)
def ops_record_payout(
    request: Request,
    agent_id: uuid.UUID,
    uow: ManageUow,
    period: Annotated[str, Form(max_length=7)] = "",
    amount: Annotated[str, Form(max_length=20)] = "",
    reference: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    agent = service.get_agent(uow.session, agent_id)
    shown = _period("")  # the page to show again if the month typed cannot be read
    try:
        if not period.strip():
            raise ValidationFailed("say which month the commission is paid for (YYYY-MM)")
        shown = _period(period)
        outcome = service.do_record_commission_payout(
            uow.session,
            agent,
            period=shown,
            amount_paise=_paise(amount, "the amount"),
            reference=reference,
            note=note,
        )
    except DomainError as exc:
        uow.rollback()
        return _payouts_page(request, uow, shown, status_code=exc.status, error=exc.detail)
    if not outcome.replayed:
        uow.because(
            f"commission of CSC {agent.csc_id} for {shown} paid, reference {outcome.payout.reference}"
        )
        uow.commit()
    return RedirectResponse(f"/ops/csc/payouts?period={shown}", status_code=303)
