"""Every table of citygas, imported in one place for Alembic and the schema tests."""

from citygas.care import models as care_models
from citygas.customers import models as customers_models
from citygas.customers import profile_models
from citygas.identity import models as identity_models
from citygas.ledger import models as ledger_models
from citygas.metering import models as metering_models
from citygas.meters import models as meters_models
from citygas.payments.autopay import models as autopay_models
from citygas.payments.bbps import models as bbps_models
from citygas.payments.csc import models as csc_models
from citygas.payments.gateway import models as gateway_models
from citygas.payments.settlement import models as settlement_models
from citygas.platform import audit, jobs, numbers, outbox, tenancy, workflow
from citygas.platform.db import Base
from citygas.tariffs import models as tariffs_models
from citygas.vending import models as vending_models

__all__ = [
    "Base",
    "audit",
    "autopay_models",
    "bbps_models",
    "care_models",
    "csc_models",
    "customers_models",
    "gateway_models",
    "identity_models",
    "jobs",
    "ledger_models",
    "metering_models",
    "meters_models",
    "numbers",
    "outbox",
    "profile_models",
    "settlement_models",
    "tariffs_models",
    "tenancy",
    "vending_models",
    "workflow",
]

metadata = Base.metadata
