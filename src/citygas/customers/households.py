"""Households: the people behind a phone number. A household logs in with its phone, and its connections
are the customers of its CGD registered with that phone (a family with two flats has two). Every customer-
app screen reaches data only through these functions, so one household never sees another's."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.identity.principal import Principal
from citygas.meters.models import Meter
from citygas.platform.errors import NotFound

# The meter states in which a meter hangs on the household's wall.
LIVE_METER_STATES: Final = ("installed", "commissioned", "active", "suspended", "faulty")


@dataclass(frozen=True)
class Connection:
    customer: Customer
    meter: Meter | None


def connections_of_phone(session: Session, phone: str) -> list[Customer]:
    """The customers registered with `phone` in the session's tenant, by consumer number."""
    return list(
        session.execute(
            select(Customer).where(Customer.phone == phone).order_by(Customer.consumer_number)
        ).scalars()
    )


def household_phone(session: Session, principal: Principal | None) -> str | None:
    """A household's phone; None for staff and API keys (and for a household whose record is gone, a phone
    nobody has, so it matches nothing)."""
    if principal is None or principal.kind != "customer":
        return None
    own = session.get(Customer, principal.id)
    return own.phone if own is not None else "-"


def household_connections(session: Session, principal: Principal) -> list[Connection]:
    """The household's connections, each with the meter on its wall, if any."""
    phone = household_phone(session, principal)
    if phone is None:
        return []
    customers = connections_of_phone(session, phone)
    meters: dict[uuid.UUID, Meter] = {}
    if customers:
        for meter in session.execute(
            select(Meter)
            .where(Meter.customer_id.in_([c.id for c in customers]), Meter.state.in_(LIVE_METER_STATES))
            .order_by(Meter.created_at)
        ).scalars():
            if meter.customer_id is not None:
                meters[meter.customer_id] = meter
    return [Connection(c, meters.get(c.id)) for c in customers]


def pick_connection(connections: list[Connection], consumer_number: str) -> Connection | None:
    """The connection asked for, else the first with a meter, else the first: a foreign or mistyped
    number never shows anything but the household's own."""
    wanted = consumer_number.strip()
    for connection in connections:
        if connection.customer.consumer_number == wanted:
            return connection
    with_meter = [c for c in connections if c.meter is not None]
    candidates = with_meter or connections
    return candidates[0] if candidates else None


def access_household_meter(session: Session, principal: Principal, serial: str) -> Meter:
    """The meter `serial` if it is on one of the household's connections; otherwise NotFound, as for a
    serial nobody has (so another household's meter cannot even be told to exist)."""
    wanted = serial.strip().upper()
    for connection in household_connections(session, principal):
        if connection.meter is not None and connection.meter.serial == wanted:
            return connection.meter
    raise NotFound(f"no meter {serial} on your connections")
