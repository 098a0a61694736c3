"""Every mutation writes an audit row; the rows are hash-chained per tenant and tampering shows."""

import itertools
import subprocess
import sys

from click.testing import CliRunner
from sqlalchemy import select, text

from citygas.cli import main as cli
from citygas.customers.service import do_register_customer
from citygas.platform.audit import AuditEntry, verify_chain
from citygas.platform.context import Actor
from citygas.platform.uow import Database
from tests.conftest import make_tenant, make_user

CLERK = Actor(kind="staff", id=None, label="Clerk Kumar")


def _entries(db: Database, tenant_id: object) -> list[AuditEntry]:
    with db.system(read_only=True) as uow:
        return list(
            uow.session.execute(
                select(AuditEntry).where(AuditEntry.tenant_id == tenant_id).order_by(AuditEntry.seq)
            ).scalars()
        )


def test_a_change_is_recorded_with_actor_before_after_and_reason(db: Database) -> None:
    a = make_tenant(db, "alpha", "ALP")
    with db.unit_of_work(tenant=a.id, actor=CLERK, request_id="req-1") as uow:
        customer = do_register_customer(
            uow.session, name="Asha Rao", phone="9812345678", charge_area_code="ALP-CA1", address="1 A St"
        )
        uow.because("walk-in registration").commit()
    with db.unit_of_work(tenant=a.id, actor=CLERK, request_id="req-2") as uow:
        row = uow.session.merge(customer)
        row.status = "active"
        uow.because("commissioned").commit()
    entries = [e for e in _entries(db, a.id) if e.entity_type == "customer"]
    created, updated = entries
    assert (created.action, created.actor_label, created.reason, created.request_id) == (
        "customer.create",
        "Clerk Kumar",
        "walk-in registration",
        "req-1",
    )
    assert created.after is not None
    assert created.after["name"] == "Asha Rao"
    assert (updated.action, updated.before, updated.after, updated.reason) == (
        "customer.update",
        {"status": "registered"},
        {"status": "active"},
        "commissioned",
    )


def test_secrets_are_recorded_as_changed_but_never_with_their_value(db: Database) -> None:
    a = make_tenant(db, "alpha", "ALP")
    make_user(db, a, "asha.clerk", ["back_office"], "a-long-password-1")
    user_rows = [e for e in _entries(db, a.id) if e.action == "staff_user.create"]
    assert user_rows[0].after is not None
    assert user_rows[0].after["password_hash"] == "[redacted]"
    assert "a-long-password" not in str(user_rows[0].after)


def test_the_chain_links_every_row_to_the_one_before(db: Database) -> None:
    a = make_tenant(db, "alpha", "ALP")
    entries = _entries(db, a.id)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(entries))
    with db.system(read_only=True) as uow:
        assert list(verify_chain(uow.session)) == []


def test_verify_finds_a_row_changed_behind_the_applications_back(db: Database) -> None:
    a = make_tenant(db, "alpha", "ALP")
    b = make_tenant(db, "bravo", "BRV")
    target = _entries(db, a.id)[1]
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_entry SET actor_label = 'nobody' WHERE id = :id"),
            {"id": target.id.hex if db.engine.dialect.name == "sqlite" else target.id},
        )
    with db.system(read_only=True) as uow:
        breaks = list(verify_chain(uow.session))
    assert [(x.tenant_id, x.seq, x.problem) for x in breaks] == [(a.id, 2, "row content changed")]
    assert b.id not in {x.tenant_id for x in breaks}


def test_verify_finds_a_deleted_row(db: Database) -> None:
    a = make_tenant(db, "alpha", "ALP")
    target = _entries(db, a.id)[0]
    with db.engine.begin() as conn:
        conn.execute(
            text("DELETE FROM audit_entry WHERE id = :id"),
            {"id": target.id.hex if db.engine.dialect.name == "sqlite" else target.id},
        )
    with db.system(read_only=True) as uow:
        breaks = list(verify_chain(uow.session))
    assert [(x.seq, x.problem) for x in breaks] == [(1, "row 1 is missing")]


def test_the_audit_verify_command_reports_the_tampered_row(db: Database, database_url: str) -> None:
    a = make_tenant(db, "alpha", "ALP")
    env = {"CITYGAS_DATABASE_URL": database_url, "CITYGAS_ENVIRONMENT": "test"}
    ok = CliRunner().invoke(cli, ["audit", "verify"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "audit log intact" in ok.output
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entry SET reason = 'edited' WHERE seq = 1"))
    bad = subprocess.run(
        [sys.executable, "-m", "citygas.cli", "audit", "verify"],
        env={**env, "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert f"TAMPERED tenant {a.id} row 1" in bad.stdout


def test_a_rolled_back_savepoint_forgets_only_its_own_entries(db: Database) -> None:
    a = make_tenant(db, "alpha", "ALP")
    with db.unit_of_work(tenant=a.id, actor=CLERK) as uow:
        do_register_customer(
            uow.session, name="Kept", phone="9812345678", charge_area_code="ALP-CA1", address="x"
        )
        try:
            with uow.session.begin_nested():
                do_register_customer(
                    uow.session, name="Dropped", phone="9812345679", charge_area_code="ALP-CA1", address="y"
                )
                raise RuntimeError("the inner step fails")
        except RuntimeError:
            pass
        uow.commit()
    names = [e.after["name"] for e in _entries(db, a.id) if e.action == "customer.create" and e.after]
    assert names == ["Kept"]


def test_a_reason_given_after_a_savepoint_reaches_the_rows_written_before_it(db: Database) -> None:
    # SQLAlchemy fires the commit hook when a savepoint is released; the entries must wait for the real
    # commit, or the rows before the savepoint go without the reason the use case gives at its end.
    a = make_tenant(db, "alpha", "ALP")
    with db.unit_of_work(tenant=a.id, actor=CLERK) as uow:
        do_register_customer(
            uow.session, name="Asha Rao", phone="9812345678", charge_area_code="ALP-CA1", address="1 A St"
        )
        with uow.session.begin_nested():
            do_register_customer(
                uow.session, name="Bina Das", phone="9812345679", charge_area_code="ALP-CA1", address="2 B St"
            )
        uow.because("two walk-ins").commit()
    reasons = [e.reason for e in _entries(db, a.id) if e.entity_type == "customer"]
    assert reasons == ["two walk-ins", "two walk-ins"]
