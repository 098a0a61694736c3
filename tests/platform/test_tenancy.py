"""The tenant wall is enforced centrally: queries are scoped, writes are stamped, and a query with no
tenant fails closed."""

import pytest
from sqlalchemy import func, select, update

from citygas.customers.models import Customer
from citygas.customers.service import do_register_customer
from citygas.platform.tenancy import (
    ChargeArea,
    TenantContextMissing,
    TenantFilterMissing,
    TenantViolation,
    tenant_filtered,
)
from citygas.platform.uow import Database
from tests.conftest import make_tenant


def _customers(db: Database) -> tuple[object, object]:
    a, b = make_tenant(db, "alpha", "ALP"), make_tenant(db, "bravo", "BRV")
    with db.unit_of_work(tenant=a.id) as uow:
        do_register_customer(
            uow.session, name="Asha Rao", phone="9812345678", charge_area_code="ALP-CA1", address="1 A St"
        )
        uow.commit()
    with db.unit_of_work(tenant=b.id) as uow:
        do_register_customer(
            uow.session, name="Bina Das", phone="9812345679", charge_area_code="BRV-CA1", address="2 B St"
        )
        do_register_customer(
            uow.session, name="Chetan Roy", phone="9812345670", charge_area_code="BRV-CA1", address="3 B St"
        )
        uow.commit()
    return a, b


def test_a_tenant_sees_only_its_own_rows(db: Database) -> None:
    a, _ = _customers(db)
    with db.unit_of_work(tenant=a.id, read_only=True) as uow:  # type: ignore[attr-defined]
        names = uow.session.execute(select(Customer.name)).scalars().all()
        counted = uow.session.execute(select(func.count()).select_from(Customer)).scalar_one()
        joined = uow.session.execute(
            select(Customer.name, ChargeArea.code).join(ChargeArea, Customer.charge_area_id == ChargeArea.id)
        ).all()
    assert names == ["Asha Rao"]
    assert counted == 1
    assert [tuple(r) for r in joined] == [("Asha Rao", "ALP-CA1")]


def test_get_by_primary_key_does_not_cross_the_wall(db: Database) -> None:
    a, b = _customers(db)
    with db.unit_of_work(tenant=b.id, read_only=True) as uow:  # type: ignore[attr-defined]
        b_customer_id = uow.session.execute(select(Customer.id)).scalars().first()
    with db.unit_of_work(tenant=a.id, read_only=True) as uow:  # type: ignore[attr-defined]
        assert uow.session.get(Customer, b_customer_id) is None


def test_bulk_update_touches_only_the_callers_rows(db: Database) -> None:
    a, _ = _customers(db)
    with db.unit_of_work(tenant=a.id) as uow:  # type: ignore[attr-defined]
        uow.session.execute(update(Customer).values(status="active"))
        uow.commit()
    with db.system(read_only=True) as uow:
        statuses = dict(uow.session.execute(select(Customer.name, Customer.status)).all())
    assert statuses == {"Asha Rao": "active", "Bina Das": "registered", "Chetan Roy": "registered"}


def test_a_query_without_a_tenant_fails_closed(db: Database) -> None:
    _customers(db)
    with db.unit_of_work(tenant=None, read_only=True) as uow, pytest.raises(TenantContextMissing):  # type: ignore[arg-type]
        uow.session.execute(select(func.count()).select_from(Customer))


def test_a_row_cannot_be_written_into_another_tenant(db: Database) -> None:
    a, b = _customers(db)
    with db.unit_of_work(tenant=a.id) as uow:  # type: ignore[attr-defined]
        area = uow.session.execute(select(ChargeArea)).scalar_one()
        uow.session.add(ChargeArea(tenant_id=b.id, ga_id=area.ga_id, code="X", name="Smuggled"))  # type: ignore[attr-defined]
        with pytest.raises(TenantViolation):
            uow.session.flush()
    with db.system(read_only=True) as uow:
        assert (
            uow.session.execute(
                select(func.count()).select_from(ChargeArea).where(ChargeArea.code == "X")
            ).scalar_one()
            == 0
        )


def test_new_rows_take_the_callers_tenant(db: Database) -> None:
    a, _ = _customers(db)
    with db.unit_of_work(tenant=a.id) as uow:  # type: ignore[attr-defined]
        customer = do_register_customer(
            uow.session, name="Divya", phone="9812345600", charge_area_code="ALP-CA1", address="x"
        )
        uow.commit()
    assert customer.tenant_id == a.id  # type: ignore[attr-defined]


def test_a_core_statement_on_a_scoped_table_fails_closed_unless_it_filters_by_tenant_itself(
    db: Database,
) -> None:
    # The loader criteria reach ORM entities only: a Core select of customer would read every tenant.
    a, _ = _customers(db)
    customers = Customer.__table__
    with db.unit_of_work(tenant=a.id, read_only=True) as uow:  # type: ignore[attr-defined]
        with pytest.raises(TenantFilterMissing):
            uow.session.execute(select(customers.c.name))
        with pytest.raises(TenantFilterMissing):
            uow.session.execute(select(func.count()).select_from(customers))
        # marked, with the tenant filter written by hand, it runs as written
        names = uow.session.execute(
            tenant_filtered(select(customers.c.name).where(customers.c.tenant_id == a.id))  # type: ignore[attr-defined]
        ).scalars()
        assert list(names) == ["Asha Rao"]
    with db.unit_of_work(tenant=None, read_only=True) as uow, pytest.raises(TenantContextMissing):  # type: ignore[arg-type]
        uow.session.execute(tenant_filtered(select(customers.c.name)))
    with db.system(read_only=True) as uow:  # the platform scope reads across tenants on purpose
        assert len(uow.session.execute(select(customers.c.name)).all()) == 3
