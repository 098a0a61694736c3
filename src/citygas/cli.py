"""`citygas …`: serve, migrate, worker, demo, audit, sts. Operators' scripts rely on these names."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import click

from citygas.platform.db import make_engine
from citygas.platform.settings import get_settings
from citygas.platform.uow import Database


def _database() -> Database:
    settings = get_settings()
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return Database(make_engine(settings.database_url))


@click.group()
def main() -> None:
    """citygas: prepaid piped natural gas for City Gas Distribution companies."""
    get_settings.cache_clear()  # each command reads the environment it is run in


@main.command()
def migrate() -> None:
    """Bring the database schema to the latest migration."""
    from citygas.platform.migrations import head_revision, upgrade  # noqa: PLC0415

    db = _database()
    upgrade(db.engine)
    click.echo(
        f"database at migration {head_revision()} ({db.engine.url.render_as_string(hide_password=True)})"
    )


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default from CITYGAS_HOST).")
@click.option("--port", default=None, type=int, help="Port (default from CITYGAS_PORT).")
@click.option(
    "--workers", default=1, show_default=True, help="Web processes (PostgreSQL only for more than 1)."
)
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the API, portals and customer app."""
    import uvicorn  # noqa: PLC0415

    settings = get_settings()
    uvicorn.run(
        "citygas.web.app:create_app_from_env",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
    )


@main.command()
@click.option("--once", is_flag=True, help="Relay one batch and run due jobs, then exit.")
def worker(once: bool) -> None:
    """Relay the outbox to its handlers and run scheduled jobs."""
    from citygas.platform.plugins import load_plugins  # noqa: PLC0415
    from citygas.platform.worker import Worker  # noqa: PLC0415
    from citygas.web.observability import configure_logging  # noqa: PLC0415

    settings = get_settings()
    configure_logging(settings.log_level, json_logs=settings.log_json)
    load_plugins(settings.plugin_modules)
    w = Worker(
        _database(),
        poll_seconds=settings.worker_poll_seconds,
        max_attempts=settings.outbox_max_attempts,
        lease=timedelta(seconds=settings.outbox_lease_seconds),
    )
    if once:
        click.echo(f"handled {w.run_once()} events")
        return
    w.install_signal_handlers()
    w.run_forever()


@main.group()
def demo() -> None:
    """The demo operator and its CGDs."""


@demo.command("seed")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has tenants.")
def demo_seed(if_empty: bool) -> None:
    """Create the demo operator, two CGDs, one user per role and households."""
    from citygas.demo.seed import is_seeded, seed  # noqa: PLC0415

    db = _database()
    if is_seeded(db):
        if if_empty:
            click.echo("demo already seeded")
            return
        raise click.ClickException("the database already has tenants; seed an empty database")
    logins = seed(db)
    click.echo(f"seeded {len(logins)} staff logins")


@demo.command("logins")
def demo_logins() -> None:
    """Print one login per role, and the customer app logins."""
    from citygas.demo.seed import CGDS, HOMES, customer_logins, demo_password  # noqa: PLC0415
    from citygas.identity.rules import ROLE_LABELS, Role  # noqa: PLC0415

    base = get_settings().base_url
    click.echo(f"\ncitygas demo on {base}\n")
    click.echo(f"{'who':<42} {'username':<24} {'password':<24} page")
    click.echo(
        f"{'Operator admin':<42} {'admin':<24} {demo_password(Role.OPERATOR_ADMIN):<24} "
        f"{base}/login → {HOMES[Role.OPERATOR_ADMIN]}"
    )
    cgd = CGDS[0]
    for role in Role:
        if role is Role.OPERATOR_ADMIN:
            continue
        who = f"{ROLE_LABELS[role]}, {cgd.name}"
        click.echo(
            f"{who:<42} {cgd.code.lower() + '.' + role.value:<24} {demo_password(role):<24} "
            f"{base}/login → {HOMES[role]}"
        )
    click.echo(f"(the other CGD's users are the same with the prefix {CGDS[1].code.lower()}.)")
    for name, phone in customer_logins():
        click.echo(
            f"Customer of {name}: phone {phone} at {base}/app/login "
            "(two connections; the code is shown on the page in development)"
        )
    click.echo("")


@demo.command("api-key")
@click.option("--tenant", "slug", default="demogas", show_default=True)
@click.option("--scope", "scopes", multiple=True, default=["customers:read", "areas:read"], show_default=True)
def demo_api_key(slug: str, scopes: tuple[str, ...]) -> None:
    """Create a fresh API key for a demo tenant and print it (shown once)."""
    from sqlalchemy import select  # noqa: PLC0415

    from citygas.demo.seed import SEED_ACTOR  # noqa: PLC0415
    from citygas.identity.service import do_create_api_key  # noqa: PLC0415
    from citygas.platform.tenancy import Tenant  # noqa: PLC0415

    db = _database()
    with db.system(read_only=True) as uow:
        tenant = uow.session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    if tenant is None:
        raise click.ClickException(f"no tenant {slug!r}; run `citygas demo seed` first")
    with db.unit_of_work(tenant=tenant.id, actor=SEED_ACTOR) as uow:
        _, secret = do_create_api_key(
            uow.session, name="demo key", scopes=list(scopes), created_by="citygas demo api-key"
        )
        uow.because("demo API key").commit()
    click.echo(secret)


@main.group()
def meter() -> None:
    """Meters: the simulator, the fleet simulator, demo tokens."""


