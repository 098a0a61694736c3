"""Rendering portal pages: one Jinja2 environment, the shared layout, and the helpers templates use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from citygas.identity.rules import Permission
from citygas.platform.money import format_inr, format_scm
from citygas.platform.settings import get_settings
from citygas.platform.time import format_india
from citygas.web.deps import CSRF_COOKIE, csrf_token_for, current_principal

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
    (Permission.PAYMENTS_RECONCILE, "/ops/settlement", "Settlement"),
    (Permission.AGENT_MANAGE, "/ops/csc/agents", "CSC agents"),
    (Permission.ACTIVITY_VIEW, "/ops/activity", "Activity"),
    (Permission.AUDIT_VIEW, "/ops/audit", "Audit log"),
    (Permission.APIKEY_MANAGE, "/cgd/api-keys", "API keys"),
]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    principal = current_principal(request)
    nav = [(href, label) for perm, href, label in NAV if principal and principal.can(perm)]
    context.update(
        request=request,
        principal=principal,
        nav=nav,
        csrf_token=csrf_token_for(request),
        development=get_settings().is_development,
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
