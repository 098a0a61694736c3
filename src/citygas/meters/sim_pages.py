"""The simulated meters' pages under /sim/: an LCD, a keypad and a button in the browser, so a person can
type a token and watch the credit and the valve change. Staff reach their CGD's simulated meters; a
household reaches only its own (as it would reach its own meter over Bluetooth)."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.identity.service import resolve_web_session
from citygas.meters.display import lcd_lines
from citygas.meters.keys import meter_link_keys
from citygas.meters.link import MeterLinkEndpoint, ReadStatus, encode_request
from citygas.meters.model import EmergencyCreditRefused, SimulatedMeter
from citygas.meters.models import Meter, MeterModel
from citygas.meters.service import decoder_key_for
from citygas.meters.simulator import MeterRuntime, SimulatorHub
from citygas.meters.types import EventCode, MeterIdentity, MeterMode, MeterParameters
from citygas.platform.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from citygas.platform.uow import Database, UnitOfWork
from citygas.web.deps import SESSION_COOKIE, uow_with, verify_csrf
from citygas.web.render import render

router = APIRouter(prefix="/sim", dependencies=[Depends(verify_csrf)], include_in_schema=False)
# The WebSocket has no form to carry a CSRF token; it checks the Origin header instead.
link_router = APIRouter(prefix="/sim")
# Staff of the meter's CGD, or the household it belongs to (checked row by row in `access_meter`).
AnyCaller = Annotated[UnitOfWork, Depends(uow_with(Permission.METER_VIEW, Permission.CUSTOMER_SELF))]

# Until tariffs are configured per charge area, simulated currency-mode meters price gas at ₹50/SCM.
DEMO_TARIFF_PAISE_PER_SCM = 5_000
LIVE_STATES = ("installed", "commissioned", "active", "suspended", "faulty")
INJECTABLE = [
    EventCode.MAGNET_TAMPER,
    EventCode.CASE_OPEN,
    EventCode.LOW_BATTERY,
    EventCode.VALVE_FAULT,
    EventCode.REVERSE_FLOW,
]


def hub_of(request: Request) -> SimulatorHub:
    hub: SimulatorHub | None = getattr(request.app.state, "simulator", None)
    if hub is None:
        raise NotFound("the meter simulator is not running in this deployment")
    return hub


def _principal(request: Request) -> Principal:
    principal: Principal | None = request.state.principal
    assert principal is not None  # uow_with(None) has required a logged-in caller
    return principal


def access_meter(session: Session, principal: Principal, serial: str) -> Meter:
    """The simulated meter this caller may reach: staff of its CGD with meter.view, or its own household."""
    meter = session.execute(
        select(Meter).where(Meter.serial == serial.strip().upper(), Meter.simulated.is_(True))
    ).scalar_one_or_none()
    if meter is None:
        raise NotFound(f"no simulated meter {serial}")
    if principal.kind == "customer":
        own = session.get(Customer, principal.id)
        owner = session.get(Customer, meter.customer_id) if meter.customer_id else None
        if own is None or owner is None or owner.phone != own.phone:
            raise NotFound(f"no simulated meter {serial}")
    return meter


def runtime_for(hub: SimulatorHub, session: Session, meter: Meter) -> MeterRuntime:
    """The live simulated meter, made on first use from the registry as a factory would make it."""
    key = f"{meter.tenant_id}:{meter.serial}"
    runtime = hub.get(key)
    if runtime is not None:
        return runtime
    model = session.get(MeterModel, meter.model_id)
    assert model is not None
    mode = MeterMode(model.mode)
    identity = MeterIdentity(
        serial=meter.serial,
        sts_meter_number=meter.sts_meter_number,
        model=model.code,
        manufacturer_code=model.manufacturer_code,
        firmware="sim-1.0",
        mode=mode,
        sgc=meter.sgc,
        krn=meter.krn,
        ti=meter.ti,
        base_date=meter.base_date,
    )
    currency = mode is MeterMode.CURRENCY
    parameters = MeterParameters(
        low_credit_threshold=10_000 if currency else 2_000, emergency_credit=5_000 if currency else 1_000
    )
    simulated = SimulatedMeter(
        identity,
        parameters,
        tariff_paise_per_scm=DEMO_TARIFF_PAISE_PER_SCM,
        decoder_key=decoder_key_for(session, meter, master_key=hub.master_key),
        start=hub.sim_now(),
        ken=meter.ken,
    )
    return hub.add(key, simulated)


PRELOAD_LIMIT = 2_000


def start_simulated_meters(db: Database, hub: SimulatorHub) -> int:
    """At start-up, bring every installed simulated meter to life (up to a limit), so the demo's meters run
    — households cook and credit falls — whether or not anyone has opened their page yet."""
    with db.system(read_only=True) as uow:
        rows = uow.session.execute(
            select(Meter.tenant_id, Meter.serial)
            .where(Meter.simulated.is_(True), Meter.state.in_(LIVE_STATES))
            .order_by(Meter.tenant_id, Meter.serial)
            .limit(PRELOAD_LIMIT)
        ).all()
    started = 0
    for tenant_id in sorted({t for t, _ in rows}):
        with db.unit_of_work(tenant=tenant_id, read_only=True) as uow:
            for meter in uow.session.execute(
                select(Meter).where(Meter.serial.in_([s for t, s in rows if t == tenant_id]))
            ).scalars():
                runtime_for(hub, uow.session, meter)
                started += 1
    return started


def _live(request: Request, uow: UnitOfWork, serial: str) -> tuple[Meter, MeterRuntime]:
    meter = access_meter(uow.session, _principal(request), serial)
    hub = hub_of(request)
    runtime = runtime_for(hub, uow.session, meter)
    with runtime.lock:
        hub.catch_up(runtime)
    return meter, runtime


def meter_view(runtime: MeterRuntime) -> dict[str, Any]:
    m = runtime.meter
    status = m.status()
    registers = m.registers()
    return {
        "serial": m.identity().serial,
        "clock": status.at.isoformat(),
        "mode": status.mode.value,
        "credit": status.credit,
        "valve": status.valve.value,
        "alarms": sorted(a.value for a in status.alarms),
        "emergency_credit_available": status.emergency_credit_available,
        "emergency_credit_in_use": status.emergency_credit_in_use,
        "lcd": lcd_lines(status, m.last_token()),
        "cumulative_litres": registers.cumulative_litres,
        "cumulative_credit_loaded": registers.cumulative_credit_loaded,
        "tokens_accepted": registers.tokens_accepted,
    }


@router.get("/meters", response_class=HTMLResponse)
def simulated_meters(request: Request, uow: AnyCaller) -> Response:
    principal = _principal(request)
    query = (
        select(Meter, Customer)
        .outerjoin(Customer, Meter.customer_id == Customer.id)
        .where(Meter.simulated.is_(True), Meter.state.in_(LIVE_STATES))
    )
    if principal.kind == "customer":
        own = uow.session.get(Customer, principal.id)
        query = query.where(Customer.phone == (own.phone if own else ""))
    rows = uow.session.execute(query.order_by(Meter.serial).limit(500)).all()
    return render(request, "meters/sim_list.html", rows=rows)


@router.get("/meters/{serial}", response_class=HTMLResponse)
def simulated_meter(request: Request, serial: str, uow: AnyCaller) -> Response:
    meter, runtime = _live(request, uow, serial)
    with runtime.lock:
        view = meter_view(runtime)
        events = runtime.meter.events(after_seq=0, limit=200)  # the whole bounded log
    staff = _principal(request).kind == "staff"
    with runtime.lock:
        signed = signed_status(request, runtime)
    return render(
        request,
        "meters/sim_meter.html",
        meter=meter,
        view=view,
        events=list(reversed(events))[:15],
        injectable=INJECTABLE if staff else [],
        speed=hub_of(request).speed,
        signed=signed,
    )


def signed_status(request: Request, runtime: MeterRuntime) -> str:
    """The meter's status as its link answers a phone: a frame the meter signed, in base64 for upload."""
    reading_key, parameter_key = meter_link_keys(hub_of(request).master_key, *runtime_tenant_serial(runtime))
    endpoint = MeterLinkEndpoint(
        runtime.meter, reading_key, parameter_key, last_parameter_counter=runtime.parameter_counter
    )
    return base64.b64encode(endpoint.handle(encode_request(ReadStatus(), 1))).decode()


