"""`citygas worker`: relays the outbox and runs scheduled jobs until told to stop."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from types import FrameType

from citygas.platform.jobs import run_due_jobs
from citygas.platform.outbox import OutboxRelay
from citygas.platform.uow import Database

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        db: Database,
        *,
        poll_seconds: float = 1.0,
        batch_size: int = 100,
        max_attempts: int = 8,
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self.db = db
        self.relay = OutboxRelay(db.write_sessions, max_attempts=max_attempts, lease=lease)
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.stopping = threading.Event()

    def run_once(self) -> int:
        handled = self.relay.relay_once(self.batch_size)
        run_due_jobs(self.db, self.relay.worker_id)
        return handled

    def run_forever(self) -> None:
        log.info("worker started", extra={"worker": self.relay.worker_id})
        while not self.stopping.is_set():
            try:
                handled = self.run_once()
            except Exception:
                log.exception("worker cycle failed; retrying")
                handled = 0
            if handled < self.batch_size:
                self.stopping.wait(self.poll_seconds)
        log.info("worker stopped", extra={"worker": self.relay.worker_id})

    def install_signal_handlers(self) -> None:
        def stop(_signum: int, _frame: FrameType | None) -> None:
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="citygas-worker", daemon=True)
        thread.start()
        return thread
