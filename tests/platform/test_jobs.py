"""Scheduled jobs run once per period however many workers there are."""

from datetime import UTC, datetime, timedelta

from citygas.platform import time as clock
from citygas.platform.jobs import _jobs, run_due_jobs, scheduled
from citygas.platform.uow import Database

runs: list[str] = []


def test_a_due_job_runs_on_one_worker_only_and_then_waits_its_period(db: Database) -> None:
    runs.clear()

    @scheduled("test.tick", every=timedelta(minutes=10))
    def tick(_db: Database) -> None:
        runs.append("tick")

    try:
        clock.freeze(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
        first = run_due_jobs(db, "worker-a")
        second = run_due_jobs(db, "worker-b")
        clock.freeze(datetime(2026, 12, 1, 9, 11, tzinfo=UTC))
        third = run_due_jobs(db, "worker-b")
    finally:
        _jobs.pop("test.tick", None)
    assert "test.tick" in first
    assert "test.tick" not in second
    assert "test.tick" in third
    assert runs == ["tick", "tick"]


def test_a_failing_job_does_not_stop_the_others(db: Database) -> None:
    runs.clear()

    @scheduled("test.broken", every=timedelta(minutes=1))
    def broken(_db: Database) -> None:
        raise RuntimeError("boom")

    @scheduled("test.fine", every=timedelta(minutes=1))
    def fine(_db: Database) -> None:
        runs.append("fine")

    try:
        ran = run_due_jobs(db, "worker-a")
    finally:
        _jobs.pop("test.broken", None)
        _jobs.pop("test.fine", None)
    assert {"test.broken", "test.fine"} <= set(ran)
    assert runs == ["fine"]
