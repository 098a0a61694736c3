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
from citygas.platform.audit import AuditEntry
from citygas.platform.uow import Database
from citygas.web.deps import SAFE_METHODS
from tests.conftest import csrf_of, login
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
}
# Path parameters that are not identifiers of A's rows.
NOT_IDENTIFIERS = {"action"}
# Values shaped like A's identifiers that belong to nobody: A's rows must look exactly like these.
GHOST_VALUES: dict[str, Values] = {
    "consumer_number": lambda a: [f"{a.tenant.code}-C-99999999"],
    "customer_id": lambda _a: [str(uuid.UUID(int=1))],
    "tenant_id": lambda _a: [str(uuid.UUID(int=2))],
    "key_id": lambda _a: [str(uuid.UUID(int=3))],
    "user_id": lambda _a: [str(uuid.UUID(int=4))],
    "serial": lambda a: [f"{a.tenant.code}M9999999"],
    "vend_id": lambda _a: [str(uuid.UUID(int=5))],
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
}
HEADER_VALUES: dict[str, Values] = {
    "idempotency_key": lambda _a: [str(uuid.uuid4())],
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
}
REQUEST_ID = "tenant-walk"


def _lookup(table: dict[str, Values], kind: str, name: str, route: RouteInfo, a: TenantData) -> list[str]:
    if name not in table:
        pytest.fail(
            f"{route.path} has a {kind} {name!r} the tenant walk does not know: add it to the tables "
            f"in {__file__}, with the value an attacker from another tenant would send"
        )
    return table[name](a)


@dataclass
class Call:
    method: str
    route: RouteInfo
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    json: dict[str, str] | None = None
    path_values: tuple[str, ...] = ()
    carries_identifiers: bool = False

    def sent(self) -> list[str]:
        """Everything the caller sent, which an answer may echo (`no customer with consumer number …`)."""
        parts = [
            self.path,
            *self.path_values,
            *self.query.values(),
            *self.form.values(),
            *(self.json or {}).values(),
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
    query = {name: _lookup(QUERY_VALUES, "query parameter", name, route, a)[0] for name in route.query_params}
    headers = {
        name.replace("_", "-"): _lookup(HEADER_VALUES, "header", name, route, a)[0]
        for name in route.header_params
    }
    form = {name: _lookup(FIELD_VALUES, "form field", name, route, a)[0] for name in route.form_fields}
    body = {name: _lookup(FIELD_VALUES, "body field", name, route, a)[0] for name in route.json_fields}
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
                body if route.json_fields else None,
                path_values=combination,
                carries_identifiers=paths_of is None and bool(set(route.path_params) - NOT_IDENTIFIERS),
            )


@dataclass
class Caller:
    """B, as a browser session or as an API client."""

    client: TestClient
    login_again: Callable[[], None] | None = None
    csrf: str = ""

    def send(self, call: Call, *, headers: dict[str, str] | None = None) -> Response:
        form = dict(call.form)
        if call.method not in SAFE_METHODS and self.login_again is not None:
            form["csrf_token"] = self.csrf
        response: Response = self.client.request(
            call.method,
            call.path,
            params=call.query,
            data=form or None,
            json=call.json,
            headers={**call.headers, **(headers or {}), "X-Request-ID": REQUEST_ID},
            follow_redirects=False,
        )
        return response

    def still_logged_in(self) -> None:
        """The walk posts to /logout too; log in again so the rest of it is not walked anonymously."""
        if self.login_again is not None and self.client.get("/api/v1/me").status_code != 200:
            self.login_again()
            self.csrf = csrf_of(self.client)


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
