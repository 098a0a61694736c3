"""Every form post must carry the CSRF token of its session (or, before login, of the double-submit
cookie). The form routes are discovered from the app, so a new one is covered without being listed."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

import pyotp
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from citygas.identity.models import ApiKey
from citygas.identity.rules import Permission, Role
from citygas.identity.service import do_create_api_key, open_web_session
from citygas.payments.gateway.service import do_create_order
from citygas.payments.gateway.simulator import GatewaySimulator, SimulatedCheckout
from citygas.platform.settings import get_settings
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from citygas.web.deps import SAFE_METHODS, SESSION_COOKIE
from tests.conftest import TEST_ACTOR, csrf_from, login, make_tenant
from tests.identity.conftest import PASSWORD, add_staff, register_customer
from tests.web.conftest import TenantData, add_household_rows, add_meter, add_payments, add_vend
from tests.web.db_snapshot import differences, snapshot
from tests.web.route_map import RouteInfo, api_routes

EXPIRED = "The form has expired. Reload the page and try again."
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@dataclass(frozen=True)
class Alpha:
    tenant: Tenant
    user_id: uuid.UUID
    key_id: uuid.UUID
    consumer_number: str
    phone: str
    meter_serial: str
    agent_id: uuid.UUID  # alpha.everything's own CSC agent profile, with a float
    topup_id: uuid.UUID  # a float top-up waiting for approval
    order_id: str  # a gateway order not paid yet
    payment: SimulatedCheckout  # a payment the simulated gateway took, its browser return not yet seen
    customer_id: uuid.UUID  # the household, logged in to the customer app for its own forms
    active_serial: str  # the household's active meter
    ticket_number: str  # the household's open complaint
    mandate_id: uuid.UUID  # the household's active auto top-up
    payment_id: str  # a gateway payment recorded by the platform (for the back office's payment actions)


@pytest.fixture
def everything(db: Database, alpha: Tenant) -> Alpha:
    """A user of Alpha Gas holding every CGD role, and an operator admin, so that only the CSRF check
    can refuse a post."""
    staff = add_staff(db, alpha, "alpha.everything", [r.value for r in Role if r is not Role.OPERATOR_ADMIN])
    add_staff(
        db, make_tenant(db, "operator", "OPS", kind="operator"), "operator.admin", [Role.OPERATOR_ADMIN.value]
    )
    add_staff(db, alpha, "alpha.vle", [Role.CSC_AGENT.value])  # a CSC agent user with no profile yet
    customer = register_customer(db, alpha, name="Sunita Kulkarni", phone="9876501234")
    meter = TenantData(
        alpha,
        consumer_numbers=[customer.consumer_number],
        phones=[customer.phone],
        customer_ids=[customer.id],
    )
    with db.unit_of_work(tenant=alpha.id, actor=TEST_ACTOR) as uow:
        key, _ = do_create_api_key(uow.session, name="SAP", scopes=["customers:read"], created_by="test")
        add_meter(uow.session, meter, drn=1001)
        add_vend(uow.session, meter, drn=1002)  # the customer's meter is active: the vend forms may vend
        uow.commit()
    add_payments(db, meter, agent_usernames=["alpha.everything"], label="Alphaville")
    add_household_rows(db, meter)  # a complaint, a leak, a data export and an active auto top-up
    master_key = get_settings().master_key_bytes
    with db.unit_of_work(tenant=alpha.id, actor=TEST_ACTOR) as uow:
        gateway = GatewaySimulator.for_tenant(uow.session, master_key=master_key)
        unpaid = do_create_order(
            uow.session, gateway, consumer_number=customer.consumer_number, amount_paise=10_000
        )
        paid = do_create_order(
            uow.session, gateway, consumer_number=customer.consumer_number, amount_paise=10_000
        )
        payment = gateway.pay(paid.gateway_order_id, method="card")
        uow.commit()
    return Alpha(
        alpha,
        staff.id,
        key.id,
        customer.consumer_number,
        customer.phone,
        meter.meter_serials[0],
        agent_id=meter.agent_ids[0],
        topup_id=meter.topup_ids[-1],
        order_id=unpaid.gateway_order_id,
        payment=payment,
        customer_id=customer.id,
        active_serial=meter.meter_serials[1],
        ticket_number=meter.ticket_numbers[0],
        mandate_id=meter.mandate_ids[0],
        payment_id=meter.gateway_payment_ids[0],
    )


def path_for(route: RouteInfo, alpha: Alpha) -> str:
    values = {
        "consumer_number": alpha.consumer_number,
        "tenant_id": str(alpha.tenant.id),
        "key_id": str(alpha.key_id),
        "user_id": str(alpha.user_id),
        "action": "disable",
        "serial": alpha.meter_serial,
        "agent_id": str(alpha.agent_id),
        "topup_id": str(alpha.topup_id),
        "order_id": alpha.order_id,
        "tenant_slug": alpha.tenant.slug,
        "ticket_number": alpha.ticket_number,
        "mandate_id": str(alpha.mandate_id),
        "payment_id": alpha.payment_id,
    }
    if route.path.startswith("/app/meter/"):
        values["serial"] = alpha.active_serial  # the household's own meter
    path = route.path
    for name in route.path_params:
        if name not in values:
            pytest.fail(f"{route.path}: no value for path parameter {name!r}; add one in {__file__}")
        path = path.replace("{" + name + "}", values[name])
    return path


def valid_form(route: RouteInfo, alpha: Alpha) -> dict[str, str | list[str]]:
    """A form that would be carried out if it had its token, so a refusal is the token's doing."""
    forms: dict[str, dict[str, str | list[str]]] = {
        "/login": {"username": "alpha.everything", "password": PASSWORD},
        "/logout": {},
        "/app/logout": {},
        "/account/totp": {"secret": SECRET, "code": pyotp.TOTP(SECRET).now()},
        "/app/login": {"phone": alpha.phone},
        "/app/login/verify": {"phone": alpha.phone, "code": "123456"},
        "/cgd/api-keys": {"name": "Collections feed", "scopes": ["customers:read"]},
        "/cgd/api-keys/{key_id}/revoke": {"reason": "rotated"},
        "/ops/admin/tenants": {"name": "Charlie Gas", "slug": "charlie", "code": "CHR", "state": "Goa"},
        "/ops/admin/tenants/{tenant_id}/areas": {
            "code": "ALPGA2",
            "name": "Second GA",
            "state": "Maharashtra",
        },
        "/ops/admin/tenants/{tenant_id}/charge-areas": {
            "ga_code": "ALPGA",
            "code": "ALP-CA2",
            "name": "Town 2",
            "pincode": "411002",
        },
        "/ops/admin/tenants/{tenant_id}/users": {
            "username": "alpha.newbie",
            "full_name": "New Bie",
            "password": "long-enough-password",
            "roles": ["technician"],
        },
        "/ops/admin/users/{user_id}/{action}": {"tenant_id": str(alpha.tenant.id)},
        "/ops/meters/{serial}/transition": {"action": "install", "consumer_number": alpha.consumer_number},
        "/ops/meters/{serial}/replace": {"new_serial": "X", "final_credit": "10", "reason": "csrf probe"},
        "/sim/meters/{serial}/token": {"token": "1234 5678 9012 3456 7890"},
        "/sim/meters/{serial}/button": {},
        "/sim/meters/{serial}/emergency": {},
        "/sim/meters/{serial}/event": {"code": "tamper"},
        "/ops/settlement": {"source": "gateway"},  # and the report, in REPORTS
        "/agent/vend": {
            "consumer_number": alpha.consumer_number,
            "amount": "100",
            "client_ref": "csrf-probe-0001",
            "cash_received": "yes",
        },
        "/agent/float": {"amount": "500", "reference": "UTRCSRF0001", "note": "paid at the bank"},
        "/ops/csc/agents": {
            "username": "alpha.vle",
            "csc_id": "CSC-0777",
            "village": "Rampur",
            "commission_kind": "percent",
            "percent": "1.5",
        },
        "/ops/csc/agents/{agent_id}/commission": {"commission_kind": "percent", "percent": "2"},
        "/ops/csc/agents/{agent_id}/topups": {"amount": "500", "reference": "UTRCSRF0002"},
        "/ops/csc/topups/{topup_id}/approve": {},
        "/ops/csc/topups/{topup_id}/reject": {"reason": "not on the bank statement"},
        "/ops/payments/{payment_id}/retry": {"reason": "meter resumed"},
        "/ops/payments/{payment_id}/refund": {"reason": "paid twice", "request_key": "ops-csrfprobe0001"},
        "/ops/csc/agents/{agent_id}/payouts": {
            "period": "2026-11",
            "amount": "1",
            "reference": "UTRCSRF0003",
        },
        "/pay/new": {"consumer_number": alpha.consumer_number, "amount": "500"},
        "/pay/checkout/{order_id}": {"method": "upi", "vpa": "sunita@upi"},
        "/pay/{tenant_slug}/return": {
            "razorpay_order_id": alpha.payment.order_id,
            "razorpay_payment_id": alpha.payment.payment_id,
            "razorpay_signature": alpha.payment.signature,
        },
        # The customer app: the household's own connection, ticket and mandate.
        "/app/language": {"lang": "hi", "next": "/app/"},
        "/app/topup": {"consumer_number": alpha.consumer_number, "amount": "500", "method": "upi"},
        "/app/meter/{serial}/readings": {},  # a JSON body, in JSON_BODIES
        "/app/help/gas/report": {"consumer_number": alpha.consumer_number},
        "/app/help/new": {
            "consumer_number": alpha.consumer_number,
            "category": "billing",
            "description": "CSRF probe: billing question",
        },
        "/app/help/{ticket_number}/cancel": {"reason": "sorted itself out"},
        "/app/help/{ticket_number}/reopen": {"reason": "still not sorted"},
        "/app/help/{ticket_number}/rate": {"rating": "5", "comment": "quick"},
        "/ops/tickets/new": {
            "caller": alpha.consumer_number,
            "category": "billing",
            "description": "CSRF probe: a caller's billing question",
        },
        "/ops/tickets/{ticket_number}/transition": {"action": "acknowledge", "reason": ""},
        "/ops/tickets/{ticket_number}/assign": {},
        "/ops/tickets/{ticket_number}/messages": {"visibility": "public", "body": "We are on it"},
        "/app/profile/preferences": {
            "low_credit": ["sms"],
            "tokens_payments": ["sms"],
            "service_updates": [],
            "outages_safety": ["sms"],
        },
        "/app/profile/consents": {"purpose": "offers", "decision": "give"},
        "/app/profile/export": {},
        "/app/autopay": {
            "consumer_number": alpha.consumer_number,
            "threshold": "200",
            "amount": "500",
            "max_amount": "2000",
            "vpa": "sunita@upi",
        },
        "/app/autopay/{mandate_id}/pause": {},
        "/app/autopay/{mandate_id}/resume": {},
        "/app/autopay/{mandate_id}/cancel": {},
        "/app/autopay/{mandate_id}/change": {"threshold": "200", "amount": "600", "max_amount": "2000"},
        "/pay/mandate/{mandate_id}": {"decision": "approve", "vpa": "sunita@upi"},
        "/pay/mandate/{mandate_id}/fail-next": {"reason": "Insufficient funds"},
    }
    if route.path not in forms:
        pytest.fail(f"{route.path} takes a form this test does not know; add a valid one in {__file__}")
    return forms[route.path]


