"""`citygas ledger rebuild` as an operator runs it."""

from click.testing import CliRunner

from citygas.cli import main as cli
from citygas.platform.uow import Database
from tests.conftest import make_tenant


def test_rebuild_reports_agreement_on_a_consistent_ledger(db: Database, database_url: str) -> None:
    make_tenant(db, "alpha", "ALP")
    result = CliRunner().invoke(
        cli,
        ["ledger", "rebuild", "--check"],
        env={"CITYGAS_DATABASE_URL": database_url, "CITYGAS_ENVIRONMENT": "test"},
    )
    assert result.exit_code == 0, result.output
    assert "ledger balances agree with the postings" in result.output
