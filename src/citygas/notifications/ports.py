"""The notification port. Adapters send; the outbox decides when. Development uses the log adapter,
which writes the message to the log (that is where a developer reads a login OTP)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from citygas.platform.outbox import Event, handles

log = logging.getLogger("citygas.notifications")


@dataclass(frozen=True)
class Message:
    channel: str  # sms | email | push | whatsapp
    to: str
    text: str
    idempotency_key: str  # the outbox event id: a provider that sees it twice sends once


class Notifier(Protocol):
    def send(self, message: Message) -> None: ...


class LogNotifier:
    """Writes messages to the log and keeps the last few in memory (for the demo and the tests)."""

    def __init__(self, keep: int = 200) -> None:
        self.keep = keep
        self.sent: list[Message] = []

    def send(self, message: Message) -> None:
        if any(m.idempotency_key == message.idempotency_key for m in self.sent):
            return
        log.info("notification", extra={"channel": message.channel, "to": message.to, "text": message.text})
        self.sent.append(message)
        del self.sent[: -self.keep]


_notifier: Notifier = LogNotifier()


def notifier() -> Notifier:
    return _notifier


def use_notifier(adapter: Notifier) -> None:
    global _notifier  # noqa: PLW0603 - the adapter is chosen once at start-up
    _notifier = adapter


def request(
    session: Session, *, channel: str, to: str, text: str, tenant_id: uuid.UUID | None = None
) -> None:
    """Ask for a message to be sent once the caller's transaction commits (in `tenant_id`'s name when the
    caller runs in the platform scope, as the login look-ups do)."""
    from citygas.platform.outbox import emit  # noqa: PLC0415 - keep the port importable on its own

    emit(session, *requested(channel=channel, to=to, text=text), tenant_id=tenant_id)


def requested(*, channel: str, to: str, text: str) -> tuple[str, dict[str, str]]:
    """The outbox event (topic, payload) that `request` emits, for callers emitting many at once."""
    return "notification.requested", {"channel": channel, "to": to, "text": text}


@handles("notification.requested", name="notifications.send")
def send_requested(_session: Session, event: Event) -> None:
    notifier().send(
        Message(
            channel=str(event.payload["channel"]),
            to=str(event.payload["to"]),
            text=str(event.payload["text"]),
            idempotency_key=str(event.id),
        )
    )
