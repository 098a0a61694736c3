"""The auto top-up job: every minute, each open mandate of each CGD is moved on by what is due — approval
checked, a pre-debit notice sent when the balance is low, the debit made after the notice window, the
result vended or reported. List this module in `platform/plugins.py` (`BUILT_IN`).

One transaction per mandate: a mandate whose step fails (gateway down, a crash) is rolled back alone and
retried at the next run; the others go on. The balance estimate comes from metering, imported here, at
run time, so the service itself does not depend on it.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.meters.models import Meter
from citygas.payments.autopay.rules import DEFAULT_CONFIG, AutopayConfig
from citygas.payments.autopay.service import EstimateFn, config_from, do_autopay_step, open_mandate_ids
from citygas.payments.gateway.ports import PaymentGateway
from citygas.payments.gateway.service import gateway_for
from citygas.platform.context import Actor
from citygas.platform.jobs import scheduled
from citygas.platform.settings import get_settings
from citygas.platform.tenancy import Tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import Database

log = logging.getLogger(__name__)

AUTOPAY_ACTOR = Actor(kind="system", id=None, label="auto top-up")

GatewayFactory = Callable[[Session], PaymentGateway]


def metering_estimate(session: Session, meter: Meter, now: datetime) -> int | None:
    """`citygas.metering.service.estimate_balance`, looked up when the job runs (see the module's note)."""
    metering = importlib.import_module("citygas.metering.service")
    estimated = metering.estimate_balance(session, meter, now=now).estimated_paise
    if estimated is not None and (isinstance(estimated, bool) or not isinstance(estimated, int)):
        raise TypeError("estimate_balance must give whole paise or None")
    return estimated


def run_tenant(
    db: Database,
    tenant_id: uuid.UUID,
    *,
    estimate: EstimateFn,
    master_key: bytes,
    gateway_factory: GatewayFactory,
    now: datetime | None = None,
    config: AutopayConfig = DEFAULT_CONFIG,
) -> dict[uuid.UUID, str]:
    """One tenant's mandates, each in its own unit of work; returns what happened to each."""
    with db.unit_of_work(tenant=tenant_id, actor=AUTOPAY_ACTOR, read_only=True) as uow:
        mandate_ids = open_mandate_ids(uow.session)
    outcomes: dict[uuid.UUID, str] = {}
    for mandate_id in mandate_ids:
        with db.unit_of_work(tenant=tenant_id, actor=AUTOPAY_ACTOR) as uow:
            try:
                outcomes[mandate_id] = do_autopay_step(
                    uow.session,
                    gateway_factory(uow.session),
                    mandate_id=mandate_id,
                    estimate=estimate,
                    master_key=master_key,
                    now=now or utcnow(),
                    config=config,
                )
                uow.commit()
            except Exception as exc:  # one mandate's trouble must not stop the others; retried next run
                log.exception("auto top-up step failed", extra={"mandate_id": str(mandate_id)})
                outcomes[mandate_id] = f"error: {type(exc).__name__}"
    return outcomes


@scheduled("payments.autopay", every=timedelta(minutes=1))
def run_autopay(db: Database) -> None:
    settings = get_settings()
    master_key = settings.master_key_bytes

    def gateway(session: Session) -> PaymentGateway:
        return gateway_for(session, master_key=master_key, simulator_enabled=settings.simulator_enabled)

    with db.system(read_only=True) as uow:
        tenants = list(
            uow.session.execute(
                select(Tenant.id).where(Tenant.active.is_(True), Tenant.kind == "cgd")
            ).scalars()
        )
    for tenant_id in tenants:
        run_tenant(
            db,
            tenant_id,
            estimate=metering_estimate,
            master_key=master_key,
            gateway_factory=gateway,
            config=config_from(settings),
        )
