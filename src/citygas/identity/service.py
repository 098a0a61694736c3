"""Identity use cases: staff login with lock-out, customer phone OTP, web sessions, API keys, users."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.identity.models import ApiKey, OtpChallenge, StaffRole, StaffUser, WebSession
from citygas.identity.principal import Principal
from citygas.identity.rules import (
    API_KEY_SCOPES,
    CUSTOMER_PERMISSIONS,
    Role,
    lockout_for,
    normalise_phone,
    permissions_for,
    permissions_for_scopes,
)
from citygas.notifications import ports as notifications
from citygas.platform import audit
from citygas.platform.db import flush_unique
from citygas.platform.errors import NotFound, TooManyRequests, ValidationFailed
from citygas.platform.settings import get_settings
from citygas.platform.tenancy import Tenant, current_tenant, is_system
from citygas.platform.time import utcnow

_hasher = PasswordHasher()
# Verifying against this when the username is unknown keeps the response time the same, so timing
# does not tell an attacker which usernames exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

MIN_PASSWORD_LENGTH = 10


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"A password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def _password_ok(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class LoginOutcome:
    user: StaffUser | None
    error: str | None


def _require_system(session: Session) -> None:
    if not is_system(session):
        raise RuntimeError("log-in look-ups run in the platform scope")


def do_staff_login(session: Session, *, username: str, password: str, totp_code: str) -> LoginOutcome:
    """Check a staff login. Failures are recorded (and lock the account with back-off) and returned,
    not raised, so the caller commits the failure count too."""
    _require_system(session)
    settings = get_settings()
    now = utcnow()
    user = session.execute(
        select(StaffUser).where(StaffUser.username == username.strip().lower())
    ).scalar_one_or_none()
    generic = "Wrong username or password"
    if user is None:
        _password_ok(_DUMMY_HASH, password)
        return LoginOutcome(None, generic)
    if user.locked_until is not None and user.locked_until > now:
        wait = math.ceil((user.locked_until - now).total_seconds())
        return LoginOutcome(None, f"Too many failed attempts. Try again in {wait} seconds.")
    password_ok = _password_ok(user.password_hash, password)
    totp_ok = user.totp_secret is None or pyotp.TOTP(user.totp_secret).verify(
        totp_code.strip(), valid_window=1
    )
    if not (password_ok and totp_ok and user.active):
        user.failed_logins += 1
        lock = lockout_for(user.failed_logins, threshold=settings.login_lockout_threshold)
        user.locked_until = now + lock if lock else None
        audit.record(
            session,
            action="auth.login_failed",
            entity_type="staff_user",
            entity_id=str(user.id),
            tenant_id=user.tenant_id,
        )
        if not user.active:
            return LoginOutcome(None, "This account is disabled. Ask your administrator.")
        if password_ok and not totp_ok:
            return LoginOutcome(None, "The authenticator code is wrong or has expired")
        return LoginOutcome(None, generic)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit.record(
        session,
        action="auth.login",
        entity_type="staff_user",
        entity_id=str(user.id),
        tenant_id=user.tenant_id,
    )
    return LoginOutcome(user, None)


def open_web_session(
    session: Session,
    *,
    kind: str,
    tenant_id: uuid.UUID,
    staff_user_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
) -> str:
    """Create a session row and return the cookie value; only its hash is stored."""
    settings = get_settings()
    token = secrets.token_urlsafe(32)
    now = utcnow()
    lifetime = (
        timedelta(hours=settings.session_hours)
        if kind == "staff"
        else timedelta(days=settings.customer_session_days)
    )
    session.add(
        WebSession(
            token_hash=sha256_hex(token),
            kind=kind,
            tenant_id=tenant_id,
            staff_user_id=staff_user_id,
            customer_id=customer_id,
            csrf_token=secrets.token_urlsafe(24),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token


def resolve_web_session(session: Session, token: str) -> Principal | None:
    _require_system(session)
    row = session.execute(
        select(WebSession).where(WebSession.token_hash == sha256_hex(token))
    ).scalar_one_or_none()
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.kind == "staff" and row.staff_user_id is not None:
        user = session.get(StaffUser, row.staff_user_id)
        if user is None or not user.active:
            return None
        roles = user.role_names
        return Principal(
            "staff",
            user.id,
            user.tenant_id,
            f"{user.full_name} ({user.username})",
            roles,
            permissions_for(roles),
            row.id,
            row.csrf_token,
        )
    if row.kind == "customer" and row.customer_id is not None:
        customer = session.get(Customer, row.customer_id)
        if customer is None:
            return None
        return Principal(
            "customer",
            customer.id,
            customer.tenant_id,
            f"{customer.name} ({customer.consumer_number})",
            frozenset(),
            frozenset(CUSTOMER_PERMISSIONS),
            row.id,
            row.csrf_token,
        )
    return None


def close_web_session(session: Session, session_id: uuid.UUID) -> None:
    row = session.get(WebSession, session_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()


# --- customers: phone OTP -------------------------------------------------------------------------


@dataclass(frozen=True)
class OtpIssued:
    phone: str
    dev_code: str | None  # shown on the page in development only; None where no code was sent


def do_request_otp(session: Session, *, phone_text: str) -> OtpIssued:
    """Send a 6-digit code to a registered phone. The answer is the same whether or not the phone is
    registered, so the form cannot be used to find out who is a customer."""
    _require_system(session)
    settings = get_settings()
    try:
        phone = normalise_phone(phone_text)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from exc
    now = utcnow()
    recent = session.execute(
        select(func.count())
        .select_from(OtpChallenge)
        .where(OtpChallenge.phone == phone, OtpChallenge.created_at > now - timedelta(hours=1))
    ).scalar_one()
    if recent >= settings.otp_max_per_hour:
        raise TooManyRequests("Too many codes requested for this number. Try again in an hour.")
    customer = session.execute(
        select(Customer).where(Customer.phone == phone).order_by(Customer.created_at).limit(1)
    ).scalar_one_or_none()
    code = f"{secrets.randbelow(1_000_000):06d}"
    session.add(
        OtpChallenge(
            phone=phone,
            code_hash=sha256_hex(f"{phone}:{code}"),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.otp_ttl_seconds),
        )
    )
    if customer is None:
        return OtpIssued(phone, None)
    tenant = session.get(Tenant, customer.tenant_id)
    brand = tenant.name if tenant else "citygas"
    notifications.request(
        session,
        channel="sms",
        to=phone,
        text=f"{code} is your {brand} login code. It expires in 5 minutes. Never share it.",
        tenant_id=customer.tenant_id,
    )
    return OtpIssued(phone, code if settings.is_development else None)


MAX_OTP_ATTEMPTS = 5


def do_verify_otp(session: Session, *, phone_text: str, code: str) -> Customer | None:
    """The customer the code logs in, or None for a wrong code. A wrong code is returned rather than
    raised so that the caller commits the attempt count (five wrong codes spend the challenge)."""
    _require_system(session)
    try:
        phone = normalise_phone(phone_text)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from exc
    now = utcnow()
    challenge = session.execute(
        select(OtpChallenge)
        .where(OtpChallenge.phone == phone, OtpChallenge.consumed_at.is_(None))
        .order_by(OtpChallenge.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if challenge is None or challenge.expires_at <= now or challenge.attempts >= MAX_OTP_ATTEMPTS:
        return None
    challenge.attempts += 1
    if not hmac.compare_digest(challenge.code_hash, sha256_hex(f"{phone}:{code.strip()}")):
        return None
    challenge.consumed_at = now
    customer = session.execute(
        select(Customer).where(Customer.phone == phone).order_by(Customer.created_at).limit(1)
    ).scalar_one_or_none()
    if customer is None:
        return None
    audit.record(
        session,
        action="auth.customer_login",
        entity_type="customer",
        entity_id=str(customer.id),
        tenant_id=customer.tenant_id,
    )
    return customer


# --- API keys -------------------------------------------------------------------------------------

API_KEY_PREFIX = "cg_"


def do_create_api_key(
    session: Session, *, name: str, scopes: list[str], created_by: str
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is shown once and never stored."""
    if not name.strip():
        raise ValidationFailed("Give the key a name that says who uses it")
    unknown = sorted(set(scopes) - set(API_KEY_SCOPES))
    if unknown or not scopes:
        raise ValidationFailed(
            f"Choose scopes from {', '.join(sorted(API_KEY_SCOPES))}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        name=name.strip(),
        prefix=prefix,
        secret_hash=sha256_hex(secret),
        scopes=sorted(set(scopes)),
        created_at=utcnow(),
        created_by=created_by,
    )
    session.add(key)
    session.flush()
    return key, f"{API_KEY_PREFIX}{prefix}_{secret}"


