"""The migrations and the models agree, on both databases; SQLite runs as configured."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from citygas.models import metadata
from citygas.platform.migrations import head_revision


def test_migrations_leave_no_drift_from_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == [], f"models and migrations differ; run `citygas db revision -m ...`: {diff}"


def test_database_is_at_the_head_migration(engine: Engine) -> None:
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()


def test_every_business_table_carries_the_tenant(engine: Engine) -> None:
    # Platform-internal tables are read only in the platform scope; every other table is a business
    # table and must carry tenant_id (the wall, and the distribution column of a sharded database).
    platform_tables = {
        "tenant",
        "outbox_event",
        "outbox_handled",
        "scheduled_job",
        "web_session",
        "otp_challenge",
        "audit_chain_head",
        "number_sequence",
        "alembic_version",
    }
    missing = [
        t.name for t in metadata.sorted_tables if t.name not in platform_tables and "tenant_id" not in t.c
    ]
    assert missing == []


def test_sqlite_runs_in_wal_with_foreign_keys(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
