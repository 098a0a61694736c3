"""The customer app's meter screen (`/app/meter`) and the upload of signed readings a phone read from the
meter (`POST /app/meter/{serial}/readings`, JSON in, JSON out, problem+json on errors).

A household reaches only the meters of its own connections (the customers registered with its phone); any
other serial, in its tenant or another, is "no meter" — the same answer a serial that does not exist gets.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from citygas.customers.households import access_household_meter, household_connections, pick_connection
from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.metering.service import (
    MAX_FRAMES_PER_UPLOAD,
    BalanceEstimate,
    PendingToken,
    TooManyFrames,
    do_upload_readings,
    estimate_balance,
    last_event_seq,
)
from citygas.platform.errors import DomainError, PermissionDenied, ValidationFailed
from citygas.platform.money import format_inr, format_scm
from citygas.platform.time import utcnow
from citygas.platform.uow import UnitOfWork
from citygas.sts import group_token
from citygas.web.deps import uow_with, verify_csrf
from citygas.web.errors import PROBLEM
from citygas.web.render import render

router = APIRouter(prefix="/app", dependencies=[Depends(verify_csrf)], include_in_schema=False)
Household = Annotated[UnitOfWork, Depends(uow_with(Permission.CUSTOMER_SELF))]

MAX_BODY_BYTES: Final = 1_000_000  # 64 frames of at most 4104 bytes, base64, with room to spare


class UnsupportedBody(DomainError):
    code = "unsupported_media_type"
    status = 415
    title = "Send JSON"


class BodyTooLarge(DomainError):
    code = "too_large"
    status = 413
    title = "The upload is too large"


def _principal(request: Request) -> Principal:
    principal: Principal | None = request.state.principal
    assert principal is not None  # uow_with(CUSTOMER_SELF) has required a logged-in household
    return principal


def token_view(token: PendingToken) -> dict[str, Any]:
    return {
        "vend_id": str(token.vend_id),
        "receipt_number": token.receipt_number,
        "kind": token.kind,
        "token": token.token,
        "groups": group_token(token.token).split(" "),
        "tid": token.tid,
        "position": token.position,
        "issued_at": token.issued_at.isoformat(),
        "gas_credit_paise": token.gas_credit_paise,
    }


def estimate_view(estimate: BalanceEstimate) -> dict[str, Any]:
    credit_text = None
    if estimate.synced_credit is not None:
        credit_text = (
            format_inr(estimate.synced_credit)
            if estimate.mode == "currency"
            else format_scm(estimate.synced_credit)
        )
    return {
        "meter_serial": estimate.meter_serial,
        "mode": estimate.mode,
        "synced_at": estimate.synced_at.isoformat() if estimate.synced_at else None,
        "synced_credit": estimate.synced_credit,
        "synced_credit_text": credit_text,
        "synced_credit_paise": estimate.synced_credit_paise,
        "estimated_paise": estimate.estimated_paise,
        "estimated_text": None if estimate.estimated_paise is None else format_inr(estimate.estimated_paise),
        "daily_spend_paise": estimate.daily_spend_paise,
        "days_left": estimate.days_left,
        "valve": estimate.valve,
        "alarms": list(estimate.alarms),
        "low_credit": estimate.low_credit,
        "pending": [token_view(t) for t in estimate.pending],
    }


@router.get("/meter", response_class=HTMLResponse)
def meter_screen(request: Request, uow: Household, c: str = "") -> Response:
    principal = _principal(request)
    connections = household_connections(uow.session, principal)
    chosen = pick_connection(connections, c)
    context: dict[str, Any] = {"connections": connections, "chosen": chosen, "meter": None}
    if chosen is not None and chosen.meter is not None:
        meter = chosen.meter
        estimate = estimate_balance(uow.session, meter, now=utcnow())
        context |= {
            "meter": meter,
            "estimate": estimate,
            "view": estimate_view(estimate),
            "pending": [token_view(t) for t in estimate.pending],
            "last_seq": last_event_seq(uow.session, meter),
        }
    return render(request, "app/meter.html", tab="meter", **context)


@dataclass(frozen=True)
class RawBody:
    content_type: str
    body: bytes | None  # None: not JSON, or too large to read
    too_large: bool = False


async def _raw_body(request: Request) -> RawBody:
    """The request's JSON body, read here because the route answers every problem with problem+json
    itself (a refused body never reaches the page error handler)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        return RawBody(content_type, None)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return RawBody(content_type, None, too_large=True)
    body = await request.body()
    return RawBody(content_type, body, too_large=len(body) > MAX_BODY_BYTES)


def _problem(request: Request, exc: DomainError) -> JSONResponse:
    body = {
        "type": f"https://citygas.dev/problems/{exc.code}",
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "code": exc.code,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
        **exc.extra,
    }
    return JSONResponse(body, status_code=exc.status, media_type=PROBLEM)


def _frames_from(raw: RawBody) -> list[bytes]:
    if raw.too_large:
        raise BodyTooLarge(f"an upload is at most {MAX_BODY_BYTES} bytes of JSON")
    if raw.body is None:
        kind = raw.content_type or "no content type"
        raise UnsupportedBody(f"send the frames as application/json, not {kind}")
    try:
        data = json.loads(raw.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed("the body is not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise ValidationFailed('send {"frames": ["<base64 frame>", ...]}')
    texts = data["frames"]
    if not texts:
        raise ValidationFailed("an upload carries at least one frame")
    if len(texts) > MAX_FRAMES_PER_UPLOAD:
        raise TooManyFrames(f"at most {MAX_FRAMES_PER_UPLOAD} frames in one upload, got {len(texts)}")
    frames: list[bytes] = []
    for index, text in enumerate(texts, start=1):
        if not isinstance(text, str):
            raise ValidationFailed(f"frame {index} is not a base64 string", frame=index)
        try:
            frames.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ValidationFailed(f"frame {index} is not valid base64", frame=index) from exc
    return frames


@router.post("/meter/{serial}/readings")
def upload_readings(
    request: Request,
    serial: str,
    uow: Household,
    body: Annotated[RawBody, Depends(_raw_body)],
) -> Response:
    """Signed frames the app read from the household's meter: verified, stored, tokens confirmed."""
    principal = _principal(request)
    try:
        if principal.kind != "customer":
            raise PermissionDenied("only a household uploads readings here")
        meter = access_household_meter(uow.session, principal, serial)
        frames = _frames_from(body)
        result = do_upload_readings(
            uow.session,
            meter=meter,
            frames=frames,
            master_key=request.app.state.settings.master_key_bytes,
            source="customer",
            uploaded_by=str(principal.id),
        )
        estimate = estimate_balance(uow.session, meter, now=utcnow())
        uow.commit()
    except DomainError as exc:
        return _problem(request, exc)
    status = result.latest_status.status if result.latest_status is not None else None
    return JSONResponse(
        {
            "serial": meter.serial,
            "stored": result.upload_id is not None,
            "frames_received": result.frames_received,
            "frames_new": result.frames_new,
            "statuses_new": result.statuses_new,
            "snapshots_new": result.snapshots_new,
            "events_new": result.events_new,
            "confirmed": [token_view(t) for t in result.confirmed],
            "meter_status": None
            if status is None
            else {
                "at": status.at.isoformat(),
                "mode": status.mode.value,
                "credit": status.credit,
                "credit_text": format_inr(status.credit)
                if status.mode.value == "currency"
                else format_scm(status.credit),
                "valve": status.valve.value,
                "alarms": sorted(a.value for a in status.alarms),
            },
            "estimate": estimate_view(estimate),
        }
    )
