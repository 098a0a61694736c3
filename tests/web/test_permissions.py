"""The permission matrix, route by route: each route names the permission it needs (`Requires`), and
each role reaches exactly the routes its permissions allow. Routes are discovered from the app, so a
new route is checked the day it is added, and a new route without a permission fails here."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from citygas.identity.rules import API_KEY_SCOPES, ROLE_PERMISSIONS, Role, permissions_for_scopes
from citygas.identity.service import open_web_session
from citygas.platform.uow import Database
from citygas.web.deps import SAFE_METHODS, SESSION_COOKIE
from tests.conftest import csrf_of, login
from tests.web.conftest import Populated, TenantData
from tests.web.route_map import RouteInfo, api_routes, mounts, plain_routes

# Reachable without a permission. Each entry says why; anything else must name the permission it needs.
PUBLIC_ROUTES = {
    "/": "redirects to the caller's home or the login page",
    "/login": "staff log in",
    "/logout": "ends whatever session the caller has",
    "/app/login": "households ask for a code",
    "/app/login/verify": "households log in with the code",
    "/app/logout": "ends whatever session the caller has",
    "/healthz": "load balancer",
    "/readyz": "load balancer",
    "/metrics": "Prometheus",
    "/fonts/noto-sans-devanagari.ttf": "a font file from the OS package, for Hindi pages before login; "
    "nobody's data",
    "/account": "any logged-in staff member's own account (checked by `_any_staff`)",
    "/account/totp": "any logged-in staff member turns on TOTP (checked by `_any_staff`)",
    "/api/v1/payments/gateway/{tenant_slug}/webhook": "the payment gateway calls it; the HMAC signature "
    "of the raw body under the slug's tenant's webhook secret is the authentication",
    "/pay/{tenant_slug}/return": "the payer's browser returns from the gateway, maybe without its cookie "
    "(a cross-site POST); the gateway's signature of order and payment authorises showing that receipt",
    "/r/{receipt_number}": "the QR code on a printed receipt: anyone holding it checks it is genuine; "
    "nothing is shown unless the receipt's check (an HMAC under its CGD's key) matches",
    "/app/sw.js": "the customer app's service worker: a static script the browser fetches before any login",
    "/app/manifest.webmanifest": "the customer app's install manifest (name, icons, colours): nobody's data",
    "/app/offline": "the static screen the service worker shows when the phone is offline",
    "/app/language": "switches the app's language cookie for anyone (the login page has the switch); a "
    "logged-in household's choice is also stored on its own connections, and the post needs its CSRF token",
    "/app/help/gas": "safety steps for someone smelling gas, before any login; a logged-in household also "
    "gets its own connections' report buttons",
}
PUBLIC_PLAIN_ROUTES = {"/api/v1/openapi.json", "/api/v1/docs", "/docs/oauth2-redirect"}
PUBLIC_MOUNTS = {"/static"}


def fill_path(route: RouteInfo, a: TenantData) -> str:
    values = {
        "consumer_number": a.consumer_numbers[0],
        "tenant_id": str(a.tenant.id),
        "key_id": str(a.api_key_id),
        "user_id": str(a.user_ids[0]),
        "action": "unlock",
        "serial": a.meter_serials[0],
        "vend_id": str(a.vend_ids[0]),
        "agent_id": str(a.agent_ids[0]),
        "topup_id": str(a.topup_ids[-1]),  # the pending one, which may still be approved or rejected
        "bbps_txn_ref": a.bbps_txn_refs[0],
        "settlement_pk": str(a.settlement_pks[0]),
        "order_id": a.gateway_order_ids[0],
        "payment_id": a.gateway_payment_ids[0],
        "receipt_number": a.receipt_numbers[0],
        "tenant_slug": a.tenant.slug,
        "ticket_number": a.ticket_numbers[0],
        "export_id": str(a.export_ids[0]),
        "mandate_id": str(a.mandate_ids[0]),
    }
    path = route.path
    for name in route.path_params:
        if name not in values:
            pytest.fail(
                f"{route.path}: no value for path parameter {name!r}; add one to fill_path in {__file__}"
            )
        path = path.replace("{" + name + "}", values[name])
    return path


def call(
    client: TestClient,
    route: RouteInfo,
    method: str,
    a: TenantData,
    csrf: str,
    headers: dict[str, str] | None = None,
) -> Response:
    data = None if method in SAFE_METHODS else {"csrf_token": csrf}
    response: Response = client.request(
        method, fill_path(route, a), data=data, headers=headers, follow_redirects=False
    )
    return response


def reason(response: Response) -> str:
    """The detail of an error page or problem, not the whole page."""
    found = re.search(r"<main[^>]*>.*?<p>(.*?)</p>", response.text, re.S)
    return found.group(1) if found else response.text[:200]


def check_matrix(
    client: TestClient,
    granted: frozenset[str],
    a: TenantData,
    csrf: str,
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Call every guarded route; return the routes whose answer disagrees with `granted`."""
    wrong: dict[str, str] = {}
    for route in api_routes(client.app):  # type: ignore[arg-type]
        if not route.guarded:
            continue
        missing = route.unmet(granted)
        for method in route.methods:
            response = call(client, route, method, a, csrf, headers)
            where = f"{method} {route.path}"
            if missing and response.status_code != 403:
                wrong[where] = f"{response.status_code}, expected 403 (lacks {missing})"
            elif missing and f"Your role does not allow this ({missing[0]})" not in response.text:
                wrong[where] = f"403 for another reason: {reason(response)}"
            elif not missing and response.status_code == 403:
                wrong[where] = f"403 although {sorted(route.needs())} are granted: {reason(response)}"
    return wrong


