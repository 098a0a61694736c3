"""Request dependencies: the caller (`Principal`), the permission a route needs (`Requires`), the
request's unit of work bound to the caller's tenant, and CSRF protection for form posts."""

import hmac
from collections.abc import Callable, Iterator
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Request

from citygas.identity import service as identity
from citygas.identity.principal import Principal
from citygas.platform.errors import NotAuthenticated, PermissionDenied
from citygas.platform.uow import Database, UnitOfWork

SESSION_COOKIE = "cg_session"
CSRF_COOKIE = "cg_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """A page needs a logged-in user: answered with a redirect to the right login page."""

    def __init__(self, login_path: str) -> None:
        super().__init__(login_path)
        self.login_path = login_path


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def current_principal(request: Request) -> Principal | None:
    """Resolve the caller once per request, from a Bearer API key or the session cookie."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    db = get_db(request)
    principal: Principal | None = None
    if (raw := _bearer_key(request)) is not None:

        def look_up() -> Principal | None:
            with db.system() as uow:
                return identity.resolve_api_key(uow.session, raw)

        # A key seen in the last few seconds needs no transaction (identity.API_KEY_CACHE_SECONDS).
        principal = identity.resolve_api_key_cached(raw, look_up)
    elif token := request.cookies.get(SESSION_COOKIE):
        with db.system() as uow:
            principal = identity.resolve_web_session(uow.session, token)
    request.state.principal = principal
    return principal


def _bearer_key(request: Request) -> str | None:
    """The API key of `Authorization: Bearer <key>`, if the request sends one."""
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def _known_principal(request: Request) -> Principal | None:
    """The caller, when it is known without the database: resolved earlier in this request, or an API key
    in the cache. None when a look-up is needed."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    if (raw := _bearer_key(request)) is not None:
        principal = identity.api_key_cache.get(raw)
        if principal is not None:
            request.state.principal = principal
        return principal
    return None


class Requires:
    """`Depends(Requires(Permission.X))`: the caller must be logged in and hold X. The route walk in the
    tests reads `.permissions` off every route, so a route without one is noticed."""

    def __init__(self, *permissions: str | None) -> None:
        # Any one of the permissions admits the caller; `Requires(None)` admits any logged-in caller.
        self.permissions = frozenset(p for p in permissions if p is not None)

    @property
    def described(self) -> str:
        return " or ".join(sorted(self.permissions))

    async def __call__(self, request: Request) -> Principal:
        # Async, so that a caller known already (an API key seen in the last seconds) costs no trip to
        # a worker thread; a look-up in the database runs in one.
        principal = _known_principal(request)
        if principal is None:
            principal = await anyio.to_thread.run_sync(current_principal, request)
        if principal is None:
            if is_api(request):
                raise NotAuthenticated("Send an API key as `Authorization: Bearer <key>`")
            raise LoginRequired("/app/login" if request.url.path.startswith("/app") else "/login")
        if self.permissions and not any(principal.can(p) for p in self.permissions):
            raise PermissionDenied(f"Your role does not allow this ({self.described})")
        return principal


def optional_principal(request: Request) -> Principal | None:
    return current_principal(request)


def request_uow(request: Request, principal: Principal) -> Iterator[UnitOfWork]:
    db = get_db(request)
    uow = db.unit_of_work(
        tenant=principal.tenant_id,
        actor=principal.actor,
        request_id=getattr(request.state, "request_id", None),
        read_only=request.method in SAFE_METHODS,
    )
    try:
        yield uow
    finally:
        uow.close()


def csrf_token_for(request: Request) -> str:
    principal = current_principal(request)
    if principal is not None and principal.csrf_token:
        return principal.csrf_token
    token: str = getattr(request.state, "anonymous_csrf", "") or request.cookies.get(CSRF_COOKIE, "")
    return token


async def verify_csrf(request: Request) -> None:
    """Router-wide on every portal router: a form post must carry the token of its session (or, before
    login, the double-submit cookie). API calls with a Bearer key are not cookie-authenticated and
    need none."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    form = await request.form()
    sent = str(form.get("csrf_token", "")) or request.headers.get("x-csrf-token", "")
    expected = csrf_token_for(request)
    if not expected or not hmac.compare_digest(sent, expected):
        raise PermissionDenied("The form has expired. Reload the page and try again.", csrf=True)


DbDep = Annotated[Database, Depends(get_db)]
MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


def uow_with(*permissions: str | None) -> Callable[..., Iterator[UnitOfWork]]:
    """A dependency giving the route a unit of work in the caller's tenant, after checking that the caller
    holds one of `permissions`."""
    requires = Requires(*permissions)

    def dependency(
        request: Request, principal: Annotated[Principal, Depends(requires)]
    ) -> Iterator[UnitOfWork]:
        yield from request_uow(request, principal)

    return dependency
