"""Log-in pages: staff (password + optional TOTP) and customers (phone OTP), log-out, the account page."""

from __future__ import annotations

from typing import Annotated

import pyotp
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citygas.identity import service
from citygas.identity.models import StaffUser
from citygas.identity.principal import Principal
from citygas.identity.rules import ROLE_LABELS, Role, home_for
from citygas.platform.errors import DomainError
from citygas.platform.settings import get_settings
from citygas.web.deps import SESSION_COOKIE, DbDep, MaybePrincipal, verify_csrf
from citygas.web.i18n import LANGUAGES
from citygas.web.render import LANG_COOKIE, render

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)


def _safe_next(path: str) -> str | None:
    """Only same-site paths: a login link must not become an open redirect."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else None


def _set_session_cookie(request: Request, response: Response, token: str, *, max_age: int) -> None:
    # The app's own settings, not the process-wide ones: `create_app(settings)` decides the environment.
    secure = request.app.state.settings.secure_cookies
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="lax", secure=secure, max_age=max_age, path="/"
    )


@router.get("/")
def root(principal: MaybePrincipal) -> RedirectResponse:
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if principal.kind == "customer":
        return RedirectResponse("/app/", status_code=303)
    return RedirectResponse(home_for(principal.permissions), status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "") -> Response:
    return render(request, "auth/login.html", next_path=_safe_next(next) or "", username="")


@router.post("/login")
def login(
    request: Request,
    db: DbDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    totp: Annotated[str, Form(max_length=6)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    with db.system() as uow:
        outcome = service.do_staff_login(uow.session, username=username, password=password, totp_code=totp)
        token = None
        if outcome.user is not None:
            token = service.open_web_session(
                uow.session, kind="staff", tenant_id=outcome.user.tenant_id, staff_user_id=outcome.user.id
            )
            roles = outcome.user.role_names
        uow.commit()
    if outcome.user is None or token is None:
        return render(
            request,
            "auth/login.html",
            status_code=401,
            error=outcome.error,
            next_path=_safe_next(next) or "",
            username=username,
        )
    from citygas.identity.rules import permissions_for  # noqa: PLC0415

    target = _safe_next(next) or home_for(permissions_for(roles))
    response = RedirectResponse(target, status_code=303)
    _set_session_cookie(request, response, token, max_age=get_settings().session_hours * 3600)
    return response


@router.post("/logout")
def logout(db: DbDep, principal: MaybePrincipal) -> Response:
    return _logout(db, principal, "/login")


@router.post("/app/logout")
def app_logout(db: DbDep, principal: MaybePrincipal) -> Response:
    return _logout(db, principal, "/app/login")


def _logout(db: DbDep, principal: Principal | None, target: str) -> Response:
    if principal is not None and principal.session_id is not None:
        with db.system() as uow:
            service.close_web_session(uow.session, principal.session_id)
            uow.commit()
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _any_staff(principal: MaybePrincipal) -> Principal:
    if principal is None or principal.kind != "staff":
        from citygas.web.deps import LoginRequired  # noqa: PLC0415

        raise LoginRequired("/login")
    return principal


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, db: DbDep, principal: Annotated[Principal, Depends(_any_staff)]) -> Response:
    with db.unit_of_work(tenant=principal.tenant_id, actor=principal.actor, read_only=True) as uow:
        user = uow.session.get(StaffUser, principal.id)
        assert user is not None  # the session resolved it a moment ago
        secret = pyotp.random_base32()
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name="citygas")
        roles = [ROLE_LABELS[Role(r)] for r in sorted(user.role_names)]
        return render(
            request, "auth/account.html", user=user, roles=roles, new_secret=secret, otpauth_uri=uri
        )


@router.post("/account/totp")
def account_totp(
    request: Request,
    db: DbDep,
    principal: Annotated[Principal, Depends(_any_staff)],
    secret: Annotated[str, Form(max_length=64)],
    code: Annotated[str, Form(max_length=6)],
) -> Response:
    with db.unit_of_work(tenant=principal.tenant_id, actor=principal.actor) as uow:
        user = uow.session.get(StaffUser, principal.id)
        assert user is not None
        try:
            service.enable_totp(uow.session, user, secret=secret, code=code)
        except DomainError as exc:
            roles = [ROLE_LABELS[Role(r)] for r in sorted(user.role_names)]
            try:
                uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name="citygas")
            except ValueError:  # the posted key itself was invalid: offer a fresh one
                secret = pyotp.random_base32()
                uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name="citygas")
            return render(
                request,
                "auth/account.html",
                status_code=422,
                error=exc.detail,
                user=user,
                roles=roles,
                new_secret=secret,
                otpauth_uri=uri,
            )
        uow.because("staff member turned on two-step login").commit()
    return RedirectResponse("/account", status_code=303)


# --- customers --------------------------------------------------------------------------------------


@router.get("/app/login", response_class=HTMLResponse)
def app_login_form(request: Request) -> Response:
    return render(request, "app/login.html", sent=False, phone="")


@router.post("/app/login", response_class=HTMLResponse)
def app_login(request: Request, db: DbDep, phone: Annotated[str, Form(max_length=20)]) -> Response:
    with db.system() as uow:
        try:
            issued = service.do_request_otp(uow.session, phone_text=phone)
        except DomainError as exc:
            return render(
                request, "app/login.html", status_code=exc.status, error=exc.detail, sent=False, phone=phone
            )
        uow.commit()
    return render(request, "app/login.html", sent=True, phone=issued.phone, dev_code=issued.dev_code)


@router.post("/app/login/verify")
def app_login_verify(
    request: Request,
    db: DbDep,
    phone: Annotated[str, Form(max_length=20)],
    code: Annotated[str, Form(max_length=6)],
) -> Response:
    with db.system() as uow:
        try:
            customer = service.do_verify_otp(uow.session, phone_text=phone, code=code)
        except DomainError as exc:
            return render(
                request, "app/login.html", status_code=exc.status, error=exc.detail, sent=False, phone=phone
            )
        token = None
        language = None
        if customer is not None:
            token = service.open_web_session(
                uow.session, kind="customer", tenant_id=customer.tenant_id, customer_id=customer.id
            )
            language = customer.language
        uow.commit()
    if token is None:
        return render(
            request,
            "app/login.html",
            status_code=401,
            sent=True,
            phone=phone,
            error="The code is wrong or has expired. Try again or request a new one.",
        )
    response = RedirectResponse("/app/", status_code=303)
    _set_session_cookie(request, response, token, max_age=get_settings().customer_session_days * 86400)
    if language in LANGUAGES and not request.cookies.get(LANG_COOKIE):
        # The language the household chose before (or the CGD registered) follows it to a new phone.
        response.set_cookie(LANG_COOKIE, language, max_age=365 * 86400, samesite="lax")
    return response
