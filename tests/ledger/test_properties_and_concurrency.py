"""Properties over random postings (every entry balances, rebuild reproduces the balances exactly) and
real threads with separate units of work (one entry per idempotency key, no lost balance updates)."""

from __future__ import annotations

import threading
import uuid
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from citygas.ledger.models import JournalEntry, Posting
from citygas.ledger.rules import AccountCode, Line, Side, UnbalancedEntry, check_balanced, credit, debit
from citygas.ledger.service import (
    account_for,
    ensure_chart,
    get_posting_count,
    get_signed_balance,
    post_entry,
    rebuild_balances,
)
from citygas.platform.audit import AuditEntry
from citygas.platform.uow import Database
from tests.conftest import make_tenant
from tests.ledger.conftest import Books

_tenant_numbers = count(1)

# An entry drawn as (account index, side, amount) pairs; the last line is added to balance it.
raw_lines = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from(list(Side)), st.integers(1, 10_000_000)),
    min_size=1,
    max_size=6,
)


def _balanced(accounts: list[uuid.UUID], raw: list[tuple[int, Side, int]], closing: int) -> list[Line]:
    lines = [Line(accounts[i], side, amount) for i, side, amount in raw]
    net = sum(line.signed_paise for line in lines)
    if net == 0:
        return lines
    return [*lines, Line(accounts[closing], Side.CREDIT if net > 0 else Side.DEBIT, abs(net))]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.tuples(raw_lines, st.integers(0, 5), st.booleans()), min_size=1, max_size=8))
def test_random_postings_balance_and_rebuild_reproduces_every_balance(
    db: Database, entries: list[tuple[list[tuple[int, Side, int]], int, bool]]
) -> None:
    n = next(_tenant_numbers)
    tenant = make_tenant(db, f"prop{n}", f"P{n}")
    with db.unit_of_work(tenant=tenant.id) as uow:
        ensure_chart(uow.session)
        accounts = [account_for(uow.session, AccountCode.CUSTOMER_CREDIT, f"c{i}").id for i in range(6)]
        uow.commit()
    expected = dict.fromkeys(accounts, 0)
    for i, (raw, closing, make_unbalanced) in enumerate(entries):
        lines = _balanced(accounts, raw, closing)
        if make_unbalanced:
            lines = [*lines, debit(accounts[closing], 1)]
        with db.unit_of_work(tenant=tenant.id) as uow:
            try:
                post_entry(uow.session, idempotency_key=f"k{i}", reference=f"r{i}", kind="test", lines=lines)
            except UnbalancedEntry:
                assert make_unbalanced
                continue
            uow.commit()
        for line in lines:
            expected[line.account_id] += line.signed_paise
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        s = uow.session
        unbalanced = s.execute(
            select(Posting.entry_id).group_by(Posting.entry_id).having(func.sum(Posting.amount_paise) != 0)
        ).all()
        assert unbalanced == []
        assert {a: get_signed_balance(s, a) for a in accounts} == expected
        assert sum(expected.values()) == 0
    report = rebuild_balances(db, repair=False)
    assert report.ok, report.differences


def test_the_smallest_entry_is_two_lines() -> None:
    account = uuid.uuid4()
    with pytest.raises(ValueError, match="at least two lines"):
        check_balanced([debit(account, 1)])


@pytest.mark.slow
def test_two_threads_posting_the_same_key_make_one_entry(db: Database, books: Books) -> None:
    lines = [debit(books.gateway, 50_000), credit(books.credit, 48_500), credit(books.vat, 1_500)]
    results: list[tuple[uuid.UUID, bool]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def pay() -> None:
        try:
            with db.unit_of_work(tenant=books.tenant.id) as uow:
                barrier.wait()
                posted = post_entry(
                    uow.session, idempotency_key="pay_1", reference="V1", kind="topup", lines=lines
                )
                uow.commit()
                results.append((posted.entry.id, posted.replayed))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pay) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({entry_id for entry_id, _ in results}) == 1
    assert sorted(replayed for _, replayed in results) == [False, True]
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        s = uow.session
        assert s.execute(select(func.count()).select_from(JournalEntry)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(Posting)).scalar_one() == 3
        assert get_signed_balance(s, books.gateway) == 50_000
        audited = s.execute(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "ledger_entry.create")
        ).scalar_one()
        assert audited == 1


@pytest.mark.slow
def test_concurrent_postings_across_shared_accounts_lose_no_update_and_never_deadlock(
    db: Database, books: Books
) -> None:
    # Threads post in opposite account orders; balances are locked in id order, so none deadlocks.
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def post(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(20):
                a, b = (books.gateway, books.credit) if worker % 2 else (books.credit, books.gateway)
                with db.unit_of_work(tenant=books.tenant.id) as uow:
                    post_entry(
                        uow.session,
                        idempotency_key=f"w{worker}-{i}",
                        reference=f"w{worker}-{i}",
                        kind="test",
                        lines=[credit(a, 100), debit(b, 100), debit(books.vat, 7), credit(books.revenue, 7)],
                    )
                    uow.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        s = uow.session
        # two workers moved 40 × ₹1 each way: the shared accounts net to zero, VAT got 80 × 7 paise
        assert get_signed_balance(s, books.gateway) == 0
        assert get_signed_balance(s, books.credit) == 0
        assert get_signed_balance(s, books.vat) == 560
        # VAT payable keeps its balance in slices: the row plus the slices count every line
        assert get_posting_count(s, books.vat) == 80
    assert rebuild_balances(db, repair=False).ok