@pytest.mark.parametrize("role", list(Role))
def test_each_role_reaches_exactly_the_routes_its_permissions_allow(
    app_client: TestClient,
    populated: Populated,
    role: Role,
) -> None:
    world = populated.world
    username = "operator.admin" if role is Role.OPERATOR_ADMIN else world.username(world.a, role)
    login(app_client, username, world.password)

    wrong = check_matrix(app_client, frozenset(ROLE_PERMISSIONS[role]), populated.a, csrf_of(app_client))

    assert wrong == {}


def test_an_api_key_reaches_exactly_the_routes_its_scopes_allow(
    app_client: TestClient, populated: Populated
) -> None:
    client = TestClient(app_client.app)
    headers = {"Authorization": f"Bearer {populated.b.api_key}"}

    wrong = check_matrix(client, permissions_for_scopes(sorted(API_KEY_SCOPES)), populated.b, "", headers)

    assert wrong == {}


def test_a_household_reaches_only_its_own_app(
    app_client: TestClient, populated: Populated, db: Database
) -> None:
    a = populated.a
    with db.system() as uow:
        cookie = open_web_session(
            uow.session, kind="customer", tenant_id=a.tenant.id, customer_id=a.customer_ids[0]
        )
        uow.commit()
    client = TestClient(app_client.app, cookies={SESSION_COOKIE: cookie})
    csrf = csrf_of(client, "/app/login")

    wrong = check_matrix(client, frozenset({"customer.self"}), a, csrf)

    assert wrong == {}


def test_every_route_names_a_permission_unless_it_is_public_on_purpose(app_client: TestClient) -> None:
    app = app_client.app
    routes = api_routes(app)  # type: ignore[arg-type]

    unguarded = sorted({r.path for r in routes if not r.guarded} - set(PUBLIC_ROUTES))
    public_but_guarded = sorted({r.path for r in routes if r.guarded} & set(PUBLIC_ROUTES))
    stale = sorted(set(PUBLIC_ROUTES) - {r.path for r in routes})

    assert unguarded == [], "these routes need Depends(Requires(...)) or uow_with(...)"
    assert (public_but_guarded, stale) == ([], []), "PUBLIC_ROUTES is out of date"
    assert {path for path, _ in plain_routes(app)} == PUBLIC_PLAIN_ROUTES  # type: ignore[arg-type]
    assert set(mounts(app)) == PUBLIC_MOUNTS  # type: ignore[arg-type]