def runtime_tenant_serial(runtime: MeterRuntime) -> tuple[uuid.UUID, str]:
    tenant, serial = runtime.key.split(":", 1)
    return uuid.UUID(tenant), serial


@router.get("/meters/{serial}/signed-status")
def simulated_meter_signed_status(request: Request, serial: str, uow: AnyCaller) -> JSONResponse:
    meter, runtime = _live(request, uow, serial)
    with runtime.lock:
        return JSONResponse({"serial": meter.serial, "frame_base64": signed_status(request, runtime)})


@router.get("/meters/{serial}/state.json")
def simulated_meter_state(request: Request, serial: str, uow: AnyCaller) -> JSONResponse:
    _, runtime = _live(request, uow, serial)
    with runtime.lock:
        return JSONResponse(meter_view(runtime))


def _act(request: Request, uow: UnitOfWork, serial: str, action: str, **kwargs: str) -> Response:
    meter, runtime = _live(request, uow, serial)
    hub = hub_of(request)
    with runtime.lock:
        if action == "token":
            token = "".join(ch for ch in kwargs["token"] if ch.isdigit())
            if len(token) != 20:
                raise ValidationFailed("A token has 20 digits")
            runtime.meter.enter_token(token)  # the outcome shows on the LCD, as on a real meter
        elif action == "button":
            runtime.meter.press_button()
        elif action == "emergency":
            try:
                runtime.meter.take_emergency_credit()
            except EmergencyCreditRefused as exc:
                raise ValidationFailed(str(exc)) from exc
        elif action == "event":
            if _principal(request).kind != "staff":
                raise PermissionDenied("only staff can simulate a fault")
            code = EventCode(kwargs["code"]) if kwargs["code"] in EventCode._value2member_map_ else None
            if code is None or code not in INJECTABLE:
                raise ValidationFailed("that event cannot be simulated")
            runtime.meter.inject(code, "simulated from the meter page")
        hub.save(runtime)
    return RedirectResponse(f"/sim/meters/{meter.serial}", status_code=303)


