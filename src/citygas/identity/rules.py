"""The permission matrix, as data, and the pure rules of logging in.

A route names the permission it needs; a role grants a set of permissions. Changing who may do what
is a change to this table, reviewed like any other, and the route-by-route test reads it too.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum


class Role(StrEnum):
    OPERATOR_ADMIN = "operator_admin"
    CGD_MANAGER = "cgd_manager"
    CGD_VIEWER = "cgd_viewer"
    BACK_OFFICE = "back_office"
    STORE_KEEPER = "store_keeper"
    FIELD_SUPERVISOR = "field_supervisor"
    TECHNICIAN = "technician"
    METER_READER = "meter_reader"
    CARE_AGENT = "care_agent"
    CSC_AGENT = "csc_agent"


ROLE_LABELS: dict[Role, str] = {
    Role.OPERATOR_ADMIN: "Operator admin",
    Role.CGD_MANAGER: "CGD manager",
    Role.CGD_VIEWER: "CGD viewer",
    Role.BACK_OFFICE: "Back office",
    Role.STORE_KEEPER: "Store keeper",
    Role.FIELD_SUPERVISOR: "Field supervisor",
    Role.TECHNICIAN: "Technician",
    Role.METER_READER: "Meter reader",
    Role.CARE_AGENT: "Care agent",
    Role.CSC_AGENT: "CSC agent",
}


class Permission(StrEnum):
    TENANT_MANAGE = "tenant.manage"
    AREA_VIEW = "area.view"
    AREA_MANAGE = "area.manage"
    USER_VIEW = "user.view"
    USER_MANAGE = "user.manage"
    CUSTOMER_VIEW = "customer.view"
    CUSTOMER_MANAGE = "customer.manage"
    AUDIT_VIEW = "audit.view"
    ACTIVITY_VIEW = "activity.view"
    APIKEY_MANAGE = "apikey.manage"
    OPS_PORTAL = "portal.ops"
    CGD_PORTAL = "portal.cgd"
    FIELD_PORTAL = "portal.field"
    AGENT_PORTAL = "portal.agent"
    METER_VIEW = "meter.view"
    METER_MANAGE = "meter.manage"  # registry and lifecycle in the back office and stores
    METER_INSTALL = "meter.install"  # install, commission, report faults: the field force
    VEND_CREATE = "vend.create"  # the CGD's own channels vending through the API
    VEND_VIEW = "vend.view"
    AGENT_VEND = "agent.vend"  # a CSC agent vending from their own float and asking for float top-ups
    AGENT_MANAGE = "agent.manage"  # agent profiles, commission rules, float top-ups entered for an agent
    FLOAT_APPROVE = "float.approve"  # approving an agent's float top-up against the bank/UPI credit
    CUSTOMER_SELF = "customer.self"  # a logged-in household acting on its own connections
    BBPS_BILLER = "payments.bbps"  # the BBPS operating unit calling us as a biller (API keys only)
    PAYMENTS_RECONCILE = "payments.reconcile"  # settlement imports, collection summaries, agent floats
    TICKET_VIEW = "ticket.view"  # complaints and service requests: read the queue and a ticket
    TICKET_MANAGE = "ticket.manage"  # take, work, resolve and escalate tickets (the care centre)


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OPERATOR_ADMIN: frozenset(
        {
            P.TENANT_MANAGE,
            P.AREA_VIEW,
            P.AREA_MANAGE,
            P.USER_VIEW,
            P.USER_MANAGE,
            P.CUSTOMER_VIEW,
            P.AUDIT_VIEW,
            P.ACTIVITY_VIEW,
            P.APIKEY_MANAGE,
            P.OPS_PORTAL,
            P.METER_VIEW,
            P.METER_MANAGE,
        }
    ),
    Role.CGD_MANAGER: frozenset(
        {
            P.CGD_PORTAL,
            P.AREA_VIEW,
            P.USER_VIEW,
            P.CUSTOMER_VIEW,
            P.TICKET_VIEW,
            P.AUDIT_VIEW,
            P.ACTIVITY_VIEW,
            P.APIKEY_MANAGE,
            P.METER_VIEW,
            P.VEND_VIEW,
            P.PAYMENTS_RECONCILE,
        }
    ),
    Role.CGD_VIEWER: frozenset({P.CGD_PORTAL, P.AREA_VIEW, P.CUSTOMER_VIEW, P.ACTIVITY_VIEW, P.METER_VIEW}),
    Role.BACK_OFFICE: frozenset(
        {
            P.OPS_PORTAL,
            P.AREA_VIEW,
            P.AREA_MANAGE,
            P.USER_VIEW,
            P.CUSTOMER_VIEW,
            P.CUSTOMER_MANAGE,
            P.ACTIVITY_VIEW,
            P.AUDIT_VIEW,
            P.METER_VIEW,
            P.METER_MANAGE,
            P.VEND_VIEW,
            P.AGENT_MANAGE,
            P.FLOAT_APPROVE,
            P.PAYMENTS_RECONCILE,
            P.TICKET_VIEW,
            P.TICKET_MANAGE,
        }
    ),
    Role.STORE_KEEPER: frozenset({P.OPS_PORTAL, P.AREA_VIEW, P.ACTIVITY_VIEW, P.METER_VIEW, P.METER_MANAGE}),
    Role.FIELD_SUPERVISOR: frozenset(
        {
            P.OPS_PORTAL,
            P.AREA_VIEW,
            P.USER_VIEW,
            P.CUSTOMER_VIEW,
            P.ACTIVITY_VIEW,
            P.METER_VIEW,
            P.METER_MANAGE,
            P.METER_INSTALL,
            P.TICKET_VIEW,
        }
    ),
    Role.TECHNICIAN: frozenset(
        {P.FIELD_PORTAL, P.CUSTOMER_VIEW, P.ACTIVITY_VIEW, P.METER_VIEW, P.METER_INSTALL}
    ),
    Role.METER_READER: frozenset({P.FIELD_PORTAL, P.CUSTOMER_VIEW, P.ACTIVITY_VIEW, P.METER_VIEW}),
    Role.CARE_AGENT: frozenset(
        {
            P.OPS_PORTAL,
            P.CUSTOMER_VIEW,
            P.CUSTOMER_MANAGE,
            P.ACTIVITY_VIEW,
            P.METER_VIEW,
            P.VEND_VIEW,
            P.TICKET_VIEW,
            P.TICKET_MANAGE,
        }
    ),
    Role.CSC_AGENT: frozenset({P.AGENT_PORTAL, P.CUSTOMER_VIEW, P.AGENT_VEND}),
}

CUSTOMER_PERMISSIONS: frozenset[Permission] = frozenset({P.CUSTOMER_SELF})

# Scopes a B2B API key may carry: a subset of permissions, never a portal or admin permission.
API_KEY_SCOPES: dict[str, frozenset[Permission]] = {
    "customers:read": frozenset({P.CUSTOMER_VIEW}),
    "areas:read": frozenset({P.AREA_VIEW}),
    "audit:read": frozenset({P.AUDIT_VIEW}),
    "meters:read": frozenset({P.METER_VIEW}),
    "vend": frozenset({P.VEND_CREATE, P.VEND_VIEW, P.CUSTOMER_VIEW}),
    # The BBPS operating unit's key: bill fetch, payment notification and status check, nothing else.
    "bbps": frozenset({P.BBPS_BILLER}),
}

# Where each role lands after logging in.
HOME_BY_PERMISSION: list[tuple[Permission, str]] = [
    (P.TENANT_MANAGE, "/ops/admin/tenants"),
    (P.CGD_PORTAL, "/cgd/"),
    (P.OPS_PORTAL, "/ops/"),
    (P.FIELD_PORTAL, "/field/"),
    (P.AGENT_PORTAL, "/agent/"),
]


def permissions_for(roles: frozenset[str]) -> frozenset[str]:
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(Role(role), frozenset()) if role in Role._value2member_map_ else set()
    return frozenset(granted)


def permissions_for_scopes(scopes: list[str]) -> frozenset[str]:
    granted: set[str] = set()
    for scope in scopes:
        granted |= API_KEY_SCOPES[scope]
    return frozenset(granted)


def home_for(permissions: frozenset[str]) -> str:
    for permission, path in HOME_BY_PERMISSION:
        if permission in permissions:
            return path
    return "/account"


def lockout_for(failed_attempts: int, *, threshold: int) -> timedelta | None:
    """After `threshold` consecutive failures the account locks for 30 s, doubling with each further
    failure up to an hour: slow enough to stop guessing, short enough not to lock out a staff member
    for a day because of a stuck caps-lock."""
    if failed_attempts < threshold:
        return None
    seconds = min(3600, 30 * 2 ** (failed_attempts - threshold))
    return timedelta(seconds=seconds)


def normalise_phone(text: str) -> str:
    """Indian mobile numbers as 10 digits; +91, 0 and spaces are accepted and dropped."""
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) == 12 and digits.startswith("91"):
        digits = digits[2:]
    elif len(digits) == 11 and digits.startswith("0"):
        digits = digits[1:]
    if len(digits) != 10 or digits[0] not in "6789":
        raise ValueError("Enter a 10-digit Indian mobile number")
    return digits
