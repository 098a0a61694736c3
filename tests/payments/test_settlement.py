"""Settlement reports matched to vends and posted; daily collections per channel; agent floats."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from citygas.ledger.rules import AccountCode
from citygas.ledger.service import get_balance
from citygas.payments.settlement.models import SettlementLine
from citygas.payments.settlement.rules import SettlementSource
from citygas.payments.settlement.service import (
    SettlementConflict,
    SettlementReportInvalid,
    do_import_settlement_report,
    list_agent_floats,
    list_daily_collections,
    list_unsettled,
)
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from citygas.vending.rules import Channel, VendRequest
from citygas.vending.service import do_vend
from tests.conftest import login, make_user
from tests.meters.test_registry import MASTER
from tests.payments.conftest_bbps import ASHA, MODELS, biller_app, priced_tenant_with_meter
from tests.web.db_snapshot import differences, snapshot

__all__ = ["MODELS"]
HEADER = "entity_id,amount,fee,tax,settlement_id,settled_at\n"
# 31 March 2026 20:00 UTC is 1 April 01:30 in India: the IST day differs from the UTC day on purpose.
PRICED = datetime(2026, 3, 1, tzinfo=UTC)
LATE = datetime(2026, 3, 31, 20, 0, tzinfo=UTC)
NOON = datetime(2026, 4, 1, 6, 30, tzinfo=UTC)  # 1 April 12:00 IST


def vend(
    db: Database, tenant: Tenant, ref: str, amount: int, at: datetime, channel: Channel = Channel.ONLINE
) -> None:
    with db.unit_of_work(tenant=tenant.id) as uow:
        do_vend(
            uow.session,
            VendRequest(
                channel=channel,
                amount_paise=amount,
                idempotency_key=f"test:{ref}",
                consumer_number=ASHA,
                payment_reference=ref,
                source_party="agent-7" if channel is Channel.CSC else None,
            ),
            master_key=MASTER,
            now=at,
        )
        uow.commit()


@pytest.fixture
def vended(db: Database) -> Tenant:
    """Three online vends: pay_A ₹500, pay_B ₹300, pay_C ₹200 (never settled)."""
    tenant = priced_tenant_with_meter(db, priced_from=PRICED)
    for ref, amount in (("pay_A", 50_000), ("pay_B", 30_000), ("pay_C", 20_000)):
        vend(db, tenant, ref, amount, NOON)
    return tenant


REPORT = (
    HEADER
    + "pay_A,50000,1180,180,setl_1,2026-04-03T10:00:00+05:30\n"  # matched
    + "pay_B,29000,0,0,setl_1,2026-04-03T10:00:00+05:30\n"  # settled ₹10 short
    + "pay_X,7000,118,18,setl_1,2026-04-03T10:00:00+05:30\n"  # we know no pay_X
)


def _import(db: Database, tenant: Tenant, text: str = REPORT) -> object:
    with db.unit_of_work(tenant=tenant.id) as uow:
        result = do_import_settlement_report(
            uow.session, text=text, source=SettlementSource.GATEWAY, imported_by="test"
        )
        uow.commit()
    return result


def test_each_line_is_matched_missing_extra_or_mismatched_and_the_bank_is_posted(
    db: Database, vended: Tenant
) -> None:
    result = _import(db, vended)
    with db.unit_of_work(tenant=vended.id, read_only=True) as uow:
        s = result.settlements[0].settlement  # type: ignore[attr-defined]
        outcomes = [
            (ln.payment_id, ln.outcome, ln.our_amount_paise)
            for ln in uow.session.execute(select(SettlementLine).order_by(SettlementLine.line_no)).scalars()
        ]
        balances = {
            code: get_balance(uow.session, code)
            for code in (
                AccountCode.BANK,
                AccountCode.GATEWAY_FEES,
                AccountCode.GATEWAY_CLEARING,
                AccountCode.SUSPENSE,
            )
        }
        missing = [
            v.payment_reference
            for v in list_unsettled(uow.session, source=SettlementSource.GATEWAY, through=date(2026, 4, 1))
        ]
    assert outcomes == [
        ("pay_A", "matched", 50_000),
        ("pay_B", "amount_mismatch", 30_000),
        ("pay_X", "extra", None),
    ]
    assert (s.gross_paise, s.fee_paise, s.tax_paise, s.net_paise, s.clearing_paise, s.suspense_paise) == (
        86_000, 1_298, 198, 84_702, 80_000, 6_000,
    )  # fmt: skip
    # Bank gets the net, fees are an expense, the clearing keeps only pay_C, suspense holds ₹70 − ₹10.
    assert balances == {
        AccountCode.BANK: 84_702,
        AccountCode.GATEWAY_FEES: 1_298,
        AccountCode.GATEWAY_CLEARING: 20_000,
        AccountCode.SUSPENSE: -6_000,
    }
    assert missing == ["pay_C"]


def test_importing_the_same_settlement_again_changes_nothing(db: Database, vended: Tenant) -> None:
    _import(db, vended)
    before = snapshot(db)
    again = _import(db, vended)
    assert [i.replayed for i in again.settlements] == [True]  # type: ignore[attr-defined]
    assert differences(before, snapshot(db)) == {}


def test_a_settlement_id_reused_with_other_lines_is_refused_and_changes_nothing(
    db: Database, vended: Tenant
) -> None:
    _import(db, vended)
    before = snapshot(db)
    with pytest.raises(SettlementConflict, match="setl_1 was imported already with other lines"):
        _import(db, vended, REPORT.replace("pay_X,7000", "pay_X,7001"))
    assert differences(before, snapshot(db)) == {}


def test_a_payment_settled_again_in_a_later_settlement_is_a_duplicate(db: Database, vended: Tenant) -> None:
    _import(db, vended)
    result = _import(db, vended, HEADER + "pay_A,50000,0,0,setl_2,2026-04-04T10:00:00+05:30\n")
    s = result.settlements[0].settlement  # type: ignore[attr-defined]
    assert (s.duplicate_count, s.clearing_paise, s.suspense_paise) == (1, 0, 50_000)


def test_an_unreadable_report_lists_every_problem_and_imports_nothing(db: Database, vended: Tenant) -> None:
    before = snapshot(db)
    text = HEADER + "pay_A,500.00,0,0,setl_9,2026-04-03T10:00:00+05:30\npay_B,30000,0,0,setl_9,yesterday\n"
    with pytest.raises(SettlementReportInvalid) as raised:
        _import(db, vended, text)
    assert raised.value.extra["problems"] == [
        "line 2: amount '500.00' is not whole paise — amounts are whole paise (₹500 is 50000)",
        "line 3: settled_at 'yesterday' is neither ISO 8601 nor Unix seconds",
    ]
    assert differences(before, snapshot(db)) == {}


def test_daily_collections_count_and_sum_vends_per_channel_per_india_day(
    db: Database, vended: Tenant
) -> None:
    vend(db, vended, "pay_D", 10_000, LATE)  # 1 April in India, 31 March in UTC
    vend(db, vended, "CC0000000001", 25_000, NOON, Channel.BBPS)
    with db.unit_of_work(tenant=vended.id, read_only=True) as uow:
        rows = list_daily_collections(uow.session, first=date(2026, 3, 31), last=date(2026, 4, 1))
    assert [(r.day, r.channel, r.count, r.amount_paise) for r in rows] == [
        (date(2026, 4, 1), "bbps", 1, 25_000),
        (date(2026, 4, 1), "online", 4, 110_000),
    ]


def test_agent_float_reconciliation_agrees_with_the_vend_records(db: Database) -> None:
    tenant = priced_tenant_with_meter(db, priced_from=PRICED)
    from citygas.ledger.rules import credit, debit
    from citygas.ledger.service import account_for, post_entry

    with db.unit_of_work(tenant=tenant.id) as uow:
        post_entry(
            uow.session,
            idempotency_key="float-1",
            reference="UTR1",
            kind="csc_float_topup",
            lines=[
                debit(account_for(uow.session, AccountCode.BANK).id, 100_000),
                credit(account_for(uow.session, AccountCode.AGENT_FLOAT, "agent-7").id, 100_000),
            ],
            effective_date=date(2026, 3, 31),
        )
        uow.commit()
    vend(db, tenant, "CSC 1", 30_000, NOON, Channel.CSC)
    vend(db, tenant, "CSC 2", 20_000, NOON, Channel.CSC)
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        (row,) = list_agent_floats(uow.session, first=date(2026, 4, 1), last=date(2026, 4, 1))
    assert (row.agent, row.opening_paise, row.topups_paise, row.vends_paise, row.closing_paise) == (
        "agent-7", 100_000, 0, 50_000, 50_000,
    )  # fmt: skip
    assert (row.recorded_vend_count, row.recorded_vends_paise, row.difference_paise) == (2, 50_000, 0)


def test_the_back_office_uploads_a_report_and_exports_the_collections(
    db: Database, vended: Tenant, settings: object
) -> None:
    make_user(db, vended, "alpha.office", ["back_office"], "a-long-password-1")
    with biller_app(db, settings) as client:  # type: ignore[arg-type]
        login(client, "alpha.office", "a-long-password-1")
        page = client.get("/ops/settlement")
        assert page.status_code == 200
        from tests.conftest import csrf_from

        response = client.post(
            "/ops/settlement",
            data={"csrf_token": csrf_from(page.text), "source": "gateway"},
            files={"report": ("setl.csv", REPORT.encode(), "text/csv")},
        )
        assert response.status_code == 200, response.text
        assert "1 matched, 1 amount mismatch, 1 extra" in response.text
        export = client.get("/ops/collections.csv?first=2026-04-01&last=2026-04-01")
    assert export.text == "day,channel,count,amount_paise\n2026-04-01,online,3,100000\n"


def test_a_role_without_payments_reconcile_cannot_see_the_settlement_pages(
    db: Database, vended: Tenant, settings: object
) -> None:
    make_user(db, vended, "alpha.store", ["store_keeper"], "a-long-password-1")
    with biller_app(db, settings) as client:  # type: ignore[arg-type]
        login(client, "alpha.store", "a-long-password-1")
        assert client.get("/ops/settlement").status_code == 403
        assert client.get("/ops/collections.csv").status_code == 403
