"""Human numbers are per tenant, printable, unique and gap-free, also under concurrent use."""

import threading

import pytest

from citygas.platform.numbers import NumberKind, next_number, take_numbers
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


def test_take_numbers_gives_consecutive_numbers_and_gives_them_back_on_rollback(db: Database) -> None:
    a = make_tenant(db, "alpha", "ALP")
    with db.unit_of_work(tenant=a.id) as uow:
        first = take_numbers(uow.session, NumberKind.RECEIPT, 3)
        uow.rollback()  # the numbers go back with the transaction
    with db.unit_of_work(tenant=a.id) as uow:
        again = take_numbers(uow.session, NumberKind.RECEIPT, 3)
        after = next_number(uow.session, NumberKind.RECEIPT)
        none = take_numbers(uow.session, NumberKind.RECEIPT, 0)
        uow.commit()
    assert first == again == ["ALP-R-00000001", "ALP-R-00000002", "ALP-R-00000003"]
    assert (after, none) == ("ALP-R-00000004", [])


def test_take_numbers_never_cuts_a_number_longer_than_the_width(db: Database) -> None:
    a = make_tenant(db, "alpha", "ALP")
    with db.unit_of_work(tenant=a.id) as uow:
        numbers = take_numbers(uow.session, NumberKind.RECEIPT, 12, width=1)
        uow.commit()
    assert numbers[8:] == ["ALP-R-9", "ALP-R-10", "ALP-R-11", "ALP-R-12"]
