"""Replacing a meter: the customer's credit moves from the old meter to the new one, through the ledger.

The old meter's final credit is taken from a reading the meter signed (uploaded by the technician's phone)
or, when the meter cannot be read, entered by hand with a reason and a supervisor's permission. Its net
credit (credit − emergency credit owed − friendly debt) goes to the new meter as a credit token, and one
ledger entry makes the customer's prepaid credit equal what the new meter now holds:

- gas burnt on the old meter since the last recognition becomes revenue (Dr customer credit / Cr gas
  revenue; if the meter shows more credit than the ledger holds, the difference goes to suspense);
- gas used on emergency or friendly credit beyond the credit becomes debt, recovered at the next vend;
- the token rounds up in the customer's favour: that extra is Dr token rounding / Cr customer credit.

Currency-mode meters only carry money; volume-mode meters carry litres (the token and the audit record
them) and their money side is valued by the vending records.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from citygas.ledger.rules import AccountCode, Side, nonzero_lines
from citygas.ledger.service import account_for, get_balance, post_entry
from citygas.meters.keys import meter_link_keys
from citygas.meters.lifecycle import METER_LIFECYCLE
from citygas.meters.link import StatusResponse, verify_reading
from citygas.meters.link.errors import MeterLinkError
from citygas.meters.models import Meter, MeterModel
from citygas.meters.service import allocate_tid, decoder_key_for, do_meter_transition, get_meter
from citygas.platform import audit, workflow
from citygas.platform.errors import Conflict, PermissionDenied, ValidationFailed
from citygas.platform.time import utcnow
from citygas.sts import AmountConvention, issue_metered_credit

LIVE = ("active", "suspended", "faulty")


@dataclass(frozen=True)
class FinalReading:
    credit: int  # base units on the register (paise or litres)
    owed: int  # emergency credit owed plus friendly debt, same unit
    source: str  # "signed reading" or "entered by hand"


@dataclass(frozen=True)
class MeterReplacement:
    old_serial: str
    new_serial: str
    net_credit: int  # base units the customer had on the old meter, after what it owed
    carried: int  # base units the transfer token carries (rounded up)
    token: str | None
    tid: int | None
    ledger_entry_id: uuid.UUID | None


def read_signed_status(frame: bytes, *, master_key: bytes, meter: Meter) -> FinalReading:
    """Check that the old meter itself signed this status reading, and take its credit from it."""
    reading_key, _ = meter_link_keys(master_key, meter.tenant_id, meter.serial)
    try:
        message = verify_reading(frame, reading_key)
    except MeterLinkError as exc:
        raise ValidationFailed(f"the reading is not a status signed by meter {meter.serial}: {exc}") from exc
    if not isinstance(message, StatusResponse):
        raise ValidationFailed("upload the meter's status reading, not another message")
    status = message.status
    return FinalReading(
        status.credit, status.emergency_credit_in_use + status.friendly_debt, "signed reading"
    )


def do_replace_meter(
    session: Session,
    *,
    old: Meter,
    new_serial: str,
    reason: str,
    permissions: frozenset[str],
    master_key: bytes,
    reading: FinalReading,
) -> MeterReplacement:
    if not reason.strip():
        raise ValidationFailed("Say why the meter is replaced")
    if reading.source != "signed reading" and "meter.manage" not in permissions:
        raise PermissionDenied("a final credit entered by hand needs a supervisor (meter.manage)")
    if reading.credit < 0 or reading.owed < 0:
        raise ValidationFailed("a meter's credit and debts are never negative")
    if old.state not in LIVE or old.customer_id is None:
        raise Conflict(f"meter {old.serial} is {old.state}: only an installed, live meter is replaced")
    new = get_meter(session, new_serial)
    if new.id == old.id:
        raise ValidationFailed("the new meter must be another meter")
    old_model, new_model = session.get(MeterModel, old.model_id), session.get(MeterModel, new.model_id)
    assert old_model is not None
    assert new_model is not None
    if old_model.mode != new_model.mode:
        raise ValidationFailed(f"replace a {old_model.mode}-mode meter with a meter of the same mode")
    if new.state != "allocated":
        raise Conflict(f"meter {new.serial} is {new.state}: take an allocated meter from a kit")
    customer_id = old.customer_id
    consumer_number = _consumer_number(session, customer_id)

    workflow.do_transition(session, METER_LIFECYCLE, old, "replace", permissions=permissions, reason=reason)
    old.replaced_by_id = new.id
    # The new meter goes live at once, whoever replaces: the household must not wait for an office
    # activation with its credit on a meter that is off the wall.
    for action in ("install", "commission", "activate"):
        do_meter_transition(
            session,
            new,
            action,
            permissions=permissions | {"meter.manage"},
            customer_number=consumer_number if action == "install" else None,
            reason=f"replaces meter {old.serial}",
        )

    net = reading.credit - reading.owed
    transfer = max(net, 0)
    token = tid = None
    carried = 0
    if transfer:
        convention = AmountConvention(
            new_model.credit_subclass,
            "paise" if new_model.mode == "currency" else "litres",
            new_model.base_units_per_count,
        )
        tid = allocate_tid(session, new, now=utcnow())
        issued = issue_metered_credit(
            decoder_key=decoder_key_for(session, new, master_key=master_key),
            convention=convention,
            base_units=transfer,
            tid=tid,
            ken=new.ken,
        )
        token, carried = issued.token, issued.carried_base_units
    entry_id = None
    if new_model.mode == "currency":
        entry_id = _post_transfer(session, old=old, customer_id=customer_id, net=net, carried=carried)
    audit.record(
        session,
        action="meter.replaced",
        entity_type="meter",
        entity_id=str(old.id),
        after={
            "new_meter": new.serial,
            "final_credit": reading.credit,
            "owed": reading.owed,
            "source": reading.source,
            "carried": carried,
            "tid": tid,
        },
    )
    return MeterReplacement(old.serial, new.serial, net, carried, token, tid, entry_id)


def _consumer_number(session: Session, customer_id: uuid.UUID) -> str:
    from citygas.customers.models import Customer  # noqa: PLC0415 - customers sit above meters

    customer = session.get(Customer, customer_id)
    assert customer is not None
    return customer.consumer_number


def _post_transfer(
    session: Session, *, old: Meter, customer_id: uuid.UUID, net: int, carried: int
) -> uuid.UUID | None:
    held = get_balance(session, AccountCode.CUSTOMER_CREDIT, customer_id)
    burnt = held - net  # paid credit no longer on the meter: gas used (or, if negative, unexplained credit)
    debt = max(-net, 0)
    rounding = carried - max(net, 0)
    change = carried - held  # the customer's prepaid credit ends equal to the new meter's credit
    customer_credit = account_for(session, AccountCode.CUSTOMER_CREDIT, customer_id).id
    lines = nonzero_lines(
        (Side.CREDIT, account_for(session, AccountCode.GAS_REVENUE).id, max(burnt, 0)),
        (Side.DEBIT, account_for(session, AccountCode.SUSPENSE).id, max(-burnt, 0)),
        (Side.DEBIT, account_for(session, AccountCode.DEBT_RECEIVABLE, customer_id).id, debt),
        (Side.DEBIT, account_for(session, AccountCode.TOKEN_ROUNDING).id, rounding),
        (Side.CREDIT, customer_credit, max(change, 0)),
        (Side.DEBIT, customer_credit, max(-change, 0)),
    )
    if not lines:
        return None
    posted = post_entry(
        session,
        idempotency_key=f"meter-replacement:{old.id}",
        reference=f"meter {old.serial}",
        kind="meter_replacement",
        lines=lines,
        memo=f"credit carried from meter {old.serial} to its replacement",
    )
    return posted.entry.id
