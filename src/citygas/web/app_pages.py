"""The customer app at /app/: its shell (manifest, service worker, offline screen, language) and the
screens that gather the other contexts' data for a household — home, top-up and history.

Other contexts add their own /app/ screens: the meter link and readings (`citygas.metering.pages`,
/app/meter), complaints (`citygas.care.pages`, /app/help), the profile (`citygas.customers.profile_pages`)
and auto top-up (`citygas.payments.autopay.pages`).

A household is a phone number: its connections are the customers of its CGD registered with that phone.
Every screen takes `?c=<consumer number>` to pick one; an unknown or foreign number falls back to the first
of the household's own, so a typed URL can never show another household's connection.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from citygas.customers.households import Connection, household_connections, pick_connection
from citygas.customers.models import Customer
from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.metering.service import consumption_series, estimate_balance, pending_tokens
from citygas.payments.gateway.service import do_create_order, gateway_for
from citygas.platform.errors import DomainError, ValidationFailed
from citygas.platform.money import AmountError, parse_rupees
from citygas.platform.tenancy import Tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import UnitOfWork
from citygas.sts import group_token
from citygas.vending.models import Vend
from citygas.vending.rules import DEFAULT_LIMITS
from citygas.web.charts import bar_chart_svg
from citygas.web.deps import Requires, get_db, uow_with, verify_csrf
from citygas.web.i18n import LANGUAGES, translate
from citygas.web.render import LANG_COOKIE, render, request_language

router = APIRouter(prefix="/app", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Household = Annotated[UnitOfWork, Depends(uow_with(Permission.CUSTOMER_SELF))]
CustomerSelf = Annotated[Principal, Depends(Requires(Permission.CUSTOMER_SELF))]

STATIC = Path(__file__).parent / "static"
TOPUP_PRESETS_RUPEES = (200, 500, 1000, 2000)
PAYMENT_METHODS = ("upi", "card")
HISTORY_LIMIT = 50
# English names (translated in the template) of a vend's channel and of the token kinds.
CHANNEL_NAMES = {
    "online": "paid online",
    "upi": "paid by UPI",
    "bbps": "paid through BBPS",
    "csc": "paid at a CSC",
    "b2b": "paid at the gas company",
}
TOKEN_KINDS = {"key_change": "meter key update", "set_tariff_rate": "new gas price", "credit": "credit"}


# --- the shell ---------------------------------------------------------------------------------------


@cache
def static_version() -> str:
    """A short hash of the app's static files: the service worker's cache name changes with any of them."""
    digest = hashlib.sha256()
    for path in sorted([*STATIC.glob("app/*"), STATIC / "meterlink.js"]):
        if path.name != "sw.js":
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


@router.get("/sw.js")
def service_worker() -> Response:
    body = (STATIC / "app" / "sw.js").read_text(encoding="utf-8").replace("__VERSION__", static_version())
    # Browsers re-check the worker at most once a day anyway; no-cache makes a release take effect at once.
    return Response(
        body,
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/app/"},
    )


@router.get("/manifest.webmanifest")
def manifest(request: Request) -> Response:
    lang = request_language(request)
    body = {
        "name": translate(lang, "citygas — my piped gas"),
        "short_name": "citygas",
        "description": translate(lang, "Balance, top-up and your gas meter, in rupees."),
        "lang": lang,
        "start_url": "/app/",
        "scope": "/app/",
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#f3f5f4",
        "theme_color": "#0b5d3b",
        "icons": [
            {"src": "/static/app/icon-192.png", "sizes": "192x192", "type": "image/png"},
            {"src": "/static/app/icon-512.png", "sizes": "512x512", "type": "image/png"},
            {"src": "/static/app/icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"},
        ],
    }
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/manifest+json")


@router.get("/offline", response_class=HTMLResponse)
def offline(request: Request) -> Response:
    """What the service worker shows for a screen it never saved while the phone is offline."""
    return render(request, "app/offline.html", tab="")


@router.post("/language")
def choose_language(
    request: Request,
    lang: Annotated[str, Form(max_length=5)],
    next: Annotated[str, Form(max_length=200)] = "/app/",
) -> Response:
    """Switch the app's language; a logged-in household's choice is kept for its SMS too."""
    if lang not in LANGUAGES:
        raise ValidationFailed("choose English or Hindi")
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None and principal.kind == "customer":
        db = get_db(request)
        with db.unit_of_work(tenant=principal.tenant_id, actor=principal.actor) as uow:
            for connection in household_connections(uow.session, principal):
                connection.customer.language = lang
            uow.because("household chose the app's language").commit()
    target = next if next.startswith("/app/") and not next.startswith("//") else "/app/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=365 * 86400,
        samesite="lax",
        secure=request.app.state.settings.secure_cookies,
    )
    return response


# --- home --------------------------------------------------------------------------------------------

CHART_VIEWS = {"daily": 30, "monthly": 12}
CHART_UNITS = ("inr", "scm")


@router.get("/", response_class=HTMLResponse)
def home(request: Request, uow: Household, c: str = "", view: str = "daily", unit: str = "inr") -> Response:
    principal: Principal = request.state.principal
    session = uow.session
    connections = household_connections(session, principal)
    chosen = pick_connection(connections, c)
    view = view if view in CHART_VIEWS else "daily"
    unit = unit if unit in CHART_UNITS else "inr"
    now = utcnow()
    estimate = None
    points: list[Any] = []
    if chosen is not None and chosen.meter is not None:
        estimate = estimate_balance(session, chosen.meter, now=now)
        points = consumption_series(session, chosen.meter, kind=view, periods=CHART_VIEWS[view])
    lang = request_language(request)
    chart = bar_chart_svg(points, unit=unit, view=view, lang=lang) if points else ""
    tenant = session.get(Tenant, principal.tenant_id)
    own = session.get(Customer, principal.id)
    return render(
        request,
        "app/home.html",
        household_name=own.name if own is not None else "",
        tab="home",
        connections=connections,
        chosen=chosen,
        estimate=estimate,
        points=points,
        chart=chart,
        view=view,
        unit=unit,
        tenant=tenant,
    )


# --- top-up ------------------------------------------------------------------------------------------


@router.get("/topup", response_class=HTMLResponse)
def topup_form(request: Request, uow: Household, c: str = "") -> Response:
    connections = household_connections(uow.session, request.state.principal)
    return _topup_page(request, connections, pick_connection(connections, c), amount="", method="upi")


def _topup_page(
    request: Request,
    connections: list[Connection],
    chosen: Connection | None,
    *,
    amount: str,
    method: str,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "app/topup.html",
        status_code=status_code,
        tab="topup",
        connections=connections,
        chosen=chosen,
        presets=TOPUP_PRESETS_RUPEES,
        amount=amount,
        method=method,
        limits=DEFAULT_LIMITS,
        error=error,
    )


@router.post("/topup")
def start_topup(
    request: Request,
    uow: Household,
    consumer_number: Annotated[str, Form(max_length=24)],
    preset: Annotated[str, Form(max_length=8)] = "",
    amount: Annotated[str, Form(max_length=16)] = "",
    method: Annotated[str, Form(max_length=8)] = "upi",
) -> Response:
    """Make a gateway order for the household's own connection and go to the checkout."""
    principal: Principal = request.state.principal
    connections = household_connections(uow.session, principal)
    chosen = pick_connection(connections, consumer_number)
    text = amount.strip() or preset.strip()
    settings = request.app.state.settings
    try:
        if chosen is None or chosen.customer.consumer_number != consumer_number:
            raise ValidationFailed("Choose one of your connections.")
        if method not in PAYMENT_METHODS:
            raise ValidationFailed("Choose UPI or card.")
        if not text:
            raise ValidationFailed("Choose an amount or type one.")
        try:
            paise = parse_rupees(text)
        except AmountError as exc:
            raise ValidationFailed("Type the amount in rupees, like 500 or 750.50.") from exc
        gateway = gateway_for(
            uow.session, master_key=settings.master_key_bytes, simulator_enabled=settings.simulator_enabled
        )
        own = uow.session.get(Customer, principal.id)
        order = do_create_order(
            uow.session,
            gateway,
            consumer_number=consumer_number,
            amount_paise=paise,
            household_phone=own.phone if own is not None else "-",
        )
    except DomainError as exc:
        return _topup_page(
            request,
            connections,
            chosen,
            amount=amount,
            method=method,
            error=exc.detail,
            status_code=exc.status,
        )
    uow.because("household started an online top-up").commit()
    return RedirectResponse(f"/pay/checkout/{order.gateway_order_id}?method={method}", status_code=303)


