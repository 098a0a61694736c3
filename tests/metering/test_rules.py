"""The pure metering rules: token proof from events, the pending order, consumption and the estimate."""

from __future__ import annotations

import ast
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from citygas.metering import rules
from citygas.metering.rules import (
    ConsumptionPoint,
    IssuedToken,
    SnapshotValue,
    VendTokens,
    average_daily_litres,
    confirmed_tid,
    consumption_points,
    days_left,
    estimate_paise,
    litres_to_paise,
    pending_in_order,
    period_closes_at,
    rate_in_force,
)

T = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)


def test_gas_is_priced_to_the_paisa_rounding_half_up() -> None:
    assert litres_to_paise(1000, 4850) == 4850
    assert litres_to_paise(1, 4850) == 5  # 4.85 paise
    assert litres_to_paise(1, 4500) == 5  # 4.5 rounds up
    assert litres_to_paise(1, 4499) == 4
    assert litres_to_paise(0, 4850) == 0


def test_a_signed_token_event_names_the_tid_the_meter_accepted() -> None:
    assert confirmed_tid("token_accepted", "credit_added +48550 tid=6123456") == 6123456
    assert confirmed_tid("token_accepted", "management_applied tid=42") == 42
    assert confirmed_tid("token_rejected", "used_error tid=77") == 77  # the meter holds it: accepted before
    assert confirmed_tid("token_rejected", "old_error tid=77") is None  # proves nothing
    assert confirmed_tid("token_accepted", "key_change_section_stored") is None  # no TID on key changes
    assert confirmed_tid("valve_opened", "tid=5") is None
    assert confirmed_tid("token_accepted", "credit_added +5 xtid=5") is None


def _vend(n: int, *tokens: tuple[str, int | None], credit: int = 10_000) -> VendTokens:
    return VendTokens(
        vend_id=uuid.UUID(int=n),
        receipt_number=f"R{n}",
        issued_at=T + timedelta(minutes=n),
        gas_credit_paise=credit,
        tokens=tuple(IssuedToken(kind, f"{n}{i:019d}", tid) for i, (kind, tid) in enumerate(tokens)),
    )


def test_pending_tokens_are_oldest_vend_first_in_entry_order() -> None:
    first = _vend(1, ("set_tariff_rate", 10), ("credit", 11))
    second = _vend(2, ("credit", 12), credit=20_000)

    pending = pending_in_order([second, first], set())

    assert [(p.receipt_number, p.kind, p.tid) for p in pending] == [
        ("R1", "set_tariff_rate", 10),
        ("R1", "credit", 11),
        ("R2", "credit", 12),
    ]
    assert [p.gas_credit_paise for p in pending] == [0, 10_000, 20_000]  # only a credit token adds credit
    assert [p.position for p in pending] == [0, 1, 0]


def test_a_confirmed_tid_settles_its_token_only() -> None:
    vend = _vend(1, ("set_tariff_rate", 10), ("credit", 11))
    assert [p.tid for p in pending_in_order([vend], {11})] == [10]


def test_key_change_tokens_are_settled_by_any_later_token_made_under_the_new_key() -> None:
    rekey = _vend(1, ("key_change", None), ("key_change", None), ("credit", 11))
    later = _vend(2, ("credit", 12))

    assert [p.kind for p in pending_in_order([rekey, later], set())] == [
        "key_change",
        "key_change",
        "credit",
        "credit",
    ]
    assert [p.tid for p in pending_in_order([rekey, later], {12})] == [11]  # the key changed; 11 still waits
    assert pending_in_order([rekey], {11}) == []


def test_snapshots_make_points_only_from_consecutive_periods() -> None:
    days = [
        SnapshotValue(date(2026, 12, 1), 1000),
        SnapshotValue(date(2026, 12, 2), 1700),
        SnapshotValue(date(2026, 12, 3), 2300),
        SnapshotValue(date(2026, 12, 5), 3500),  # the 4th is missing: no point for the 5th
        SnapshotValue(date(2026, 12, 6), 4000),
    ]

    points = consumption_points(days, kind="daily", periods=10, rates=[(T - timedelta(days=400), 5000)])

    assert points == [
        ConsumptionPoint(date(2026, 12, 2), 700, 3500),
        ConsumptionPoint(date(2026, 12, 3), 600, 3000),
        ConsumptionPoint(date(2026, 12, 6), 500, 2500),
    ]
    assert consumption_points(days, kind="daily", periods=1, rates=[]) == [
        ConsumptionPoint(date(2026, 12, 6), 500, 0)
    ]
    assert consumption_points(days, kind="daily", periods=0, rates=[]) == []


def test_monthly_points_pair_month_ends_and_take_the_rate_in_force_when_the_month_closed() -> None:
    months = [
        SnapshotValue(date(2026, 9, 30), 10_000),
        SnapshotValue(date(2026, 10, 31), 31_000),
        SnapshotValue(date(2026, 11, 30), 52_000),
    ]
    rates = [(datetime(2026, 1, 1, tzinfo=UTC), 4000), (datetime(2026, 11, 15, tzinfo=UTC), 5000)]

    points = consumption_points(months, kind="monthly", periods=12, rates=rates)

    assert points == [
        ConsumptionPoint(date(2026, 10, 31), 21_000, 84_000),
        ConsumptionPoint(date(2026, 11, 30), 21_000, 105_000),
    ]


