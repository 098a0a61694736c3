"""Posting: balanced entries only, exactly once per idempotency key, append-only, closed periods refused,
balances kept in step and rebuildable."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from citygas.ledger.models import (
    AccountBalance,
    AppendOnlyViolation,
    BalanceShard,
    JournalEntry,
    LedgerAccount,
    Posting,
)
from citygas.ledger.rules import CHART, AccountCode, LedgerRuleError, Party, UnbalancedEntry, credit, debit
from citygas.ledger.service import (
    IdempotencyConflict,
    PeriodClosed,
    account_for,
    close_period,
    ensure_chart,
    get_balance,
    get_closed_through,
    get_posting_count,
    get_signed_balance,
    post_entry,
    post_gas_used,
    post_topup,
    rebuild_balances,
    reverse_entry,
)
from citygas.platform import time as clock
from citygas.platform.audit import AuditEntry
from citygas.platform.errors import Conflict, ValidationFailed
from citygas.platform.uow import Database
from citygas.tariffs.rules import allocate_topup, gas_value_for
from tests.ledger.conftest import Books, open_books


def _topup_lines(books: Books, gross: int = 50_000, vat: int = 1_500) -> list:  # type: ignore[type-arg]
    return [debit(books.gateway, gross), credit(books.credit, gross - vat), credit(books.vat, vat)]


def _counts(db: Database, books: Books) -> tuple[int, int]:
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        entries = uow.session.execute(select(func.count()).select_from(JournalEntry)).scalar_one()
        postings = uow.session.execute(select(func.count()).select_from(Posting)).scalar_one()
    return entries, postings


def test_the_chart_has_every_tenant_wide_account_once(db: Database, books: Books) -> None:
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        again = ensure_chart(uow.session)
        uow.commit()
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        codes = sorted(
            uow.session.execute(select(LedgerAccount.code).where(LedgerAccount.party == "")).scalars()
        )
    tenant_wide = sorted(code.value for code, spec in CHART.items() if spec.party is Party.NONE)
    assert codes == tenant_wide
    assert again[AccountCode.GATEWAY_CLEARING].id == books.gateway


def test_sub_accounts_need_a_party_and_tenant_wide_accounts_refuse_one(db: Database, books: Books) -> None:
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        with pytest.raises(ValidationFailed, match="kept per customer: say which one"):
            account_for(uow.session, AccountCode.CUSTOMER_CREDIT)
        with pytest.raises(ValidationFailed, match="whole tenant"):
            account_for(uow.session, AccountCode.GAS_REVENUE, "someone")
        assert account_for(uow.session, AccountCode.CUSTOMER_CREDIT, books.customer).id == books.credit


def test_a_balanced_entry_moves_each_balance_by_its_lines(db: Database, books: Books) -> None:
    # given a top-up of ₹500 of which ₹15 is VAT
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        # when it is posted
        posted = post_entry(
            uow.session, idempotency_key="pay_1", reference="vend V1", kind="topup", lines=_topup_lines(books)
        )
        uow.commit()
    # then the clearing account holds ₹500, the customer's credit ₹485 and VAT ₹15, each in normal terms
    assert not posted.replayed
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        s = uow.session
        assert get_balance(s, AccountCode.GATEWAY_CLEARING) == 50_000
        assert get_balance(s, AccountCode.CUSTOMER_CREDIT, books.customer) == 48_500
        assert get_balance(s, AccountCode.VAT_PAYABLE, "Maharashtra") == 1_500
        assert get_signed_balance(s, books.credit) == -48_500
        assert get_balance(s, AccountCode.CUSTOMER_CREDIT, uuid.uuid4()) == 0
    assert _counts(db, books) == (1, 3)


def test_an_unbalanced_entry_is_refused_and_changes_nothing(db: Database, books: Books) -> None:
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        with pytest.raises(UnbalancedEntry) as caught:
            post_entry(
                uow.session,
                idempotency_key="pay_1",
                reference="vend V1",
                kind="topup",
                lines=[debit(books.gateway, 50_000), credit(books.credit, 49_999)],
            )
        uow.commit()
    assert (
        str(caught.value)
        == "the entry does not balance: debits 50000 paise, credits 49999 paise (difference 1)"
    )
    assert _counts(db, books) == (0, 0)
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        assert get_balance(uow.session, AccountCode.GATEWAY_CLEARING) == 0


def test_lines_must_be_positive_whole_paise_and_at_least_two() -> None:
    account = uuid.uuid4()
    with pytest.raises(LedgerRuleError, match="positive paise, not -5"):
        debit(account, -5)
    with pytest.raises(LedgerRuleError, match="whole paise"):
        debit(account, 1.5)  # type: ignore[arg-type]
    with pytest.raises(LedgerRuleError, match="whole paise"):
        debit(account, True)


def test_an_account_of_another_tenant_cannot_be_posted_to(db: Database, books: Books) -> None:
    other = open_books(db, "bravo", "BRV")
    with (
        db.unit_of_work(tenant=books.tenant.id) as uow,
        pytest.raises(ValidationFailed, match="unknown ledger account"),
    ):
        post_entry(
            uow.session,
            idempotency_key="x",
            reference="r",
            kind="topup",
            lines=[debit(books.gateway, 100), credit(other.credit, 100)],
        )
    assert _counts(db, books) == (0, 0)


def test_a_retry_with_the_same_key_returns_the_first_entry(db: Database, books: Books) -> None:
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        first = post_entry(
            uow.session, idempotency_key="pay_1", reference="vend V1", kind="topup", lines=_topup_lines(books)
        )
        uow.commit()
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        again = post_entry(
            uow.session, idempotency_key="pay_1", reference="vend V1", kind="topup", lines=_topup_lines(books)
        )
        uow.commit()
    assert again.replayed
    assert again.entry.id == first.entry.id
    assert _counts(db, books) == (1, 3)
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        assert get_balance(uow.session, AccountCode.GATEWAY_CLEARING) == 50_000


def test_the_same_key_for_different_lines_is_a_conflict(db: Database, books: Books) -> None:
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        post_entry(
            uow.session, idempotency_key="pay_1", reference="V1", kind="topup", lines=_topup_lines(books)
        )
        with pytest.raises(IdempotencyConflict, match="pay_1 was used for another entry"):
            post_entry(
                uow.session,
                idempotency_key="pay_1",
                reference="V1",
                kind="topup",
                lines=_topup_lines(books, gross=60_000),
            )


def test_idempotency_keys_are_per_tenant(db: Database, books: Books) -> None:
    other = open_books(db, "bravo", "BRV")
    for b in (books, other):
        with db.unit_of_work(tenant=b.tenant.id) as uow:
            assert not post_entry(
                uow.session, idempotency_key="pay_1", reference="V1", kind="topup", lines=_topup_lines(b)
            ).replayed
            uow.commit()


def test_postings_cannot_be_edited_through_the_orm_or_the_database(db: Database, books: Books) -> None:
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        post_entry(
            uow.session, idempotency_key="pay_1", reference="V1", kind="topup", lines=_topup_lines(books)
        )
        uow.commit()
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        posting = uow.session.execute(select(Posting).order_by(Posting.line_no)).scalars().first()
        assert posting is not None
        posting.amount_paise = 1
        with pytest.raises(AppendOnlyViolation, match="post a reversing entry"):
            uow.session.flush()
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        entry = uow.session.execute(select(JournalEntry)).scalar_one()
        uow.session.delete(entry)
        with pytest.raises(AppendOnlyViolation):
            uow.session.flush()
    with db.engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.execute(text("UPDATE ledger_posting SET amount_paise = amount_paise + 1"))
    assert _counts(db, books) == (1, 3)


def test_a_reversal_cancels_an_entry_once(db: Database, books: Books) -> None:
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        first = post_entry(
            uow.session, idempotency_key="pay_1", reference="V1", kind="topup", lines=_topup_lines(books)
        )
        uow.commit()
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        reversal = reverse_entry(uow.session, first.entry.id, reason="payment reversed by the gateway")
        twice = reverse_entry(uow.session, first.entry.id, reason="again")
        uow.commit()
    assert reversal.entry.reverses_id == first.entry.id
    assert reversal.entry.reference == "reversal of V1"
    assert twice.replayed
    assert twice.entry.id == reversal.entry.id
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        assert get_balance(uow.session, AccountCode.GATEWAY_CLEARING) == 0
        assert get_balance(uow.session, AccountCode.CUSTOMER_CREDIT, books.customer) == 0
    assert _counts(db, books) == (2, 6)


def test_a_closed_period_refuses_postings_on_or_before_its_last_day(db: Database, books: Books) -> None:
    clock.freeze(datetime(2026, 4, 10, 6, 0, tzinfo=UTC))
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        close_period(uow.session, date(2026, 3, 31))
        uow.commit()
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        with pytest.raises(PeriodClosed, match="closed through 2026-03-31"):
            post_entry(
                uow.session,
                idempotency_key="late",
                reference="V0",
                kind="topup",
                lines=_topup_lines(books),
                effective_date=date(2026, 3, 31),
            )
        posted = post_entry(
            uow.session,
            idempotency_key="on_time",
            reference="V1",
            kind="topup",
            lines=_topup_lines(books),
            effective_date=date(2026, 4, 1),
        )
        today = post_entry(
            uow.session, idempotency_key="today", reference="V2", kind="topup", lines=_topup_lines(books)
        )
        uow.commit()
    assert posted.entry.effective_date == date(2026, 4, 1)
    assert today.entry.effective_date == date(2026, 4, 10)
    assert _counts(db, books) == (2, 6)


def test_a_period_closes_only_once_over_and_never_reopens(db: Database, books: Books) -> None:
    clock.freeze(datetime(2026, 4, 10, 6, 0, tzinfo=UTC))
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        with pytest.raises(ValidationFailed, match="2026-04-10 is not over yet"):
            close_period(uow.session, date(2026, 4, 10))
        close_period(uow.session, date(2026, 3, 31))
        uow.commit()
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        with pytest.raises(Conflict, match="does not reopen"):
            close_period(uow.session, date(2026, 2, 28))
        assert get_closed_through(uow.session) == date(2026, 3, 31)


def test_the_india_date_decides_the_default_effective_date(db: Database, books: Books) -> None:
    # 20:00 UTC on 31 March is 01:30 on 1 April in India
    clock.freeze(datetime(2026, 3, 31, 20, 0, tzinfo=UTC))
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        posted = post_entry(
            uow.session, idempotency_key="k", reference="V1", kind="topup", lines=_topup_lines(books)
        )
        uow.commit()
    assert posted.entry.effective_date == date(2026, 4, 1)


def test_a_top_up_posts_the_waterfall_vat_and_credit(db: Database, books: Books) -> None:
    # given ₹500 paid online by a customer owing ₹50 debt, a ₹100 instalment and ₹30 fixed charges, VAT 3 %
    allocation = allocate_topup(
        50_000, instalments_due=10_000, fixed_charges_due=3_000, debt_due=5_000, minimum_paise=10_000
    )
    split = gas_value_for(allocation.gas_credit_paise, rate_paise_per_scm=4_500, vat_bp=300)
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        # when the top-up is posted, with 5 paise of token rounding
        post_topup(
            uow.session,
            idempotency_key="pay_9",
            reference="vend V9",
            customer_id=books.customer,
            state="Maharashtra",
            source=AccountCode.GATEWAY_CLEARING,
            allocation=allocation,
            split=split,
            rounding_paise=5,
        )
        uow.commit()
    # then ₹320 of gas splits into ₹310.68 gas value and ₹9.32 VAT, and every account shows its part
    assert (split.gas_value_paise, split.vat_paise) == (31_068, 932)
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        s, c = uow.session, books.customer
        assert get_balance(s, AccountCode.GATEWAY_CLEARING) == 50_000
        assert get_balance(s, AccountCode.DEBT_RECEIVABLE, c) == -5_000
        assert get_balance(s, AccountCode.INSTALMENT_RECEIVABLE, c) == -10_000
        assert get_balance(s, AccountCode.CHARGES_RECEIVABLE, c) == -3_000
        assert get_balance(s, AccountCode.VAT_PAYABLE, "Maharashtra") == 932
        assert get_balance(s, AccountCode.CUSTOMER_CREDIT, c) == 31_073
        assert get_balance(s, AccountCode.TOKEN_ROUNDING) == 5
    # and burning ₹100 of gas turns credit into revenue
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        post_gas_used(
            uow.session, idempotency_key="use_1", reference="reading R1", customer_id=c, value_paise=10_000
        )
        uow.commit()
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        assert get_balance(uow.session, AccountCode.CUSTOMER_CREDIT, c) == 21_073
        assert get_balance(uow.session, AccountCode.GAS_REVENUE) == 10_000


def test_rebuild_reports_and_repairs_a_tampered_balance(db: Database, books: Books) -> None:
    # given a posted top-up and a balance changed behind the ledger's back
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        post_entry(
            uow.session, idempotency_key="pay_1", reference="V1", kind="topup", lines=_topup_lines(books)
        )
        uow.commit()
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        uow.session.execute(
            update(AccountBalance).where(AccountBalance.account_id == books.credit).values(balance_paise=-1)
        )
        uow.commit()
    # when the balances are checked without repair, then rebuilt
    checked = rebuild_balances(db, repair=False)
    rebuilt = rebuild_balances(db)
    again = rebuild_balances(db)
    # then the difference is reported exactly, repaired, and gone
    assert [(d.account_id, d.stored_paise, d.derived_paise) for d in checked.differences] == [
        (books.credit, -1, -48_500)
    ]
    assert [(d.account_id, d.stored_paise, d.derived_paise) for d in rebuilt.differences] == [
        (books.credit, -1, -48_500)
    ]
    assert again.ok
    assert again.tenants == 1
    assert again.accounts == len([s for s in CHART.values() if s.party is Party.NONE]) + 2
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        assert get_balance(uow.session, AccountCode.CUSTOMER_CREDIT, books.customer) == 48_500


def test_rebuild_finds_an_entry_whose_lines_were_removed(db: Database, books: Books) -> None:
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        posted = post_entry(
            uow.session, idempotency_key="pay_1", reference="V1", kind="topup", lines=_topup_lines(books)
        )
        uow.commit()
    with db.engine.begin() as conn:
        conn.execute(delete(Posting.__table__).where(Posting.__table__.c.account_id == books.vat))
    report = rebuild_balances(db, repair=False)
    assert report.unbalanced_entries == [(books.tenant.id, posted.entry.id, 1_500)]
    assert [(d.account_id, d.stored_paise, d.derived_paise) for d in report.differences] == [
        (books.vat, -1_500, 0)
    ]


def test_each_entry_is_audited_once(db: Database, books: Books) -> None:
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        post_entry(
            uow.session, idempotency_key="pay_1", reference="V1", kind="topup", lines=_topup_lines(books)
        )
        post_entry(
            uow.session, idempotency_key="pay_1", reference="V1", kind="topup", lines=_topup_lines(books)
        )
        uow.commit()
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        actions = uow.session.execute(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "ledger_entry.create")
        ).scalar_one()
    assert actions == 1


def test_an_account_created_in_a_rolled_back_transaction_is_not_remembered(db: Database) -> None:
    from citygas.ledger.service import _account_ids, account_id_for  # the cache under test
    from tests.conftest import make_tenant

    tenant = make_tenant(db, "cachet", "CCH")
    with db.unit_of_work(tenant=tenant.id) as uow:
        rolled_back = account_id_for(uow.session, AccountCode.SUSPENSE)
        uow.rollback()
    assert (tenant.id, "suspense", "") not in _account_ids
    with db.unit_of_work(tenant=tenant.id) as uow:
        kept = account_id_for(uow.session, AccountCode.SUSPENSE)
        uow.commit()
    assert kept != rolled_back
    assert _account_ids[(tenant.id, "suspense", "")] == kept


def test_tenant_wide_accounts_keep_their_balance_in_slices_that_rebuild_checks_and_repairs(
    db: Database, books: Books
) -> None:
    # given three top-ups: gateway clearing and VAT payable are tenant-wide, the customer's credit is not
    for n in range(3):
        with db.unit_of_work(tenant=books.tenant.id) as uow:
            post_entry(
                uow.session,
                idempotency_key=f"pay_{n}",
                reference=f"V{n}",
                kind="topup",
                lines=_topup_lines(books),
            )
            uow.commit()
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        s = uow.session
        sliced = dict(
            s.execute(
                select(BalanceShard.account_id, func.sum(BalanceShard.balance_paise)).group_by(
                    BalanceShard.account_id
                )
            ).all()
        )
        rows = dict(s.execute(select(AccountBalance.account_id, AccountBalance.balance_paise)).all())
        # then the shared accounts' deltas are in slices, the customer's in its row, and reads add them up
        assert sliced == {books.gateway: 150_000, books.vat: -4_500}
        assert rows[books.gateway] == 0
        assert rows[books.credit] == -145_500
        assert get_signed_balance(s, books.gateway) == 150_000
        vat = get_balance(s, AccountCode.VAT_PAYABLE, "Maharashtra")
        assert (vat, type(vat)) == (4_500, int)  # an int, though the sum of slices is NUMERIC on PostgreSQL
        assert get_posting_count(s, books.vat) == 3
    assert rebuild_balances(db, repair=False).ok
    # when a slice is changed behind the ledger's back
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        one = uow.session.execute(
            select(func.min(BalanceShard.shard)).where(BalanceShard.account_id == books.vat)
        ).scalar_one()
        uow.session.execute(
            update(BalanceShard)
            .where(BalanceShard.account_id == books.vat, BalanceShard.shard == one)
            .values(balance_paise=BalanceShard.balance_paise - 7)
        )
        uow.commit()
    checked = rebuild_balances(db, repair=False)
    rebuilt = rebuild_balances(db)
    # then rebuild reports the account's row plus slices against its postings, and repairs the sum
    assert [(d.account_id, d.stored_paise, d.derived_paise) for d in checked.differences] == [
        (books.vat, -4_507, -4_500)
    ]
    assert [(d.account_id, d.stored_paise) for d in rebuilt.differences] == [(books.vat, -4_507)]
    assert rebuild_balances(db, repair=False).ok
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        assert get_signed_balance(uow.session, books.vat) == -4_500


def test_a_top_up_creates_no_account_for_a_line_it_does_not_have(db: Database, books: Books) -> None:
    split = gas_value_for(50_000, 4_850, 300)
    with db.unit_of_work(tenant=books.tenant.id) as uow:
        post_topup(
            uow.session,
            idempotency_key="vend:1",
            reference="R1",
            customer_id=books.customer,
            state="Maharashtra",
            source=AccountCode.GATEWAY_CLEARING,
            allocation=allocate_topup(
                50_000, instalments_due=0, fixed_charges_due=0, debt_due=0, minimum_paise=1
            ),
            split=split,
        )
        uow.commit()
    with db.unit_of_work(tenant=books.tenant.id, read_only=True) as uow:
        customer_codes = set(
            uow.session.execute(
                select(LedgerAccount.code).where(LedgerAccount.party == str(books.customer))
            ).scalars()
        )
    # no debt, instalment or charges receivable was opened for zero lines
    assert customer_codes == {AccountCode.CUSTOMER_CREDIT.value}
