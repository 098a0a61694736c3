"""Pure rules of auto top-up: the mandate's state machine, the limits a mandate may have, when to top up,
and the keys that make a debit happen once. No database, no web.

The limits come from the rules on e-mandates (docs/autopay.md has the citations):
- a recurring debit of up to ₹15,000 needs no additional factor of authentication (AFA, the UPI PIN);
  above it the payer must approve each debit, which defeats auto top-up — so a mandate's maximum is
  capped at ₹15,000 (RBI e-mandate framework; NPCI UPI AutoPay);
- the payer gets a pre-debit notification at least 24 hours before each debit (RBI). The FASTag/NCMC
  exemption for threshold-based auto-replenishment does not extend to gas, so the notice is kept;
- a mandate has a validity period and the payer may pause or cancel it at any time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from citygas.platform.errors import DomainError
from citygas.platform.money import format_inr
from citygas.platform.time import INDIA
from citygas.platform.workflow_rules import StateSpec, Transition, WorkflowDefinition
from citygas.vending.rules import DEFAULT_LIMITS

NO_AFA_LIMIT_PAISE = 1_500_000  # ₹15,000: the most a recurring debit may take without the payer's PIN
MINIMUM_TOPUP_PAISE = DEFAULT_LIMITS.minimum_paise  # a top-up below the vend minimum would be refused
MAXIMUM_THRESHOLD_PAISE = 1_000_000  # ₹10,000: a household's gas for months; above it is a typing slip
RBI_MINIMUM_NOTICE = timedelta(hours=24)
IDEMPOTENCY_PREFIX = "autopay:"


class AutopayRefused(DomainError):
    """Terms or an action the rules refuse; nothing was changed. `code` says which rule."""

    status = 422
    title = "Auto top-up cannot be set up that way"

    def __init__(self, code: str, detail: str, **extra: object) -> None:
        super().__init__(detail, **extra)
        self.code = code


# --- the mandate's life ---------------------------------------------------------------------------------

MANDATE = WorkflowDefinition(
    name="autopay_mandate",
    initial="created",
    states=(
        StateSpec("created", "Created"),
        StateSpec("pending_authorisation", "Waiting for approval in the UPI app"),
        StateSpec("active", "Active"),
        StateSpec("paused", "Paused"),
        StateSpec("cancelled", "Cancelled", final=True),
        StateSpec("failed", "Not approved", final=True),
        StateSpec("expired", "Expired", final=True),
    ),
    transitions=(
        Transition("register", frozenset({"created"}), "pending_authorisation", label="send for approval"),
        Transition("authorise", frozenset({"pending_authorisation"}), "active", label="activate"),
        Transition("decline", frozenset({"created", "pending_authorisation"}), "failed", label="decline"),
        Transition("pause", frozenset({"active"}), "paused", requires_reason=True, label="pause"),
        Transition("resume", frozenset({"paused"}), "active", label="resume"),
        Transition(
            "cancel",
            frozenset({"created", "pending_authorisation", "active", "paused"}),
            "cancelled",
            requires_reason=True,
            label="cancel",
        ),
        Transition(
            "expire", frozenset({"pending_authorisation", "active", "paused"}), "expired", label="expire"
        ),
    ),
)
LIVE_STATES = frozenset({"active", "paused"})  # a working mandate: holds the connection's live key
OPEN_STATES = frozenset({"created", "pending_authorisation", "active", "paused"})


@dataclass(frozen=True)
class AutopayConfig:
    """How the job behaves. The notice is what the household is told before each debit; a real gateway
    is never given less than RBI's 24 hours (`notice_for`), the simulator may be (the demo's minutes)."""

    notice: timedelta = RBI_MINIMUM_NOTICE
    retry_gap: timedelta = timedelta(hours=6)  # after a failed debit, wait this long before the next
    failures_to_pause: int = 3  # consecutive failed debits that pause the mandate
    authorisation_window: timedelta = timedelta(hours=24)  # to approve in the UPI app
    validity: timedelta = timedelta(days=5 * 365)  # the mandate's end date (the token's expire_at)
    max_debits_per_day: int = 2
    max_debits_per_month: int = 10


DEFAULT_CONFIG = AutopayConfig()


def notice_for(gateway_name: str, config: AutopayConfig) -> timedelta:
    """The pre-debit notice window: at least 24 hours on a real gateway, whatever was configured."""
    return config.notice if gateway_name == "simulator" else max(config.notice, RBI_MINIMUM_NOTICE)


# --- the terms a household chooses ----------------------------------------------------------------------


def _whole_paise(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AutopayRefused("amount_invalid", f"the {what} is a whole number of paise (₹500 is 50000)")
    return value


@dataclass(frozen=True)
class Terms:
    threshold_paise: int
    amount_paise: int
    max_amount_paise: int


def check_terms(*, threshold_paise: object, amount_paise: object, max_amount_paise: object) -> Terms:
    """Refuse terms a mandate must not have, each with a reason a household can act on."""
    threshold = _whole_paise(threshold_paise, "low-balance threshold")
    amount = _whole_paise(amount_paise, "top-up amount")
    maximum = _whole_paise(max_amount_paise, "maximum per debit")
    if not 0 < threshold <= MAXIMUM_THRESHOLD_PAISE:
        raise AutopayRefused(
            "threshold_out_of_range",
            f"the low-balance threshold is more than ₹0 and at most {format_inr(MAXIMUM_THRESHOLD_PAISE)}",
        )
    if amount < MINIMUM_TOPUP_PAISE:
        raise AutopayRefused(
            "amount_out_of_range", f"an auto top-up is at least {format_inr(MINIMUM_TOPUP_PAISE)}"
        )
    if maximum > NO_AFA_LIMIT_PAISE:
        raise AutopayRefused(
            "max_above_afa_limit",
            f"a UPI AutoPay debit above {format_inr(NO_AFA_LIMIT_PAISE)} needs your UPI PIN each time, "
            f"so the most an auto top-up may take is {format_inr(NO_AFA_LIMIT_PAISE)}",
            limit_paise=NO_AFA_LIMIT_PAISE,
        )
    if amount > maximum:
        raise AutopayRefused(
            "amount_above_max",
            f"the top-up amount {format_inr(amount)} is more than the mandate's maximum "
            f"{format_inr(maximum)}",
        )
    return Terms(threshold, amount, maximum)


# --- the trigger ----------------------------------------------------------------------------------------


def needs_topup(balance_paise: int | None, threshold_paise: int) -> bool:
    """Below the threshold, strictly. An unknown balance never triggers a debit: no money on a guess."""
    return balance_paise is not None and balance_paise < threshold_paise


def india_day_start(now: datetime) -> datetime:
    local = now.astimezone(INDIA)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def india_month_start(now: datetime) -> datetime:
    return india_day_start(now).replace(day=1)


def over_frequency_limit(
    *, debits_today: int, debits_this_month: int, per_day: int, per_month: int
) -> str | None:
    """Why no further debit may be presented now (frequency "as presented", within these counts), or None."""
    if debits_today >= per_day:
        return f"already {debits_today} auto top-ups today (at most {per_day} a day)"
    if debits_this_month >= per_month:
        return f"already {debits_this_month} auto top-ups this month (at most {per_month} a month)"
    return None


def vend_key(mandate_id: uuid.UUID, sequence: int) -> str:
    """The vend's idempotency key: one debit of one mandate vends once, whoever settles it and how often."""
    return f"{IDEMPOTENCY_PREFIX}{mandate_id}:{sequence}"


def mask_vpa(vpa: str) -> str:
    """'asha.rao@okhdfc' → 'as••••••@okhdfc': enough to recognise one's own UPI id, not to copy it."""
    name, at, handle = vpa.partition("@")
    if not name:
        return ""
    shown = name[:2] if len(name) > 3 else name[:1]
    return f"{shown}{'•' * max(len(name) - len(shown), 3)}{at}{handle}"


def check_vpa(vpa: str) -> str:
    """A UPI id as the payer typed it, or '' (optional: the UPI app reports the one approved with)."""
    text = vpa.strip().lower()
    if not text:
        return ""
    name, at, handle = text.partition("@")
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.-_")
    if not at or not name or not handle or len(text) > 100 or not set(name + handle) <= allowed:
        raise AutopayRefused("vpa_invalid", f"'{vpa.strip()[:40]}' is not a UPI id (like name@bank)")
    return text
