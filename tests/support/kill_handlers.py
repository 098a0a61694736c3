"""Handlers for the worker crash test, loaded into a real `citygas worker` via CITYGAS_PLUGINS."""

import os
import time

from sqlalchemy.orm import Session

from citygas.platform import audit
from citygas.platform.outbox import Event, handles


@handles("test.crash", name="test.crash.external")
def write_outside(_session: Session, event: Event) -> None:
    """An outside effect (like an SMS): at least once, so a crash may repeat it."""
    with open(os.environ["CITYGAS_TEST_EFFECT_FILE"], "a", encoding="utf-8") as f:
        f.write(f"{event.payload['n']}\n")
        f.flush()
        os.fsync(f.fileno())
    time.sleep(0.02)  # slow enough that the kill lands in the middle of a batch


@handles("test.crash", name="test.crash.database")
def write_inside(session: Session, event: Event) -> None:
    """A database effect that is not idempotent by nature (it appends a row): the relay commits it with
    its handled marker, so it happens exactly once even across the crash."""
    audit.record(session, action="test.crash", entity_type="event", entity_id=str(event.payload["n"]))
