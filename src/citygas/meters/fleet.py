"""The fleet simulator behind ``citygas meter fleet --meters N --days D``: households, one meter model each.

Every household runs the real :class:`~citygas.meters.model.SimulatedMeter` (credit, valve, re-arm,
emergency credit, friendly hours, snapshots), and every top-up is a real STS token issued with
:func:`citygas.sts.issue_metered_credit` and typed on the meter, so the fleet exercises the same rules as a
single simulated meter. What makes it fast is the granularity: a household's day is three cooking sessions
(morning, an optional midday one, evening) whose times and volumes are computed arithmetically, so a meter-
day costs a handful of model calls instead of a per-minute loop.

Household use: about 0.3-1.5 SCM a day with a per-household scale, cooking peaks 06:00-09:00 and
18:00-21:00 IST, more on Saturdays and most on Sundays, more in winter (water heating) than in the monsoon
and summer, away stretches with no use at all, and a few meters (about 0.5 %) tampered with. Households top
up with some delay when the low-credit alarm shows; some wait until the valve closes, sometimes bridging
with emergency credit, and press the button when credit is back.

The meters use the published STS conformance test vending key (a **test key**, SGC 123457, EA11/DKGA04,
base date 2014), so anyone can check the tokens with an independent decoder. Results depend only on the
seed: each household draws from its own generator seeded from (seed, meter index).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final

from citygas import sts
from citygas.meters.model import SimulatedMeter
from citygas.meters.rules import sts_meter_number
from citygas.meters.types import EventCode, MeterIdentity, MeterMode, MeterParameters, ValveState

__all__ = [
    "FLEET_PARAMETERS",
    "FLEET_TARIFF_PAISE_PER_SCM",
    "TEST_VENDING_KEY",
    "CookingSession",
    "FleetResult",
    "Household",
    "cooking_sessions",
    "day_factor",
    "fleet_meter_pan",
    "make_household",
    "simulate_fleet",
]

# The published STS conformance test vending key: a TEST KEY, never for real meters.
TEST_VENDING_KEY: Final = bytes.fromhex("abababababababab949494949494949401234567")
TEST_SGC: Final = "123457"
FLEET_BASE_DATE: Final = 2014
FLEET_TARIFF_PAISE_PER_SCM: Final = 5_000  # Rs 50 per SCM, about a metro's domestic PNG price
FLEET_PARAMETERS: Final = MeterParameters(
    low_credit_threshold=10_000,  # Rs 100: two to three days of cooking
    emergency_credit=5_000,  # Rs 50
    friendly_hours=(22, 6),
)
TAMPER_SHARE: Final = 0.005

_IST: Final = timedelta(hours=5, minutes=30)
_DAY: Final = 86_400
_HOUR: Final = 3_600
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TID_EPOCH_MINUTES: Final = (datetime(FLEET_BASE_DATE, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(minutes=1)
_TOP_UPS_PAISE: Final = (30_000, 50_000, 50_000, 100_000, 100_000, 100_000, 200_000)
_PROGRESS_EVERY: Final = 500


@dataclass(frozen=True, slots=True)
class Household:
    """How one household uses gas and pays for it."""

    litres_per_day: int  # its typical day before weekday, season and day-to-day variation
    midday_cooking: float  # chance of a midday session on a day at home
    burner_litres_per_hour: int  # flow while cooking (a two-burner hob at part load)
    top_up_paise: int
    tops_up_on_low_credit: bool  # False: waits until the valve closes
    uses_emergency_credit: bool
    away_chance: float  # chance per day at home of leaving for a few days


@dataclass(frozen=True, slots=True)
class CookingSession:
    starts_after_midnight: int  # seconds after local (IST) midnight
    litres: int
    seconds: int


@dataclass(frozen=True, slots=True)
class FleetResult:
    meters: int
    days: int
    start: date
    seed: int
    total_litres: int
    daily_litres: tuple[int, ...]  # litres of the whole fleet on each simulated day
    away_meter_days: int  # household-days with nobody at home (no use)
    closures: int  # valve closures for lack of credit
    tamper_events: dict[str, int] = field(default_factory=dict)  # EventCode value -> count
    tokens_accepted: int = 0
    top_ups: int = 0
    credit_loaded_paise: int = 0
    emergency_credit_taken: int = 0
    meters_closed_at_end: int = 0

    @property
    def meter_days(self) -> int:
        return self.meters * self.days

    @property
    def mean_litres_per_meter_day(self) -> float:
        return self.total_litres / self.meter_days if self.meter_days else 0.0


def fleet_meter_pan(index: int) -> str:
    """The 18-digit STS meter number of fleet meter ``index``: the test IIN 600727, 11 digits, Luhn."""
    return sts_meter_number(index)


def make_household(rng: random.Random) -> Household:
    litres = round(math.exp(rng.gauss(math.log(700), 0.35)))
    return Household(
        litres_per_day=min(1_400, max(300, litres)),
        midday_cooking=rng.uniform(0.1, 0.7),
        burner_litres_per_hour=rng.randrange(300, 800),
        top_up_paise=rng.choice(_TOP_UPS_PAISE),
        tops_up_on_low_credit=rng.random() < 0.75,
        uses_emergency_credit=rng.random() < 0.5,
        away_chance=rng.uniform(0.005, 0.03),
    )


def day_factor(day: date) -> float:
    """Weekday and season: Sundays most, Saturdays more; mid-January +22 %, mid-July -22 %."""
    weekly = (1.0, 1.0, 1.0, 1.0, 1.0, 1.08, 1.2)[day.weekday()]
    seasonal = 1.0 + 0.22 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365.25)
    return weekly * seasonal


def cooking_sessions(household: Household, factor: float, rng: random.Random) -> tuple[CookingSession, ...]:
    """One day at home: the day's litres split into a morning, maybe a midday, and an evening session."""
    litres = household.litres_per_day * factor * rng.uniform(0.75, 1.25)
    rate = household.burner_litres_per_hour
    midday = rng.random() < household.midday_cooking
    morning_share = rng.uniform(0.35, 0.5)
    midday_share = rng.uniform(0.1, 0.2) if midday else 0.0
    shares = (
        (6 * _HOUR + rng.randrange(0, 2 * _HOUR), morning_share),
        (12 * _HOUR + rng.randrange(0, 90 * 60), midday_share),
        (18 * _HOUR + rng.randrange(0, 2 * _HOUR), 1.0 - morning_share - midday_share),
    )
    sessions = []
    for starts, share in shares:
        amount = int(litres * share)
        if amount:
            sessions.append(CookingSession(starts, amount, max(60, amount * _HOUR // rate)))
    return tuple(sessions)


def _holidays(start: date, days: int) -> tuple[date, ...]:
    """National holidays (Republic Day, Independence Day, Gandhi Jayanti): friendly days for the meters."""
    years = range(start.year, (start + timedelta(days=days)).year + 1)
    return tuple(date(y, m, d) for y in years for m, d in ((1, 26), (8, 15), (10, 2)))


@dataclass(slots=True)
class _Totals:
    daily_litres: list[int]
    away_meter_days: int = 0
    closures: int = 0
    tamper_events: Counter[str] = field(default_factory=Counter)
    tokens_accepted: int = 0
    top_ups: int = 0
    credit_loaded_paise: int = 0
    emergency_credit_taken: int = 0
    meters_closed_at_end: int = 0


class _Fleet:
    """What every household shares: the calendar, the parameters, the vending side."""

    def __init__(self, *, seed: int, start: date, days: int, tariff_paise_per_scm: int) -> None:
        self.seed = seed
        self.days = days
        self.tariff = tariff_paise_per_scm
        self.start = datetime(start.year, start.month, start.day, tzinfo=UTC) - _IST  # IST midnight
        self.start_seconds = (self.start - _EPOCH) // timedelta(seconds=1)
        self.factors = [day_factor(start + timedelta(days=d)) for d in range(days)]
        self.parameters = MeterParameters(
            low_credit_threshold=FLEET_PARAMETERS.low_credit_threshold,
            emergency_credit=FLEET_PARAMETERS.emergency_credit,
            friendly_hours=FLEET_PARAMETERS.friendly_hours,
            friendly_holidays=_holidays(start, days),
        )
        self.totals = _Totals(daily_litres=[0] * days)

    def run_household(self, index: int) -> None:  # noqa: PLR0912, PLR0915 - one household's story reads best whole
        # A simulation, not secrecy: a seeded generator per household keeps results reproducible.
        rng = random.Random(self.seed * 1_000_003 + index)  # noqa: S311
        household = make_household(rng)
        pan = fleet_meter_pan(index)
        key = sts.derive_decoder_key_dkga04(
            TEST_VENDING_KEY,
            sts.DecoderKeyParameters(
                pan=pan, sgc=TEST_SGC, ti=1, kt=sts.KeyType.DUTK, krn=1, base_date=FLEET_BASE_DATE
            ),
        )
        identity = MeterIdentity(
            serial=f"FL{index:09d}",
            sts_meter_number=pan,
            model="G1.6",
            manufacturer_code=0,
            firmware="sim-1",
            mode=MeterMode.CURRENCY,
            sgc=TEST_SGC,
            krn=1,
            ti=1,
            base_date=FLEET_BASE_DATE,
        )
        meter = SimulatedMeter(
            identity, self.parameters, tariff_paise_per_scm=self.tariff, decoder_key=key, start=self.start
        )
        totals = self.totals
        daily = totals.daily_litres
        threshold = self.parameters.low_credit_threshold
        clock = self.start_seconds
        last_tid: int | None = None

        def top_up(amount: int, now: int) -> None:
            nonlocal last_tid
            tid = sts.next_tid(now // 60 - _TID_EPOCH_MINUTES, last_tid)
            last_tid = tid
            issued = sts.issue_metered_credit(
                decoder_key=key,
                convention=sts.GAS_CURRENCY_TENTH_RUPEE,
                base_units=amount,
                tid=tid,
                ken=255,
                rnd=tid & 15,
            )
            if meter.enter_token(issued.token).accepted:
                totals.tokens_accepted += 1
                totals.top_ups += 1
                totals.credit_loaded_paise += issued.carried_base_units

        def clear_tamper(now: int) -> None:
            nonlocal last_tid
            tid = sts.next_tid(now // 60 - _TID_EPOCH_MINUTES, last_tid)
            last_tid = tid
            token = sts.issue_clear_tamper_condition(decoder_key=key, tid=tid, ken=255, rnd=tid & 15).token
            if meter.enter_token(token).accepted:
                totals.tokens_accepted += 1

        top_up(household.top_up_paise, clock)  # credit bought with the connection
        meter.press_button()
        tamper_day = rng.randrange(self.days) if self.days and rng.random() < TAMPER_SHARE else -1
        tamper_code = EventCode.MAGNET_TAMPER if rng.random() < 0.6 else EventCode.CASE_OPEN
        tamper_cleared_at = -1
        top_up_at = -1  # when the household will next top up, -1 if it has no plan
        away_until = -1
        for day in range(self.days):
            midnight = self.start_seconds + day * _DAY
            if day < away_until:
                totals.away_meter_days += 1
                continue
            if rng.random() < household.away_chance:
                away_until = day + rng.randrange(2, 10)
                totals.away_meter_days += 1
                continue
            used = 0
            for session in cooking_sessions(household, self.factors[day], rng):
                starts = midnight + session.starts_after_midnight
                if day == tamper_day:
                    meter.wait(starts - clock)
                    clock = starts
                    meter.inject(tamper_code, "fleet simulation")
                    totals.tamper_events[tamper_code.value] += 1
                    tamper_cleared_at = starts + rng.randrange(_DAY, 3 * _DAY)  # a technician visit
                    tamper_day = -1
                if 0 <= tamper_cleared_at <= starts:
                    clear_tamper(tamper_cleared_at if tamper_cleared_at > clock else clock)
                    tamper_cleared_at = -1
                if 0 <= top_up_at <= starts:
                    top_up(household.top_up_paise, max(top_up_at, clock))
                    top_up_at = -1
                valve = meter.valve
                if (
                    valve is ValveState.CLOSED
                    and household.uses_emergency_credit
                    and tamper_cleared_at < 0
                    and meter.status().emergency_credit_available
                ):
                    meter.take_emergency_credit()
                    totals.emergency_credit_taken += 1
                    valve = meter.valve
                if valve is ValveState.ARMED:
                    meter.press_button()  # the customer checks the burners are off, then presses
                    valve = meter.valve
                meter.wait(starts - clock)  # the night may end a friendly period and close the valve
                used += meter.consume(session.litres, session.seconds)
                clock = starts + session.seconds
                if valve is ValveState.OPEN and meter.valve is ValveState.CLOSED and tamper_cleared_at < 0:
                    totals.closures += 1
                if top_up_at < 0:
                    if meter.valve is ValveState.CLOSED and tamper_cleared_at < 0:
                        top_up_at = clock + rng.randrange(_HOUR, 30 * _HOUR)
                    elif household.tops_up_on_low_credit and meter.credit < threshold:
                        top_up_at = clock + rng.randrange(2 * _HOUR, 40 * _HOUR)
            daily[day] += used
        end = self.start_seconds + self.days * _DAY
        meter.wait(end - clock)  # to the last midnight, so the last day's snapshot is taken
        if meter.valve is not ValveState.OPEN:
            totals.meters_closed_at_end += 1


def simulate_fleet(
    meters: int,
    days: int,
    *,
    seed: int,
    start: date,
    progress: Callable[[int], None] | None = None,
    tariff_paise_per_scm: int = FLEET_TARIFF_PAISE_PER_SCM,
) -> FleetResult:
    """Simulate ``meters`` households for ``days`` days from ``start`` (IST midnight).

    ``progress(n)`` is called with the number of meters just finished (an increment, as click's
    ``ProgressBar.update`` takes), every few hundred meters and once at the end.
    """
    if meters < 0 or days < 0:
        raise ValueError("a fleet needs a non-negative number of meters and days")
    fleet = _Fleet(seed=seed, start=start, days=days, tariff_paise_per_scm=tariff_paise_per_scm)
    reported = 0
    for index in range(meters):
        fleet.run_household(index)
        if progress is not None and index + 1 - reported >= _PROGRESS_EVERY:
            progress(index + 1 - reported)
            reported = index + 1
    if progress is not None and meters > reported:
        progress(meters - reported)
    totals = fleet.totals
    return FleetResult(
        meters=meters,
        days=days,
        start=start,
        seed=seed,
        total_litres=sum(totals.daily_litres),
        daily_litres=tuple(totals.daily_litres),
        away_meter_days=totals.away_meter_days,
        closures=totals.closures,
        tamper_events=dict(sorted(totals.tamper_events.items())),
        tokens_accepted=totals.tokens_accepted,
        top_ups=totals.top_ups,
        credit_loaded_paise=totals.credit_loaded_paise,
        emergency_credit_taken=totals.emergency_credit_taken,
        meters_closed_at_end=totals.meters_closed_at_end,
    )
