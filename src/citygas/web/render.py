"""Rendering portal pages: one Jinja2 environment, the shared layout, and the helpers templates use."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from citygas.identity.rules import Permission
from citygas.platform.money import format_inr, format_scm
from citygas.platform.settings import get_settings
from citygas.platform.time import format_india, utcnow
from citygas.web.deps import CSRF_COOKIE, csrf_token_for, current_principal
from citygas.web.i18n import (
    LANGUAGES,
    format_day,
    format_moment,
    format_month,
    language_of,
    translate,
)

# The customer app's language: chosen in the app (and stored on the customer for SMS), remembered here.
LANG_COOKIE = "cg_lang"

TEMPLATE_DIRS = [str(Path(__file__).parent / "templates")]
templates = Jinja2Templates(directory=TEMPLATE_DIRS)
templates.env.filters["inr"] = format_inr
templates.env.filters["scm"] = format_scm
templates.env.filters["ist"] = format_india

# The navigation of the staff portals: shown only where the user holds the permission.
NAV: list[tuple[str, str, str]] = [
    (Permission.TENANT_MANAGE, "/ops/admin/tenants", "Tenants"),
    (Permission.OPS_PORTAL, "/ops/", "Back office"),
    (Permission.CGD_PORTAL, "/cgd/", "CGD portal"),
    (Permission.FIELD_PORTAL, "/field/", "Field"),
    (Permission.AGENT_PORTAL, "/agent/", "Agent"),
    (Permission.CUSTOMER_VIEW, "/ops/customers", "Customers"),
    (Permission.METER_VIEW, "/ops/meters", "Meters"),
    (Permission.VEND_VIEW, "/ops/payments", "Payments"),
    (Permission.PAYMENTS_RECONCILE, "/ops/settlement", "Settlement"),
    (Permission.AGENT_MANAGE, "/ops/csc/agents", "CSC agents"),
    (Permission.TICKET_VIEW, "/ops/tickets", "Tickets"),
    (Permission.ACTIVITY_VIEW, "/ops/activity", "Activity"),
    (Permission.AUDIT_VIEW, "/ops/audit", "Audit log"),
    (Permission.APIKEY_MANAGE, "/cgd/api-keys", "API keys"),
]


def request_language(request: Request) -> str:
    """`?lang=` on this request, else the language cookie, else English."""
    return language_of(request.query_params.get("lang") or request.cookies.get(LANG_COOKIE))


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    principal = current_principal(request)
    lang = language_of(context.pop("lang", None) or request_language(request))
    nav = [(href, label) for perm, href, label in NAV if principal and principal.can(perm)]
    # Helpers every template may use; a page that passes its own value of the same name keeps it.
    household = principal is not None and principal.kind == "customer"
    helpers: dict[str, Any] = {
        "languages": LANGUAGES,
        "now": utcnow(),
        # Pages both a household and staff reach (payment result, receipts) wear the caller's shell.
        "layout": "app/layout.html" if household else "base.html",
        "_": partial(translate, lang),
        "day": partial(format_day, lang),
        "moment": partial(format_moment, lang),
        "month": partial(format_month, lang),
    }
    context = helpers | context
    context.update(
        request=request,
        principal=principal,
        nav=nav,
        csrf_token=csrf_token_for(request),
        development=get_settings().is_development,
        lang=lang,
    )
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    anonymous = getattr(request.state, "anonymous_csrf", None)
    if anonymous and not request.cookies.get(CSRF_COOKIE):
        response.set_cookie(
            CSRF_COOKIE,
            anonymous,
            httponly=True,
            samesite="strict",
            secure=request.app.state.settings.secure_cookies,
        )
    return response
