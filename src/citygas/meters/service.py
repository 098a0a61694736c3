"""Meter registry use cases: vending keys, models, registering meters, lifecycle transitions, TIDs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Integer, Table, Uuid, bindparam, case, column, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.ledger.rules import AccountCode
from citygas.ledger.service import account_id_for
from citygas.meters.lifecycle import METER_LIFECYCLE
from citygas.meters.models import Meter, MeterModel, VendingKey
from citygas.platform import workflow
from citygas.platform.db import flush_unique
from citygas.platform.errors import Conflict, NotFound, ValidationFailed
from citygas.platform.ids import uuid7
from citygas.platform.tenancy import TENANT_KEY, is_system, tenant_filtered
from citygas.platform.time import utcnow
from citygas.sts import (
    DecoderKey,
    DecoderKeyParameters,
    EncryptionAlgorithm,
    KeyExpiredError,
    KeyGenerationAlgorithm,
    SoftwareKeyVault,
    check_key_not_expired,
    minutes_since_base_date,
    pan_check_digit_is_valid,
)

# The STS Association's published conformance-test vending key (STS 531-1-0-04). Anyone can derive
# demo tokens with it and check them with an independent decoder: it must never vend real gas.
STS_TEST_VENDING_KEY = bytes.fromhex("abababababababab949494949494949401234567")
STS_TEST_SGC = "123457"


def do_store_vending_key(
    session: Session,
    *,
    master_key: bytes,
    key_id: str,
    label: str,
    vending_key: bytes,
    sgc: str,
    dkga: str = "04",
    is_test_key: bool = False,
) -> VendingKey:
    """Import a vending key, encrypted at rest; only its id and label are visible afterwards."""
    if not (len(sgc) == 6 and sgc.isdigit()):
        raise ValidationFailed("A supply group code is 6 digits")
    vault = SoftwareKeyVault(master_key)
    vault.store_vending_key(key_id, vending_key, KeyGenerationAlgorithm(dkga))
    row = VendingKey(
        key_id=key_id,
        label=label,
        sgc=sgc,
        dkga=dkga,
        is_test_key=is_test_key,
        vault_blob=vault.export_blob(),
        created_at=utcnow(),
    )
    session.add(row)
    flush_unique(session, ValidationFailed(f"a vending key {key_id} exists already"))
    return row


def decoder_key_for(
    session: Session, meter: Meter, *, master_key: bytes, key: VendingKey | None = None
) -> DecoderKey:
    """The meter's current decoder key, derived inside the vault from the tenant's vending key (`key`, where
    the caller has read the meter's key row already)."""
    if key is None or key.id != meter.vending_key_id:
        key = session.get(VendingKey, meter.vending_key_id)
    if key is None:
        raise NotFound("the meter's vending key is missing")
    vault = SoftwareKeyVault(master_key, key.vault_blob)
    return vault.derive_decoder_key(key.key_id, decoder_parameters(meter))


def decoder_parameters(meter: Meter) -> DecoderKeyParameters:
    return DecoderKeyParameters(
        pan=meter.sts_meter_number,
        sgc=meter.sgc,
        ti=meter.ti,
        kt=meter.kt,
        krn=meter.krn,
        base_date=meter.base_date,
        ea=EncryptionAlgorithm(meter.ea),
        dkga=KeyGenerationAlgorithm(meter.dkga),
    )


def do_register_meter(
    session: Session,
    *,
    serial: str,
    sts_meter_number: str,
    model_code: str,
    vending_key_id: str,
    ti: int = 1,
    krn: int = 1,
    kt: int = 2,
    base_date: int = 2014,
    ken: int = 255,
    simulated: bool = False,
) -> Meter:
    """A meter arrives in store: check its numbers and keys, and start its lifecycle."""
    serial = serial.strip().upper()
    if not serial or len(serial) > 32:
        raise ValidationFailed("A meter serial is 1–32 characters")
    if not pan_check_digit_is_valid(sts_meter_number):
        raise ValidationFailed(
            f"{sts_meter_number} is not an 18-digit STS meter number with a valid check digit"
        )
    model = session.execute(select(MeterModel).where(MeterModel.code == model_code)).scalar_one_or_none()
    if model is None:
        raise ValidationFailed(f"no meter model {model_code}")
    key = session.execute(select(VendingKey).where(VendingKey.key_id == vending_key_id)).scalar_one_or_none()
    if key is None:
        raise ValidationFailed(f"no vending key {vending_key_id}")
    meter = Meter(
        id=uuid7(),
        serial=serial,
        sts_meter_number=sts_meter_number,
        model_id=model.id,
        vending_key_id=key.id,
        sgc=key.sgc,
        krn=krn,
        kt=kt,
        ti=ti,
        base_date=base_date,
        ea="11",
        dkga=key.dkga,
        ken=ken,
        last_tid=None,
        simulated=simulated,
        created_at=utcnow(),
        state="",
    )
    try:
        decoder_parameters(meter)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from exc
    session.add(meter)
    workflow.start(session, METER_LIFECYCLE, meter, title=f"Meter {serial}", link=f"/ops/meters/{serial}")
    flush_unique(
        session, ValidationFailed(f"a meter with serial {serial} or number {sts_meter_number} exists already")
    )
    return meter


def get_meter(session: Session, serial: str) -> Meter:
    meter = session.execute(select(Meter).where(Meter.serial == serial.strip().upper())).scalar_one_or_none()
    if meter is None:
        raise NotFound(f"no meter {serial}")
    return meter


def list_meters(session: Session, *, after: str | None, limit: int, state: str | None = None) -> list[Meter]:
    query = select(Meter).order_by(Meter.serial).limit(limit)
    if after:
        query = query.where(Meter.serial > after)
    if state:
        query = query.where(Meter.state == state)
    return list(session.execute(query).scalars())


def do_meter_transition(
    session: Session,
    meter: Meter,
    action: str,
    *,
    permissions: frozenset[str],
    reason: str | None = None,
    customer_number: str | None = None,
) -> Meter:
    """Move a meter along its lifecycle. Installing binds it to a customer; a customer has one live meter.
    Replacing goes through `meters.replacement.do_replace_meter`, which carries the credit over."""
    if action == "replace":
        raise ValidationFailed(
            "Replace a meter with the replacement form: the customer's credit moves with it"
        )
    if action == "install":
        if not customer_number:
            raise ValidationFailed("Say which customer's premises the meter is installed at")
        customer = session.execute(
            select(Customer).where(Customer.consumer_number == customer_number.strip())
        ).scalar_one_or_none()
        if customer is None:
            raise ValidationFailed(f"no customer {customer_number}")
        live = session.execute(
            select(Meter.serial).where(
                Meter.customer_id == customer.id,
                Meter.state.in_(["installed", "commissioned", "active", "suspended", "faulty"]),
            )
        ).scalar_one_or_none()
        if live is not None:
            raise Conflict(f"customer {customer_number} already has meter {live}; replace it instead")
        meter.customer_id = customer.id
    workflow.do_transition(session, METER_LIFECYCLE, meter, action, permissions=permissions, reason=reason)
    if action == "activate" and meter.customer_id is not None:
        # The household is connected once its meter is live: that is when it can buy gas. Its prepaid
        # credit account opens with the connection, not inside its first top-up.
        customer = session.get(Customer, meter.customer_id)
        if customer is not None and customer.status != "active":
            customer.status = "active"
        account_id_for(session, AccountCode.CUSTOMER_CREDIT, meter.customer_id)
    session.flush()
    return meter


def _next_tid(last: Any, now_minutes: Any, count: Any) -> Any:
    """The last of `count` TIDs, the first being max(now in minutes, last + 1), as SQL."""
    return case(
        (last.is_(None), now_minutes + count - 1),
        (last + 1 > now_minutes, last + count),
        else_=now_minutes + count - 1,
    )


@cache
def _allocate_tid_statement() -> Any:
    """Built once with bound parameters (building it cost more than running it), as a Core statement that
    filters by tenant itself (`tenant_filtered`), so the central scoping has nothing to add."""
    meter = cast(Table, Meter.__table__)
    now_minutes: Any = bindparam("now_minutes", type_=Integer)
    count: Any = bindparam("count", type_=Integer)
    return tenant_filtered(
        update(meter)
        .where(meter.c.id == bindparam("meter"), meter.c.tenant_id == bindparam("tenant"))
        .values(last_tid=_next_tid(meter.c.last_tid, now_minutes, count))
        .returning(meter.c.last_tid)
    )


@cache
def _allocate_tids_statement() -> Any:
    """`_allocate_tid_statement` for many meters at once, over arrays of meters, minutes and counts
    (PostgreSQL): UPDATE … FROM unnest(…)."""
    meter = cast(Table, Meter.__table__)
    given = (
        func.unnest(
            bindparam("meters", type_=ARRAY(Uuid())),
            bindparam("minutes", type_=ARRAY(Integer())),
            bindparam("counts", type_=ARRAY(Integer())),
        )
        .table_valued(column("meter", Uuid()), column("now_minutes", Integer()), column("count", Integer()))
        .render_derived(name="given")
    )
    return tenant_filtered(
        update(meter)
        .where(meter.c.id == given.c.meter, meter.c.tenant_id == bindparam("tenant"))
        .values(last_tid=_next_tid(meter.c.last_tid, given.c.now_minutes, given.c.count))
        .returning(meter.c.id, meter.c.last_tid)
    )


def allocate_tid(session: Session, meter: Meter, *, now: datetime) -> int:
    """Reserve the next TID for a token to this meter: max(now in minutes, last + 1), in one UPDATE, so two
    concurrent vends to one meter queue on its row and never share a TID. Refuses past the key's expiry."""
    ((tid,),) = allocate_tids_for(session, [(meter, 1)], now=now)
    return tid


def allocate_tids_for(
    session: Session, wanted: Sequence[tuple[Meter, int]], *, now: datetime
) -> list[list[int]]:
    """TIDs for several meters (a batch of vends, `count` each): one UPDATE on PostgreSQL, one per meter
    elsewhere. Each meter's are consecutive, from max(now in minutes, its last + 1)."""
    # The session's tenant is the wall; the platform scope (tools, the worker) has none and acts in the
    # meter's own. A session without a tenant fails closed in the central scoping before this runs.
    lasts: dict[uuid.UUID, int] = {}
    if len(wanted) > 1 and session.get_bind().dialect.name == "postgresql" and not is_system(session):
        rows = session.execute(
            _allocate_tids_statement(),
            {
                "tenant": session.info.get(TENANT_KEY),
                "meters": [meter.id for meter, _ in wanted],
                "minutes": [minutes_since_base_date(now, meter.base_date) for meter, _ in wanted],
                "counts": [count for _, count in wanted],
            },
        )
        lasts = {row.id: row.last_tid for row in rows}
    else:
        for meter, count in wanted:
            last = session.execute(
                _allocate_tid_statement(),
                {
                    "meter": meter.id,
                    "tenant": meter.tenant_id if is_system(session) else session.info.get(TENANT_KEY),
                    "now_minutes": minutes_since_base_date(now, meter.base_date),
                    "count": count,
                },
            ).scalar_one_or_none()
            if last is not None:
                lasts[meter.id] = last
    tids: list[list[int]] = []
    for meter, count in wanted:
        last = lasts.get(meter.id)
        if last is None:  # the meter is not in this tenant (the CASE always yields a number)
            raise NotFound(f"no meter {meter.serial}")
        try:
            check_key_not_expired(last, meter.ken)
        except KeyExpiredError as exc:
            raise Conflict(str(exc)) from exc
        session.expire(meter, ["last_tid"])
        tids.append(list(range(last - count + 1, last + 1)))
    return tids


def do_schedule_key_change(
    session: Session,
    meter: Meter,
    *,
    new_krn: int,
    new_ti: int | None = None,
    rollover: bool = False,
) -> Meter:
    """Ask for the meter's key to change at its next vend: the vend sends the key change tokens first, then
    the credit under the new key. A rollover (RO = 1) also moves the meter to its next base date — the 2024
    rollover takes meters keyed for 1993, whose TIDs ran out in November 2024, to 2014."""
    if not 1 <= new_krn <= 9:
        raise ValidationFailed("a key revision number is 1 to 9")
    ti = meter.ti if new_ti is None else new_ti
    if not 0 <= ti <= 99:
        raise ValidationFailed("a tariff index is 0 to 99")
    if rollover and meter.base_date == 2035:
        raise ValidationFailed("a meter on the 2035 base date has no later base date to roll over to")
    if (new_krn, ti) == (meter.krn, meter.ti) and not rollover:
        raise ValidationFailed(
            "the new key must differ: change the key revision, the tariff index or roll over"
        )
    meter.key_change_pending = True
    meter.pending_krn = new_krn
    meter.pending_ti = ti
    meter.pending_rollover = rollover
    session.flush()
    return meter