def resolve_api_key(session: Session, raw: str) -> Principal | None:
    _require_system(session)
    if not raw.startswith(API_KEY_PREFIX) or raw.count("_") < 2:
        return None
    prefix, _, secret = raw[len(API_KEY_PREFIX) :].partition("_")
    key = session.execute(select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_hash, sha256_hex(secret)):
        return None
    return Principal(
        "api_key",
        key.id,
        key.tenant_id,
        f"API key {key.name}",
        frozenset(),
        permissions_for_scopes(key.scopes),
    )


def do_revoke_api_key(session: Session, key_id: uuid.UUID) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound("no such API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    # This process stops honouring the key now, and again once the revocation commits (a look-up made
    # in between read the row still unrevoked); other processes within API_KEY_CACHE_SECONDS.
    api_key_cache.forget(key.id)
    event.listen(session, "after_commit", lambda _session: api_key_cache.forget(key_id), once=True)
    return key


# Every API call presents its key: a short in-process memory of the keys seen saves each call its own
# transaction and SELECT. Only valid keys are remembered (a guess costs a look-up, as before, and cannot
# fill the memory), under the SHA-256 of the whole key, never the key itself. A key revoked here is
# forgotten at once; a key revoked by another process is honoured here for at most this long.
API_KEY_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class _Ticket:
    generation: int
    started: float


class ApiKeyCache:
    """Principals of recently resolved API keys, each for `ttl_seconds` from the start of its look-up."""

    def __init__(
        self,
        ttl_seconds: float = API_KEY_CACHE_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._generation = 0  # moved by every forget, so a look-up begun before it is not remembered
        self._lock = threading.Lock()

    def get(self, raw: str) -> Principal | None:
        entry = self._entries.get(sha256_hex(raw))
        if entry is None or self.clock() >= entry[0]:
            return None
        return entry[1]

    def ticket(self) -> _Ticket:
        """Taken before the look-up: the entry expires counting from then, and is not kept if a key was
        forgotten meanwhile (the look-up may have read the row before the revocation)."""
        return _Ticket(self._generation, self.clock())

    def put(self, raw: str, principal: Principal, ticket: _Ticket) -> None:
        with self._lock:
            if ticket.generation != self._generation:
                return
            if len(self._entries) >= self.max_entries:
                now = self.clock()
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[sha256_hex(raw)] = (ticket.started + self.ttl_seconds, principal)

    def forget(self, key_id: uuid.UUID) -> None:
        with self._lock:
            self._generation += 1
            self._entries = {k: v for k, v in self._entries.items() if v[1].id != key_id}

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries = {}


api_key_cache = ApiKeyCache()


def resolve_api_key_cached(raw: str, look_up: Callable[[], Principal | None]) -> Principal | None:
    """The key's principal from the cache, or from `look_up` (which runs `resolve_api_key` in a
    platform-scope transaction of the caller's choosing) and then remembered."""
    principal = api_key_cache.get(raw)
    if principal is not None:
        return principal
    ticket = api_key_cache.ticket()
    principal = look_up()
    if principal is not None:
        api_key_cache.put(raw, principal, ticket)
    return principal


# --- staff users ----------------------------------------------------------------------------------


def do_create_staff_user(
    session: Session,
    *,
    username: str,
    full_name: str,
    password: str,
    roles: list[str],
    email: str = "",
    phone: str = "",
) -> StaffUser:
    username = username.strip().lower()
    if not username or not all(ch.isalnum() or ch in "._-" for ch in username):
        raise ValidationFailed("A username uses letters, digits, dot, dash and underscore only")
    if not full_name.strip():
        raise ValidationFailed("Enter the person's full name")
    bad = sorted(set(roles) - {r.value for r in Role})
    if bad or not roles:
        raise ValidationFailed(
            "Choose at least one role" if not roles else f"Unknown roles: {', '.join(bad)}"
        )
    tenant = session.get(Tenant, current_tenant(session))
    if Role.OPERATOR_ADMIN.value in roles and (tenant is None or tenant.kind != "operator"):
        # An operator admin crosses every tenant's wall; only the service provider's own staff may be one.
        raise ValidationFailed("Operator admin is a role of the service provider's staff, not of a CGD's")
    user = StaffUser(
        username=username,
        full_name=full_name.strip(),
        email=email.strip(),
        phone=phone.strip(),
        password_hash=hash_password(password),
        created_at=utcnow(),
    )
    user.roles = [StaffRole(role=r) for r in sorted(set(roles))]
    # Usernames are unique across tenants (one login page), so the database decides, not a tenant-scoped
    # look-up that cannot see the other tenants' users.
    session.add(user)
    flush_unique(session, ValidationFailed(f"The username {username} is taken"))
    return user


def enable_totp(session: Session, user: StaffUser, *, secret: str, code: str) -> None:
    try:
        totp = pyotp.TOTP(secret)
    except ValueError as exc:  # not base32, or shorter than pyotp's 112-bit minimum: a tampered form
        raise ValidationFailed("The set-up key is not valid. Reload the page and scan the new code.") from exc
    if not totp.verify(code.strip(), valid_window=1):
        raise ValidationFailed("That code does not match. Check the time on your phone and try again.")
    user.totp_secret = secret
    session.flush()
