"""Ledger fixtures: a tenant with its chart, and a customer id to hang sub-accounts on."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from citygas.ledger.rules import AccountCode
from citygas.ledger.service import account_for, ensure_chart
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from tests.conftest import make_tenant


@dataclass
class Books:
    tenant: Tenant
    customer: uuid.UUID
    gateway: uuid.UUID
    credit: uuid.UUID  # the customer's prepaid credit
    vat: uuid.UUID  # VAT payable, Maharashtra
    revenue: uuid.UUID


def open_books(db: Database, slug: str = "alpha", code: str = "ALP") -> Books:
    tenant = make_tenant(db, slug, code)
    customer = uuid.uuid4()
    with db.unit_of_work(tenant=tenant.id) as uow:
        chart = ensure_chart(uow.session)
        credit = account_for(uow.session, AccountCode.CUSTOMER_CREDIT, customer)
        vat = account_for(uow.session, AccountCode.VAT_PAYABLE, "Maharashtra")
        uow.commit()
    return Books(
        tenant=tenant,
        customer=customer,
        gateway=chart[AccountCode.GATEWAY_CLEARING].id,
        credit=credit.id,
        vat=vat.id,
        revenue=chart[AccountCode.GAS_REVENUE].id,
    )


@pytest.fixture
def books(db: Database) -> Books:
    return open_books(db)
