"""The meter side: what an STS gas meter does with a token typed on its keypad.

:class:`MeterTokenAcceptor` is pure (no clock, no I/O): the caller passes the time in
seconds of a monotonic clock, and the whole state is a :class:`DecoderState` that
converts to and from a plain dict, so the meter simulator can persist it. The state
holds the meter's decoder key, so store it as a secret.

Rules, in the order a token meets them:

1. keypad lockout: after repeated bad tokens the keypad locks, for longer each time;
2. format: 20 digits that make a 66-bit number;
3. class 3 and reserved subclasses are refused;
4. decryption with the current key and the CRC (a wrong key shows as a CRC failure);
5. key type: no credit under a default (DDTK) key, nothing but key changes and tests
   under an initialisation (DITK) key;
6. key expiry: TID > KEN x 65535 is refused;
7. TID memory: a TID already used (UsedError) or older than the oldest of the last
   ``tid_memory_size`` TIDs (OldError) is refused;
8. range and overflow: unknown registers, limits and credit that would overflow;
9. key change sequencing: sections are kept until the whole set has arrived, then
   the key switches; with RO = 1 the TID memory is cleared and the base date moves on.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from citygas.sts.errors import TokenCrcError, TokenFormatError, UnsupportedTokenError
from citygas.sts.keychange import KeyChangeSection, assemble_new_key
from citygas.sts.keys import DecoderKey, EncryptionAlgorithm, KeyType
from citygas.sts.sta import StaTables
from citygas.sts.tid import BASE_DATES, key_expiry_tid, next_base_date
from citygas.sts.tokens import (
    ALL_REGISTERS,
    CreditToken,
    KeyChangeSection1,
    KeyChangeSection2,
    KeyChangeSection3,
    KeyChangeSection4,
    ManagementSubclass,
    ManagementToken,
    MeterTestToken,
    Token,
    decode_token,
)

__all__ = ["AcceptOutcome", "AcceptResult", "DecoderState", "MeterConfig", "MeterTokenAcceptor"]

_STATE_VERSION: Final = 1


class AcceptOutcome(StrEnum):
    """Every distinct result of entering a token; the ``*_ERROR`` ones change nothing but the lockout."""

    CREDIT_ADDED = "credit_added"
    MANAGEMENT_APPLIED = "management_applied"
    KEY_CHANGE_SECTION_STORED = "key_change_section_stored"
    KEY_CHANGED = "key_changed"
    TEST_STARTED = "test_started"
    LOCKED_OUT = "locked_out"
    FORMAT_ERROR = "format_error"
    CRC_ERROR = "crc_error"
    CLASS_ERROR = "class_error"
    MANUFACTURER_ERROR = "manufacturer_error"
    KEY_TYPE_ERROR = "key_type_error"
    KEY_EXPIRED_ERROR = "key_expired_error"
    OLD_ERROR = "old_error"
    USED_ERROR = "used_error"
    RANGE_ERROR = "range_error"
    OVERFLOW_ERROR = "overflow_error"

    @property
    def accepted(self) -> bool:
        return self in _ACCEPTED


_ACCEPTED: Final = frozenset(
    {
        AcceptOutcome.CREDIT_ADDED,
        AcceptOutcome.MANAGEMENT_APPLIED,
        AcceptOutcome.KEY_CHANGE_SECTION_STORED,
        AcceptOutcome.KEY_CHANGED,
        AcceptOutcome.TEST_STARTED,
    }
)
# Only tokens that fail authentication count towards the lockout: an authentic token
# refused as Old or Used is a customer mistake, not someone guessing tokens.
_COUNTS_AS_BAD: Final = frozenset({AcceptOutcome.FORMAT_ERROR, AcceptOutcome.CRC_ERROR})


@dataclass(frozen=True, slots=True)
class AcceptResult:
    outcome: AcceptOutcome
    detail: str
    token: Token | None = None
    credit_added: int | None = None
    locked_for_seconds: float | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome.accepted


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """What is fixed in the meter model, not changed by tokens."""

    credit_subclasses: frozenset[int] = frozenset({2})
    manufacturer_code: int = 0
    credit_register_limit: int = 99_999_999
    tid_memory_size: int = 40
    lockout_threshold: int = 5
    lockout_base_seconds: float = 60.0
    lockout_max_seconds: float = 86_400.0


@dataclass(slots=True, repr=False)
class DecoderState:
    """Everything a meter remembers between tokens. Converts to and from a JSON-able dict."""

    decoder_key: bytes
    ea: EncryptionAlgorithm
    kt: int
    krn: int
    ti: int
    sgc: int
    ken: int
    base_date: int
    tids: list[int] = field(default_factory=list)
    credit: dict[int, int] = field(default_factory=dict)
    maximum_power_limit_w: int | None = None
    phase_power_unbalance_limit_w: int | None = None
    tariff_rate_field: int | None = None
    tamper_latched: bool = False
    pending_sections: dict[int, KeyChangeSection] = field(default_factory=dict)
    consecutive_bad_tokens: int = 0
    lockouts_since_good_token: int = 0
    locked_until: float = 0.0

    def __repr__(self) -> str:
        return (
            f"DecoderState(EA{self.ea.value}, KT {self.kt}, KRN {self.krn}, TI {self.ti}, "
            f"SGC {self.sgc:06d}, KEN {self.ken}, base {self.base_date}, {len(self.tids)} TIDs, <key hidden>)"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "version": _STATE_VERSION,
            "decoder_key": self.decoder_key.hex(),
            "ea": self.ea.value,
            "kt": self.kt,
            "krn": self.krn,
            "ti": self.ti,
            "sgc": self.sgc,
            "ken": self.ken,
            "base_date": self.base_date,
            "tids": list(self.tids),
            "credit": {str(subclass): amount for subclass, amount in sorted(self.credit.items())},
            "maximum_power_limit_w": self.maximum_power_limit_w,
            "phase_power_unbalance_limit_w": self.phase_power_unbalance_limit_w,
            "tariff_rate_field": self.tariff_rate_field,
            "tamper_latched": self.tamper_latched,
            "pending_sections": {
                str(n): _section_to_dict(s) for n, s in sorted(self.pending_sections.items())
            },
            "consecutive_bad_tokens": self.consecutive_bad_tokens,
            "lockouts_since_good_token": self.lockouts_since_good_token,
            "locked_until": self.locked_until,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> DecoderState:
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"decoder state version {data.get('version')!r} is not {_STATE_VERSION}")
        try:
            tids = [_as_int(t) for t in _as_list(data["tids"])]
            credit = {int(k): _as_int(v) for k, v in _as_dict(data["credit"]).items()}
            pending = {
                int(k): _section_from_dict(_as_dict(v)) for k, v in _as_dict(data["pending_sections"]).items()
            }
            return cls(
                decoder_key=bytes.fromhex(str(data["decoder_key"])),
                ea=EncryptionAlgorithm(str(data["ea"])),
                kt=_as_int(data["kt"]),
                krn=_as_int(data["krn"]),
                ti=_as_int(data["ti"]),
                sgc=_as_int(data["sgc"]),
                ken=_as_int(data["ken"]),
                base_date=_as_int(data["base_date"]),
                tids=sorted(tids),
                credit=credit,
                maximum_power_limit_w=_as_optional_int(data["maximum_power_limit_w"]),
                phase_power_unbalance_limit_w=_as_optional_int(data["phase_power_unbalance_limit_w"]),
                tariff_rate_field=_as_optional_int(data["tariff_rate_field"]),
                tamper_latched=bool(data["tamper_latched"]),
                pending_sections=pending,
                consecutive_bad_tokens=_as_int(data["consecutive_bad_tokens"]),
                lockouts_since_good_token=_as_int(data["lockouts_since_good_token"]),
                locked_until=float(_as_number(data["locked_until"])),
            )
        except KeyError as exc:
            raise ValueError(f"decoder state lacks {exc.args[0]!r}") from exc


def _as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _as_optional_int(value: object) -> int | None:
    return None if value is None else _as_int(value)


def _as_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _as_list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {value!r}")
    return value


def _as_dict(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {value!r}")
    return value


def _section_to_dict(section: KeyChangeSection) -> dict[str, object]:
    match section:
        case KeyChangeSection1():
            return {
                "section": 1,
                "ken_high": section.ken_high,
                "krn": section.krn,
                "rollover": section.rollover,
                "res": section.res,
                "kt": section.kt,
                "key_part": section.key_part,
            }
        case KeyChangeSection2():
            return {"section": 2, "ken_low": section.ken_low, "ti": section.ti, "key_part": section.key_part}
        case KeyChangeSection3():
            return {"section": 3, "sgc_low": section.sgc_low, "key_part": section.key_part}
        case KeyChangeSection4():
            return {"section": 4, "sgc_high": section.sgc_high, "key_part": section.key_part}


def _section_from_dict(data: dict[str, object]) -> KeyChangeSection:
    number = data.get("section")
    part = _as_int(data["key_part"])
    if number == 1:
        return KeyChangeSection1(
            _as_int(data["ken_high"]),
            _as_int(data["krn"]),
            _as_int(data["rollover"]),
            _as_int(data["res"]),
            _as_int(data["kt"]),
            part,
        )
    if number == 2:
        return KeyChangeSection2(_as_int(data["ken_low"]), _as_int(data["ti"]), part)
    if number == 3:
        return KeyChangeSection3(_as_int(data["sgc_low"]), part)
    if number == 4:
        return KeyChangeSection4(_as_int(data["sgc_high"]), part)
    raise ValueError(f"unknown key change section {number!r}")


_SECTION_NUMBER: Final = {
    KeyChangeSection1: 1,
    KeyChangeSection2: 2,
    KeyChangeSection3: 3,
    KeyChangeSection4: 4,
}


class MeterTokenAcceptor:
    """Applies tokens to a :class:`DecoderState` by the meter-side rules of STS."""

    def __init__(
        self, state: DecoderState, config: MeterConfig | None = None, *, sta_tables: StaTables | None = None
    ) -> None:
        self.state = state
        self.config = config or MeterConfig()
        self._sta_tables = sta_tables
        self._key = DecoderKey(state.decoder_key, state.ea, sta_tables=sta_tables)

    def __repr__(self) -> str:
        return f"MeterTokenAcceptor({self.state!r})"

    # --- entry point ---------------------------------------------------------------------

    def accept(self, token: str, *, now: float) -> AcceptResult:
        """Enter one token at time ``now`` (seconds on the caller's monotonic clock)."""
        state = self.state
        if now < state.locked_until:
            return AcceptResult(
                AcceptOutcome.LOCKED_OUT,
                "the keypad is locked after repeated bad tokens",
                locked_for_seconds=state.locked_until - now,
            )
        result = self._evaluate(token)
        if result.outcome in _COUNTS_AS_BAD:
            return self._count_bad_token(result, now)
        if result.accepted:
            state.consecutive_bad_tokens = 0
            state.lockouts_since_good_token = 0
        return result

    def _count_bad_token(self, result: AcceptResult, now: float) -> AcceptResult:
        state = self.state
        config = self.config
        state.consecutive_bad_tokens += 1
        if state.consecutive_bad_tokens < config.lockout_threshold:
            return result
        # Each lockout doubles the next one, so guessing tokens gets slower and slower.
        seconds = min(
            config.lockout_base_seconds * 2**state.lockouts_since_good_token, config.lockout_max_seconds
        )
        state.locked_until = now + seconds
        state.lockouts_since_good_token += 1
        state.consecutive_bad_tokens = 0
        return AcceptResult(result.outcome, result.detail, result.token, locked_for_seconds=seconds)

    # --- decoding ------------------------------------------------------------------------

    def _evaluate(self, token: str) -> AcceptResult:  # noqa: PLR0911 - one return per outcome reads best
        try:
            decoded = decode_token(token, self._key)
        except TokenFormatError as exc:
            return AcceptResult(AcceptOutcome.FORMAT_ERROR, str(exc))
        except TokenCrcError as exc:
            return AcceptResult(AcceptOutcome.CRC_ERROR, str(exc))
        except UnsupportedTokenError as exc:
            return AcceptResult(AcceptOutcome.CLASS_ERROR, str(exc))
        match decoded:
            case MeterTestToken():
                return self._apply_test(decoded)
            case CreditToken():
                return self._apply_credit(decoded)
            case ManagementToken():
                return self._apply_management(decoded)
            case KeyChangeSection1() | KeyChangeSection2() | KeyChangeSection3() | KeyChangeSection4():
                return self._apply_key_change_section(decoded)
        raise AssertionError(f"unhandled token {decoded!r}")  # pragma: no cover

    def _check_tid(self, token: CreditToken | ManagementToken) -> AcceptResult | None:
        state = self.state
        if token.tid > key_expiry_tid(state.ken):
            return AcceptResult(
                AcceptOutcome.KEY_EXPIRED_ERROR,
                f"TID {token.tid} is past the key's expiry (KEN {state.ken})",
                token,
            )
        position = bisect.bisect_left(state.tids, token.tid)
        if position < len(state.tids) and state.tids[position] == token.tid:
            return AcceptResult(AcceptOutcome.USED_ERROR, f"TID {token.tid} has already been used", token)
        if len(state.tids) >= self.config.tid_memory_size and position == 0:
            return AcceptResult(
                AcceptOutcome.OLD_ERROR,
                f"TID {token.tid} is older than the oldest remembered TID {state.tids[0]}",
                token,
            )
        return None

    def _remember_tid(self, tid: int) -> None:
        tids = self.state.tids
        bisect.insort(tids, tid)
        del tids[: max(0, len(tids) - self.config.tid_memory_size)]

    # --- token classes -----------------------------------------------------------------

    def _apply_test(self, token: MeterTestToken) -> AcceptResult:
        # MfrCode 0 addresses every maker's meters, which is what the published tests use.
        if token.mfr_code not in (0, self.config.manufacturer_code):
            return AcceptResult(
                AcceptOutcome.MANUFACTURER_ERROR, f"test token for manufacturer {token.mfr_code}", token
            )
        return AcceptResult(AcceptOutcome.TEST_STARTED, f"test/display control {token.control:#x}", token)

    def _apply_credit(self, token: CreditToken) -> AcceptResult:
        state = self.state
        if token.subclass not in self.config.credit_subclasses:
            return AcceptResult(
                AcceptOutcome.CLASS_ERROR,
                f"this meter does not take credit of subclass {token.subclass}",
                token,
            )
        if state.kt in (KeyType.DITK, KeyType.DDTK):
            return AcceptResult(
                AcceptOutcome.KEY_TYPE_ERROR,
                "credit is refused under a default or initialisation key; the meter needs a key change",
                token,
            )
        refusal = self._check_tid(token)
        if refusal is not None:
            return refusal
        amount = token.amount
        balance = state.credit.get(token.subclass, 0)
        if balance + amount > self.config.credit_register_limit:
            return AcceptResult(
                AcceptOutcome.OVERFLOW_ERROR,
                f"crediting {amount} would take the register past {self.config.credit_register_limit}",
                token,
            )
        state.credit[token.subclass] = balance + amount
        self._remember_tid(token.tid)
        return AcceptResult(AcceptOutcome.CREDIT_ADDED, f"credited {amount}", token, credit_added=amount)

    def _apply_management(self, token: ManagementToken) -> AcceptResult:
        state = self.state
        if state.kt == KeyType.DITK:
            return AcceptResult(
                AcceptOutcome.KEY_TYPE_ERROR,
                "only key change tokens are accepted under an initialisation key",
                token,
            )
        if token.subclass == ManagementSubclass.SET_WATER_METER_FACTOR:
            return AcceptResult(AcceptOutcome.CLASS_ERROR, "a gas meter has no water meter factor", token)
        refusal = self._check_tid(token)
        if refusal is not None:
            return refusal
        if token.subclass == ManagementSubclass.CLEAR_CREDIT:
            register = token.value16
            if register == ALL_REGISTERS:
                state.credit.clear()
            elif register in self.config.credit_subclasses:
                # citygas convention: register identifier n is the credit register of subclass n.
                state.credit.pop(register, None)
            else:
                return AcceptResult(AcceptOutcome.RANGE_ERROR, f"no credit register {register:#06x}", token)
        elif token.subclass == ManagementSubclass.SET_MAXIMUM_POWER_LIMIT:
            state.maximum_power_limit_w = token.limit_w
        elif token.subclass == ManagementSubclass.SET_MAXIMUM_PHASE_POWER_UNBALANCE_LIMIT:
            state.phase_power_unbalance_limit_w = token.limit_w
        elif token.subclass == ManagementSubclass.SET_TARIFF_RATE:
            state.tariff_rate_field = token.value16
        elif token.subclass == ManagementSubclass.CLEAR_TAMPER_CONDITION:
            state.tamper_latched = False
        self._remember_tid(token.tid)
        return AcceptResult(
            AcceptOutcome.MANAGEMENT_APPLIED, ManagementSubclass(token.subclass).name.lower(), token
        )

    def _apply_key_change_section(self, section: KeyChangeSection) -> AcceptResult:
        state = self.state
        number = _SECTION_NUMBER[type(section)]
        key_bytes = len(state.decoder_key)
        required = (1, 2) if key_bytes == 8 else (1, 2, 3, 4)
        if number not in required:
            return AcceptResult(
                AcceptOutcome.CLASS_ERROR,
                f"a {key_bytes * 8}-bit meter has no key change section {number}",
                section,
            )
        state.pending_sections[number] = section
        if any(n not in state.pending_sections for n in required):
            missing = [n for n in required if n not in state.pending_sections]
            return AcceptResult(
                AcceptOutcome.KEY_CHANGE_SECTION_STORED,
                f"section {number} stored; waiting for {missing}",
                section,
            )
        material, attributes = assemble_new_key(state.pending_sections, key_bytes)
        state.pending_sections.clear()
        problem = _key_change_range_problem(
            attributes.kt,
            attributes.krn,
            attributes.ti,
            attributes.sgc,
            rollover=attributes.rollover,
            base_date=state.base_date,
        )
        if problem is not None:
            return AcceptResult(AcceptOutcome.RANGE_ERROR, problem, section)
        state.decoder_key = material
        state.kt = attributes.kt
        state.krn = attributes.krn
        state.ti = attributes.ti
        state.ken = attributes.ken
        if attributes.sgc is not None:
            state.sgc = attributes.sgc
        if attributes.rollover:
            state.base_date = next_base_date(state.base_date)
            state.tids.clear()
        self._key = DecoderKey(material, state.ea, sta_tables=self._sta_tables)
        detail = f"new key KRN {attributes.krn}" + (
            f", base date {state.base_date}" if attributes.rollover else ""
        )
        return AcceptResult(AcceptOutcome.KEY_CHANGED, detail, section)


def _key_change_range_problem(
    kt: int, krn: int, ti: int, sgc: int | None, *, rollover: bool, base_date: int
) -> str | None:
    if kt == KeyType.DITK:
        return "a key change cannot install an initialisation key (KT 0)"
    if not 1 <= krn <= 9:
        return f"key revision number {krn} is outside 1..9"
    if ti > 99:
        return f"tariff index {ti} is outside 0..99"
    if sgc is not None and sgc > 999_999:
        return f"supply group code {sgc} has more than 6 digits"
    if rollover and base_date == BASE_DATES[-1]:
        return f"there is no base date after {base_date} to roll over to"
    return None
