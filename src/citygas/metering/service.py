"""Metering use cases: take in the signed frames a phone (or the platform) read from a meter, and answer what
they say — the balance estimate, consumption series and the vend tokens still to be entered.

An upload is all or nothing: every frame is verified with the meter's reading key before anything is
stored, so a batch holding one forged, altered or foreign frame stores nothing. Frames already stored are
recognised by their hash, snapshots by (kind, period end) and events by their sequence number, so a
retried or replayed upload changes nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.metering.models import (
    MeterEventRecord,
    MeterRegisterReading,
    MeterSignedFrame,
    MeterSnapshot,
    MeterStatusReading,
    MeterUpload,
    TokenConfirmation,
)
from citygas.metering.rules import (
    LOW_CREDIT_DAYS,
    ConsumptionPoint,
    IssuedToken,
    PendingToken,
    SnapshotValue,
    VendTokens,
    average_daily_litres,
    confirmed_tid,
    consumption_points,
    days_left,
    estimate_paise,
    litres_to_paise,
    pending_in_order,
    rate_in_force,
)
from citygas.meters.keys import meter_link_keys
from citygas.meters.link import (
    EventsResponse,
    MeterLinkError,
    ParametersResponse,
    ReadingNotSignedError,
    ReadingSignatureError,
    RegistersResponse,
    Response,
    SnapshotKind,
    SnapshotsResponse,
    StatusResponse,
    verify_reading,
)
from citygas.meters.models import Meter, MeterModel
from citygas.platform.db import flush_unique
from citygas.platform.errors import Conflict, DomainError, ValidationFailed
from citygas.platform.time import ensure_aware, utcnow
from citygas.tariffs.service import list_gas_rates
from citygas.vending.models import Vend

__all__ = [
    "MAX_FRAMES_PER_UPLOAD",
    "SOURCES",
    "BalanceEstimate",
    "ConsumptionPoint",
    "ForgedReading",
    "MalformedReading",
    "NotAReading",
    "PendingToken",
    "TooManyFrames",
    "UploadResult",
    "consumption_series",
    "do_upload_readings",
    "estimate_balance",
    "gas_rate_versions",
    "last_event_seq",
    "latest_status",
    "pending_tokens",
]

SOURCES: Final = frozenset({"customer", "staff", "system"})
# A full sync is about a dozen frames; this leaves room for a long event log.
MAX_FRAMES_PER_UPLOAD: Final = 64
# How many of a meter's most recent vends the pending rule looks at: a household tops up a few times a month,
# so this covers years; older unconfirmed tokens are for the care centre, not the app.
PENDING_LOOKBACK_VENDS: Final = 50
_KINDS: Final = {SnapshotKind.MONTHLY: "monthly", SnapshotKind.DAILY: "daily"}
_MESSAGE_NAMES: Final = {
    StatusResponse: "status",
    RegistersResponse: "registers",
    SnapshotsResponse: "snapshots",
    EventsResponse: "events",
    ParametersResponse: "parameters",
}


class ForgedReading(DomainError):
    """A frame whose meter signature does not verify: forged, altered, or read from another meter."""

    code = "reading_signature_invalid"
    status = 422
    title = "A reading is not signed by this meter"


class MalformedReading(DomainError):
    code = "reading_malformed"
    status = 422
    title = "A reading could not be read"


class NotAReading(DomainError):
    code = "not_a_reading"
    status = 422
    title = "A frame is not a signed reading"


class TooManyFrames(DomainError):
    code = "too_many_frames"
    status = 413
    title = "Too many frames in one upload"


@dataclass(frozen=True)
class UploadResult:
    upload_id: uuid.UUID | None  # None: every frame had been received before; nothing was written
    frames_received: int
    frames_new: int
    statuses_new: int
    registers_new: int
    snapshots_new: int
    events_new: int
    confirmed: list[PendingToken] = field(default_factory=list)  # vend tokens this upload proved accepted
    latest_status: StatusResponse | None = None  # the newest status in this upload, as the meter signed it


@dataclass(frozen=True)
class BalanceEstimate:
    meter_serial: str
    mode: str  # currency | volume
    synced_at: datetime | None  # meter clock of the last signed status
    synced_credit_paise: int | None  # volume meters: litres x price
    estimated_paise: int | None
    daily_spend_paise: int | None
    days_left: int | None
    valve: str | None
    alarms: tuple[str, ...]
    pending: list[PendingToken]
    low_credit: bool
    synced_credit: int | None = None  # the register as the meter shows it: paise, or litres on volume meters
    daily_litres: int | None = None
    price_paise_per_scm: int | None = None  # what the estimate values gas at


# --- upload ------------------------------------------------------------------------------------------


def _verify_all(frames: Sequence[bytes], reading_key: bytes, serial: str) -> list[Response]:
    messages: list[Response] = []
    for index, frame in enumerate(frames, start=1):
        try:
            messages.append(verify_reading(frame, reading_key))
        except ReadingSignatureError as exc:
            raise ForgedReading(
                f"frame {index} is not signed by meter {serial}: it was altered, forged or read from "
                "another meter; nothing from this upload was stored",
                frame=index,
            ) from exc
        except ReadingNotSignedError as exc:
            raise NotAReading(
                f"frame {index}: {exc}; nothing from this upload was stored", frame=index
            ) from exc
        except MeterLinkError as exc:
            raise MalformedReading(
                f"frame {index} is not a valid meter-link frame ({exc}); nothing from this upload was stored",
                frame=index,
            ) from exc
    return messages


def do_upload_readings(
    session: Session,
    *,
    meter: Meter,
    frames: Sequence[bytes],
    master_key: bytes,
    source: str,
    uploaded_by: str,
    now: datetime | None = None,
) -> UploadResult:
    """Verify, decode and store signed frames read from `meter`; confirm the vend tokens its events prove
    accepted. Never commits."""
    if source not in SOURCES:
        raise ValidationFailed(f"an upload comes from one of {sorted(SOURCES)}, not {source!r}")
    if not frames:
        raise ValidationFailed("an upload carries at least one frame")
    if len(frames) > MAX_FRAMES_PER_UPLOAD:
        raise TooManyFrames(f"at most {MAX_FRAMES_PER_UPLOAD} frames in one upload, got {len(frames)}")
    now = ensure_aware(now or utcnow())
    reading_key, _ = meter_link_keys(master_key, meter.tenant_id, meter.serial)
    messages = _verify_all(frames, reading_key, meter.serial)

    # Drop frames seen before (in this batch or earlier), keeping the batch's order.
    hashes = [hashlib.sha256(f).hexdigest() for f in frames]
    known = set(
        session.execute(
            select(MeterSignedFrame.sha256).where(
                MeterSignedFrame.meter_id == meter.id, MeterSignedFrame.sha256.in_(set(hashes))
            )
        ).scalars()
    )
    fresh: list[tuple[bytes, str, Response]] = []
    for frame, digest, message in zip(frames, hashes, messages, strict=True):
        if digest not in known:
            known.add(digest)
            fresh.append((frame, digest, message))
    latest = _latest_of(messages)
    if not fresh:
        return UploadResult(None, len(frames), 0, 0, 0, 0, 0, [], latest)

    pending_before = pending_tokens(session, meter)
    upload = MeterUpload(
        meter_id=meter.id,
        source=source,
        uploaded_by=uploaded_by[:120],
        received_at=now,
        frames_received=len(frames),
        frames_new=len(fresh),
    )
    session.add(upload)
    session.flush()
    counts = _store(session, meter, upload, fresh, now)
    flush_unique(
        session, Conflict("the same readings were being uploaded at the same moment; send them again")
    )
    pending_after = {(p.vend_id, p.position) for p in pending_tokens(session, meter)}
    confirmed = [p for p in pending_before if (p.vend_id, p.position) not in pending_after]
    return UploadResult(upload.id, len(frames), len(fresh), *counts, confirmed, latest)


def _latest_of(messages: Sequence[Response]) -> StatusResponse | None:
    statuses = [m for m in messages if isinstance(m, StatusResponse)]
    return max(statuses, key=lambda m: m.status.at) if statuses else None


def _store(
    session: Session,
    meter: Meter,
    upload: MeterUpload,
    fresh: Sequence[tuple[bytes, str, Response]],
    now: datetime,
) -> tuple[int, int, int, int]:
    statuses = registers = snapshots = events = 0
    snapshot_keys = _existing_snapshot_keys(session, meter, fresh)
    event_seqs = _existing_event_seqs(session, meter, fresh)
    tid_vends = _recent_vend_tids(session, meter)
    confirmed_tids = _existing_confirmations(session, meter, fresh)
    for frame, digest, message in fresh:
        row = MeterSignedFrame(
            meter_id=meter.id,
            upload_id=upload.id,
            message_type=_MESSAGE_NAMES[type(message)],
            meter_at=_meter_at(message),
            sha256=digest,
            frame=frame,
        )
        session.add(row)
        session.flush()
        if isinstance(message, StatusResponse):
            s = message.status
            session.add(
                MeterStatusReading(
                    meter_id=meter.id,
                    frame_id=row.id,
                    meter_at=s.at,
                    mode=s.mode.value,
                    credit=s.credit,
                    emergency_credit_available=s.emergency_credit_available,
                    emergency_credit_in_use=s.emergency_credit_in_use,
                    friendly_debt=s.friendly_debt,
                    valve=s.valve.value,
                    alarms=sorted(a.value for a in s.alarms),
                    tariff_paise_per_scm=s.tariff_paise_per_scm,
                    received_at=now,
                )
            )
            statuses += 1
        elif isinstance(message, RegistersResponse):
            r = message.registers
            session.add(
                MeterRegisterReading(
                    meter_id=meter.id,
                    frame_id=row.id,
                    meter_at=message.at,
                    cumulative_litres=r.cumulative_litres,
                    cumulative_credit_loaded=r.cumulative_credit_loaded,
                    tokens_accepted=r.tokens_accepted,
                    received_at=now,
                )
            )
            registers += 1
        elif isinstance(message, SnapshotsResponse):
            kind = _KINDS[message.kind]
            for snap in message.snapshots:
                if (kind, snap.period_end) in snapshot_keys:
                    continue
                snapshot_keys.add((kind, snap.period_end))
                session.add(
                    MeterSnapshot(
                        meter_id=meter.id,
                        frame_id=row.id,
                        kind=kind,
                        period_end=snap.period_end,
                        cumulative_litres=snap.cumulative_litres,
                        credit=snap.credit,
                    )
                )
                snapshots += 1
        elif isinstance(message, EventsResponse):
            for event in message.events:
                if event.seq in event_seqs:
                    continue
                event_seqs.add(event.seq)
                session.add(
                    MeterEventRecord(
                        meter_id=meter.id,
                        frame_id=row.id,
                        seq=event.seq,
                        meter_at=event.at,
                        code=event.code.value,
                        detail=event.detail[:255],
                    )
                )
                events += 1
                tid = confirmed_tid(event.code.value, event.detail)
                if tid is not None and tid not in confirmed_tids:
                    confirmed_tids.add(tid)
                    session.add(
                        TokenConfirmation(
                            meter_id=meter.id,
                            tid=tid,
                            vend_id=tid_vends.get(tid),
                            accepted_at=event.at,
                            event_seq=event.seq,
                            evidence=event.detail.split(" ", 1)[0][:32],
                            upload_id=upload.id,
                            received_at=now,
                        )
                    )
        # A PARAMETERS reading is kept as its frame only: nothing reads it yet but the evidence is there.
    return statuses, registers, snapshots, events


def _meter_at(message: Response) -> datetime:
    if isinstance(message, StatusResponse):
        return message.status.at
    assert isinstance(message, RegistersResponse | SnapshotsResponse | EventsResponse | ParametersResponse)
    return message.at


def _existing_snapshot_keys(
    session: Session, meter: Meter, fresh: Sequence[tuple[bytes, str, Response]]
) -> set[tuple[str, date]]:
    wanted = {
        (_KINDS[m.kind], s.period_end)
        for _, _, m in fresh
        if isinstance(m, SnapshotsResponse)
        for s in m.snapshots
    }
    if not wanted:
        return set()
    days = {d for _, d in wanted}
    rows = session.execute(
        select(MeterSnapshot.kind, MeterSnapshot.period_end).where(
            MeterSnapshot.meter_id == meter.id,
            MeterSnapshot.period_end >= min(days),
            MeterSnapshot.period_end <= max(days),
        )
    ).all()
    return {(kind, day) for kind, day in rows}


def _existing_event_seqs(
    session: Session, meter: Meter, fresh: Sequence[tuple[bytes, str, Response]]
) -> set[int]:
    seqs = [e.seq for _, _, m in fresh if isinstance(m, EventsResponse) for e in m.events]
    if not seqs:
        return set()
    return set(
        session.execute(
            select(MeterEventRecord.seq).where(
                MeterEventRecord.meter_id == meter.id,
                MeterEventRecord.seq >= min(seqs),
                MeterEventRecord.seq <= max(seqs),
            )
        ).scalars()
    )


def _existing_confirmations(
    session: Session, meter: Meter, fresh: Sequence[tuple[bytes, str, Response]]
) -> set[int]:
    tids = {
        tid
        for _, _, m in fresh
        if isinstance(m, EventsResponse)
        for e in m.events
        if (tid := confirmed_tid(e.code.value, e.detail)) is not None
    }
    if not tids:
        return set()
    return set(
        session.execute(
            select(TokenConfirmation.tid).where(
                TokenConfirmation.meter_id == meter.id, TokenConfirmation.tid.in_(tids)
            )
        ).scalars()
    )


# --- pending tokens ----------------------------------------------------------------------------------


def _recent_vends(session: Session, meter: Meter) -> list[Vend]:
    if meter.customer_id is None:
        return []
    # ix_vend_customer_created serves this: the meter's household's vends, newest first.
    return list(
        session.execute(
            select(Vend)
            .where(Vend.customer_id == meter.customer_id, Vend.meter_id == meter.id)
            .order_by(Vend.created_at.desc())
            .limit(PENDING_LOOKBACK_VENDS)
        ).scalars()
    )


def _recent_vend_tids(session: Session, meter: Meter) -> dict[int, uuid.UUID]:
    return {
        int(t["tid"]): vend.id
        for vend in _recent_vends(session, meter)
        for t in vend.tokens
        if t.get("tid") is not None
    }


def _vend_tokens(vend: Vend) -> VendTokens:
    return VendTokens(
        vend_id=vend.id,
        receipt_number=vend.receipt_number,
        issued_at=vend.created_at,
        gas_credit_paise=vend.gas_credit_paise,
        tokens=tuple(
            IssuedToken(
                kind=str(t["kind"]),
                token=str(t["token"]),
                tid=None if t.get("tid") is None else int(t["tid"]),
            )
            for t in vend.tokens
        ),
    )


def pending_tokens(session: Session, meter: Meter) -> list[PendingToken]:
    """The vend tokens the meter has not been proved to accept, oldest first, in the order they must be
    entered (key change tokens, then tariff, then credit; see `rules.pending_in_order`)."""
    vends = [_vend_tokens(v) for v in _recent_vends(session, meter)]
    tids = {t.tid for v in vends for t in v.tokens if t.tid is not None}
    confirmed: set[int] = set()
    if tids:
        confirmed = set(
            session.execute(
                select(TokenConfirmation.tid).where(
                    TokenConfirmation.meter_id == meter.id, TokenConfirmation.tid.in_(tids)
                )
            ).scalars()
        )
    return pending_in_order(vends, confirmed)


# --- read side ---------------------------------------------------------------------------------------


def latest_status(session: Session, meter: Meter) -> MeterStatusReading | None:
    """The newest signed status of the meter (by the meter clock); its index serves this."""
    return session.execute(
        select(MeterStatusReading)
        .where(MeterStatusReading.meter_id == meter.id)
        .order_by(MeterStatusReading.meter_at.desc(), MeterStatusReading.received_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def last_event_seq(session: Session, meter: Meter) -> int:
    """The highest event sequence number stored for the meter (0: none), so a phone reads only newer ones."""
    found = session.execute(
        select(func.max(MeterEventRecord.seq)).where(MeterEventRecord.meter_id == meter.id)
    ).scalar_one()
    return int(found or 0)


def gas_rate_versions(session: Session, meter: Meter) -> list[tuple[datetime, int]]:
    if meter.customer_id is None:
        return []
    customer = session.get(Customer, meter.customer_id)
    if customer is None:
        return []
    return [
        (t.effective_from, t.rate_paise_per_scm) for t in list_gas_rates(session, customer.charge_area_id)
    ]


def _daily_snapshots(session: Session, meter: Meter, limit: int) -> list[SnapshotValue]:
    rows = session.execute(
        select(MeterSnapshot.period_end, MeterSnapshot.cumulative_litres)
        .where(MeterSnapshot.meter_id == meter.id, MeterSnapshot.kind == "daily")
        .order_by(MeterSnapshot.period_end.desc())
        .limit(limit)
    ).all()
    return [SnapshotValue(day, litres) for day, litres in rows]


def _mode_of(session: Session, meter: Meter) -> str:
    model = session.get(MeterModel, meter.model_id)
    return model.mode if model is not None else "currency"


def estimate_balance(session: Session, meter: Meter, *, now: datetime) -> BalanceEstimate:
    """The meter's credit now: its last signed status less the average daily spend since.

    Currency meters are valued at the tariff the meter itself holds (that is what it charges); volume meters'
    litres at the charge area's gas rate in force now."""
    now = ensure_aware(now)
    pending = pending_tokens(session, meter)
    status = latest_status(session, meter)
    if status is None:
        return BalanceEstimate(
            meter_serial=meter.serial,
            mode=_mode_of(session, meter),
            synced_at=None,
            synced_credit_paise=None,
            estimated_paise=None,
            daily_spend_paise=None,
            days_left=None,
            valve=None,
            alarms=(),
            pending=pending,
            low_credit=False,
        )
    if status.mode == "currency":
        price = status.tariff_paise_per_scm
        synced_paise = status.credit
    else:
        price = rate_in_force(gas_rate_versions(session, meter), now, fallback=status.tariff_paise_per_scm)
        synced_paise = litres_to_paise(status.credit, price)
    daily_litres = average_daily_litres(_daily_snapshots(session, meter, 32))
    daily_spend = None if daily_litres is None else litres_to_paise(daily_litres, price)
    estimated = estimate_paise(
        synced_paise=synced_paise, synced_at=status.meter_at, now=now, daily_spend_paise=daily_spend or 0
    )
    left = days_left(estimated, daily_spend)
    alarms = tuple(status.alarms)
    low = bool({"low_credit", "credit_exhausted"} & set(alarms)) or (
        left is not None and left < LOW_CREDIT_DAYS
    )
    return BalanceEstimate(
        meter_serial=meter.serial,
        mode=status.mode,
        synced_at=status.meter_at,
        synced_credit_paise=synced_paise,
        estimated_paise=estimated,
        daily_spend_paise=daily_spend,
        days_left=left,
        valve=status.valve,
        alarms=alarms,
        pending=pending,
        low_credit=low,
        synced_credit=status.credit,
        daily_litres=daily_litres,
        price_paise_per_scm=price,
    )


