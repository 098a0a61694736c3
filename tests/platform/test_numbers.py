"""Human numbers are per tenant, printable, unique and gap-free, also under concurrent use."""

import threading

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, select

from citygas.platform.numbers import NumberKind, insert_numbered, next_number
from citygas.platform.uow import Database
from tests.conftest import make_tenant


def test_numbers_count_up_per_tenant_and_kind(db: Database) -> None:
    a, b = make_tenant(db, "alpha", "ALP"), make_tenant(db, "bravo", "BRV")
    with db.unit_of_work(tenant=a.id) as uow:
        first = next_number(uow.session, NumberKind.CONSUMER)
        second = next_number(uow.session, NumberKind.CONSUMER)
        receipt = next_number(uow.session, NumberKind.RECEIPT)
        uow.commit()
    with db.unit_of_work(tenant=b.id) as uow:
        other = next_number(uow.session, NumberKind.CONSUMER)
        uow.commit()
    assert (first, second, receipt, other) == (
        "ALP-C-00000001",
        "ALP-C-00000002",
        "ALP-R-00000001",
        "BRV-C-00000001",
    )


def test_a_rolled_back_transaction_gives_its_number_back(db: Database) -> None:
    a = make_tenant(db, "alpha", "ALP")
    with db.unit_of_work(tenant=a.id) as uow:
        assert next_number(uow.session, NumberKind.TICKET) == "ALP-T-00000001"
        uow.rollback()
    with db.unit_of_work(tenant=a.id) as uow:
        assert next_number(uow.session, NumberKind.TICKET) == "ALP-T-00000001"
        uow.commit()


@pytest.mark.slow
def test_concurrent_writers_never_share_or_skip_a_number(db: Database) -> None:
    a = make_tenant(db, "alpha", "ALP")
    got: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def take(n: int) -> None:
        try:
            barrier.wait()
            for i in range(n):
                with db.unit_of_work(tenant=a.id) as uow:
                    number = next_number(uow.session, NumberKind.RECEIPT)
                    if i % 5 == 4:  # every fifth transaction fails after taking a number
                        uow.rollback()
                        continue
                    uow.commit()
                with lock:
                    got.append(number)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(25,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    values = sorted(int(n.rsplit("-", 1)[1]) for n in got)
    assert len(values) == 80
    assert values == list(range(1, 81)), "numbers must be unique and without gaps"


def _receipts_table() -> Table:
    """A scratch table with a unique number column, like vend.receipt_number."""
    return Table(
        "test_numbered_rows",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("tenant_id", Uuid, nullable=False),
        Column("number", String(32), nullable=False, unique=True),
        Column("note", String(20), nullable=False),
    )


def test_insert_numbered_writes_the_next_number_into_the_row_and_gives_it_back_on_rollback(
    db: Database,
) -> None:
    table = _receipts_table()
    table.create(db.engine)
    try:
        a = make_tenant(db, "alpha", "ALP")
        with db.unit_of_work(tenant=a.id) as uow:
            first = insert_numbered(
                uow.session, NumberKind.RECEIPT, table, {"id": 1, "tenant_id": a.id, "note": "x"}, "number"
            )
            uow.rollback()  # the number goes back with the row
        with db.unit_of_work(tenant=a.id) as uow:
            again = insert_numbered(
                uow.session, NumberKind.RECEIPT, table, {"id": 1, "tenant_id": a.id, "note": "x"}, "number"
            )
            after = next_number(uow.session, NumberKind.RECEIPT)
            wide = insert_numbered(
                uow.session,
                NumberKind.RECEIPT,
                table,
                {"id": 2, "tenant_id": a.id, "note": "y"},
                "number",
                width=1,
            )
            uow.commit()
        with db.engine.connect() as conn:
            stored = dict(conn.execute(select(table.c.id, table.c.number)).all())
        assert (first, again, after, wide) == (
            "ALP-R-00000001",
            "ALP-R-00000001",
            "ALP-R-00000002",
            "ALP-R-3",
        )
        assert stored == {1: "ALP-R-00000001", 2: "ALP-R-3"}
    finally:
        table.drop(db.engine)


def test_insert_numbered_never_cuts_a_number_longer_than_the_width(db: Database) -> None:
    table = _receipts_table()
    table.create(db.engine)
    try:
        a = make_tenant(db, "alpha", "ALP")
        with db.unit_of_work(tenant=a.id) as uow:
            for _ in range(12):
                next_number(uow.session, NumberKind.RECEIPT)
            number = insert_numbered(
                uow.session,
                NumberKind.RECEIPT,
                table,
                {"id": 1, "tenant_id": a.id, "note": "x"},
                "number",
                width=1,
            )
            uow.commit()
        assert number == "ALP-R-13"
    finally:
        table.drop(db.engine)
