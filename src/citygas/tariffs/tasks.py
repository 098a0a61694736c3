"""Outbox handlers of the tariffs context: the tariff change notices (see `tariffs.notices`). List this
module in `platform/plugins.py` `BUILT_IN` so the worker loads it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from citygas.platform.outbox import Event, handles
from citygas.tariffs.notices import NOTICE_TOPIC, do_send_notice_batch, queue_notices
from citygas.tariffs.service import TARIFF_CHANGED


@handles(TARIFF_CHANGED, name="tariffs.queue_change_notices")
def queue_change_notices(session: Session, event: Event) -> None:
    """A price was scheduled: queue its notices for the moment it takes effect. An area's first price is
    not a change (it is on every new connection's agreement), and the same price again changes nothing."""
    previous = event.payload.get("previous_rate_paise_per_scm")
    if previous is None or previous == event.payload["rate_paise_per_scm"]:
        return
    queue_notices(
        session,
        uuid.UUID(str(event.payload["tariff_id"])),
        datetime.fromisoformat(str(event.payload["effective_from"])),
    )


@handles(NOTICE_TOPIC, name="tariffs.send_notice_batch")
def send_notice_batch(session: Session, event: Event) -> None:
    """One batch of notices; commits with the relay's done marker, and queues the next batch."""
    after = str(event.payload.get("after") or "")
    do_send_notice_batch(
        session,
        tariff_id=uuid.UUID(str(event.payload["tariff_id"])),
        after=uuid.UUID(after) if after else None,
    )
