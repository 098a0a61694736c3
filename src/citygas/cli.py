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
            "(the code is shown on the page in development)"
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
