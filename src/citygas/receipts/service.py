"""Receipt look-ups: a vend's receipt as the `Receipt` the layouts print, who may see it, and the public
verification of a receipt number with its check."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.identity.principal import Principal
from citygas.payments.csc.models import CscAgent, CscVend
from citygas.platform.errors import NotFound
from citygas.platform.tenancy import Tenant, current_tenant
from citygas.platform.uow import Database
from citygas.receipts.rules import (
    Receipt,
    ReceiptToken,
    check_matches,
    receipt_check,
    receipt_key,
    tenant_code_of,
    verification_url,
)
from citygas.vending.models import Vend
from citygas.vending.service import vend_body

AGENT_VEND = "agent.vend"  # citygas.identity.rules.Permission.AGENT_VEND
VEND_VIEW = "vend.view"


def get_vend_by_receipt(session: Session, receipt_number: str) -> Vend:
    vend = session.execute(
        select(Vend).where(Vend.receipt_number == receipt_number.strip().upper())
    ).scalar_one_or_none()
    if vend is None:
        raise NotFound(f"no receipt {receipt_number}")
    return vend


def access_receipt(session: Session, principal: Principal, receipt_number: str) -> Vend:
    """A receipt the caller may print: a CSC agent sees only the vends paid from their own float, a household
    its own connections'; staff with vend.view see the tenant's. Someone else's receipt is 'not found', not
    'forbidden'."""
    vend = get_vend_by_receipt(session, receipt_number)
    if principal.can(VEND_VIEW):
        return vend
    if principal.can(AGENT_VEND):
        agent = session.execute(select(CscAgent).where(CscAgent.user_id == principal.id)).scalar_one_or_none()
        if agent is not None and vend.source_party == str(agent.id):
            return vend
    if principal.kind == "customer":
        # A household prints the receipts of its own connections (those registered to its phone).
        own = session.get(Customer, principal.id)
        paid_for = session.get(Customer, vend.customer_id)
        if own is not None and paid_for is not None and own.phone == paid_for.phone:
            return vend
    raise NotFound(f"no receipt {receipt_number}")


def check_for(session: Session, vend: Vend, *, master_key: bytes) -> str:
    return receipt_check(receipt_key(master_key, current_tenant(session)), vend.receipt_number)


def build_receipt(session: Session, vend: Vend, *, master_key: bytes, base_url: str) -> Receipt:
    body = vend_body(session, vend)
    tenant = session.get(Tenant, current_tenant(session))
    assert tenant is not None
    agent_text = ""
    row = session.execute(select(CscVend).where(CscVend.vend_id == vend.id)).scalar_one_or_none()
    if row is not None:
        agent = session.get(CscAgent, row.agent_id)
        if agent is not None:
            agent_text = f"{agent.name} ({agent.csc_id}, {agent.village})"
    check = check_for(session, vend, master_key=master_key)
    return receipt_from_body(
        body,
        cgd_name=tenant.name,
        helpline=tenant.helpline,
        emergency_number=tenant.emergency_number,
        agent=agent_text,
        verify_url=verification_url(base_url, vend.receipt_number, check),
    )


def receipt_from_body(
    body: dict[str, Any], *, cgd_name: str, helpline: str, emergency_number: str, agent: str, verify_url: str
) -> Receipt:
    created = body["created_at"]
    created_at = created if isinstance(created, datetime) else datetime.fromisoformat(str(created))
    meter = body["meter"]
    deductions = tuple(
        (str(d.get("kind") or d.get("name") or ""), int(d.get("amount_paise") or d.get("paise") or 0))
        for d in body.get("deductions", [])
    )
    return Receipt(
        cgd_name=cgd_name,
        helpline=helpline,
        emergency_number=emergency_number,
        receipt_number=body["receipt_number"],
        created_at=created_at,
        channel=body["channel"],
        consumer_number=body["customer"]["consumer_number"],
        customer_name=body["customer"]["name"],
        meter_serial=meter["serial"],
        sts_meter_number=meter["sts_meter_number"],
        sgc=str(meter["sgc"]),
        krn=int(meter["krn"]),
        ti=int(meter["ti"]),
        amount_paise=int(body["amount_paise"]),
        gas_credit_paise=int(body["gas_credit_paise"]),
        vat_paise=int(body.get("vat_paise") or 0),
        rate_paise_per_scm=int(body.get("rate_paise_per_scm") or 0),
        gas_litres=int(body.get("gas_litres") or 0),
        tokens=tuple(ReceiptToken(t["kind"], t["token"], int(t["tid"])) for t in body["tokens"]),
        verify_url=verify_url,
        deductions=deductions,
        agent=agent,
        payment_reference=str(body.get("payment_reference") or ""),
    )


def verify_receipt(
    db: Database, receipt_number: str, check: str, *, master_key: bytes, base_url: str
) -> Receipt | None:
    """The receipt if `check` is the CGD's own check of `receipt_number`, else None. The check is
    compared before anything is looked up, so a guessed number with a wrong check learns nothing."""
    number = receipt_number.strip().upper()
    code = tenant_code_of(number)
    if code is None or not check:
        return None
    with db.system(read_only=True) as uow:
        tenant_id = uow.session.execute(select(Tenant.id).where(Tenant.code == code)).scalar_one_or_none()
    if tenant_id is None or not check_matches(receipt_key(master_key, tenant_id), number, check):
        return None
    with db.unit_of_work(tenant=tenant_id, read_only=True) as uow:
        vend = uow.session.execute(select(Vend).where(Vend.receipt_number == number)).scalar_one_or_none()
        if vend is None:
            return None
        return build_receipt(uow.session, vend, master_key=master_key, base_url=base_url)
