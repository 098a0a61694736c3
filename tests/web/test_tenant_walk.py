"""The cross-tenant walk: a user of CGD B holding every tenant-level role, and B's API key holding
every scope, call every route of the app with CGD A's identifiers, and see nothing of A.

The routes are discovered from the app, so a route added later is walked without being listed. Path,
query, header and form parameters are filled from the tables below; a parameter name the tables do not
know fails the walk loudly, so whoever adds it decides what an attacker from B would send there.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from citygas.identity.rules import Permission, Role
from citygas.identity.service import open_web_session
from citygas.payments.gateway.ports import payment_signature
from citygas.payments.gateway.simulator import WEBHOOK_TOPIC, GatewaySimulator, simulator_secrets
from citygas.payments.settlement.models import Settlement
from citygas.platform.audit import AuditEntry
from citygas.platform.outbox import OutboxEvent
from citygas.platform.time import to_india, utcnow
from citygas.platform.uow import Database
from citygas.receipts.rules import receipt_check, receipt_key
from citygas.web.deps import SAFE_METHODS, SESSION_COOKIE
from tests.conftest import TEST_ACTOR, csrf_of, login, make_user
from tests.web.conftest import Populated, TenantData
from tests.web.db_snapshot import Rows, differences, snapshot
from tests.web.route_map import RouteInfo, api_routes, plain_routes

Values = Callable[[TenantData], list[str]]

# Path parameters: A's identifiers (every value is tried), or words like `action` (every word is tried).
PATH_VALUES: dict[str, Values] = {
    "consumer_number": lambda a: a.consumer_numbers,
    "customer_id": lambda a: [str(i) for i in a.customer_ids],
    "tenant_id": lambda a: [str(a.tenant.id)],
    "key_id": lambda a: [str(a.api_key_id)],
    "user_id": lambda a: [str(a.user_ids[0])],
    "serial": lambda a: a.meter_serials,
    "vend_id": lambda a: [str(i) for i in a.vend_ids],
    "action": lambda _a: ["disable", "enable", "unlock"],
    "agent_id": lambda a: [str(i) for i in a.agent_ids],
    "topup_id": lambda a: [str(i) for i in a.topup_ids],  # approved and pending
    "bbps_txn_ref": lambda a: a.bbps_txn_refs,
    "settlement_pk": lambda a: [str(i) for i in a.settlement_pks],
    "order_id": lambda a: a.gateway_order_ids,
    "payment_id": lambda a: a.gateway_payment_ids,
    "receipt_number": lambda a: a.receipt_numbers,
    # A's public name, in the URL its gateway calls back: the routes it selects take no session and
    # authenticate by a signature only A's secrets make. Without them B must learn and change nothing
    # (walked here, with forged signatures); that a CGD of that name exists is no secret (its subdomain),
    # so the 404-like-a-ghost rule does not apply, and the signed paths have focused tests below.
    "tenant_slug": lambda a: [a.tenant.slug],
    "ticket_number": lambda a: a.ticket_numbers,  # a complaint and a gas leak
    "export_id": lambda a: [str(i) for i in a.export_ids],
    "mandate_id": lambda a: [str(i) for i in a.mandate_ids],
}
# Path parameters that are not identifiers of A's rows.
NOT_IDENTIFIERS = {"action", "tenant_slug"}
# Values shaped like A's identifiers that belong to nobody: A's rows must look exactly like these.
GHOST_VALUES: dict[str, Values] = {
    "consumer_number": lambda a: [f"{a.tenant.code}-C-99999999"],
    "customer_id": lambda _a: [str(uuid.UUID(int=1))],
    "tenant_id": lambda _a: [str(uuid.UUID(int=2))],
    "key_id": lambda _a: [str(uuid.UUID(int=3))],
    "user_id": lambda _a: [str(uuid.UUID(int=4))],
    "serial": lambda a: [f"{a.tenant.code}M9999999"],
    "vend_id": lambda _a: [str(uuid.UUID(int=5))],
    "agent_id": lambda _a: [str(uuid.UUID(int=6))],
    "topup_id": lambda _a: [str(uuid.UUID(int=7))],
    "bbps_txn_ref": lambda a: [f"{a.tenant.code}BBPS999999"],
    "settlement_pk": lambda _a: [str(uuid.UUID(int=8))],
    "order_id": lambda _a: ["order_" + "0" * 14],
    "payment_id": lambda _a: ["pay_" + "0" * 14],
    "receipt_number": lambda a: [f"{a.tenant.code}-R-99999999"],
    "ticket_number": lambda a: [f"{a.tenant.code}-T-99999999"],
    "export_id": lambda _a: [str(uuid.UUID(int=9))],
    "mandate_id": lambda _a: [str(uuid.UUID(int=10))],
}

# Query parameters and form fields. A's identifiers where they select rows; otherwise values that cannot
# log anybody in or touch A (a wrong password for A's username would rightly change A's lock-out count).
QUERY_VALUES: dict[str, Values] = {
    "q": lambda a: [a.customer_names[0]],
    "cursor": lambda a: [f"{a.tenant.code}-C-00000000"],
    "limit": lambda _a: ["500"],
    "overdue": lambda _a: ["1"],
    "before": lambda _a: ["999999999"],
    "after_seq": lambda _a: ["0"],
    "next": lambda _a: ["/ops/"],
    "state": lambda _a: ["in_store"],
    "source": lambda _a: ["gateway"],
    "first": lambda _a: ["2000-01-01"],  # every day there is
    "last": lambda _a: ["2099-12-31"],
    "day": lambda _a: [to_india(utcnow()).date().isoformat()],  # the day A's agent vended
    "lang": lambda _a: ["hi"],
    "size": lambda _a: ["a5"],
    "c": lambda _a: ["a" * 16],  # shaped like a receipt's check, made without A's key
    "consumer_number": lambda a: [a.consumer_numbers[0]],
    "razorpay_order_id": lambda a: [a.gateway_order_ids[0]],
    "razorpay_payment_id": lambda a: [a.gateway_payment_ids[0]],
    "razorpay_signature": lambda _a: ["0" * 64],  # forged: B does not hold A's key secret
    "error_description": lambda _a: [""],  # none, so the return page goes on to check the signature
    "method": lambda _a: ["upi"],
    "view": lambda _a: ["monthly"],
    "unit": lambda _a: ["scm"],
    "done": lambda _a: ["active"],
    "status": lambda _a: ["all"],  # the care queue: every ticket there is
    "category": lambda _a: ["billing"],
    "mine": lambda _a: ["1"],
    "caller": lambda a: [a.consumer_numbers[0]],  # B's care agent types A's household's number
    "period": lambda _a: [f"{to_india(utcnow()).date():%Y-%m}"],  # the month A's agent earned commission
}
# The customer app's screens take `?c=` to pick one of the household's connections: B sends A's.
APP_CONNECTION_PICKERS = ("/app/", "/app/topup", "/app/history", "/app/meter", "/app/autopay")
# A query parameter whose value depends on the route: (path, name) → values, before QUERY_VALUES.
ROUTE_QUERY_VALUES: dict[tuple[str, str], Values] = {
    **{(path, "c"): (lambda a: [a.consumer_numbers[0]]) for path in APP_CONNECTION_PICKERS},
}
HEADER_VALUES: dict[str, Values] = {
    "idempotency_key": lambda _a: [str(uuid.uuid4())],
    "x_razorpay_signature": lambda _a: ["0" * 64],  # forged: B does not hold A's webhook secret
    "x_razorpay_event_id": lambda _a: ["evt_walkprobe0001"],
}
FIELD_VALUES: dict[str, Values] = {
    "tenant_id": lambda a: [str(a.tenant.id)],
    "consumer_number": lambda a: [a.consumer_numbers[0]],
    "customer_id": lambda a: [str(a.customer_ids[0])],
    "ga_code": lambda a: [a.area_codes[0]],
    "username": lambda _a: ["walk.nobody"],
    "password": lambda _a: ["not-anybodys-password"],
    "full_name": lambda _a: ["Walk Probe"],
    "roles": lambda _a: ["technician"],
    "totp": lambda _a: ["abcdef"],  # never a valid code, so the walk cannot turn on TOTP by luck
    "code": lambda _a: ["abcdef"],
    "secret": lambda _a: ["JBSWY3DPEHPK3PXP"],
    "next": lambda _a: ["/ops/"],
    "phone": lambda _a: ["9000000001"],
    "name": lambda _a: ["Walk probe"],
    "scopes": lambda _a: ["customers:read"],
    "reason": lambda _a: ["walk probe"],
    "slug": lambda _a: ["walkprobe"],
    "state": lambda _a: ["Goa"],
    "helpline": lambda _a: ["1800-000"],
    "pincode": lambda _a: ["411001"],
    "action": lambda _a: ["install"],
    "token": lambda _a: ["1234 5678 9012 3456 7890"],
    "new_serial": lambda a: [a.meter_serials[0]],  # A's spare meter, offered to B's replacement
    "signed_reading": lambda _a: [""],
    "final_credit": lambda _a: ["10"],  # by hand, so the walk reaches the replacement itself
    "owed": lambda _a: ["0"],
    "meter_serial": lambda a: [a.meter_serials[-1]],
    "amount_paise": lambda _a: ["50000"],
    "channel": lambda _a: ["b2b"],
    "payment_reference": lambda _a: ["walk probe"],
    "source": lambda _a: ["gateway"],
    "amount": lambda _a: ["500"],
    # Keys unique within a tenant (a form's reference, a bank UTR): B's own values here, since what B
    # stores under them shows on B's pages; A's values are tried by test_a_s_unique_keys_are_no_oracle_to_b.
    "client_ref": lambda _a: ["walk-form-0001"],
    "cash_received": lambda _a: ["yes"],
    "reference": lambda _a: ["WALKUTR0001"],
    "note": lambda _a: ["walk probe"],
    "request_key": lambda _a: ["ops-walkprobe0001"],  # a refund form's key (/ops/payments)
    "period": lambda _a: [f"{to_india(utcnow()).date():%Y-%m}"],  # pay A's agent for the month it vended
    "csc_id": lambda a: [a.agent_csc_ids[0]],
    "village": lambda _a: ["Walk village"],
    "commission_kind": lambda _a: ["percent"],
    "percent": lambda _a: ["1.5"],
    "flat": lambda _a: [""],
    "cap": lambda _a: ["20"],
    "method": lambda _a: ["upi"],
    "vpa": lambda _a: ["walk@upi"],
    "razorpay_order_id": lambda a: [a.gateway_order_ids[0]],
    "razorpay_payment_id": lambda a: [a.gateway_payment_ids[0]],
    "razorpay_signature": lambda _a: ["0" * 64],
    # JSON bodies of the BBPS biller API: A's transaction, fetch and agent, in a notification B's key sends.
    "bbps_txn_ref": lambda a: [a.bbps_txn_refs[0]],
    "fetch_reference": lambda a: [a.bbps_fetch_references[0]],
    "agent_id": lambda a: [f"{a.tenant.code}AGT0001"],
    "payment_channel": lambda _a: ["AGT"],
    "payment_mode": lambda _a: ["Cash"],
    "customer_mobile": lambda a: [a.phones[0]],
    "paid_at": lambda _a: [utcnow().isoformat()],
    # The customer app: B's household sends A's consumer number (above) with otherwise valid forms.
    "lang": lambda _a: ["hi"],
    "preset": lambda _a: ["500"],
    "category": lambda _a: ["billing"],
    "description": lambda _a: ["Walk probe: billing question"],
    # B's care agent raises a ticket for a caller giving A's household's number (a phone of another
    # CGD's household: tests/care/test_caller_tickets.py).
    "caller": lambda a: [a.consumer_numbers[0]],
    "rating": lambda _a: ["5"],
    "comment": lambda _a: ["walk probe"],
    "visibility": lambda _a: ["public"],  # a reply the customer would read
    "body": lambda _a: ["walk probe"],
    "low_credit": lambda _a: ["sms"],
    "tokens_payments": lambda _a: ["sms"],
    "service_updates": lambda _a: ["sms"],
    "outages_safety": lambda _a: ["sms"],
    "purpose": lambda _a: ["offers"],
    "decision": lambda _a: ["give"],
    "threshold_preset": lambda _a: ["200"],
    "threshold": lambda _a: ["200"],
    "amount_preset": lambda _a: ["500"],
    "max_amount": lambda _a: ["2000"],
}
# A field whose value depends on the route: (path, field) → values, before FIELD_VALUES.
ROUTE_FIELD_VALUES: dict[tuple[str, str], Values] = {
    # B's back office tries to make A's CSC agent user an agent of B's. (Elsewhere `username` is a login,
    # where A's name with a wrong password would rightly count against A's lock-out.)
    ("/ops/csc/agents", "username"): lambda a: [next(u for u in a.usernames if u.endswith(".csc_agent"))],
    ("/ops/tickets/{ticket_number}/transition", "action"): lambda _a: ["acknowledge"],
    ("/pay/mandate/{mandate_id}", "decision"): lambda _a: ["approve"],
}
# JSON body fields whose type matters (a string where an integer is due is refused before the route runs).
JSON_VALUES: dict[str, Callable[[TenantData], list[object]]] = {
    "amount_paise": lambda _a: [50_000],
}
# File uploads (seen by the route map as body fields): name → (file name, content, the values in it).
UPLOAD_VALUES: dict[str, Callable[[TenantData], tuple[str, str, list[str]]]] = {
    # B imports a settlement report that settles A's gateway payment and A's BBPS transaction.
    "report": lambda a: (
        "walk.csv",
        "payment_id,amount,fee,tax,settlement_id,settled_at\n"
        + "".join(f"{ref},40000,0,0,walksetl01,2026-01-01T10:00:00+05:30\n" for ref in upload_refs(a)),
        upload_refs(a),
    ),
}


def upload_refs(a: TenantData) -> list[str]:
    return [*a.gateway_payment_ids, *a.bbps_txn_refs]


REQUEST_ID = "tenant-walk"


def _lookup(table: dict[str, Values], kind: str, name: str, route: RouteInfo, a: TenantData) -> list[str]:
    if name not in table:
        pytest.fail(
            f"{route.path} has a {kind} {name!r} the tenant walk does not know: add it to the tables "
            f"in {__file__}, with the value an attacker from another tenant would send"
        )
    return table[name](a)


def _field(route: RouteInfo, kind: str, name: str, a: TenantData) -> str:
    if (route.path, name) in ROUTE_FIELD_VALUES:
        return ROUTE_FIELD_VALUES[route.path, name](a)[0]
    return _lookup(FIELD_VALUES, kind, name, route, a)[0]


@dataclass
class Call:
    method: str
    route: RouteInfo
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    json: dict[str, object] | None = None
    path_values: tuple[str, ...] = ()
    carries_identifiers: bool = False
    files: dict[str, tuple[str, str]] = field(default_factory=dict)
    uploaded: tuple[str, ...] = ()  # the values inside the uploaded files

    def sent(self) -> list[str]:
        """Everything the caller sent, which an answer may echo (`no customer with consumer number …`)."""
        parts = [
            self.path,
            *self.path_values,
            *self.query.values(),
            *self.form.values(),
            *map(str, (self.json or {}).values()),
            *self.uploaded,
        ]
        return sorted({p for p in parts if p}, key=len, reverse=True)


def calls(
    route: RouteInfo, a: TenantData, *, paths_of: TenantData | None = None, ghost: bool = False
) -> Iterator[Call]:
    """The requests to send to `route`: path parameters from A (or from `paths_of`, or ghosts), and every
    query parameter, header and field from A."""
    path_table = {**PATH_VALUES, **GHOST_VALUES} if ghost else PATH_VALUES
    owner = paths_of or a
    choices = [_lookup(path_table, "path parameter", name, route, owner) for name in route.path_params]
    query = {
        name: ROUTE_QUERY_VALUES[route.path, name](a)[0]
        if (route.path, name) in ROUTE_QUERY_VALUES
        else _lookup(QUERY_VALUES, "query parameter", name, route, a)[0]
        for name in route.query_params
    }
    headers = {
        name.replace("_", "-"): _lookup(HEADER_VALUES, "header", name, route, a)[0]
        for name in route.header_params
    }
    form = {name: _field(route, "form field", name, a) for name in route.form_fields}
    uploads = {name: UPLOAD_VALUES[name](a) for name in route.json_fields if name in UPLOAD_VALUES}
    body: dict[str, object] = {
        name: JSON_VALUES[name](a)[0] if name in JSON_VALUES else _field(route, "body field", name, a)
        for name in route.json_fields
        if name not in uploads
    }
    for combination in itertools.product(*choices):
        path = route.path
        for name, value in zip(route.path_params, combination, strict=True):
            path = path.replace("{" + name + "}", value)
        for method in route.methods:
            yield Call(
                method,
                route,
                path,
                query,
                headers,
                form,
                body if body else None,
                path_values=combination,
                carries_identifiers=paths_of is None and bool(set(route.path_params) - NOT_IDENTIFIERS),
                files={name: (file_name, content) for name, (file_name, content, _) in uploads.items()},
                uploaded=tuple(v for _, _, values in uploads.values() for v in values),
            )


@dataclass
class Caller:
    """B, as a browser session or as an API client."""

    client: TestClient
    login_again: Callable[[], None] | None = None
    csrf: str = ""
    csrf_page: str = "/account"  # a page that shows the session's CSRF token

    def send(self, call: Call, *, headers: dict[str, str] | None = None) -> Response:
        form = dict(call.form)
        csrf: dict[str, str] = {}
        if call.method not in SAFE_METHODS and self.login_again is not None:
            if (
                call.json is not None
            ):  # a JSON body: the token rides in its header, as the app's script sends it
                csrf["X-CSRF-Token"] = self.csrf
            else:
                form["csrf_token"] = self.csrf
        response: Response = self.client.request(
            call.method,
            call.path,
            params=call.query,
            data=form or None,
            json=call.json,
            files={
                name: (file_name, content.encode(), "text/csv")
                for name, (file_name, content) in call.files.items()
            }
            or None,
            headers={**call.headers, **csrf, **(headers or {}), "X-Request-ID": REQUEST_ID},
            follow_redirects=False,
        )
        return response

    def still_logged_in(self) -> None:
        """The walk posts to /logout too; log in again so the rest of it is not walked anonymously."""
        if self.login_again is not None and self.client.get("/api/v1/me").status_code != 200:
            self.login_again()
            self.csrf = csrf_of(self.client, self.csrf_page)


def leaks(response: Response, call: Call, secrets: list[str]) -> list[str]:
    body = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items() if k != "x-request-id")
    for echoed in call.sent():
        body = body.replace(echoed, "")
    return [s for s in secrets if s and s in body]


def audit_length(db: Database, tenant_id: uuid.UUID) -> int:
    with db.system(read_only=True) as uow:
        return int(
            uow.session.execute(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
            ).scalar_one()
        )


@dataclass
class WalkReport:
    problems: list[str] = field(default_factory=list)
    calls: int = 0
    saw_own_data: bool = False


def walk(caller: Caller, populated: Populated, report: WalkReport) -> None:
    a, b = populated.a, populated.b
    secrets = a.identifying_strings()
    routes = api_routes(caller.client.app)  # type: ignore[arg-type]
    assert len(routes) >= 30, [r.path for r in routes]
    for route in routes:
        own_rows = list(calls(route, a, paths_of=b)) if set(route.path_params) - NOT_IDENTIFIERS else []
        for call in [*calls(route, a), *own_rows]:
            response = caller.send(call)
            where = f"{call.method} {call.path}"
            if response.status_code >= 500:
                report.problems.append(f"{where} → {response.status_code}")
            if found := leaks(response, call, secrets):
                report.problems.append(f"{where} → {response.status_code} shows A's {found}")
            if Permission.TENANT_MANAGE in route.needs() and response.status_code != 403:
                report.problems.append(f"{where} → {response.status_code}, expected 403 (operator only)")
            if call.carries_identifiers:
                if response.status_code not in (403, 404):
                    report.problems.append(
                        f"{where} → {response.status_code} for A's identifier, not 403/404"
                    )
                ghost = next(c for c in calls(route, a, ghost=True) if c.method == call.method)
                ghost_response = caller.send(ghost)
                if ghost_response.status_code != response.status_code:
                    report.problems.append(
                        f"{where} → {response.status_code}, but {ghost_response.status_code} "
                        f"for an identifier nobody has: A's row is visible"
                    )
            report.calls += 1
            report.saw_own_data |= any(name in response.text for name in b.customer_names)
            if call.method not in SAFE_METHODS:
                caller.still_logged_in()
    for path, methods in plain_routes(caller.client.app):  # type: ignore[arg-type]
        if "GET" in methods:
            response = caller.client.get(path)
            if found := [s for s in secrets if s in response.text]:
                report.problems.append(f"GET {path} shows A's {found}")


def walk_twice(caller: Caller, populated: Populated) -> WalkReport:
    """Twice: whatever the first round's posts managed to attach to B's own rows (a meter installed at
    A's consumer number, say) shows on B's pages in the second round."""
    report = WalkReport()
    walk(caller, populated, report)
    walk(caller, populated, report)
    return report


@dataclass(frozen=True)
class TenantState:
    rows: Rows
    audit_entries: int


@pytest.fixture
def a_in_use(app_client: TestClient, populated: Populated, db: Database) -> TenantState:
    """A's manager has logged in (a live session and a login in A's audit chain); A as it stands."""
    world = populated.world
    login(TestClient(app_client.app), world.username(world.a, Role.CGD_MANAGER), world.password)
    return TenantState(snapshot(db, tenant_id=populated.a.tenant.id), audit_length(db, populated.a.tenant.id))


def assert_a_untouched(db: Database, populated: Populated, before: TenantState) -> None:
    assert differences(before.rows, snapshot(db, tenant_id=populated.a.tenant.id)) == {}
    assert audit_length(db, populated.a.tenant.id) == before.audit_entries


def test_b_s_browser_session_with_every_role_sees_nothing_of_a_and_changes_nothing(
    app_client: TestClient,
    populated: Populated,
    db: Database,
    a_in_use: TenantState,
) -> None:
    client = TestClient(app_client.app, raise_server_exceptions=False)

    def login_b() -> None:
        login(client, populated.b_everything, populated.world.password)

    login_b()
    caller = Caller(client, login_again=login_b, csrf=csrf_of(client))

    report = walk_twice(caller, populated)

    assert not report.problems, "\n".join(report.problems)
    assert report.saw_own_data, "the walk never saw B's own customers: was B logged in?"
    assert_a_untouched(db, populated, a_in_use)


def test_b_s_api_key_with_every_scope_sees_nothing_of_a_and_changes_nothing(
    app_client: TestClient,
    populated: Populated,
    db: Database,
    a_in_use: TenantState,
) -> None:
    client = TestClient(
        app_client.app,
        headers={"Authorization": f"Bearer {populated.b.api_key}"},
        raise_server_exceptions=False,
    )
    caller = Caller(client)

    report = walk_twice(caller, populated)

    assert not report.problems, "\n".join(report.problems)
    assert report.saw_own_data, "the walk never saw B's own customers: did B's key work?"
    assert_a_untouched(db, populated, a_in_use)


def test_b_s_household_sees_nothing_of_a_and_changes_nothing(
    app_client: TestClient,
    populated: Populated,
    db: Database,
    a_in_use: TenantState,
) -> None:
    """The customer app's routes are for households, which staff and keys cannot reach: a household of B,
    logged in to the app, walks every route with A's identifiers (A's tickets, mandates, data export,
    meters, consumer numbers in forms and `?c=`) too."""
    b = populated.b
    client = TestClient(app_client.app, raise_server_exceptions=False)

    def login_household() -> None:
        with db.system() as uow:
            cookie = open_web_session(
                uow.session, kind="customer", tenant_id=b.tenant.id, customer_id=b.customer_ids[0]
            )
            uow.commit()
        client.cookies.set(SESSION_COOKIE, cookie)

    login_household()
    caller = Caller(client, login_again=login_household, csrf_page="/app/profile")
    caller.csrf = csrf_of(client, caller.csrf_page)

    report = walk_twice(caller, populated)

    assert not report.problems, "\n".join(report.problems)
    assert report.saw_own_data, "the walk never saw B's own household: was it logged in?"
    assert_a_untouched(db, populated, a_in_use)


# --- focused tests: the routes a signature or a tenant-unique key guards ---------------------------------
# The generic walk sends them forged values; these send what an attacker from B can really make (B's own
# secrets, A's values it has somehow learnt) and a positive control that the right secret does work.


def shown_of_a(response: Response, a: TenantData, *sent: str) -> list[str]:
    """A's identifying strings in an answer, leaving out what the caller sent itself."""
    body = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items() if k != "x-request-id")
    for echoed in sorted(sent, key=len, reverse=True):
        body = body.replace(echoed, "")
    return [s for s in a.identifying_strings() if s and s in body]


