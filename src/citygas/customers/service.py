"""Customer use cases."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.identity.rules import normalise_phone
from citygas.platform.errors import NotFound, ValidationFailed
from citygas.platform.numbers import NumberKind, next_number
from citygas.platform.tenancy import ChargeArea
from citygas.platform.time import utcnow


def mask_phone(phone: str) -> str:
    return f"{'•' * 6}{phone[-4:]}" if len(phone) >= 4 else "•" * len(phone)


def get_customer(session: Session, consumer_number: str) -> Customer:
    customer = session.execute(
        select(Customer).where(Customer.consumer_number == consumer_number)
    ).scalar_one_or_none()
    if customer is None:
        raise NotFound(f"no customer with consumer number {consumer_number}")
    return customer


def list_customers(session: Session, *, after: str | None, limit: int) -> list[Customer]:
    """Keyset pagination on the consumer number: stable under inserts and cheap at millions of rows."""
    query = select(Customer).order_by(Customer.consumer_number).limit(limit)
    if after:
        query = query.where(Customer.consumer_number > after)
    return list(session.execute(query).scalars())


def do_register_customer(
    session: Session, *, name: str, phone: str, charge_area_code: str, address: str, language: str = "en"
) -> Customer:
    if not name.strip():
        raise ValidationFailed("Enter the customer's name")
    try:
        phone = normalise_phone(phone)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from exc
    area = session.execute(select(ChargeArea).where(ChargeArea.code == charge_area_code)).scalar_one_or_none()
    if area is None:
        raise ValidationFailed(f"no charge area {charge_area_code}")
    customer = Customer(
        consumer_number=next_number(session, NumberKind.CONSUMER),
        name=name.strip(),
        phone=phone,
        charge_area_id=area.id,
        address=address.strip(),
        language=language,
        created_at=utcnow(),
    )
    session.add(customer)
    session.flush()
    return customer