# Uploads that go with a form (route path → field → (file name, content, type)).
REPORTS = {
    "/ops/settlement": {
        "report": (
            "settlement.csv",
            b"payment_id,amount,fee,tax,settlement_id,settled_at\npay_Csrf000000001,10000,0,0,setl_csrf,1764800000\n",
            "text/csv",
        )
    }
}
# Posts whose body is JSON (the token rides in the X-CSRF-Token header, as the app's script sends it).
JSON_BODIES: dict[str, dict[str, object]] = {
    "/app/meter/{serial}/readings": {"frames": [base64.b64encode(b"csrf probe").decode()]},
}
# Form posts that cannot carry our token, and what guards them instead. Each is checked below: it is
# exactly the unprotected form route, and without its guard it is refused and changes nothing.
CSRF_EXEMPT = {
    "/pay/{tenant_slug}/return": "Razorpay Checkout posts the payer's browser back here from the gateway's "
    "site (a cross-site post, maybe without our cookie); the gateway's signature of the order and payment, "
    "checked server-side, authorises it, and it acts in the tenant of the URL, never as the session",
}


def post_form(client: TestClient, method: str, route: RouteInfo, alpha: Alpha, **extra: str) -> Response:
    form = {**valid_form(route, alpha), **extra}
    if route.path in JSON_BODIES:
        token = form.pop("csrf_token", None)
        json_response: Response = client.request(
            method,
            path_for(route, alpha),
            json=JSON_BODIES[route.path],
            headers={"X-CSRF-Token": token} if token is not None else None,
            follow_redirects=False,
        )
        return json_response
    response: Response = client.request(
        method, path_for(route, alpha), data=form, files=REPORTS.get(route.path), follow_redirects=False
    )
    return response


