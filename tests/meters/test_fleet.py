"""The fleet simulator: realistic aggregates, deterministic for a seed, and the household usage generator."""

from __future__ import annotations

import random
import statistics
from datetime import date, timedelta

import pytest

from citygas import sts
from citygas.meters.fleet import (
    CookingSession,
    FleetResult,
    cooking_sessions,
    day_factor,
    fleet_meter_pan,
    make_household,
    simulate_fleet,
)

HOUR = 3_600


@pytest.fixture(scope="module")
def january() -> FleetResult:
    return simulate_fleet(400, 28, seed=11, start=date(2025, 1, 6))  # four whole weeks from a Monday


def test_the_same_seed_gives_the_same_fleet() -> None:
    first = simulate_fleet(60, 10, seed=3, start=date(2025, 3, 1))

    second = simulate_fleet(60, 10, seed=3, start=date(2025, 3, 1))

    assert first == second


def test_another_seed_gives_another_fleet() -> None:
    first = simulate_fleet(60, 10, seed=3, start=date(2025, 3, 1))

    second = simulate_fleet(60, 10, seed=4, start=date(2025, 3, 1))

    assert first.total_litres != second.total_litres


def test_a_household_at_home_uses_between_0_3_and_1_5_scm_a_day_on_average(january: FleetResult) -> None:
    days_at_home = january.meter_days - january.away_meter_days

    mean_litres = january.total_litres / days_at_home

    assert 600 <= mean_litres <= 1_200  # winter: above the year's ~700 L


def test_every_day_of_the_fleet_uses_gas_and_the_totals_add_up(january: FleetResult) -> None:
    assert len(january.daily_litres) == 28
    assert min(january.daily_litres) > 0
    assert sum(january.daily_litres) == january.total_litres


def test_sundays_use_more_gas_than_weekdays(january: FleetResult) -> None:
    sundays = january.daily_litres[6::7]
    weekdays = [litres for day, litres in enumerate(january.daily_litres) if day % 7 < 5]

    assert min(sundays) > max(weekdays)


def test_winter_uses_more_gas_than_summer() -> None:
    winter = simulate_fleet(150, 14, seed=5, start=date(2025, 1, 6))
    summer = simulate_fleet(150, 14, seed=5, start=date(2025, 7, 7))

    assert winter.total_litres > 1.3 * summer.total_litres


def test_households_top_up_and_some_let_the_valve_close(january: FleetResult) -> None:
    assert january.tokens_accepted >= january.meters  # everyone's first credit, then top-ups
    assert january.top_ups >= 2 * january.meters
    assert january.credit_loaded_paise > 0
    assert 0 < january.closures < january.meters
    assert january.meters_closed_at_end < january.meters // 10


def test_some_households_are_away_some_days(january: FleetResult) -> None:
    assert 0.01 * january.meter_days < january.away_meter_days < 0.15 * january.meter_days


def test_about_half_a_percent_of_meters_are_tampered_with() -> None:
    fleet = simulate_fleet(3_000, 2, seed=9, start=date(2025, 3, 3))

    tampered = sum(fleet.tamper_events.values())

    assert 3 <= tampered <= 35
    assert set(fleet.tamper_events) <= {"magnet_tamper", "case_open"}


def test_progress_reports_every_meter_once() -> None:
    reported: list[int] = []

    simulate_fleet(1_200, 1, seed=1, start=date(2025, 3, 3), progress=reported.append)

    assert reported == [500, 500, 200]


def test_an_empty_fleet_is_empty() -> None:
    fleet = simulate_fleet(0, 5, seed=1, start=date(2025, 3, 3))

    assert (fleet.total_litres, fleet.daily_litres, fleet.meter_days) == (0, (0, 0, 0, 0, 0), 0)


def test_a_negative_fleet_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        simulate_fleet(-1, 5, seed=1, start=date(2025, 3, 3))


# --- the household usage generator ----------------------------------------------------------------


def test_cooking_peaks_in_the_morning_and_the_evening() -> None:
    rng = random.Random(1)
    household = make_household(rng)

    days = [cooking_sessions(household, 1.0, rng) for _ in range(200)]

    for sessions in days:
        morning, evening = sessions[0], sessions[-1]
        assert 6 * HOUR <= morning.starts_after_midnight < 8 * HOUR
        assert 18 * HOUR <= evening.starts_after_midnight < 20 * HOUR
        assert evening.starts_after_midnight + evening.seconds < 24 * HOUR
    assert any(len(sessions) == 3 for sessions in days)  # a midday meal on some days


def test_a_session_never_asks_for_more_than_qmax() -> None:
    rng = random.Random(2)
    sessions: list[CookingSession] = []
    for _ in range(200):
        sessions.extend(cooking_sessions(make_household(rng), 1.5, rng))

    assert all(s.litres * HOUR <= 2_500 * s.seconds for s in sessions)


def test_households_differ_in_scale_within_the_realistic_range() -> None:
    rng = random.Random(3)

    scales = [make_household(rng).litres_per_day for _ in range(500)]

    assert min(scales) >= 300
    assert max(scales) <= 1_400
    assert 600 <= statistics.median(scales) <= 800


def test_sundays_and_winter_weigh_more() -> None:
    monday = date(2025, 7, 7)

    assert day_factor(monday + timedelta(days=6)) == pytest.approx(1.2 * day_factor(monday), rel=0.01)
    assert day_factor(date(2025, 1, 15)) > 1.5 * day_factor(date(2025, 7, 16))


def test_fleet_meter_numbers_carry_a_valid_check_digit() -> None:
    assert fleet_meter_pan(0) == "600727000000000009"  # the published conformance test meter
    assert all(sts.pan_check_digit_is_valid(fleet_meter_pan(i)) for i in range(0, 100_000, 997))
