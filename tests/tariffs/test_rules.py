"""Pure tariff arithmetic: percentages that cannot be confused, VAT splits that lose no paisa, litres,
instalments, commission, and the top-up waterfall."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citygas.tariffs.rules import (
    AmountOutOfRange,
    TariffRuleError,
    allocate_topup,
    bp_to_percent,
    commission_for,
    fixed_instalment,
    flat_commission,
    gas_value_for,
    instalment_due,
    litres_for_paise,
    paise_for_litres,
    percent_commission,
    percent_instalment,
    percent_to_bp,
    split_inclusive,
    tax_on,
    version_in_force,
)


def test_ten_percent_is_a_thousand_basis_points() -> None:
    assert percent_to_bp(Decimal("10")) == 1000
    assert percent_to_bp(Decimal("0.5")) == 50
    assert percent_to_bp(Decimal("100")) == 10_000
    assert bp_to_percent(1000) == Decimal("10")


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (Decimal("1000"), "outside 0 < p ≤ 100; 10 % is written 10, not 1000"),
        (Decimal("0"), "outside 0 < p ≤ 100"),
        (Decimal("-5"), "outside 0 < p ≤ 100"),
        (Decimal("12.345"), "finer than one basis point"),
        (Decimal("NaN"), "is not a percentage"),
    ],
)
def test_a_percentage_outside_its_range_is_refused(typed: Decimal, message: str) -> None:
    with pytest.raises(TariffRuleError, match=message):
        percent_to_bp(typed)


def test_a_float_or_an_int_percentage_is_refused_at_the_edge() -> None:
    with pytest.raises(TariffRuleError, match=r"Decimal\('10'\) for 10 %"):
        percent_to_bp(10.0)  # type: ignore[arg-type]
    with pytest.raises(TariffRuleError, match="given as a Decimal"):
        percent_to_bp(1000)  # type: ignore[arg-type]


def test_the_commission_unit_confusion_guard() -> None:
    # given an operator typing "10" meaning 10 %, and another typing "1000" thinking in basis points
    rule = percent_commission(Decimal("10"), cap_paise=2_000)
    # then 10 % of ₹150 is ₹15, capped at ₹20 on ₹500, and "1000" never becomes 1000 %
    assert rule.percent_bp == 1000
    assert commission_for(rule, 15_000) == 1_500
    assert commission_for(rule, 50_000) == 2_000
    with pytest.raises(TariffRuleError, match="not 1000"):
        percent_commission(Decimal("1000"))
    assert commission_for(flat_commission(500), 300) == 300  # never more than the vend itself
    assert commission_for(percent_commission(Decimal("2.5")), 999) == 24  # rounded down


def test_a_commission_is_a_percentage_or_a_flat_amount_not_both() -> None:
    from citygas.tariffs.rules import CommissionRule

    with pytest.raises(TariffRuleError, match="either a percentage or a flat amount"):
        CommissionRule(percent_bp=100, flat_paise=100)


def test_vat_split_rounds_gas_value_up_and_keeps_every_paisa() -> None:
    # ₹500 with VAT at 3 %: 50000 / 1.03 = 48543.69… → gas value 48544, VAT 1456
    split = gas_value_for(50_000, rate_paise_per_scm=4_950, vat_bp=300)
    assert (split.gas_value_paise, split.vat_paise) == (48_544, 1_456)
    # 48544 paise at ₹49.50 per SCM is 9806.87 litres → 9807 litres
    assert split.litres == 9_807
    assert split_inclusive(1, 1_450) == (1, 0)
    assert split_inclusive(0, 1_450) == (0, 0)


@given(gross=st.integers(0, 10**12), vat_bp=st.integers(0, 10_000))
def test_vat_split_sums_to_the_whole_for_every_amount(gross: int, vat_bp: int) -> None:
    net, vat = split_inclusive(gross, vat_bp)
    assert net + vat == gross
    assert vat >= 0
    # VAT never exceeds the exact figure, and falls short of it by less than one paisa
    exact = Decimal(gross) * vat_bp / (10_000 + vat_bp)
    assert Decimal(vat) <= exact < vat + 1


@given(paise=st.integers(0, 10**10), rate=st.integers(1, 10**6))
def test_litres_are_rounded_up_and_never_overcharged(paise: int, rate: int) -> None:
    litres = litres_for_paise(paise, rate)
    assert litres * rate >= paise * 1000 > (litres - 1) * rate
    assert paise_for_litres(litres, rate) >= paise - (rate // 1000 + 1)


def test_tax_on_a_service_is_rounded_down() -> None:
    assert tax_on(11_799, 1_800) == 2_123  # 2123.82
    assert tax_on(100_000, 1_800) == 18_000


def test_the_version_in_force_changes_at_its_first_instant() -> None:
    start = datetime(2026, 4, 1, tzinfo=UTC)
    versions = [(start, "old"), (start + timedelta(days=30), "new")]
    assert version_in_force(versions, start - timedelta(microseconds=1)) is None
    assert version_in_force(versions, start) == "old"
    assert version_in_force(versions, start + timedelta(days=30, microseconds=-1)) == "old"
    assert version_in_force(versions, start + timedelta(days=30)) == "new"
    with pytest.raises(TariffRuleError, match="aware"):
        version_in_force(versions, datetime(2026, 5, 1))  # noqa: DTZ001 - the point of the test


def test_instalments_fixed_or_capped_percentage_never_beyond_what_is_owed() -> None:
    fixed = fixed_instalment(10_000)
    assert instalment_due(fixed, topup_paise=50_000, outstanding_paise=250_000) == 10_000
    assert instalment_due(fixed, topup_paise=50_000, outstanding_paise=4_000) == 4_000
    share = percent_instalment(Decimal("10"), cap_paise=7_500)
    assert instalment_due(share, topup_paise=50_000, outstanding_paise=250_000) == 5_000
    assert instalment_due(share, topup_paise=100_000, outstanding_paise=250_000) == 7_500
    assert instalment_due(share, topup_paise=12_345, outstanding_paise=250_000) == 1_234
    with pytest.raises(TariffRuleError, match="not 1000"):
        percent_instalment(Decimal("1000"), cap_paise=7_500)


def test_the_waterfall_takes_debt_then_instalments_then_fixed_charges_then_gas() -> None:
    allocation = allocate_topup(
        50_000, instalments_due=10_000, fixed_charges_due=3_000, debt_due=5_000, minimum_paise=10_000
    )
    assert (
        allocation.debt_paise,
        allocation.instalment_paise,
        allocation.fixed_charge_paise,
        allocation.gas_credit_paise,
    ) == (5_000, 10_000, 3_000, 32_000)
    assert allocation.deductions == [
        ("debt_recovery", 5_000),
        ("instalment", 10_000),
        ("fixed_charges", 3_000),
    ]


def test_a_small_top_up_is_eaten_in_order_and_a_cap_leaves_gas() -> None:
    short = allocate_topup(
        12_000, instalments_due=10_000, fixed_charges_due=3_000, debt_due=5_000, minimum_paise=100
    )
    assert (short.debt_paise, short.instalment_paise, short.fixed_charge_paise, short.gas_credit_paise) == (
        5_000,
        7_000,
        0,
        0,
    )
    capped = allocate_topup(
        12_000,
        instalments_due=10_000,
        fixed_charges_due=3_000,
        debt_due=5_000,
        minimum_paise=100,
        recovery_cap_bp=5_000,
    )
    assert (capped.debt_paise, capped.instalment_paise, capped.gas_credit_paise) == (5_000, 1_000, 6_000)


def test_amounts_outside_the_limits_are_refused() -> None:
    with pytest.raises(AmountOutOfRange, match="the smallest top-up is 10000 paise; 9999 paise is less"):
        allocate_topup(9_999, instalments_due=0, fixed_charges_due=0, debt_due=0, minimum_paise=10_000)
    with pytest.raises(AmountOutOfRange, match="the largest top-up is 1000000 paise"):
        allocate_topup(
            1_000_001,
            instalments_due=0,
            fixed_charges_due=0,
            debt_due=0,
            minimum_paise=1,
            maximum_paise=1_000_000,
        )
    with pytest.raises(TariffRuleError, match="at least 0"):
        allocate_topup(10_000, instalments_due=-1, fixed_charges_due=0, debt_due=0, minimum_paise=1)


@given(
    amount=st.integers(1, 10**9),
    instalments=st.integers(0, 10**9),
    fixed=st.integers(0, 10**9),
    debt=st.integers(0, 10**9),
    cap=st.integers(0, 10_000),
)
def test_the_waterfall_is_never_negative_and_sums_to_the_amount(
    amount: int, instalments: int, fixed: int, debt: int, cap: int
) -> None:
    a = allocate_topup(
        amount,
        instalments_due=instalments,
        fixed_charges_due=fixed,
        debt_due=debt,
        minimum_paise=1,
        recovery_cap_bp=cap,
    )
    parts = (a.debt_paise, a.instalment_paise, a.fixed_charge_paise, a.gas_credit_paise)
    assert all(p >= 0 for p in parts)
    assert sum(parts) == amount
    assert a.debt_paise <= debt
    assert a.instalment_paise <= instalments
    assert a.fixed_charge_paise <= fixed
    assert amount - a.gas_credit_paise <= amount * cap // 10_000
    # a later stage only gets money once every earlier one is paid in full
    if a.instalment_paise:
        assert a.debt_paise == debt
    if a.fixed_charge_paise:
        assert a.instalment_paise == instalments
