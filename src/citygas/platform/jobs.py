"""Scheduled jobs run by the worker. Any number of workers may run; a conditional update on the job's
row lets exactly one of them take each run, and a lease frees a run whose worker died."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, Text, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.db import Base
from citygas.platform.time import utcnow
from citygas.platform.uow import Database

log = logging.getLogger(__name__)


class ScheduledJob(Base):
    __tablename__ = "scheduled_job"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    next_run_at: Mapped[datetime]
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


JobFn = Callable[[Database], None]


@dataclass(frozen=True)
class JobSpec:
    name: str
    every: timedelta
    run: JobFn


_jobs: dict[str, JobSpec] = {}


def scheduled(name: str, *, every: timedelta) -> Callable[[JobFn], JobFn]:
    def register(fn: JobFn) -> JobFn:
        _jobs[name] = JobSpec(name, every, fn)
        return fn

    return register


def registered_jobs() -> list[JobSpec]:
    return sorted(_jobs.values(), key=lambda j: j.name)


def run_due_jobs(db: Database, worker_id: str, *, lease: timedelta = timedelta(minutes=10)) -> list[str]:
    """Run every job whose time has come and that no other worker holds; returns the names run."""
    ran: list[str] = []
    for spec in registered_jobs():
        if not _claim(db, spec, worker_id, lease):
            continue
        error: str | None = None
        try:
            spec.run(db)
        except Exception as exc:
            log.exception("scheduled job failed", extra={"job": spec.name})
            error = f"{type(exc).__name__}: {exc}"
        _release(db, spec, worker_id, error)
        ran.append(spec.name)
    return ran


def _claim(db: Database, spec: JobSpec, worker_id: str, lease: timedelta) -> bool:
    now = utcnow()
    with db.system() as uow:
        session = uow.session
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(ScheduledJob).values(name=spec.name, next_run_at=now).on_conflict_do_nothing())
        result = session.execute(
            update(ScheduledJob)
            .where(
                ScheduledJob.name == spec.name,
                ScheduledJob.next_run_at <= now,
                or_(ScheduledJob.locked_until.is_(None), ScheduledJob.locked_until < now),
            )
            .values(locked_by=worker_id, locked_until=now + lease)
        )
        uow.commit()
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _release(db: Database, spec: JobSpec, worker_id: str, error: str | None) -> None:
    now = utcnow()
    with db.system() as uow:
        uow.session.execute(
            update(ScheduledJob)
            .where(ScheduledJob.name == spec.name, ScheduledJob.locked_by == worker_id)
            .values(
                locked_by=None,
                locked_until=None,
                last_run_at=now,
                next_run_at=now + spec.every,
                last_error=error,
            )
        )
        uow.commit()