@link_router.websocket("/meters/{serial}/link")
async def meter_link(websocket: WebSocket, serial: str) -> None:
    """The meter-link over a WebSocket: each binary message is one whole frame, answered by the simulated
    meter's endpoint, as a real meter answers over Bluetooth."""
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host", "")
    if origin is not None and origin.split("://", 1)[-1] != host:
        await websocket.close(code=4403)  # another site's page must not drive a customer's meter
        return
    db: Database = websocket.app.state.db
    hub: SimulatorHub | None = websocket.app.state.simulator
    token = websocket.cookies.get(SESSION_COOKIE)
    with db.system(read_only=True) as uow:
        principal = resolve_web_session(uow.session, token) if token else None
    if principal is None or hub is None:
        await websocket.close(code=4401)
        return
    with db.unit_of_work(tenant=principal.tenant_id, actor=principal.actor, read_only=True) as uow:
        try:
            meter = access_meter(uow.session, principal, serial)
        except DomainError:
            await websocket.close(code=4404)
            return
        runtime = runtime_for(hub, uow.session, meter)
    reading_key, parameter_key = meter_link_keys(hub.master_key, meter.tenant_id, meter.serial)

    def remember(counter: int) -> None:
        runtime.parameter_counter = counter

    endpoint = MeterLinkEndpoint(
        runtime.meter,
        reading_key,
        parameter_key,
        last_parameter_counter=runtime.parameter_counter,
        on_authorised=remember,
    )
    await websocket.accept()
    try:
        while True:
            frame = await websocket.receive_bytes()
            with runtime.lock:
                hub.catch_up(runtime)
                answer = endpoint.handle(frame)
                hub.save(runtime)
            await websocket.send_bytes(answer)
    except WebSocketDisconnect:
        return


@router.post("/meters/{serial}/token")
def enter_token(
    request: Request, serial: str, uow: AnyCaller, token: Annotated[str, Form(max_length=40)]
) -> Response:
    return _act(request, uow, serial, "token", token=token)


@router.post("/meters/{serial}/button")
def press_button(request: Request, serial: str, uow: AnyCaller) -> Response:
    return _act(request, uow, serial, "button")


@router.post("/meters/{serial}/emergency")
def take_emergency_credit(request: Request, serial: str, uow: AnyCaller) -> Response:
    return _act(request, uow, serial, "emergency")


@router.post("/meters/{serial}/event")
def inject_event(
    request: Request, serial: str, uow: AnyCaller, code: Annotated[str, Form(max_length=32)]
) -> Response:
    return _act(request, uow, serial, "event", code=code)