def all_form_posts(client: TestClient) -> list[tuple[RouteInfo, str]]:
    routes = [
        (route, method)
        for route in api_routes(client.app)  # type: ignore[arg-type]
        for method in route.methods
        if method not in SAFE_METHODS and not route.is_api
    ]
    assert len(routes) >= 13, routes
    return routes


def form_posts(client: TestClient) -> list[tuple[RouteInfo, str]]:
    return [(route, method) for route, method in all_form_posts(client) if route.path not in CSRF_EXEMPT]


Clients = tuple[TestClient, TestClient, TestClient]


def logged_in_pair(app_client: TestClient, db: Database, alpha: Alpha) -> Clients:
    """(Alpha's user with every CGD role, the operator admin, Alpha's household in the customer app),
    each logged in."""
    operator = TestClient(app_client.app)
    login(app_client, "alpha.everything", PASSWORD)
    login(operator, "operator.admin", PASSWORD)
    with db.system() as uow:
        cookie = open_web_session(
            uow.session, kind="customer", tenant_id=alpha.tenant.id, customer_id=alpha.customer_id
        )
        uow.commit()
    household = TestClient(app_client.app, cookies={SESSION_COOKIE: cookie})
    return app_client, operator, household


def for_households(route: RouteInfo) -> bool:
    """Forms only a household may post (every requirement is customer.self), and the app's language
    switch, which stores a household's choice."""
    only_households = bool(route.permissions) and all(
        alts == {Permission.CUSTOMER_SELF} for alts in route.permissions
    )
    return only_households or route.path == "/app/language"