def test_the_rate_in_force_before_the_first_price_is_the_first_price() -> None:
    versions = [(datetime(2026, 6, 1, tzinfo=UTC), 4000), (datetime(2026, 7, 1, tzinfo=UTC), 4500)]
    assert rate_in_force(versions, datetime(2026, 1, 1, tzinfo=UTC)) == 4000
    assert rate_in_force(versions, datetime(2026, 6, 30, tzinfo=UTC)) == 4000
    assert rate_in_force(versions, datetime(2026, 7, 1, tzinfo=UTC)) == 4500
    assert rate_in_force([], T, fallback=5000) == 5000
    # A day's period closes at 23:59:59 IST, i.e. 18:29:59 UTC.
    assert period_closes_at(date(2026, 12, 4)) == datetime(2026, 12, 4, 18, 29, 59, tzinfo=UTC)


def test_the_daily_average_spans_the_last_two_weeks() -> None:
    days = [SnapshotValue(date(2026, 11, 1) + timedelta(days=d), 700 * d) for d in range(30)]
    assert average_daily_litres(days) == 700
    assert average_daily_litres(days[:1]) is None
    assert average_daily_litres([]) is None
    # Half a litre a day over two days rounds up.
    assert average_daily_litres([SnapshotValue(date(2026, 1, 1), 0), SnapshotValue(date(2026, 1, 3), 1)]) == 1


def test_the_estimate_spends_the_daily_average_pro_rata_and_never_goes_below_zero() -> None:
    assert estimate_paise(synced_paise=10_000, synced_at=T, now=T, daily_spend_paise=3000) == 10_000
    assert (
        estimate_paise(synced_paise=10_000, synced_at=T, now=T + timedelta(hours=12), daily_spend_paise=3000)
        == 8500
    )
    assert (
        estimate_paise(synced_paise=10_000, synced_at=T, now=T + timedelta(days=5), daily_spend_paise=3000)
        == 0
    )
    assert (
        estimate_paise(synced_paise=10_000, synced_at=T, now=T - timedelta(days=1), daily_spend_paise=3000)
        == 10_000
    )
    assert days_left(10_000, 3000) == 3
    assert days_left(10_000, None) is None
    assert days_left(10_000, 0) is None


@given(
    synced=st.integers(0, 10**9),
    spend=st.integers(0, 10**6),
    seconds=st.integers(0, 400 * 86_400),
    more=st.integers(0, 86_400),
)
def test_the_estimate_only_falls_as_time_passes_and_stays_within_the_synced_credit(
    synced: int, spend: int, seconds: int, more: int
) -> None:
    earlier = estimate_paise(
        synced_paise=synced, synced_at=T, now=T + timedelta(seconds=seconds), daily_spend_paise=spend
    )
    later = estimate_paise(
        synced_paise=synced, synced_at=T, now=T + timedelta(seconds=seconds + more), daily_spend_paise=spend
    )
    assert 0 <= later <= earlier <= synced


@given(
    daily=st.lists(st.integers(0, 5000), min_size=1, max_size=60),
    start=st.dates(date(2020, 1, 1), date(2035, 1, 1)),
)
def test_daily_points_add_up_to_the_register_difference(daily: list[int], start: date) -> None:
    cumulative = [0]
    for litres in daily:
        cumulative.append(cumulative[-1] + litres)
    snapshots = [SnapshotValue(start + timedelta(days=i), c) for i, c in enumerate(cumulative)]

    points = consumption_points(snapshots, kind="daily", periods=len(daily), rates=[(T, 4850)])

    assert [p.litres for p in points] == daily
    assert sum(p.litres for p in points) == cumulative[-1]
    assert all(p.paise == litres_to_paise(p.litres, 4850) for p in points)


@given(
    vends=st.lists(
        st.lists(st.sampled_from(["key_change", "set_tariff_rate", "credit"]), min_size=1, max_size=4),
        max_size=6,
    ),
    data=st.data(),
)
def test_pending_is_a_subsequence_of_every_token_in_entry_order(
    vends: list[list[str]], data: st.DataObject
) -> None:
    tid = 0
    made = []
    for n, kinds in enumerate(vends, start=1):
        tokens = []
        for kind in kinds:
            tid += 1
            tokens.append((kind, None if kind == "key_change" else tid))
        made.append(_vend(n, *tokens))
    every = [(v.vend_id, i) for v in made for i in range(len(v.tokens))]
    all_tids = [t.tid for v in made for t in v.tokens if t.tid is not None]
    confirmed = set(data.draw(st.lists(st.sampled_from(all_tids), unique=True)) if all_tids else [])

    pending = [(p.vend_id, p.position) for p in pending_in_order(list(reversed(made)), confirmed)]

    assert pending == [key for key in every if key in set(pending)]  # order kept
    assert not any(p.tid in confirmed for p in pending_in_order(made, confirmed))
    assert len(pending_in_order(made, set())) == len(every)


def test_the_rules_module_is_pure() -> None:
    """No database, web or platform-db import: the estimate and series can be checked without either."""
    tree = ast.parse(Path(rules.__file__).read_text(encoding="utf-8"))
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    forbidden = ("sqlalchemy", "fastapi", "starlette", "citygas")
    assert not [m for m in imported if m.startswith(forbidden)], imported