# --- history -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenLine:
    kind: str
    grouped: str
    tid: int
    pending: bool


@dataclass(frozen=True)
class VendLine:
    vend: Vend
    tokens: list[TokenLine]


@router.get("/history", response_class=HTMLResponse)
def history(request: Request, uow: Household, c: str = "") -> Response:
    session = uow.session
    connections = household_connections(session, request.state.principal)
    chosen = pick_connection(connections, c)
    lines: list[VendLine] = []
    if chosen is not None:
        pending_tids: set[tuple[str, int | None]] = set()
        if chosen.meter is not None:
            pending_tids = {(str(p.vend_id), p.tid) for p in pending_tokens(session, chosen.meter)}
        vends = session.execute(
            select(Vend)
            .where(Vend.customer_id == chosen.customer.id)
            .order_by(Vend.created_at.desc())
            .limit(HISTORY_LIMIT)
        ).scalars()
        for vend in vends:
            tokens = [
                TokenLine(
                    kind=t["kind"],
                    grouped=group_token(t["token"]),
                    tid=t["tid"],
                    pending=(str(vend.id), t["tid"]) in pending_tids,
                )
                for t in vend.tokens
            ]
            lines.append(VendLine(vend, tokens))
    return render(
        request,
        "app/history.html",
        tab="history",
        connections=connections,
        chosen=chosen,
        lines=lines,
        readings=[],
        channel_names=CHANNEL_NAMES,
        token_kinds=TOKEN_KINDS,
    )