def consumption_series(session: Session, meter: Meter, *, kind: str, periods: int) -> list[ConsumptionPoint]:
    """Gas used per day or per month from the meter's snapshots, in litres and in paise at the tariff in
    force when each period closed (`rules.consumption_points`). Month ends come from monthly snapshots and
    from daily snapshots that fall on a month's last day (the same register values)."""
    if kind not in ("daily", "monthly"):
        raise ValidationFailed(f"a consumption series is daily or monthly, not {kind!r}")
    if periods <= 0:
        return []
    if kind == "daily":
        snapshots = _daily_snapshots(session, meter, periods + 1)
    else:
        monthly = session.execute(
            select(MeterSnapshot.period_end, MeterSnapshot.cumulative_litres)
            .where(MeterSnapshot.meter_id == meter.id, MeterSnapshot.kind == "monthly")
            .order_by(MeterSnapshot.period_end.desc())
            .limit(periods + 1)
        ).all()
        by_end: dict[date, int] = {day: litres for day, litres in monthly}  # noqa: C416 - Row pairs
        for s in _daily_snapshots(session, meter, 100):
            if (s.period_end + timedelta(days=1)).day == 1:  # a month's last day
                by_end.setdefault(s.period_end, s.cumulative_litres)
        snapshots = [SnapshotValue(day, litres) for day, litres in by_end.items()]
    status = latest_status(session, meter)
    return consumption_points(
        snapshots,
        kind=kind,
        periods=periods,
        rates=gas_rate_versions(session, meter),
        fallback_rate=status.tariff_paise_per_scm if status is not None else 0,
    )