@meter.command("fleet")
@click.option("--meters", "count", default=1000, show_default=True, type=click.IntRange(1, 10_000_000))
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3660))
@click.option("--seed", default=1906, show_default=True)
@click.option(
    "--start", "start_text", default="2026-01-01", show_default=True, help="First day (YYYY-MM-DD)."
)
def meter_fleet(count: int, days: int, seed: int, start_text: str) -> None:
    """Simulate a fleet of households using gas and topping up, and print what it used."""
    from datetime import date  # noqa: PLC0415

    from citygas.meters.fleet import simulate_fleet  # noqa: PLC0415
    from citygas.platform.money import format_inr, format_scm  # noqa: PLC0415

    try:
        start = date.fromisoformat(start_text)
    except ValueError as exc:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--start") from exc
    with click.progressbar(length=count, label=f"{count} meters × {days} days", file=sys.stderr) as bar:
        result = simulate_fleet(count, days, seed=seed, start=start, progress=bar.update)
    click.echo(f"meter-days:            {result.meter_days}")
    click.echo(
        f"gas used:              {format_scm(result.total_litres)} "
        f"({result.mean_litres_per_meter_day / 1000:.3f} SCM per meter-day)"
    )
    click.echo(f"top-ups:               {result.top_ups} ({format_inr(result.credit_loaded_paise)})")
    click.echo(f"tokens accepted:       {result.tokens_accepted}")
    click.echo(f"valve closures:        {result.closures}; closed at the end: {result.meters_closed_at_end}")
    click.echo(f"emergency credit:      {result.emergency_credit_taken} times")
    click.echo(f"households away:       {result.away_meter_days} meter-days")
    tampers = ", ".join(f"{k} {v}" for k, v in sorted(result.tamper_events.items())) or "none"
    click.echo(f"tamper events:         {tampers}")


@meter.command("simulate")
@click.option("--host", default=None)
@click.option("--port", default=8001, show_default=True)
@click.option("--speed", default=1.0, show_default=True, help="Run the meters' time this many times faster.")
def meter_simulate(host: str | None, port: int, speed: float) -> None:
    """Serve the simulated meters (pages and the meter-link WebSocket) on their own port."""
    import os  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    os.environ["CITYGAS_SIMULATOR"] = "true"
    os.environ["CITYGAS_SIMULATOR_SPEED"] = str(speed)
    os.environ["CITYGAS_RUN_WORKER_IN_PROCESS"] = "false"
    get_settings.cache_clear()
    settings = get_settings()
    click.echo(f"simulated meters on http://{host or settings.host}:{port}/sim/meters (time × {speed})")
    uvicorn.run(
        "citygas.web.app:create_app_from_env",
        factory=True,
        host=host or settings.host,
        port=port,
        log_config=None,
    )


@meter.command("test-token")
@click.argument("serial")
@click.option(
    "--amount", "amount_text", required=True, help="Rupees (currency meters) or SCM (volume meters)."
)
def meter_test_token(serial: str, amount_text: str) -> None:
    """Print a credit token for a meter keyed with the published STS TEST key (demo meters only).

    Real meters get credit only through a paid vend. The test key is public, so a token made with it
    can only ever credit a demo meter; the TID still comes from the registry, as a vend's would.
    """
    from citygas.meters.test_tokens import issue_demo_credit  # noqa: PLC0415

    result = issue_demo_credit(_database(), serial=serial, amount_text=amount_text)
    click.echo(f"{result.grouped}    ({result.description}; TID {result.tid}; STS TEST KEY — demo only)")


@main.group()
def audit() -> None:
    """The audit log."""


@audit.command("verify")
def audit_verify() -> None:
    """Recompute every tenant's hash chain and report the first tampered row of each."""
    from citygas.platform.audit import verify_chain  # noqa: PLC0415

    db = _database()
    with db.system(read_only=True) as uow:
        breaks = list(verify_chain(uow.session))
    if not breaks:
        click.echo("audit log intact: every tenant's chain verifies")
        return
    for b in breaks:
        click.echo(f"TAMPERED tenant {b.tenant_id} row {b.seq} (id {b.entry_id}): {b.problem}")
    sys.exit(1)


@main.group()
def sts() -> None:
    """STS prepayment tokens."""


@sts.command("conformance")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def sts_conformance(file: Path) -> None:
    """Check the token engine against conformance vectors (JSON Lines)."""
    from citygas.sts.conformance import run_conformance  # noqa: PLC0415

    _passed, failed = run_conformance(file, sys.stdout)
    if failed:
        sys.exit(1)


@main.group()
def ledger() -> None:
    """The double-entry ledger."""


@ledger.command("rebuild")
@click.option("--check", is_flag=True, help="Only report differences; do not repair the balances.")
def ledger_rebuild(check: bool) -> None:
    """Recompute every account balance from the postings and compare (and repair) the stored balances."""
    from citygas.ledger.service import rebuild_balances  # noqa: PLC0415

    report = rebuild_balances(_database(), repair=not check)
    click.echo(f"{report.tenants} tenants, {report.accounts} accounts checked")
    for difference in report.differences:
        click.echo(f"DIFFERENCE {difference}")
    for entry in report.unbalanced_entries:
        click.echo(f"UNBALANCED entry {entry}")
    if report.repaired and report.differences:
        click.echo(f"repaired {len(report.differences)} stored balances from the postings")
    if not report.ok:
        sys.exit(1)
    click.echo("ledger balances agree with the postings")


@main.group()
def db() -> None:
    """Schema tools for developers."""


@db.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message: str) -> None:
    """Autogenerate a migration from the models (review it before committing)."""
    from citygas.platform.migrations import autogenerate  # noqa: PLC0415

    autogenerate(_database().engine, message)


if __name__ == "__main__":
    main()