def client_for(route: RouteInfo, clients: Clients) -> TestClient:
    if Permission.TENANT_MANAGE in route.needs():
        return clients[1]
    return clients[2] if for_households(route) else clients[0]


def test_every_form_post_without_a_csrf_token_is_refused_and_changes_nothing(
    app_client: TestClient,
    db: Database,
    everything: Alpha,
) -> None:
    pair = logged_in_pair(app_client, db, everything)
    before = snapshot(db)

    refused: dict[str, int] = {}
    for route, method in form_posts(app_client):
        response = post_form(client_for(route, pair), method, route, everything)
        refused[f"{method} {route.path}"] = response.status_code
        assert EXPIRED in response.text, f"{method} {route.path}: {response.status_code}"

    assert set(refused.values()) == {403}, refused
    assert differences(before, snapshot(db)) == {}
    # The logout posts did not log anybody out.
    assert [c.get("/api/v1/me").status_code for c in pair] == [200, 200, 200]


def test_every_form_post_with_another_sessions_token_is_refused_and_changes_nothing(
    app_client: TestClient,
    db: Database,
    everything: Alpha,
) -> None:
    add_staff(db, everything.tenant, "alpha.other", ["back_office"])
    other = TestClient(app_client.app)
    login(other, "alpha.other", PASSWORD)
    foreign_token = csrf_from(other.get("/account").text)
    pair = logged_in_pair(app_client, db, everything)
    before = snapshot(db)

    statuses = {
        f"{method} {route.path}": post_form(
            client_for(route, pair), method, route, everything, csrf_token=foreign_token
        ).status_code
        for route, method in form_posts(app_client)
    }

    assert set(statuses.values()) == {403}, statuses
    assert differences(before, snapshot(db)) == {}


def test_the_login_form_needs_the_double_submit_cookie(
    app_client: TestClient,
    db: Database,
    everything: Alpha,
) -> None:
    token = csrf_from(app_client.get("/login").text)
    cookieless = TestClient(app_client.app)

    response = cookieless.post(
        "/login",
        data={"username": "alpha.everything", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )

    assert response.status_code == 403
    assert EXPIRED in response.text
    assert SESSION_COOKIE not in response.cookies


def test_the_token_may_come_in_the_x_csrf_token_header(
    app_client: TestClient,
    db: Database,
    everything: Alpha,
) -> None:
    login(app_client, "alpha.everything", PASSWORD)
    token = csrf_from(app_client.get("/account").text)

    response = app_client.post(
        f"/cgd/api-keys/{everything.key_id}/revoke", headers={"X-CSRF-Token": token}, follow_redirects=False
    )

    assert response.status_code == 303
    with db.system(read_only=True) as uow:
        assert uow.session.get(ApiKey, everything.key_id).revoked_at is not None  # type: ignore[union-attr]


def test_the_form_posts_without_the_csrf_check_are_exactly_those_a_signature_guards(
    app_client: TestClient,
    db: Database,
    everything: Alpha,
) -> None:
    """The exemption list is no escape hatch: it names exactly the form routes without `verify_csrf`, and
    each, posted by a logged-in user with its form but a forged signature, is refused and changes nothing."""
    unprotected = {route.path for route, _ in all_form_posts(app_client) if not route.csrf_protected}
    assert unprotected == set(CSRF_EXEMPT)
    pair = logged_in_pair(app_client, db, everything)
    before = snapshot(db)

    statuses = {
        f"{method} {route.path}": post_form(
            client_for(route, pair), method, route, everything, razorpay_signature="0" * 64
        ).status_code
        for route, method in all_form_posts(app_client)
        if route.path in CSRF_EXEMPT
    }

    assert set(statuses.values()) == {400}, statuses
    assert differences(before, snapshot(db)) == {}
