"""Jobs of the gateway context: the simulator's webhook delivery. List this module in `BUILT_IN`."""

from __future__ import annotations

from sqlalchemy.orm import Session

from citygas.payments.gateway.service import do_receive_webhook
from citygas.payments.gateway.simulator import WEBHOOK_TOPIC, GatewaySimulator
from citygas.platform.outbox import Event, handles
from citygas.platform.settings import get_settings


@handles(WEBHOOK_TOPIC, name="payments.gateway.deliver_simulated_webhook")
def deliver_simulated_webhook(session: Session, event: Event) -> None:
    """Deliver the simulator's signed webhook to the webhook use case, body bytes and signature as sent.
    Idempotent twice over: the delivery is recognised by its body hash, the payment by its id."""
    master_key = get_settings().master_key_bytes
    gateway = GatewaySimulator.for_tenant(session, master_key=master_key)
    do_receive_webhook(
        session,
        gateway,
        body=str(event.payload["body"]).encode(),
        signature=str(event.payload["signature"]),
        event_id=str(event.payload.get("event_id", "")),
        master_key=master_key,
    )
