"""The meter lifecycle, declared: in store → allocated to a kit → installed → commissioned → active →
suspended / faulty → replaced / retired. Each transition writes history and moves the SLA clock."""

from datetime import timedelta

from citygas.platform.workflow_rules import StateSpec, t, workflow

METER_LIFECYCLE = workflow(
    "meter",
    initial="in_store",
    states=[
        StateSpec("in_store", "In store"),
        StateSpec("allocated", "Allocated to a kit", queue_role="store_keeper", sla=timedelta(days=7)),
        StateSpec(
            "installed", "Installed, to commission", queue_role="field_supervisor", sla=timedelta(days=2)
        ),
        StateSpec(
            "commissioned", "Commissioned, to activate", queue_role="back_office", sla=timedelta(days=1)
        ),
        StateSpec("active", "Active"),
        StateSpec("suspended", "Suspended", queue_role="back_office", sla=timedelta(days=30)),
        StateSpec("faulty", "Faulty", queue_role="technician", sla=timedelta(hours=48)),
        StateSpec("replaced", "Replaced", final=True),
        StateSpec("retired", "Retired", final=True),
    ],
    transitions=[
        t("allocate", "in_store", "allocated", permission="meter.manage", label="allocate to a kit"),
        t("return_to_store", "allocated", "in_store", permission="meter.manage", label="return to store"),
        t("install", "allocated", "installed", permission="meter.install", label="install"),
        t("commission", "installed", "commissioned", permission="meter.install", label="commission"),
        t("activate", "commissioned", "active", permission="meter.manage", label="activate"),
        t("suspend", "active", "suspended", permission="meter.manage", requires_reason=True, label="suspend"),
        t("resume", "suspended", "active", permission="meter.manage", label="resume"),
        t(
            "report_fault",
            ["commissioned", "active", "suspended"],
            "faulty",
            permission="meter.install",
            requires_reason=True,
            label="report a fault",
        ),
        t("repair", "faulty", "active", permission="meter.install", label="mark repaired"),
        t(
            "replace",
            ["active", "suspended", "faulty"],
            "replaced",
            permission="meter.install",
            requires_reason=True,
            label="replace",
        ),
        t(
            "retire",
            ["in_store", "faulty"],
            "retired",
            permission="meter.manage",
            requires_reason=True,
            label="retire",
        ),
    ],
)
