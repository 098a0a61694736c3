"""The vend's fast path keeps its promises: few statements, the same prices as the tariffs service, the
ledger entry linked to its vend, and the audit trail as the flush would write it."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select

from citygas.customers.models import Customer
from citygas.ledger.models import JournalEntry
from citygas.platform.audit import AuditEntry
from citygas.platform.uow import Database
from citygas.tariffs.service import get_gas_quote
from citygas.vending.rules import Channel, VendRequest
from citygas.vending.service import do_vend, read_context
from tests.meters.test_registry import MASTER
from tests.vending.conftest import START, Shop

# Claim, the customer with meter, model and key, today's vends with balances and prices, the book, the
# TIDs, the entry, its lines, two balance upserts (the accounts' own rows, the slices), the receipt
# counter, the vend row, the two outbox events (one INSERT), the audit head and the audit rows (two on
# SQLite, one statement on PostgreSQL): 14 on PostgreSQL, 15 on SQLite.
STEADY_STATEMENTS = 17


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def _vend(db: Database, shop: Shop, key: str, *, now: Any = START) -> Any:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        outcome = do_vend(
            uow.session,
            VendRequest(
                channel=Channel.ONLINE,
                amount_paise=50_000,
                idempotency_key=key,
                consumer_number=shop.consumer_number,
            ),
            master_key=MASTER,
            now=now,
        )
        uow.commit()
        return outcome


def test_a_vend_takes_a_bounded_number_of_statements(db: Database, shop: Shop) -> None:
    _vend(db, shop, "first")  # opens the customer's accounts, sends the tariff to the meter
    with _statements(db) as seen:
        _vend(db, shop, "second", now=START + timedelta(minutes=5))
    # BEGIN/COMMIT/SAVEPOINT are not counted by the driver hook; every other round trip is
    assert len(seen) <= STEADY_STATEMENTS, "\n".join(seen)


def test_the_vend_reads_the_price_the_tariffs_service_quotes(db: Database, shop: Shop) -> None:
    with db.unit_of_work(tenant=shop.tenant.id, read_only=True) as uow:
        customer = uow.session.execute(
            select(Customer).where(Customer.consumer_number == shop.consumer_number)
        ).scalar_one()
        context = read_context(uow.session, customer, START)
        quote = get_gas_quote(uow.session, customer.charge_area_id, START)
    assert context.price is not None
    assert (context.price.rate_paise_per_scm, context.price.state, context.price.vat_bp) == (
        quote.rate_paise_per_scm,
        quote.state,
        quote.vat_bp,
    )
    assert (context.vends_today, context.paid_today_paise, context.plan_id) == (0, 0, None)


def test_the_entry_names_its_vend_and_the_audit_row_carries_the_receipt(db: Database, shop: Shop) -> None:
    vend = _vend(db, shop, "pay-1").vend
    with db.unit_of_work(tenant=shop.tenant.id, read_only=True) as uow:
        entry = uow.session.get(JournalEntry, vend.ledger_entry_id)
        audit = uow.session.execute(
            select(AuditEntry).where(AuditEntry.action == "vend.create", AuditEntry.entity_id == str(vend.id))
        ).scalar_one()
    assert entry is not None
    assert entry.reference == f"vend {vend.id}"
    assert entry.idempotency_key == "vend:pay-1"
    assert audit.after is not None
    assert audit.after["receipt_number"] == vend.receipt_number == "ALP-R-00000001"
    assert audit.after["ledger_entry_id"] == str(entry.id)
