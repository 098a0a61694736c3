"""Who is acting, for whom and in which request: carried on the session so that the audit log,
workflow history and outbox rows written in a transaction all name the same actor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from sqlalchemy.orm import Session

ACTOR_KEY: Final = "citygas_actor"
REQUEST_KEY: Final = "citygas_request_id"
REASON_KEY: Final = "citygas_reason"


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str  # staff | customer | api_key | system
    id: uuid.UUID | None
    label: str


SYSTEM_ACTOR: Final = Actor(kind="system", id=None, label="system")


def set_actor(session: Session, actor: Actor) -> None:
    session.info[ACTOR_KEY] = actor


def actor_of(session: Session) -> Actor:
    actor = session.info.get(ACTOR_KEY)
    return actor if isinstance(actor, Actor) else SYSTEM_ACTOR


def set_request_id(session: Session, request_id: str | None) -> None:
    session.info[REQUEST_KEY] = request_id


def request_id_of(session: Session) -> str | None:
    value = session.info.get(REQUEST_KEY)
    return value if isinstance(value, str) else None


@contextmanager
def on_behalf_of(session: Session, request_id: str | None) -> Iterator[None]:
    """Audit what is recorded inside under `request_id` (one request of a batch written together), then
    go back to the transaction's own request id."""
    own = session.info.get(REQUEST_KEY)
    session.info[REQUEST_KEY] = request_id
    try:
        yield
    finally:
        session.info[REQUEST_KEY] = own


def set_reason(session: Session, reason: str | None) -> None:
    """Why the change is made; recorded on the audit rows of this transaction."""
    session.info[REASON_KEY] = reason


def reason_of(session: Session) -> str | None:
    value = session.info.get(REASON_KEY)
    return value if isinstance(value, str) else None
