"""Demo credit for meters keyed with the published STS *test* vending key.

Real credit is only ever the result of a paid vend. The STS conformance test key is public, so a token made
with it can credit nothing but a demo meter; this exists so that a person running the demo (or a test) can
put credit on a simulated meter before the vending channels exist. The TID still comes from the registry,
exactly as a vend's would, and the issue is written to the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from citygas.meters.models import Meter, MeterModel, VendingKey
from citygas.meters.service import allocate_tid, decoder_key_for
from citygas.platform import audit
from citygas.platform.context import Actor
from citygas.platform.errors import NotFound, PermissionDenied, ValidationFailed
from citygas.platform.money import format_inr, format_scm, parse_rupees
from citygas.platform.settings import get_settings
from citygas.platform.time import utcnow
from citygas.platform.uow import Database
from citygas.sts import AmountConvention, group_token, issue_metered_credit

CLI_ACTOR = Actor(kind="system", id=None, label="citygas meter test-token")


@dataclass(frozen=True)
class DemoCredit:
    token: str
    tid: int
    carried_base_units: int
    description: str

    @property
    def grouped(self) -> str:
        return group_token(self.token)


def issue_demo_credit(db: Database, *, serial: str, amount_text: str, actor: Actor = CLI_ACTOR) -> DemoCredit:
    with db.system(read_only=True) as uow:
        matches = uow.session.execute(
            select(Meter.tenant_id).where(Meter.serial == serial.strip().upper())
        ).all()
    if len(matches) != 1:
        raise NotFound(f"no meter {serial}" if not matches else f"{serial} exists in several tenants")
    tenant_id = matches[0][0]
    with db.unit_of_work(tenant=tenant_id, actor=actor) as uow:
        session = uow.session
        meter = session.execute(select(Meter).where(Meter.serial == serial.strip().upper())).scalar_one()
        key = session.get(VendingKey, meter.vending_key_id)
        model = session.get(MeterModel, meter.model_id)
        assert key is not None
        assert model is not None
        if not key.is_test_key:
            raise PermissionDenied("this meter has a real vending key: credit comes only from a paid vend")
        base_units: int
        if model.mode == "currency":
            base_units = parse_rupees(amount_text)
            unit = "paise"
        else:
            try:
                base_units = round(float(amount_text) * 1000)
            except ValueError as exc:
                raise ValidationFailed(f"'{amount_text}' is not an amount of SCM") from exc
            unit = "litres"
        if base_units <= 0:
            raise ValidationFailed("the amount must be more than zero")
        convention = AmountConvention(model.credit_subclass, unit, model.base_units_per_count)
        tid = allocate_tid(session, meter, now=utcnow())
        credit = issue_metered_credit(
            decoder_key=decoder_key_for(session, meter, master_key=get_settings().master_key_bytes),
            convention=convention,
            base_units=base_units,
            tid=tid,
            ken=meter.ken,
        )
        carried = credit.carried_base_units
        described = format_inr(carried) if unit == "paise" else format_scm(carried)
        audit.record(
            session,
            action="meter.test_token",
            entity_type="meter",
            entity_id=str(meter.id),
            after={"tid": tid, unit: carried, "key": "STS test key"},
        )
        uow.because("demo credit with the published STS test key").commit()
    return DemoCredit(credit.token, tid, carried, f"{described} for meter {meter.serial}")