def b_browser(app_client: TestClient, populated: Populated) -> tuple[TestClient, str]:
    client = TestClient(app_client.app, raise_server_exceptions=False)
    login(client, populated.b_everything, populated.world.password)
    return client, csrf_of(client)


def master_key(app_client: TestClient) -> bytes:
    key: bytes = app_client.app.state.settings.master_key_bytes  # type: ignore[attr-defined]
    return key


def queued_webhooks_of(db: Database, tenant_id: uuid.UUID) -> list[dict[str, str]]:
    """The genuine, signed webhooks A's simulated gateway queued while A's customer paid."""
    with db.system(read_only=True) as uow:
        rows = uow.session.execute(
            select(OutboxEvent)
            .where(OutboxEvent.topic == WEBHOOK_TOPIC, OutboxEvent.tenant_id == tenant_id)
            .order_by(OutboxEvent.id)
        ).scalars()
        return [dict(r.payload) for r in rows]


def test_a_s_gateway_webhook_takes_nothing_b_can_sign(
    app_client: TestClient, populated: Populated, db: Database, a_in_use: TenantState
) -> None:
    a, b = populated.a, populated.b
    client = TestClient(app_client.app, raise_server_exceptions=False)
    a_url = f"/api/v1/payments/gateway/{a.tenant.slug}/webhook"
    b_url = f"/api/v1/payments/gateway/{b.tenant.slug}/webhook"
    # A payment "captured" on A's order: the one A's customer made, and a new one that would vend again.
    entities = [
        {"id": payment_id, "order_id": a.gateway_order_ids[0], "amount": 40_000, "currency": "INR",
         "status": "captured", "method": "upi"}
        for payment_id in (a.gateway_payment_ids[0], "pay_WalkForged0001")
    ]  # fmt: skip
    with db.unit_of_work(tenant=b.tenant.id, actor=TEST_ACTOR, read_only=True) as uow:
        b_gateway = GatewaySimulator.for_tenant(uow.session, master_key=master_key(app_client))
        b_signed = [
            b_gateway.signed_webhook("payment.captured", {"payment": {"entity": e}}) for e in entities
        ]
    a_genuine = queued_webhooks_of(db, a.tenant.id)
    # A's checkout queued its webhook (and A's auto top-up approval its token's); all go to B's address.
    assert "payment.captured" in [h["event"] for h in a_genuine], a_genuine

    attempts: list[tuple[str, bytes, str, str]] = [
        *((a_url, body, "", event_id) for body, _, event_id in b_signed),  # unsigned
        *((a_url, body, signature, event_id) for body, signature, event_id in b_signed),  # B's secret
        *((b_url, h["body"].encode(), h["signature"], h["event_id"]) for h in a_genuine),  # A's, to B
    ]
    for url, body, signature, event_id in attempts:
        response = client.post(
            url, content=body, headers={"X-Razorpay-Signature": signature, "X-Razorpay-Event-Id": event_id}
        )
        assert (response.status_code, response.json()["code"]) == (400, "bad_signature"), response.text
        assert shown_of_a(response, a, url) == []
    # B's own signature is good at B's own address, and finds no such order there.
    for body, signature, event_id in b_signed:
        response = client.post(
            b_url, content=body, headers={"X-Razorpay-Signature": signature, "X-Razorpay-Event-Id": event_id}
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "refused"
        assert response.json()["detail"] == f"unknown_order: no order {a.gateway_order_ids[0]}"

    assert_a_untouched(db, populated, a_in_use)


def test_a_s_checkout_return_shows_a_s_payment_only_with_a_s_signature(
    app_client: TestClient, populated: Populated, db: Database, a_in_use: TenantState
) -> None:
    a, b = populated.a, populated.b
    client, _ = b_browser(app_client, populated)
    order_id, payment_id = a.gateway_order_ids[0], a.gateway_payment_ids[0]
    by_a = payment_signature(
        simulator_secrets(master_key(app_client), a.tenant.id).key_secret,
        order_id=order_id,
        payment_id=payment_id,
    )
    by_b = payment_signature(
        simulator_secrets(master_key(app_client), b.tenant.id).key_secret,
        order_id=order_id,
        payment_id=payment_id,
    )
    fields = {"razorpay_order_id": order_id, "razorpay_payment_id": payment_id}

    def returned(method: str, slug: str, signature: str) -> Response:
        data = {**fields, "razorpay_signature": signature}
        if method == "GET":
            response: Response = client.get(f"/pay/{slug}/return", params=data)
        else:
            response = client.post(f"/pay/{slug}/return", data=data, follow_redirects=False)
        return response

    for method in ("GET", "POST"):
        for slug, signature, status in (
            (a.tenant.slug, "", 400),  # unsigned
            (a.tenant.slug, by_b, 400),  # signed with B's key, at A's address
            (b.tenant.slug, by_a, 400),  # A's genuine signature, at B's address
            (b.tenant.slug, by_b, 404),  # B's key is good at B's address, but B has no such order
        ):
            response = returned(method, slug, signature)
            assert response.status_code == status, (method, slug, response.text)
            assert shown_of_a(response, a, order_id, payment_id, f"/pay/{slug}/return") == []
    assert_a_untouched(db, populated, a_in_use)

    # The control: A's payer, holding A's signature, sees A's receipt.
    response = returned("GET", a.tenant.slug, by_a)
    assert response.status_code == 200, response.text
    assert a.receipt_numbers[-1] in response.text


def test_a_s_receipt_verifies_only_with_a_s_check(
    app_client: TestClient, populated: Populated, db: Database, a_in_use: TenantState
) -> None:
    a, b = populated.a, populated.b
    anonymous = TestClient(app_client.app, raise_server_exceptions=False)
    logged_in, _ = b_browser(app_client, populated)
    a_key = receipt_key(master_key(app_client), a.tenant.id)
    b_key = receipt_key(master_key(app_client), b.tenant.id)
    b_own_check = receipt_check(b_key, b.receipt_numbers[0])

    for client in (anonymous, logged_in):
        for number in a.receipt_numbers:
            for shown_number in (number, number.lower()):
                for check in (
                    receipt_check(b_key, number),
                    b_own_check,
                    "",
                    receipt_check(a_key, number)[:-1],
                ):
                    response = client.get(f"/r/{shown_number}", params={"c": check})
                    assert response.status_code == 404, (shown_number, check)
                    assert shown_of_a(response, a, shown_number, number, check) == []
            # The control: the check printed on A's receipt verifies it, for anybody.
            response = client.get(f"/r/{number}", params={"c": receipt_check(a_key, number)})
            assert response.status_code == 200
            assert number in response.text
    assert_a_untouched(db, populated, a_in_use)


def test_a_s_csc_keys_are_no_oracle_to_b(
    app_client: TestClient, populated: Populated, db: Database, a_in_use: TenantState
) -> None:
    """A CSC id, a bank UTR and a vend form's reference are unique within a CGD. B using A's must work as
    if A had never used them (a refusal would tell B that A has them), and B's own uniqueness still holds."""
    a, b = populated.a, populated.b
    make_user(db, b.tenant, "bravo.vle2", [Role.CSC_AGENT.value], populated.world.password)
    make_user(db, b.tenant, "bravo.vle3", [Role.CSC_AGENT.value], populated.world.password)
    client, csrf = b_browser(app_client, populated)

    def post(path: str, **form: str) -> Response:
        response: Response = client.post(path, data={**form, "csrf_token": csrf}, follow_redirects=False)
        return response

    agent = {
        "csc_id": a.agent_csc_ids[0],
        "village": "Bravo Khurd",
        "commission_kind": "percent",
        "percent": "1",
    }
    created = post("/ops/csc/agents", username="bravo.vle2", **agent)
    again = post("/ops/csc/agents", username="bravo.vle3", **agent)
    topup = {"amount": "500", "reference": a.topup_references[0], "note": ""}
    requested = post("/agent/float", **topup)
    requested_again = post("/agent/float", **topup)
    vend = {"consumer_number": b.consumer_numbers[0], "amount": "100", "cash_received": "yes"}
    vended = post("/agent/vend", client_ref=f"{a.tenant.code}-form-0001", **vend)

    assert created.status_code == 303, created.text
    assert again.status_code == 409, again.text  # B's own CSC id, used twice in B
    assert requested.status_code == 200, requested.text
    assert requested_again.status_code == 409, requested_again.text
    assert vended.status_code == 303, vended.text
    receipt = client.get(vended.headers["location"])
    assert b.tenant.code + "-R-" in receipt.text
    for response in (created, again, requested, requested_again, vended, receipt):
        assert shown_of_a(response, a, *agent.values(), *topup.values(), f"{a.tenant.code}-form-0001") == []
    assert_a_untouched(db, populated, a_in_use)


def test_a_s_bbps_references_are_no_oracle_to_b(
    app_client: TestClient, populated: Populated, db: Database, a_in_use: TenantState
) -> None:
    """B's BOU key notifying a payment under A's BBPS transaction reference vends for B (it does not get
    A's answer back); A's bill fetch reference is as unknown to B as one nobody has."""
    a, b = populated.a, populated.b
    client = TestClient(
        app_client.app, headers={"Authorization": f"Bearer {b.api_key}"}, raise_server_exceptions=False
    )
    notice = {
        "consumer_number": b.consumer_numbers[0],
        "amount_paise": 30_000,
        "paid_at": utcnow().isoformat(),
        "payment_mode": "Cash",
        "payment_channel": "AGT",
        "agent_id": f"{b.tenant.code}AGT0001",
    }
    a_fetch = client.post(
        "/api/v1/bbps/payments",
        json={**notice, "bbps_txn_ref": "WALK00000001", "fetch_reference": a.bbps_fetch_references[0]},
    )
    ghost_fetch = client.post(
        "/api/v1/bbps/payments",
        json={**notice, "bbps_txn_ref": "WALK00000002", "fetch_reference": "BF" + "0" * 32},
    )
    a_ref = client.post("/api/v1/bbps/payments", json={**notice, "bbps_txn_ref": a.bbps_txn_refs[0]})
    status = client.get(f"/api/v1/bbps/payments/{a.bbps_txn_refs[0]}")

    assert (a_fetch.status_code, a_fetch.json()["code"]) == (422, "fetch_reference_invalid")
    assert (ghost_fetch.status_code, ghost_fetch.json()["code"]) == (422, "fetch_reference_invalid")
    assert a_ref.status_code == 200, a_ref.text
    assert a_ref.json()["receipt_number"].startswith(f"{b.tenant.code}-R-")
    assert status.json() == a_ref.json()  # B's payment under that reference, not A's
    for response in (a_fetch, ghost_fetch, a_ref, status):
        assert shown_of_a(response, a, a.bbps_fetch_references[0], a.bbps_txn_refs[0]) == []
    assert_a_untouched(db, populated, a_in_use)


def test_a_s_settlement_report_imported_by_b_matches_nothing_of_a(
    app_client: TestClient, populated: Populated, db: Database, a_in_use: TenantState
) -> None:
    """B uploads the very report A imported (A's settlement id, A's payment, the same lines): B gets a new
    settlement of its own whose line matches nothing, not A's import replayed or a conflict with it."""
    a, b = populated.a, populated.b
    client, csrf = b_browser(app_client, populated)

    def upload(report: str) -> Response:
        response: Response = client.post(
            "/ops/settlement",
            data={"csrf_token": csrf, "source": "gateway"},
            files={"report": ("a.csv", report.encode(), "text/csv")},
        )
        return response

    same = upload(a.settlement_report)
    other = upload(a.settlement_report.replace(",40000,", ",40001,"))  # A's id with other lines

    assert same.status_code == 200, same.text
    assert "1 extra" in same.text
    assert other.status_code == 409, other.text  # B's own import of that id, now with other lines
    with db.unit_of_work(tenant=b.tenant.id, actor=TEST_ACTOR, read_only=True) as uow:
        (settlement,) = uow.session.execute(
            select(Settlement).where(
                Settlement.tenant_id == b.tenant.id, Settlement.settlement_id == a.settlement_ids[0]
            )
        ).scalars()
        assert (settlement.matched_count, settlement.extra_count, settlement.clearing_paise) == (0, 1, 0)
    for response in (same, other):
        assert shown_of_a(response, a, a.settlement_ids[0], *a.gateway_payment_ids) == []
    assert_a_untouched(db, populated, a_in_use)
